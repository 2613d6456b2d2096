// The broker under test, as a process of its own: @bulwark/broker behind a node:tls server with mutual
// TLS 1.3, set up like the Mosquitto it is compared with (same in-flight window and queue bound,
// TCP_NODELAY, client certificate required). The hooks allow what the benchmark does but still make a
// real decision for every CONNECT, PUBLISH, SUBSCRIBE and delivery, as the platform does:
//  - identity = the certificate's CN (read from the peer certificate on every connection);
//  - the client id must be the CN, or `<CN>.<suffix>` (many connections per test certificate);
//  - a client publishes only under `devices/<client id>/`; the reader `bench-sub` may subscribe to and
//    receive `devices/…`, everyone else only their own namespace.
// Mosquitto gets the equivalent ACL (use_identity_as_username, `pattern write devices/%c/#`).
//
//   node bench/servers/bulwark-broker.ts --port 0 --ca ca.crt --cert server.crt --key server.key
// prints `READY <port>`, answers the IPC message `metrics` with the broker's counters, and closes
// cleanly on SIGTERM/SIGINT (so that --cpu-prof can write its profile).
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:tls';
import type { TLSSocket } from 'node:tls';
import { parseArgs } from 'node:util';
import { pathToFileURL } from 'node:url';
import type { AuthzResult, TransportInfo } from '@bulwark/broker';
import type * as BrokerPackage from '@bulwark/broker';

const { values } = parseArgs({
  options: {
    port: { type: 'string', default: '0' },
    host: { type: 'string', default: '127.0.0.1' },
    ca: { type: 'string' },
    cert: { type: 'string' },
    key: { type: 'string' },
    'max-inflight': { type: 'string', default: '1000' },
    'max-queued': { type: 'string', default: '10000' },
    // Another copy of the broker package (e.g. an older commit, see run.ts --broker-ref) to measure.
    'broker-module': { type: 'string' },
  },
});
const brokerModule = values['broker-module'];
const { createBroker } = (await import(
  brokerModule ? pathToFileURL(brokerModule).href : '@bulwark/broker'
)) as typeof BrokerPackage;
if (!values.ca || !values.cert || !values.key) {
  console.error('usage: bulwark-broker.ts --ca FILE --cert FILE --key FILE [--port N] [--host ADDR]');
  process.exit(2);
}

const READER = 'bench-sub';
const NOT_AUTHORIZED = 0x87;
const BAD_CREDENTIALS = 0x86;
const CLIENT_ID_NOT_VALID = 0x85;

interface BenchTransport extends TransportInfo {
  cn?: string;
}

interface Principal {
  cn: string;
  /** `devices/<client id>/` */
  prefix: string;
  reader: boolean;
}

const refused = (topic: string): AuthzResult => ({
  ok: false,
  reasonCode: NOT_AUTHORIZED,
  reasonString: `not authorized: ${topic}`,
});

const broker = createBroker<Principal>({
  limits: {
    maxInflight: Number(values['max-inflight']),
    maxQueued: Number(values['max-queued']),
  },
  hooks: {
    authenticate({ connect, transport }) {
      const cn = (transport as BenchTransport).cn;
      if (cn === undefined) return { ok: false, reasonCode: BAD_CREDENTIALS };
      const id = connect.clientId;
      if (id !== cn && !(id.length > cn.length + 1 && id.startsWith(cn) && id[cn.length] === '.')) {
        return { ok: false, reasonCode: CLIENT_ID_NOT_VALID };
      }
      return { ok: true, principal: { cn, prefix: `devices/${id}/`, reader: cn === READER } };
    },
    authorizePublish(client, packet) {
      return packet.topic.startsWith(client.principal.prefix) ? true : refused(packet.topic);
    },
    authorizeSubscribe(client, filter) {
      const p = client.principal;
      return (p.reader ? filter.startsWith('devices/') : filter.startsWith(p.prefix))
        ? true
        : refused(filter);
    },
    authorizeDelivery(client, topic) {
      const p = client.principal;
      return p.reader ? topic.startsWith('devices/') : topic.startsWith(p.prefix);
    },
  },
});

const server = createServer({
  ca: readFileSync(values.ca),
  cert: readFileSync(values.cert),
  key: readFileSync(values.key),
  requestCert: true,
  rejectUnauthorized: true,
  minVersion: 'TLSv1.3',
  // Stateless TLS 1.3 tickets, as the platform's listener configures them.
  ticketKeys: randomBytes(48),
  sessionTimeout: 3600,
});

server.on('secureConnection', (socket: TLSSocket) => {
  const t: BenchTransport = { remoteAddress: socket.remoteAddress, remotePort: socket.remotePort };
  try {
    // Parsed on every connection, full or resumed, as the platform's identifyClient() does.
    const cert = socket.getPeerX509Certificate();
    const cn = cert ? /(?:^|\n)CN=([^\n]+)/.exec(cert.subject)?.[1] : undefined;
    if (cn !== undefined) t.cn = cn;
  } catch {
    // no usable certificate: refused at CONNECT
  }
  socket.on('error', () => {});
  broker.handle(socket, t);
});
server.on('tlsClientError', (_err, socket: TLSSocket) => socket.destroy());

server.listen(Number(values.port), values.host, () => {
  const a = server.address();
  process.stdout.write(`READY ${typeof a === 'object' && a ? a.port : values.port}\n`);
});

process.on('message', (m: unknown) => {
  if (m === 'metrics') {
    const mem = process.memoryUsage();
    process.send?.({
      metrics: {
        ...broker.metrics,
        heapUsedMB: mem.heapUsed / 2 ** 20,
        heapTotalMB: mem.heapTotal / 2 ** 20,
        externalMB: mem.external / 2 ** 20,
        arrayBuffersMB: mem.arrayBuffers / 2 ** 20,
      },
    });
  }
});

let closing = false;
const stop = (): void => {
  if (closing) return;
  closing = true;
  const force = setTimeout(() => process.exit(0), 3000);
  force.unref();
  server.close();
  void broker.close().finally(() => process.exit(0));
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
