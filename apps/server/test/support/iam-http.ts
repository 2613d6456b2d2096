// A small HTTPS client for IAM tests: any headers (cookies, CSRF), raw set-cookie back.
import { request } from 'node:https';

export interface Reply<T = unknown> {
  status: number;
  body: T;
  headers: Record<string, string | string[] | undefined>;
  cookies: Record<string, string>;
}

export function call<T = unknown>(
  base: string,
  ca: string,
  method: string,
  path: string,
  opts: {
    body?: unknown;
    token?: string;
    cookie?: string;
    csrf?: string;
    headers?: Record<string, string>;
  } = {},
): Promise<Reply<T>> {
  return new Promise((resolve, reject) => {
    const payload = opts.body === undefined ? undefined : JSON.stringify(opts.body);
    const req = request(
      new URL(path, base),
      {
        method,
        ca,
        headers: {
          ...(opts.token ? { authorization: `Bearer ${opts.token}` } : {}),
          ...(opts.cookie ? { cookie: opts.cookie } : {}),
          ...(opts.csrf ? { 'x-csrf-token': opts.csrf } : {}),
          ...(payload !== undefined ? { 'content-type': 'application/json' } : {}),
          ...opts.headers,
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let parsed: unknown = text;
          try {
            parsed = text ? JSON.parse(text) : undefined;
          } catch {
            // not JSON
          }
          const cookies: Record<string, string> = {};
          for (const c of res.headers['set-cookie'] ?? []) {
            const [pair] = c.split(';');
            const eq = (pair ?? '').indexOf('=');
            if (eq > 0) cookies[(pair ?? '').slice(0, eq)] = (pair ?? '').slice(eq + 1);
          }
          resolve({ status: res.statusCode ?? 0, body: parsed as T, headers: res.headers, cookies });
        });
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}
