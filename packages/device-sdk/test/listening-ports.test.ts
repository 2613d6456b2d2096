import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseProcNet, readListeningPorts } from '../src/index.ts';

const header =
  '  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n';

test('TCP: only LISTEN sockets, addresses decoded from host-order hex', () => {
  const text =
    header +
    '   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 1 1\n' +
    '   1: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2 1\n' +
    '   2: 0100007F:C350 0100007F:1F90 01 00000000:00000000 00:00000000 00000000  1000        0 3 1\n';
  assert.deepEqual(parseProcNet(text, 'tcp'), [
    { protocol: 'tcp', address: '127.0.0.1', port: 8080 },
    { protocol: 'tcp', address: '0.0.0.0', port: 22 },
  ]);
});

test('TCP6 and UDP', () => {
  const tcp6 =
    header +
    '   0: 00000000000000000000000001000000:20FB 00000000000000000000000000000000:0000 0A 0 0 0 0 0 0\n' +
    '   1: 00000000000000000000000000000000:0050 00000000000000000000000000000000:0000 0A 0 0 0 0 0 0\n';
  assert.deepEqual(parseProcNet(tcp6, 'tcp6'), [
    { protocol: 'tcp6', address: '::1', port: 8443 },
    { protocol: 'tcp6', address: '::', port: 80 },
  ]);
  const udp =
    header +
    '  1: 00000000:14E9 00000000:0000 07 0 0 0 0 0 0\n' +
    '  2: 0100007F:9C40 0100007F:0035 01 0 0 0 0 0 0\n';
  assert.deepEqual(parseProcNet(udp, 'udp'), [{ protocol: 'udp', address: '0.0.0.0', port: 5353 }]);
});

test('malformed lines are skipped', () => {
  const bad = [
    '',
    'x',
    '0: 0100007F 00000000:0000 0A',
    '0: 0100007F:ZZZZ 00000000:0000 0A',
    '0: 01007F:1F90 00000000:0000 0A',
    '0: 0100007F:1F90:1 00000000:0000 0A',
    '0: 0100007F:1F90 00000000 0A',
    '0: GGGGGGGG:1F90 00000000:0000 0A',
  ];
  for (const line of bad) assert.deepEqual(parseProcNet(header + line + '\n', 'tcp'), [], line);
  assert.deepEqual(parseProcNet(header + '0: 0000000000000000:0050 0:0 0A\n', 'tcp6'), []);
});

test('reads the real tables (or none where /proc is missing)', async () => {
  const ports = await readListeningPorts();
  assert.ok(Array.isArray(ports));
  for (const p of ports) assert.ok(p.port >= 0 && p.port <= 65535);
  assert.deepEqual(await readListeningPorts('/nonexistent'), []);
});
