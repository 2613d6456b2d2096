import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { CommandSpec } from '../src/args.ts';
import { flagInt, parseArgs } from '../src/args.ts';
import { UsageError } from '../src/errors.ts';
import { runInProcess } from './helpers/run-cli.ts';

const specs: CommandSpec[] = [
  { path: ['login'], summary: '', positionals: [], flags: {} },
  {
    path: ['device', 'create'],
    summary: '',
    positionals: [{ name: 'id', description: '' }],
    flags: {
      out: { type: 'string', description: '' },
      attr: { type: 'string', multiple: true, description: '' },
      existing: { type: 'boolean', description: '' },
    },
  },
  {
    path: ['device', 'list'],
    summary: '',
    positionals: [],
    flags: { limit: { type: 'string', description: '' } },
  },
];

function parse(argv: string[]) {
  return parseArgs(argv, specs);
}

describe('parseArgs', () => {
  it('parses a subcommand with positionals, value flags, repeated flags and globals anywhere', () => {
    const r = parse([
      '--json',
      'device',
      'create',
      'sensor-1',
      '--out=dir',
      '--attr',
      'a=1',
      '--attr',
      'b=2',
      '--existing',
      '--url',
      'https://x',
    ]);
    assert.equal(r.kind, 'run');
    if (r.kind !== 'run') return;
    assert.deepEqual(r.command.path, ['device', 'create']);
    assert.deepEqual(r.positionals, { id: 'sensor-1' });
    assert.deepEqual(r.flags, {
      json: true,
      out: 'dir',
      attr: ['a=1', 'b=2'],
      existing: true,
      url: 'https://x',
    });
  });

  it('takes words after -- as positionals, and `-` as a value', () => {
    const r = parse(['device', 'create', '--', '--weird']);
    assert.equal(r.kind, 'run');
    if (r.kind === 'run') assert.equal(r.positionals.id, '--weird');
    const t = parse(['login', '--token', '-']);
    assert.equal(t.kind === 'run' && t.flags.token, '-');
  });

  it('returns help and version requests', () => {
    assert.deepEqual(parse([]), { kind: 'help', command: undefined, group: undefined });
    assert.equal(parse(['--version']).kind, 'version');
    const h = parse(['device', 'create', '--help']);
    assert.equal(h.kind === 'help' && h.command?.path.join(' '), 'device create');
    // Help wins over errors that would follow (missing id, unknown flag).
    assert.equal(parse(['device', 'create', '--bogus', '-h']).kind, 'help');
    const g = parse(['device', '--help']);
    assert.equal(g.kind === 'help' && g.group, 'device');
  });

  const bad: [string, string[], RegExp][] = [
    ['unknown command', ['frobnicate'], /unknown command 'frobnicate'/],
    ['unknown command with suggestion', ['logn'], /did you mean 'login'/],
    ['unknown subcommand', ['device', 'explode'], /unknown command 'device explode'/],
    ['group without subcommand', ['device'], /'device' needs a subcommand/],
    ['unknown flag', ['device', 'list', '--bogus'], /unknown flag '--bogus' for 'device list'/],
    ['flag of another command', ['device', 'list', '--out', 'x'], /unknown flag '--out'/],
    ['command flag before the command', ['--limit', '3', 'device', 'list'], /unknown flag '--limit'/],
    ['single-dash flag', ['device', 'list', '-x'], /unknown flag '-x'/],
    ['missing value', ['device', 'list', '--limit'], /'--limit' needs a value/],
    ['flag as value', ['device', 'create', 'a', '--out', '--existing'], /'--out' needs a value/],
    ['value on boolean', ['device', 'create', 'a', '--existing=yes'], /takes no value/],
    ['missing positional', ['device', 'create'], /missing <id>/],
    ['extra positional', ['device', 'create', 'a', 'b'], /unexpected argument 'b'/],
    ['repeated single flag', ['device', 'list', '--limit', '1', '--limit', '2'], /given more than once/],
  ];
  for (const [name, argv, message] of bad) {
    it(`rejects: ${name}`, () => {
      assert.throws(
        () => parse(argv),
        (err: unknown) => err instanceof UsageError && message.test(err.message),
      );
    });
  }

  it('flagInt checks range and digits', () => {
    assert.equal(flagInt({ limit: '10' }, 'limit', []), 10);
    assert.equal(flagInt({}, 'limit', []), undefined);
    for (const v of ['0', '-1', '1.5', 'ten', '1001', '']) {
      assert.throws(() => flagInt({ limit: v }, 'limit', [], 1, 1000), UsageError);
    }
  });
});

