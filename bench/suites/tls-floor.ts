// Diagnostic (run with --only tls-floor): Node's TLS server alone, without a broker, answering every
// connection with a CONNACK (bench/servers/bare-tls.ts). Its memory per idle mutual-TLS connection and
// its handshake cost are the floor under any broker built on node:tls, so they split Bulwark's figures
// into "Node and its OpenSSL" and "the broker" (docs/performance.md).
import type { Suite } from '../lib/types.ts';
import { measureHandshakes } from './handshakes.ts';
import type { HandshakeResult } from './handshakes.ts';
import { measureMemory } from './memory.ts';

const suite: Suite = {
  name: 'tls-floor',
  description: 'diagnostic: node:tls alone (no broker) — memory per idle mTLS connection and handshake cost',
  order: 35,
  optional: true,
  async run(ctx) {
    const memory = await measureMemory(ctx, 'node-tls', ctx.quick ? [2000] : [10_000]);
    const server = await ctx.startBroker('node-tls');
    const handshakes: Record<string, HandshakeResult> = {};
    try {
      for (const mode of ['full', 'resumed'] as const) {
        handshakes[mode] = await measureHandshakes(ctx, server, mode);
      }
    } finally {
      await server.stop();
    }
    return { memory, handshakes };
  },
};

export default suite;
