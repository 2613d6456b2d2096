import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { generated } from '../../../scripts/gen-docs.ts';

for (const [path, make] of Object.entries(generated)) {
  test(`${path} matches the code (run \`npm run docs\` after changing it)`, () => {
    assert.equal(readFileSync(new URL(`../../../${path}`, import.meta.url), 'utf8'), make());
  });
}
