// bulwark release keygen|create|sign|list|show
//
// The root and targets keys of the update repository (TUF) stay on the operator's machine: `keygen`
// writes them, `sign` fetches what waits for a signature, shows what changes, checks the bytes against
// the digest the platform announced, signs locally and uploads only the signatures.

import { createReadStream } from 'node:fs';
import { stat, readFile, mkdir } from 'node:fs/promises';
import { request } from 'node:https';
import { basename, join } from 'node:path';
import { flagBool, flagList, flagString } from '../args.ts';
import type { Command, Context } from '../context.ts';
import { CliError, UsageError } from '../errors.ts';
import { ApiError, parseBaseUrl } from '../http.ts';
import { writeNewFile } from '../keys.ts';
import type { Column } from '../output.ts';
import { formatKeyValues, formatTable } from '../output.ts';
import type { Page } from '../types.ts';
import { listPages, pageFlags } from './paging.ts';
import {
  canonicalJson,
  generateKeyFile,
  KEY_ROLES,
  loadKeyFile,
  sha256Hex,
  signCanonical,
  type KeyRole,
  type LoadedKey,
} from '../tuf.ts';

export interface Release {
  id: string;
  name: string;
  version: string;
  kind: string;
  targetPath: string;
  sha256: string;
  size: number;
  hardware: string[];
  hasSbom: boolean;
  allowDowngrade: boolean;
  notes: string;
  state: string;
  createdBy: string;
  createdAt: string;
  publishedAt: string | null;
}

interface PendingItem {
  role: 'root' | 'targets';
  version: number;
  signed: Record<string, unknown>;
  digest: string;
  keyIds: string[];
  threshold: number;
  signedBy: string[];
  changes?: { added: string[]; removed: string[] };
}

interface RepositoryStatus {
  initialized: boolean;
  signing: string;
  roles: Record<string, { version: number; expires: string }>;
  pending: PendingItem[];
  warnings: string[];
}

const releaseColumns: Column<Release>[] = [
  { header: 'id', value: (r) => r.id },
  { header: 'name', value: (r) => r.name },
  { header: 'version', value: (r) => r.version },
  { header: 'state', value: (r) => r.state },
  { header: 'size', value: (r) => String(r.size) },
  { header: 'hardware', value: (r) => r.hardware.join(',') },
  { header: 'created', value: (r) => r.createdAt },
];

const keygen: Command = {
  path: ['release', 'keygen'],
  summary: 'Make the offline root and targets keys of the update repository (Ed25519, files mode 0600).',
  positionals: [],
  flags: {
    out: { type: 'string', value: 'DIR', description: 'directory for root.key and targets.key (required)' },
    role: { type: 'string', value: 'ROLE', description: 'only this key: root or targets (default both)' },
  },
  examples: [
    'bulwark release keygen --out ./release-keys',
    'bulwark release sign --key ./release-keys/root.key --key ./release-keys/targets.key',
  ],
  notes:
    'Keep these files offline (an air-gapped machine, a hardware-backed store). The platform only ever gets the public keys and signatures.',
  async run(ctx) {
    const out = flagString(ctx.flags, 'out');
    if (out === undefined) throw new UsageError('missing --out <dir>', ctx.command.path);
    const role = flagString(ctx.flags, 'role');
    if (role !== undefined && !KEY_ROLES.includes(role as KeyRole))
      throw new UsageError(`--role must be root or targets, got '${role}'`, ctx.command.path);
    const dir = join(ctx.io.cwd, out);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const written: { role: KeyRole; file: string; keyid: string }[] = [];
    for (const r of role ? [role as KeyRole] : KEY_ROLES) {
      const k = generateKeyFile(r);
      const file = join(dir, `${r}.key`);
      await writeNewFile(file, `${JSON.stringify(k, null, 2)}\n`, 0o600);
      written.push({ role: r, file, keyid: k.keyid });
    }
    if (ctx.json) ctx.printJson({ keys: written });
    else for (const w of written) ctx.out(`${w.role} key ${w.keyid.slice(0, 16)}… written to ${w.file}\n`);
  },
};

