// Validates a device's capability report (untrusted input) against the shape in @bulwark/protocol's
// CapabilityReport. Unknown fields are refused rather than stored unchecked; every problem is listed.

import type { CapabilityReport } from '@bulwark/protocol';
import { AppError } from '../../kernel/index.ts';

type Problems = { path: string; message: string }[];

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

function str(v: unknown, path: string, problems: Problems, max = 256): void {
  if (typeof v !== 'string' || v.length > max)
    problems.push({ path, message: `must be a string of at most ${max} characters` });
}

function strings(v: unknown, path: string, problems: Problems, maxItems = 16): void {
  if (!Array.isArray(v) || v.length > maxItems) {
    problems.push({ path, message: `must be an array of at most ${maxItems} strings` });
    return;
  }
  v.forEach((s, i) => str(s, `${path}[${i}]`, problems, 64));
}

function fields(
  v: unknown,
  path: string,
  problems: Problems,
  allowed: readonly string[],
  check: (k: string, value: unknown, path: string) => void,
): void {
  if (!isObject(v)) {
    problems.push({ path, message: 'must be an object' });
    return;
  }
  for (const [k, value] of Object.entries(v)) {
    if (!allowed.includes(k)) problems.push({ path: `${path}.${k}`, message: 'unknown field' });
    else check(k, value, `${path}.${k}`);
  }
}

const PROTOCOLS = ['tcp', 'tcp6', 'udp', 'udp6'];

export function validateCapabilities(v: unknown): CapabilityReport {
  const problems: Problems = [];
  fields(
    v,
    'capabilities',
    problems,
    [
      'hardware',
      'firmware',
      'software',
      'updateMethod',
      'keyStorage',
      'tls',
      'listeningPorts',
      'sbom',
      'sdk',
    ],
    (k, value, path) => {
      switch (k) {
        case 'hardware':
          fields(value, path, problems, ['model', 'revision', 'serialNumber'], (_k, s, p) =>
            str(s, p, problems),
          );
          break;
        case 'firmware':
          fields(value, path, problems, ['version'], (_k, s, p) => str(s, p, problems));
          break;
        case 'sdk':
          fields(value, path, problems, ['name', 'version'], (_k, s, p) => str(s, p, problems));
          break;
        case 'software':
          if (!Array.isArray(value) || value.length > 1024) {
            problems.push({ path, message: 'must be an array of at most 1024 items' });
            break;
          }
          value.forEach((item, i) =>
            fields(item, `${path}[${i}]`, problems, ['name', 'version'], (_k, s, p) => str(s, p, problems)),
          );
          break;
        case 'updateMethod':
        case 'keyStorage':
          str(value, path, problems, 64);
          break;
        case 'tls':
          fields(value, path, problems, ['versions', 'keyTypes'], (_k, s, p) => strings(s, p, problems));
          break;
        case 'listeningPorts':
          if (!Array.isArray(value) || value.length > 1024) {
            problems.push({ path, message: 'must be an array of at most 1024 items' });
            break;
          }
          value.forEach((item, i) => {
            const p = `${path}[${i}]`;
            if (!isObject(item)) {
              problems.push({ path: p, message: 'must be {protocol, address, port}' });
              return;
            }
            if (!PROTOCOLS.includes(item.protocol as string))
              problems.push({ path: `${p}.protocol`, message: `must be one of ${PROTOCOLS.join(', ')}` });
            str(item.address, `${p}.address`, problems, 64);
            if (!Number.isInteger(item.port) || (item.port as number) < 0 || (item.port as number) > 65535)
              problems.push({ path: `${p}.port`, message: 'must be an integer from 0 to 65535' });
            for (const extra of Object.keys(item))
              if (!['protocol', 'address', 'port'].includes(extra))
                problems.push({ path: `${p}.${extra}`, message: 'unknown field' });
          });
          break;
        case 'sbom':
          // CycloneDX JSON: stored as given; only its outer shape is checked here.
          if (!isObject(value) || (value.bomFormat !== undefined && value.bomFormat !== 'CycloneDX'))
            problems.push({ path, message: 'must be a CycloneDX JSON object' });
          break;
      }
    },
  );
  if (problems.length > 0) {
    const first = problems[0];
    throw new AppError('ERR_CAPABILITIES_INVALID', first ? `${first.path} ${first.message}` : undefined, {
      errors: problems.slice(0, 20),
    });
  }
  return v as CapabilityReport;
}
