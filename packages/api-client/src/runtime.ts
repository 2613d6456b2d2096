// What the generated operations need: something that sends one request to `/api/v1<path>` and gives
// back the parsed JSON body of a 2xx answer (and throws for anything else). The CLI brings its own
// (HTTPS with a pinned CA); a browser or a test may bring another.

export type QueryValue = string | number | boolean | undefined;

export interface ApiTransport {
  request(
    method: string,
    path: string,
    options?: { query?: Record<string, string | number | undefined>; body?: unknown },
  ): Promise<{ status: number; body: unknown }>;
}

/** Query values as strings; undefined ones are left out. */
export function queryOf(
  q: Record<string, QueryValue> | undefined,
): Record<string, string | number | undefined> {
  const out: Record<string, string | number | undefined> = {};
  for (const [k, v] of Object.entries(q ?? {}))
    if (v !== undefined) out[k] = typeof v === 'boolean' ? String(v) : v;
  return out;
}

export const seg = (v: string | number): string => encodeURIComponent(String(v));
