import { AppError } from '../../kernel/index.ts';

export type HostName = { type: 'dns'; value: string } | { type: 'ip'; value: string };

const LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
const MAX_HOSTNAMES = 100;

function isIpv6(value: string): boolean {
  if (!value.includes(':') || !/^[0-9a-fA-F:.]+$/.test(value)) return false;
  try {
    // The WHATWG URL parser implements the full IPv6 grammar (compressed forms, embedded IPv4).
    new URL(`http://[${value}]/`);
    return true;
  } catch {
    return false;
  }
}

/**
 * Classifies server host names for the subjectAltName: IPv4/IPv6 literals become iPAddress entries
 * (RFC 5280 §4.2.1.6), everything else must be a preferred-syntax DNS name (RFC 1034 §3.5, RFC 5890
 * A-labels). Wildcards are refused: the platform has no use for them and they widen a key's reach.
 */
export function parseHostnames(hostnames: readonly string[]): HostName[] {
  if (!Array.isArray(hostnames) || hostnames.length === 0 || hostnames.length > MAX_HOSTNAMES) {
    throw new AppError('ERR_PKI_HOSTNAME_INVALID', undefined, { detail: 'need 1-100 host names' });
  }
  const out: HostName[] = [];
  const seen = new Set<string>();
  for (const raw of hostnames) {
    if (typeof raw !== 'string') throw new AppError('ERR_PKI_HOSTNAME_INVALID');
    let name: HostName;
    if (IPV4.test(raw)) name = { type: 'ip', value: raw };
    else if (isIpv6(raw)) name = { type: 'ip', value: raw.toLowerCase() };
    else {
      const dns = raw.toLowerCase().replace(/\.$/, '');
      const labels = dns.split('.');
      // An all-numeric last label is never a host name (RFC 3696 §2): it is a mistyped IP address.
      if (
        dns.length > 253 ||
        !labels.every((l) => LABEL.test(l)) ||
        /^\d+$/.test(labels[labels.length - 1] ?? '')
      ) {
        throw new AppError(
          'ERR_PKI_HOSTNAME_INVALID',
          `Invalid host name ${JSON.stringify(raw.slice(0, 64))}`,
        );
      }
      name = { type: 'dns', value: dns };
    }
    const key = `${name.type}:${name.value}`;
    if (!seen.has(key)) {
      seen.add(key);
      out.push(name);
    }
  }
  return out;
}
