// Runs the whole test suite with node:test. Services the tests need are checked first: when one is
// missing, its tests are skipped with the reason printed here and again at the end, except under CI
// (CI=true), where a missing service is a failure, never a skip.
import { spawn, spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import pg from 'pg';

const ci = process.env.CI === 'true' || process.env.CI === '1';
const skipped: string[] = [];
const env: NodeJS.ProcessEnv = { ...process.env };

async function probePostgres(url: string): Promise<string | undefined> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 3000 });
  try {
    await client.connect();
    await client.query('SELECT 1');
    return undefined;
  } catch (err) {
    return (err as Error).message;
  } finally {
    await client.end().catch(() => {});
  }
}

const pgUrl = process.env.BULWARK_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const pgProblem = await probePostgres(pgUrl);
if (pgProblem) {
  delete env.BULWARK_TEST_PG_URL;
  skipped.push(`PostgreSQL store tests: cannot reach ${pgUrl} (${pgProblem})`);
} else {
  env.BULWARK_TEST_PG_URL = pgUrl;
}

/** NATS answers with INFO on connect; a TCP connect is enough to know it is there. */
function probeTcp(host: string, port: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const sock = connect({ host, port, timeout: 3000 });
    const done = (problem: string | undefined) => {
      sock.destroy();
      resolve(problem);
    };
    sock.once('connect', () => done(undefined));
    sock.once('timeout', () => done('timed out'));
    sock.once('error', (err) => done(err.message));
  });
}

const natsUrl = process.env.BULWARK_TEST_NATS_URL ?? 'nats://127.0.0.1:4222';
const nats = new URL(natsUrl);
const natsProblem = await probeTcp(nats.hostname, Number(nats.port || 4222));
if (natsProblem) {
  delete env.BULWARK_TEST_NATS_URL;
  skipped.push(`NATS cluster tests: cannot reach ${natsUrl} (${natsProblem})`);
} else {
  env.BULWARK_TEST_NATS_URL = natsUrl;
}

for (const tool of ['mosquitto_pub', 'mosquitto_sub', 'openssl']) {
  if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0)
    skipped.push(`tests using ${tool}: not installed`);
}

if (skipped.length > 0) {
  for (const s of skipped) console.log(`# will skip: ${s}`);
  if (ci) {
    console.error('CI=true: every service and tool the tests need must be present; refusing to skip.');
    process.exit(1);
  }
}

function findTests(dir: string, out: string[] = []): string[] {
  for (const entry of readdirSync(dir)) {
    if (entry === 'node_modules') continue;
    const p = join(dir, entry);
    if (statSync(p).isDirectory()) findTests(p, out);
    else if (entry.endsWith('.test.ts')) out.push(p);
  }
  return out;
}

const roots = ['apps', 'packages'].flatMap((r) =>
  readdirSync(r)
    .map((d) => join(r, d, 'test'))
    .filter((d) => {
      try {
        return statSync(d).isDirectory();
      } catch {
        return false;
      }
    }),
);
const only = process.argv.slice(2);
const files = only.length > 0 ? only : roots.flatMap((r) => findTests(r)).sort();

const child = spawn(process.execPath, ['--test', '--test-concurrency=2', '--test-timeout=120000', ...files], {
  stdio: 'inherit',
  env,
});
child.on('exit', (code, signal) => {
  if (skipped.length > 0) {
    console.log('\nSkipped because a service or tool is missing:');
    for (const s of skipped) console.log(`  - ${s}`);
  }
  process.exit(code ?? (signal ? 1 : 0));
});
