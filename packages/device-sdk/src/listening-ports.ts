// Which sockets the device listens on, read from the kernel's tables (Linux /proc/net/*). A device that
// only dials out, as Bulwark devices should, has none; anything listed here is attack surface.

import { readFile } from 'node:fs/promises';

export interface ListeningPort {
  protocol: 'tcp' | 'tcp6' | 'udp' | 'udp6';
  address: string;
  port: number;
}

const TCP_LISTEN = '0A';
const UDP_UNCONNECTED = '07';

function ipv4(hex: string): string | undefined {
  if (!/^[0-9A-Fa-f]{8}$/.test(hex)) return undefined;
  // The kernel prints the address as one host-order (little-endian) 32-bit word.
  const b = Buffer.from(hex, 'hex');
  return [b[3], b[2], b[1], b[0]].join('.');
}

function ipv6(hex: string): string | undefined {
  if (!/^[0-9A-Fa-f]{32}$/.test(hex)) return undefined;
  const b = Buffer.from(hex, 'hex');
  // Four host-order 32-bit words.
  for (let i = 0; i < 16; i += 4) b.subarray(i, i + 4).reverse();
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(b.readUInt16BE(i).toString(16));
  return new URL(`http://[${groups.join(':')}]/`).hostname.slice(1, -1);
}

/**
 * Parses one /proc/net/{tcp,tcp6,udp,udp6} table: TCP sockets in LISTEN, UDP sockets bound and not
 * connected (they receive from anyone). Malformed lines are skipped.
 */
export function parseProcNet(text: string, protocol: ListeningPort['protocol']): ListeningPort[] {
  const out: ListeningPort[] = [];
  const v6 = protocol.endsWith('6');
  for (const line of text.split('\n').slice(1)) {
    const fields = line.trim().split(/\s+/);
    if (fields.length < 4) continue;
    const [, local, remote, state] = fields;
    const l = local?.split(':');
    const r = remote?.split(':');
    if (l?.length !== 2 || r?.length !== 2 || !l[0] || !l[1] || !/^[0-9A-Fa-f]{4}$/.test(l[1])) continue;
    const listening = protocol.startsWith('tcp')
      ? state === TCP_LISTEN
      : state === UDP_UNCONNECTED && r[1] === '0000';
    if (!listening) continue;
    const address = v6 ? ipv6(l[0]) : ipv4(l[0]);
    if (address === undefined) continue;
    out.push({ protocol, address, port: parseInt(l[1], 16) });
  }
  return out;
}

/** Listening sockets of the whole device (its network namespace), sorted; [] where /proc is missing. */
export async function readListeningPorts(procNet = '/proc/net'): Promise<ListeningPort[]> {
  const out: ListeningPort[] = [];
  for (const protocol of ['tcp', 'tcp6', 'udp', 'udp6'] as const) {
    let text: string;
    try {
      text = await readFile(`${procNet}/${protocol}`, 'utf8');
    } catch {
      continue; // not Linux, or IPv6 disabled
    }
    out.push(...parseProcNet(text, protocol));
  }
  const seen = new Set<string>();
  return out
    .filter((p) => {
      const k = `${p.protocol} ${p.address} ${p.port}`;
      if (seen.has(k)) return false;
      seen.add(k);
      return true;
    })
    .sort(
      (a, b) => a.protocol.localeCompare(b.protocol) || a.port - b.port || a.address.localeCompare(b.address),
    );
}