/** Streams a file to POST /api/v1/artifacts. */
async function uploadArtifact(ctx: Context, file: string): Promise<{ sha256: string; size: number }> {
  const s = await ctx.settings();
  const size = await stat(file).then(
    (x) => x.size,
    (err: Error) => {
      throw new CliError(`cannot read ${file}: ${err.message}`);
    },
  );
  const url = new URL('/api/v1/artifacts', parseBaseUrl(s.url));
  ctx.progress(`uploading ${basename(file)} (${size} bytes)…`);
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method: 'POST',
        ...(s.ca === undefined ? {} : { ca: s.ca }),
        headers: {
          authorization: `Bearer ${s.token}`,
          'content-type': 'application/octet-stream',
          'content-length': String(size),
          'user-agent': `bulwark-cli/${ctx.version}`,
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          let body: unknown;
          try {
            body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
          } catch {
            body = undefined;
          }
          if (res.statusCode === 201) resolve(body as { sha256: string; size: number });
          else if (body && typeof body === 'object' && 'code' in body) reject(new ApiError(body as never));
          else reject(new CliError(`upload failed with HTTP ${res.statusCode}`));
        });
      },
    );
    req.on('error', (err) => reject(new CliError(`upload failed: ${err.message}`)));
    createReadStream(file)
      .on('error', (err) => req.destroy(err))
      .pipe(req);
  });
}

const create: Command = {
  path: ['release', 'create'],
  summary: 'Upload an artifact and create a release (it is published once signed with `release sign`).',
  positionals: [
    { name: 'name', description: 'component name, e.g. sensor-fw' },
    { name: 'version', description: 'release version, e.g. 1.4.0' },
  ],
  flags: {
    file: { type: 'string', value: 'FILE', description: 'the artifact (required)' },
    hardware: {
      type: 'string',
      value: 'MODEL[@REV]',
      multiple: true,
      description: 'compatible hardware (repeat or comma-separate; required)',
    },
    kind: { type: 'string', value: 'KIND', description: 'firmware (default) or software' },
    sbom: { type: 'string', value: 'FILE', description: 'CycloneDX JSON SBOM of the release' },
    'allow-downgrade': {
      type: 'boolean',
      description: 'sign permission for devices to install it over a newer version',
    },
    notes: { type: 'string', value: 'TEXT', description: 'release notes' },
  },
  examples: ['bulwark release create sensor-fw 1.4.0 --file fw.bin --hardware sensor-v2 --sbom bom.json'],
  async run(ctx) {
    const need = (n: string) => {
      const v = flagString(ctx.flags, n);
      if (v === undefined) throw new UsageError(`missing --${n}`, ctx.command.path);
      return v;
    };
    const name = ctx.positionals.name as string;
    const version = ctx.positionals.version as string;
    const file = join(ctx.io.cwd, need('file'));
    const hardware = flagList(ctx.flags, 'hardware')
      .flatMap((h) => h.split(','))
      .filter(Boolean);
    if (hardware.length === 0) throw new UsageError('missing --hardware', ctx.command.path);
    let sbom: unknown;
    const sbomFile = flagString(ctx.flags, 'sbom');
    if (sbomFile !== undefined) {
      try {
        sbom = JSON.parse(await readFile(join(ctx.io.cwd, sbomFile), 'utf8'));
      } catch (err) {
        throw new CliError(`cannot read the SBOM ${sbomFile}: ${(err as Error).message}`);
      }
    }
    const artifact = await uploadArtifact(ctx, file);
    const kind = flagString(ctx.flags, 'kind');
    const notes = flagString(ctx.flags, 'notes');
    const r = (
      await (
        await ctx.api()
      ).request('POST', '/releases', {
        body: {
          name,
          version,
          artifact: artifact.sha256,
          hardware,
          ...(kind !== undefined ? { kind } : {}),
          ...(sbom !== undefined ? { sbom } : {}),
          ...(flagBool(ctx.flags, 'allow-downgrade') ? { allowDowngrade: true } : {}),
          ...(notes !== undefined ? { notes } : {}),
        },
      })
    ).body as Release;
    if (ctx.json) ctx.printJson(r);
    else {
      ctx.out(showRelease(r));
      if (r.state === 'unsigned')
        ctx.progress("next: sign it offline with 'bulwark release sign --key <targets.key>'");
    }
  },
};

