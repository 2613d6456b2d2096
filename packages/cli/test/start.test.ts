import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { resolveServerEntry, runServer, SERVER_ENTRY } from '../src/commands/start.ts';
import { commands } from '../src/commands/index.ts';
import { createContext } from '../src/context.ts';

let tmp: string;
before(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'bulwark-cli-start-'));
});
after(async () => {
  await rm(tmp, { recursive: true, force: true });
});

function context(controller: AbortController) {
  const sink = new Writable({ write: (_c, _e, cb) => cb() });
  const start = commands.find((c) => c.path[0] === 'start');
  assert.ok(start);
  return createContext(
    {
      stdout: sink,
      stderr: sink,
      stdin: Readable.from([]),
      env: { PATH: process.env.PATH },
      cwd: tmp,
      signal: controller.signal,
      catchInterrupts: () => {},
    },
    start,
    {},
    {},
    '0.0.0',
  );
}

describe('bulwark start', () => {
  it('reports a missing server package as undefined', () => {
    assert.equal(
      resolveServerEntry(() => {
        throw Object.assign(new Error('not found'), { code: 'ERR_MODULE_NOT_FOUND' });
      }),
      undefined,
    );
    assert.equal(
      resolveServerEntry((s) => (s === SERVER_ENTRY ? 'file:///opt/server/main.ts' : '')),
      '/opt/server/main.ts',
    );
  });

  it('runs the entry with the arguments and returns its exit code', async () => {
    const entry = join(tmp, 'exit.mjs');
    await writeFile(entry, 'process.exit(process.argv.slice(2).join(" ") === "--config /x.json" ? 7 : 1);\n');
    assert.equal(await runServer(context(new AbortController()), entry, ['--config', '/x.json']), 7);
  });

  it('forwards an interrupt to the server and waits for it to stop', async () => {
    const entry = join(tmp, 'server.mjs');
    const marker = join(tmp, 'stopped');
    // stdio is inherited, so the fake server says it is up through a file; it exits 0 on SIGTERM.
    await writeFile(
      entry,
      [
        "import { writeFileSync } from 'node:fs';",
        `process.on('SIGTERM', () => { writeFileSync(${JSON.stringify(marker)}, 'SIGTERM'); process.exit(0); });`,
        `writeFileSync(${JSON.stringify(join(tmp, 'up'))}, 'up');`,
        'setInterval(() => {}, 1000);',
      ].join('\n'),
    );
    const controller = new AbortController();
    const { watch } = await import('node:fs');
    const up = new Promise<void>((resolve) => {
      const w = watch(tmp, (_e, name) => {
        if (name === 'up') {
          w.close();
          resolve();
        }
      });
    });
    const exit = runServer(context(controller), entry, []);
    await up;
    controller.abort('SIGTERM');
    assert.equal(await exit, 0);
    const { readFileSync } = await import('node:fs');
    assert.equal(readFileSync(marker, 'utf8'), 'SIGTERM');
  });
});
