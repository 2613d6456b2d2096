// packages/api-client/src/generated.ts is generated from the server's OpenAPI document: this fails when
// a route changed and nobody ran `npm run generate:api-client`. It also checks the generated client
// against a running platform through a plain fetch-free transport.
import 'reflect-metadata';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createOperations, operations } from '@bulwark/api-client';
import { clientSource, currentOpenApi, GENERATED } from '../../../scripts/generate-api-client.ts';
import { generateClient, schemaToTs } from '../../../packages/api-client/src/codegen.ts';
import { startPlatform } from '../../../test/support/platform.ts';

test('the generated API client matches the OpenAPI document', async () => {
  const want = await clientSource(await currentOpenApi());
  assert.ok(
    readFileSync(GENERATED, 'utf8') === want,
    'packages/api-client/src/generated.ts is stale: run `npm run generate:api-client`',
  );
});

test('every operation of the table names its permission; only sign-in is public', () => {
  const entries = Object.entries(operations);
  assert.ok(entries.length > 50);
  const open = entries.filter(([, o]) => o.action === null).map(([id]) => id);
  assert.deepEqual(open.sort(), [
    'postAuthCliStart',
    'postAuthCliToken',
    'postAuthLogin',
    'postAuthPassword',
  ]);
});

test('schemas become TypeScript types', () => {
  const table: [unknown, string][] = [
    [{ type: 'string' }, 'string'],
    [{ type: ['string', 'null'] }, 'string | null'],
    [{ type: 'integer' }, 'number'],
    [{ enum: ['a', 'b'] }, '"a" | "b"'],
    [{ type: 'array', items: { type: 'boolean' } }, 'Array<boolean>'],
    [{ $ref: '#/components/schemas/Problem' }, 'SchemaProblem'],
    [
      { type: 'object', properties: { 'a-b': { type: 'string' } }, required: ['a-b'] },
      '{\n  "a-b": string;\n}',
    ],
    [{}, 'unknown'],
  ];
  for (const [schema, ts] of table) assert.equal(schemaToTs(schema as never), ts, JSON.stringify(schema));
  assert.match(generateClient({ paths: {} }), /export function createOperations/);
});

test('the generated operations work against a running platform', async () => {
  const p = await startPlatform({ iam: { scrypt: { logN: 10, r: 8, p: 1 } } });
  try {
    const ops = createOperations({
      async request(method, path, opts = {}) {
        const q = new URLSearchParams(
          Object.entries(opts.query ?? {})
            .filter(([, v]) => v !== undefined)
            .map(([k, v]) => [k, String(v)]),
        ).toString();
        const r = await p.api(method, `/api/v1${path}${q ? `?${q}` : ''}`, opts.body);
        if (r.status >= 300) throw new Error(`${r.status} ${JSON.stringify(r.body)}`);
        return { status: r.status, body: r.body };
      },
    });
    const me = await ops.getWhoami();
    assert.equal(me.role, 'owner');
    const created = await ops.postAccountsByAccountIdTokens({
      params: { accountId: 'me' },
      body: { name: 'typed', scope: { actions: ['devices:read'] } },
    });
    assert.match(created.secret, /^bwk_/);
    const listed = await ops.getAccountsByAccountIdTokens({ params: { accountId: 'me' } });
    assert.ok(listed.items?.some((t) => t.id === created.token.id));
  } finally {
    await p.close();
  }
});
