// The floor under any broker written on Node: a node:tls server with the bench broker's TLS settings
// (mutual TLS 1.3, tickets, the peer certificate parsed on every connection) that answers any first
// packet with a CONNACK and then just holds the socket. What it costs per connection, in memory and
// in handshake CPU, is what Node and its OpenSSL cost before the broker does anything.
//
//   node bench/servers/bare-tls.ts --ca ca.crt --cert server.crt --key server.key   → prints READY <port>
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:tls';
import type { TLSSocket } from 'node:tls';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    port: { type: 'string', default: '0' },
    host: { type: 'string', default: '127.0.0.1' },
    ca: { type: 'string' },
    cert: { type: 'string' },
    key: { type: 'string' },
  },
});
if (!values.ca || !values.cert || !values.key) {
  console.error('usage: bare-tls.ts --ca FILE --cert FILE --key FILE [--port N] [--host ADDR]');
  process.exit(2);
}

const CONNACK = Buffer.from([0x20, 0x02, 0x00, 0x00]);

const server = createServer({
  ca: readFileSync(values.ca),
  cert: readFileSync(values.cert),
  key: readFileSync(values.key),
  requestCert: true,
  rejectUnauthorized: true,
  minVersion: 'TLSv1.3',
  ticketKeys: randomBytes(48),
  sessionTimeout: 3600,
});

server.on('secureConnection', (socket: TLSSocket) => {
  socket.getPeerX509Certificate();
  socket.setNoDelay(true);
  socket.on('error', () => {});
  socket.once('data', () => socket.write(CONNACK));
  socket.on('end', () => socket.end());
});
server.on('tlsClientError', (_err, socket: TLSSocket) => socket.destroy());

server.listen(Number(values.port), values.host, () => {
  const a = server.address();
  process.stdout.write(`READY ${typeof a === 'object' && a ? a.port : values.port}\n`);
});

const stop = (): void => {
  server.close();
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