function showRelease(r: Release): string {
  return formatKeyValues([
    ['id', r.id],
    ['name', r.name],
    ['version', r.version],
    ['kind', r.kind],
    ['state', r.state],
    ['target', r.targetPath],
    ['sha256', r.sha256],
    ['size', r.size],
    ['hardware', r.hardware.join(', ')],
    ['sbom', r.hasSbom ? 'yes' : 'no'],
    ['downgrade allowed', r.allowDowngrade ? 'yes' : 'no'],
    ['created', r.createdAt],
    ['published', r.publishedAt ?? undefined],
  ]);
}

/** What the signer is about to approve, in words. */
function describePending(p: PendingItem): string[] {
  const lines = [
    `${p.role} metadata version ${p.version} (digest ${p.digest.slice(0, 16)}…), expires ${String(p.signed.expires)}`,
  ];
  if (p.role === 'targets') {
    for (const t of p.changes?.added ?? []) lines.push(`  + ${t}`);
    for (const t of p.changes?.removed ?? []) lines.push(`  - ${t}`);
    if ((p.changes?.added.length ?? 0) + (p.changes?.removed.length ?? 0) === 0)
      lines.push('  (no target changes: renewal)');
  } else {
    const roles = p.signed.roles as Record<string, { keyids: string[]; threshold: number }> | undefined;
    for (const [role, r] of Object.entries(roles ?? {}))
      lines.push(`  ${role}: ${r.keyids.map((k) => k.slice(0, 12)).join(', ')} (threshold ${r.threshold})`);
  }
  return lines;
}

const signCmd: Command = {
  path: ['release', 'sign'],
  summary:
    'Sign, with local keys, the root or targets metadata waiting on the platform (sets up the repository the first time).',
  positionals: [],
  flags: {
    key: {
      type: 'string',
      value: 'FILE',
      multiple: true,
      description: 'key file from `release keygen` (repeat for root and targets; required)',
    },
    'dry-run': { type: 'boolean', description: 'show what waits for a signature; sign nothing' },
  },
  examples: [
    'bulwark release sign --key ./release-keys/targets.key',
    'bulwark release sign --key ./release-keys/root.key --key ./release-keys/targets.key   # first time',
  ],
  notes:
    'Before signing, the canonical bytes are checked against the digest the platform announced, and the target changes are listed. Signatures travel to the platform; the keys never do.',
  async run(ctx) {
    const files = flagList(ctx.flags, 'key');
    if (files.length === 0) throw new UsageError('missing --key <file>', ctx.command.path);
    const keys: LoadedKey[] = [];
    for (const f of files) keys.push(await loadKeyFile(join(ctx.io.cwd, f)));
    const api = await ctx.api();
    const dryRun = flagBool(ctx.flags, 'dry-run');
    const status = (await api.request('GET', '/ota/repository')).body as RepositoryStatus;
    const done: { role: string; version: number; published: boolean; signedBy: string[] }[] = [];
    if (!status.initialized && !status.pending.some((p) => p.role === 'root')) {
      const rootKeys = keys.filter((k) => k.role === 'root');
      const targetsKeys = keys.filter((k) => k.role === 'targets');
      if (rootKeys.length === 0 || targetsKeys.length === 0)
        throw new CliError('the update repository has no root yet: give a root key and a targets key', {
          hint: "make them with 'bulwark release keygen --out DIR'",
        });
      if (dryRun) {
        ctx.out('the repository has no root yet; without --dry-run this sets it up with these keys\n');
        return;
      }
      ctx.progress('setting up the update repository with these root and targets keys…');
      await api.request('POST', '/ota/repository/root', {
        body: {
          rootKeys: rootKeys.map((k) => k.publicHex),
          targetsKeys: targetsKeys.map((k) => k.publicHex),
        },
      });
    }
    // Root first: publishing a root may stage the first targets.
    for (let round = 0; round < 4; round++) {
      const items = (
        (await api.request('GET', '/ota/repository/pending')).body as { items: PendingItem[] }
      ).items.filter((p) => !done.some((d) => d.role === p.role && d.version === p.version));
      const p = items.find((x) => x.role === 'root') ?? items.find((x) => x.role === 'targets');
      if (!p) break;
      for (const line of describePending(p)) ctx.progress(line);
      const text = canonicalJson(p.signed);
      if (sha256Hex(text) !== p.digest)
        throw new CliError(
          `the ${p.role} metadata does not match the digest the platform announced: not signing`,
        );
      if (p.signed._type !== p.role)
        throw new CliError(`the pending ${p.role} metadata has type ${String(p.signed._type)}: not signing`);
      const mine = keys.filter((k) => p.keyIds.includes(k.keyid) && !p.signedBy.includes(k.keyid));
      if (mine.length === 0) {
        ctx.warn(`none of the given keys may sign ${p.role} metadata (or they already did)`);
        done.push({ role: p.role, version: p.version, published: false, signedBy: p.signedBy });
        continue;
      }
      if (dryRun) {
        done.push({ role: p.role, version: p.version, published: false, signedBy: p.signedBy });
        continue;
      }
      const r = (
        await api.request('POST', '/ota/repository/signatures', {
          body: { role: p.role, digest: p.digest, signatures: mine.map((k) => signCanonical(text, k)) },
        })
      ).body as { role: string; version: number; published: boolean; signedBy: string[]; threshold: number };
      done.push(r);
      ctx.progress(
        r.published
          ? `${r.role} version ${r.version} published`
          : `${r.role} version ${r.version}: ${r.signedBy.length} of ${r.threshold} signatures`,
      );
    }
    if (ctx.json) ctx.printJson({ signed: done });
    else if (done.length === 0) ctx.out('nothing waits for a signature\n');
    else
      ctx.out(
        formatTable(
          [
            { header: 'role', value: (d: (typeof done)[number]) => d.role },
            { header: 'version', value: (d) => String(d.version) },
            { header: 'published', value: (d) => (d.published ? 'yes' : 'no') },
            { header: 'signed by', value: (d) => d.signedBy.map((k) => k.slice(0, 12)).join(', ') },
          ],
          done,
        ),
      );
  },
};