describe('usage errors through run()', () => {
  const cases: [string, string[], RegExp][] = [
    ['unknown command', ['nope'], /^error: unknown command 'nope'\nrun 'bulwark --help'/],
    [
      'unknown flag',
      ['device', 'show', 'x', '--colour'],
      /^error: unknown flag '--colour' for 'device show'\nusage: bulwark device show <id>/,
    ],
    ['missing id', ['device', 'show'], /^error: missing <id>\nusage: bulwark device show <id>/],
    [
      'invalid id (space)',
      ['device', 'show', 'bad id'],
      /^error: invalid device id 'bad id': Device ids are 1-128 characters/,
    ],
    ['invalid id (slash)', ['device', 'create', 'a/b'], /invalid device id 'a\/b'/],
    ['invalid id (leading dot)', ['device', 'revoke', '.hidden'], /invalid device id/],
    ['invalid id (too long)', ['device', 'delete', 'x'.repeat(129)], /invalid device id/],
    ['invalid id (wildcard)', ['telemetry', 'dev+'], /invalid device id 'dev\+'/],
    [
      'bad key type',
      ['device', 'create', 'a', '--key-type', 'dsa'],
      /--key-type must be one of p256, p384, ed25519, rsa2048/,
    ],
    ['bad attribute', ['device', 'create', 'a', '--attr', 'novalue'], /--attr expects KEY=VALUE/],
    ['bad limit', ['device', 'list', '--limit', 'lots'], /--limit must be a whole number/],
    ['bad time', ['telemetry', 'a', '--from', 'yesterday'], /--from must be an ISO 8601 time/],
    [
      'from after to',
      ['telemetry', 'a', '--from', '2025-02-01T00:00:00Z', '--to', '2025-01-01T00:00:00Z'],
      /--from must not be after --to/,
    ],
    [
      'follow with to',
      ['telemetry', 'a', '--follow', '--to', '2025-01-01T00:00:00Z'],
      /--follow cannot be combined with --to/,
    ],
    [
      'cert list with a bad expiry window',
      ['cert', 'list', '--expiring-within', 'soon'],
      /--expiring-within expects days/,
    ],
    ['enroll-code revoke with a bad id', ['enroll-code', 'revoke', 'nope'], /is not an enrollment code id/],
    ['ca disable with a bad id', ['ca', 'disable', 'issuing:default:1'], /is not an external CA id/],
    ['ca register without files', ['ca', 'register'], /missing --cert <file>/],
    ['bad serial', ['cert', 'revoke', 'xyz!'], /is not a certificate serial number/],
    [
      'bad revocation reason',
      ['cert', 'revoke', 'ab12', '--reason', 'lost'],
      /--reason must be one of unspecified/,
    ],
  ];
  for (const [name, argv, pattern] of cases) {
    it(`${name} -> exit 2`, async () => {
      // A URL and token are set so that the failure can only come from the arguments.
      const r = await runInProcess(argv, {
        env: { BULWARK_URL: 'https://127.0.0.1:1', BULWARK_TOKEN: 't', BULWARK_CONFIG_DIR: '/nonexistent' },
      });
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, pattern);
      assert.equal(r.stdout, '');
    });
  }

  it('no URL configured -> exit 2 naming the ways to set one', async () => {
    const r = await runInProcess(['device', 'list'], { env: { BULWARK_CONFIG_DIR: '/nonexistent' } });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /no server URL: pass --url, set BULWARK_URL, or run `bulwark login`/);
  });

  it('plain http URL -> exit 2', async () => {
    const r = await runInProcess(['device', 'list', '--url', 'http://127.0.0.1:8080', '--token', 't'], {
      env: { BULWARK_CONFIG_DIR: '/nonexistent' },
    });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /not an https:\/\/ URL/);
  });

  it('every command has help with its usage line', async () => {
    const { commands } = await import('../src/commands/index.ts');
    for (const c of commands) {
      const r = await runInProcess([...c.path, '--help']);
      assert.equal(r.code, 0);
      assert.ok(r.stdout.startsWith(`usage: bulwark ${c.path.join(' ')}`), c.path.join(' '));
      assert.ok(r.stdout.includes('global options:'));
    }
  });

  it('help and version go to stdout with exit 0', async () => {
    const h = await runInProcess(['--help']);
    assert.equal(h.code, 0);
    for (const c of [
      'login',
      'device create <id>',
      'device list',
      'cert revoke <serial>',
      'telemetry <id>',
      'audit',
      'start',
    ]) {
      assert.ok(h.stdout.includes(c), c);
    }
    const d = await runInProcess(['device', 'create', '--help']);
    assert.match(d.stdout, /^usage: bulwark device create <id> \[options\]/);
    assert.match(d.stdout, /--key-type p256\|p384\|ed25519\|rsa2048/);
    const v = await runInProcess(['--version']);
    assert.match(v.stdout, /^bulwark \d+\.\d+\.\d+\n$/);
  });
});
