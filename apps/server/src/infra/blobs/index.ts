// Content-addressed artifact storage on the local filesystem: `<dir>/sha256/<ab>/<sha256>`.
// An upload streams into a temporary file while it is hashed and counted; past the size limit it is
// stopped and removed. The file is fsynced and renamed into place, so a blob is either whole or absent,
// and the same bytes uploaded twice are stored once.
import { createHash, randomUUID } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { AppError } from '../../kernel/index.ts';
import type { BlobStore } from '../../modules/ota/index.ts';

const SHA256 = /^[0-9a-f]{64}$/;

export function createFsBlobStore(dir: string): BlobStore {
  const pathOf = (sha256: string) => {
    if (!SHA256.test(sha256)) throw new AppError('ERR_OTA_NOT_FOUND');
    return join(dir, 'sha256', sha256.slice(0, 2), sha256);
  };
  return {
    async put(body, { maxBytes }) {
      await mkdir(join(dir, 'tmp'), { recursive: true, mode: 0o700 });
      const tmp = join(dir, 'tmp', `${randomUUID()}.part`);
      const file = await open(tmp, 'wx', 0o600);
      const hash = createHash('sha256');
      let size = 0;
      let done = false;
      try {
        for await (const chunk of body) {
          size += chunk.length;
          if (size > maxBytes) {
            throw new AppError(
              'ERR_RELEASE_ARTIFACT_TOO_LARGE',
              `The artifact is larger than ${maxBytes} bytes`,
            );
          }
          hash.update(chunk);
          await file.write(chunk);
        }
        await file.sync();
        await file.close();
        done = true;
        const sha256 = hash.digest('hex');
        const final = pathOf(sha256);
        await mkdir(join(dir, 'sha256', sha256.slice(0, 2)), { recursive: true, mode: 0o700 });
        await rename(tmp, final);
        return { sha256, size };
      } finally {
        if (!done) await file.close().catch(() => {});
        await rm(tmp, { force: true });
      }
    },
    async stat(sha256) {
      if (!SHA256.test(sha256)) return undefined;
      try {
        const s = await stat(pathOf(sha256));
        return { size: s.size };
      } catch {
        return undefined;
      }
    },
    get(sha256, range): Readable {
      return createReadStream(pathOf(sha256), range ? { start: range.start, end: range.end } : {});
    },
  };
}
