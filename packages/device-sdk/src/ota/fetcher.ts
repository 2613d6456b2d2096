// Downloads for tuf-js over HTTPS with the device's client certificate (mutual TLS), resuming
// interrupted artifact downloads with Range requests. tuf-js still checks every byte: it caps the length
// of what it reads and verifies the hashes, so a resumed file that does not match is refused as a whole.
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, rm, stat } from 'node:fs/promises';
import type { IncomingMessage } from 'node:http';
import { Agent, request, type AgentOptions } from 'node:https';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { BaseFetcher } from 'tuf-js';
import { DownloadHTTPError } from 'tuf-js/dist/error.js';

export interface MtlsFetcherOptions {
  /** TLS options: client key (or engine reference), certificate chain, CA of the platform's server certificate. */
  tls: Pick<AgentOptions, 'key' | 'cert' | 'ca' | 'servername' | 'privateKeyEngine' | 'privateKeyIdentifier'>;
  /** Partial downloads are kept here between attempts. */
  partialDir: string;
  /** No answer for this long: the request fails (and a later attempt resumes). Default 30 s. */
  timeoutMs?: number;
  userAgent?: string;
}

export class MtlsFetcher extends BaseFetcher {
  readonly #agent: Agent;
  readonly #o: MtlsFetcherOptions;
  /** Bytes of artifacts actually transferred (resumed downloads count only what was fetched). */
  bytesFetched = 0;
  /** How many requests asked for a range (resumed). */
  resumed = 0;

  constructor(options: MtlsFetcherOptions) {
    super();
    this.#o = options;
    this.#agent = new Agent({ ...options.tls, keepAlive: true, maxSockets: 2 });
  }

  readonly #inflight = new Set<{ destroy(): void }>();

  /** Stops every transfer still running (tuf-js stops reading at the length limit; this frees the socket). */
  cancel(): void {
    for (const r of this.#inflight) r.destroy();
    this.#inflight.clear();
  }

  close(): void {
    this.cancel();
    this.#agent.destroy();
  }

  /** Where a partial download of `url` is kept. */
  partialPath(url: string): string {
    return join(this.#o.partialDir, createHash('sha256').update(url).digest('hex'));
  }

  async fetch(url: string): Promise<ReadableStream<Uint8Array<ArrayBuffer>>> {
    const resumable = new URL(url).pathname.includes('/targets/');
    const partial = resumable ? this.partialPath(url) : undefined;
    let have = 0;
    if (partial) {
      await mkdir(this.#o.partialDir, { recursive: true, mode: 0o700 });
      have = await stat(partial).then(
        (s) => s.size,
        () => 0,
      );
    }
    const res = await this.#get(url, have > 0 ? `bytes=${have}-` : undefined);
    this.#inflight.add(res);
    res.once('close', () => this.#inflight.delete(res));
    const status = res.statusCode ?? 0;
    if (status === 416 && partial) {
      // The partial file is not a prefix of this target (or is all of it): start over.
      res.resume();
      await rm(partial, { force: true });
      return this.fetch(url);
    }
    if (status !== 200 && status !== 206) {
      res.resume();
      throw new DownloadHTTPError(`GET ${new URL(url).pathname}: HTTP ${status}`, status);
    }
    if (!partial) return Readable.toWeb(res) as ReadableStream<Uint8Array<ArrayBuffer>>;
    if (status === 200) have = 0;
    else this.resumed++;
    // Everything received is appended to the partial file as it arrives, so a broken connection loses
    // nothing; the stream handed to tuf-js is the partial file's bytes followed by the new ones.
    const out = new PassThrough();
    const file = createWriteStream(partial, { flags: have > 0 ? 'a' : 'w', mode: 0o600 });
    void (async () => {
      try {
        if (have > 0)
          for await (const chunk of createReadStream(partial, { end: have - 1 })) out.write(chunk);
        for await (const chunk of res as AsyncIterable<Buffer>) {
          this.bytesFetched += chunk.length;
          if (!file.write(chunk)) await new Promise<void>((r) => file.once('drain', () => r()));
          if (!out.write(chunk)) await new Promise<void>((r) => out.once('drain', () => r()));
        }
        await new Promise<void>((resolve, reject) =>
          file.end((err?: Error | null) => (err ? reject(err) : resolve())),
        );
        out.end();
      } catch (err) {
        file.end();
        out.destroy(err as Error);
      }
    })();
    return Readable.toWeb(out) as ReadableStream<Uint8Array<ArrayBuffer>>;
  }

  #get(url: string, range: string | undefined): Promise<IncomingMessage> {
    return new Promise((resolve, reject) => {
      const req = request(
        url,
        {
          agent: this.#agent,
          timeout: this.#o.timeoutMs ?? 30_000,
          headers: {
            'user-agent': this.#o.userAgent ?? 'bulwark-device-ota',
            ...(range ? { range } : {}),
          },
        },
        resolve,
      );
      req.on('timeout', () => req.destroy(new Error(`no answer from ${new URL(url).host} in time`)));
      req.on('error', reject);
      req.end();
    });
  }
}