const list: Command = {
  path: ['release', 'list'],
  summary: 'List releases, newest first.',
  positionals: [],
  flags: { ...pageFlags, name: { type: 'string', value: 'NAME', description: 'only this component' } },
  async run(ctx) {
    const api = await ctx.api();
    const name = flagString(ctx.flags, 'name');
    await listPages(
      ctx,
      'releases',
      async (q) => (await api.request('GET', '/releases', { query: { ...q, name } })).body as Page<Release>,
      releaseColumns,
    );
  },
};

const status: Command = {
  path: ['release', 'status'],
  summary: 'The update repository: role versions and expiry, metadata waiting for signatures, warnings.',
  positionals: [],
  flags: {},
  async run(ctx) {
    const s = (await (await ctx.api()).request('GET', '/ota/repository')).body as RepositoryStatus;
    if (ctx.json) return void ctx.printJson(s);
    ctx.out(
      formatKeyValues([
        ['initialized', s.initialized ? 'yes' : 'no'],
        ['signing', s.signing],
        ...Object.entries(s.roles).map(
          ([r, v]) => [r, `version ${v.version}, expires ${v.expires}`] as const,
        ),
        ['waiting for signatures', s.pending.map((p) => `${p.role} v${p.version}`).join(', ') || 'nothing'],
      ]),
    );
    for (const w of s.warnings) ctx.warn(w);
  },
};

const show: Command = {
  path: ['release', 'show'],
  summary: 'Show a release.',
  positionals: [{ name: 'id', description: 'release id' }],
  flags: {},
  async run(ctx) {
    const id = ctx.positionals.id as string;
    const r = (await (await ctx.api()).request('GET', `/releases/${encodeURIComponent(id)}`)).body as Release;
    if (ctx.json) ctx.printJson(r);
    else ctx.out(showRelease(r));
  },
};

export const releaseCommands: Command[] = [keygen, create, signCmd, list, show, status];
