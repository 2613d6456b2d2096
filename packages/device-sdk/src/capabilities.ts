// The capability report: what the device is, how it updates, how it keeps its key, which TLS it
// speaks and what it exposes. The platform keeps every distinct report (versioned) for posture checks.

import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import type { CapabilityReport } from '@bulwark/protocol';
import { readListeningPorts } from './listening-ports.ts';

export interface CapabilityOptions {
  hardware?: CapabilityReport['hardware'];
  firmware?: CapabilityReport['firmware'];
  software?: CapabilityReport['software'];
  /** e.g. `ab-partition`, `package`, `container`, `none`. */
  updateMethod?: string;
  /** A CycloneDX JSON SBOM, or the path of its file. */
  sbom?: Record<string, unknown> | string;
  /** Publish the report after every (re)connect; the platform stores a new version only when it changed. */
  reportOnConnect?: boolean;
  /** Where the kernel's socket tables are (tests). Default /proc/net. */
  procNet?: string;
}

export const SDK_NAME = '@bulwark/device';

let sdkVersion: string | undefined;
export function sdkVersionString(): string {
  if (sdkVersion === undefined) {
    const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
      version?: string;
    };
    sdkVersion = pkg.version ?? '0.0.0';
  }
  return sdkVersion;
}

export async function buildCapabilityReport(
  options: CapabilityOptions,
  context: { keyStorage: string; tlsVersions: string[]; keyTypes: string[] },
): Promise<CapabilityReport> {
  let sbom: Record<string, unknown> | undefined;
  if (typeof options.sbom === 'string') {
    const parsed = JSON.parse(await readFile(options.sbom, 'utf8')) as unknown;
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
      throw new TypeError(`${options.sbom} is not a JSON object (CycloneDX JSON expected)`);
    }
    sbom = parsed as Record<string, unknown>;
  } else {
    sbom = options.sbom;
  }
  return {
    ...(options.hardware ? { hardware: options.hardware } : {}),
    ...(options.firmware ? { firmware: options.firmware } : {}),
    ...(options.software ? { software: options.software } : {}),
    ...(options.updateMethod ? { updateMethod: options.updateMethod } : {}),
    keyStorage: context.keyStorage,
    tls: { versions: context.tlsVersions, keyTypes: context.keyTypes },
    listeningPorts: await readListeningPorts(options.procNet),
    ...(sbom ? { sbom } : {}),
    sdk: { name: SDK_NAME, version: sdkVersionString() },
  };
}
