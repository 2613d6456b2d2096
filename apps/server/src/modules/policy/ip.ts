// CIDR parsing and matching for the `sourceIp` conditions, IPv4 and IPv6, without a driver import.
// IPv4-mapped IPv6 addresses (::ffff:10.0.0.1, as dual-stack sockets report them) count as IPv4.

export interface Cidr {
  readonly v6: boolean;
  readonly bits: bigint;
  readonly prefix: number;
}

function parseV4(s: string): bigint | undefined {
  const parts = s.split('.');
  if (parts.length !== 4) return undefined;
  let v = 0n;
  for (const p of parts) {
    if (!/^(0|[1-9][0-9]{0,2})$/.test(p) || Number(p) > 255) return undefined;
    v = (v << 8n) | BigInt(p);
  }
  return v;
}

function parseV6(s: string): bigint | undefined {
  if (s.length > 45 || !/^[0-9a-fA-F:.]+$/.test(s)) return undefined;
  let tail: bigint[] = [];
  let text = s;
  const lastColon = text.lastIndexOf(':');
  if (text.includes('.')) {
    const v4 = parseV4(text.slice(lastColon + 1));
    if (v4 === undefined) return undefined;
    tail = [v4 >> 16n, v4 & 0xffffn];
    text = text.slice(0, lastColon + 1);
    if (!text.endsWith('::')) text = text.slice(0, -1);
  }
  const halves = text.split('::');
  if (halves.length > 2) return undefined;
  const group = (h: string) => (h === '' ? [] : h.split(':'));
  const head = group(halves[0] ?? '');
  const rest = halves.length === 2 ? group(halves[1] ?? '') : [];
  const groups = [...head, ...rest];
  if (groups.some((g) => !/^[0-9a-fA-F]{1,4}$/.test(g))) return undefined;
  const total = groups.length + tail.length;
  if (halves.length === 1 ? total !== 8 : total > 7) return undefined;
  const words = [
    ...head.map((g) => BigInt(`0x${g}`)),
    ...Array<bigint>(8 - total).fill(0n),
    ...rest.map((g) => BigInt(`0x${g}`)),
    ...tail,
  ];
  return words.reduce((acc, w) => (acc << 16n) | w, 0n);
}

/** Parses an address to { v6, bits }; IPv4-mapped IPv6 becomes IPv4. */
export function parseIp(s: string): { v6: boolean; bits: bigint } | undefined {
  const v4 = parseV4(s);
  if (v4 !== undefined) return { v6: false, bits: v4 };
  const v6 = parseV6(s.replace(/%.*$/, ''));
  if (v6 === undefined) return undefined;
  if (v6 >> 32n === 0xffffn) return { v6: false, bits: v6 & 0xffffffffn };
  return { v6: true, bits: v6 };
}

/** `10.0.0.0/8`, `2001:db8::/32`, or a single address. Host bits must be zero. */
export function parseCidr(s: string): Cidr | undefined {
  const slash = s.indexOf('/');
  const addr = parseIp(slash < 0 ? s : s.slice(0, slash));
  if (!addr) return undefined;
  const max = addr.v6 ? 128 : 32;
  const prefixText = slash < 0 ? String(max) : s.slice(slash + 1);
  if (!/^(0|[1-9][0-9]{0,2})$/.test(prefixText)) return undefined;
  const prefix = Number(prefixText);
  if (prefix > max) return undefined;
  const hostBits = BigInt(max - prefix);
  if ((addr.bits & ((1n << hostBits) - 1n)) !== 0n) return undefined;
  return { v6: addr.v6, bits: addr.bits, prefix };
}

export function cidrContains(c: Cidr, ip: { v6: boolean; bits: bigint }): boolean {
  if (c.v6 !== ip.v6) return false;
  const shift = BigInt((c.v6 ? 128 : 32) - c.prefix);
  return ip.bits >> shift === c.bits >> shift;
}
