import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { clean, formatAttributes, formatKeyValues, formatTable } from '../src/output.ts';

describe('formatTable', () => {
  it('aligns columns under upper-case headers without trailing blanks', () => {
    const rows = [
      { id: 'sensor-1', status: 'active', n: 3 },
      { id: 'gw', status: 'disabled', n: 120 },
    ];
    const text = formatTable(
      [
        { header: 'id', value: (r) => r.id },
        { header: 'n', value: (r) => String(r.n), align: 'right' },
        { header: 'status', value: (r) => r.status },
      ],
      rows,
    );
    assert.equal(
      text,
      ['ID          N  STATUS', 'sensor-1    3  active', 'gw        120  disabled', ''].join('\n'),
    );
  });

  it('prints only headers for no rows', () => {
    assert.equal(formatTable([{ header: 'id', value: (r: { id: string }) => r.id }], []), 'ID\n');
  });

  it('escapes control characters so server data cannot drive the terminal or break rows', () => {
    const text = formatTable(
      [{ header: 'v', value: (r: { v: string }) => r.v }],
      [{ v: 'a\nb\u001b[31mred\u0007' }],
    );
    assert.equal(text, 'V\na\\nb\\x1b[31mred\\x07\n');
    assert.equal(clean('tab\there'), 'tab\\there');
  });

  it('counts wide characters as two columns', () => {
    const text = formatTable(
      [
        { header: 'name', value: (r: { a: string; b: string }) => r.a },
        { header: 'x', value: (r) => r.b },
      ],
      [
        { a: '温度', b: '1' },
        { a: 'temp', b: '2' },
      ],
    );
    assert.equal(text, 'NAME  X\n温度  1\ntemp  2\n');
  });
});

describe('formatKeyValues / formatAttributes', () => {
  it('aligns values and leaves out undefined ones', () => {
    assert.equal(
      formatKeyValues([
        ['id', 'sensor-1'],
        ['connected', undefined],
        ['status', 'active'],
      ]),
      'id      sensor-1\nstatus  active\n',
    );
  });

  it('renders attributes as k=v with JSON for non-strings', () => {
    assert.equal(formatAttributes({ room: 'lab', floor: 3, tags: ['a'] }), 'room=lab, floor=3, tags=["a"]');
    assert.equal(formatAttributes({}), '');
  });
});
