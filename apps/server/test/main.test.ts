// The server process itself: invalid configuration is reported in full and the exit status is non-zero.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { tempDir } from '../../../test/support/db.ts';

const MAIN = fileURLToPath(new URL('../src/main.ts', import.meta.url));

test('invalid configuration: every problem listed, exit status 1, nothing created', () => {
  const dir = tempDir();
  try {
    const r = spawnSync(process.execPath, [MAIN], {
      env: {
        PATH: process.env.PATH,
        BULWARK_DATA_DIR: `${dir.path}/data`,
        BULWARK_MQTT_PORT: 'eighty',
        BULWARK_HTTP_PORT: '99999',
        BULWARK_LOG_LEVEL: 'chatty',
      },
      encoding: 'utf8',
      timeout: 20_000,
    });
    assert.equal(r.status, 1);
    assert.match(r.stderr, /Invalid configuration \(3 problems\)/);
    assert.match(r.stderr, /mqtt\.port/);
    assert.match(r.stderr, /http\.port/);
    assert.match(r.stderr, /log\.level/);
    assert.equal(existsSync(`${dir.path}/data`), false);
  } finally {
    dir.cleanup();
  }
});
