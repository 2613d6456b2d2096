// The device's update agent. A notice on `devices/{id}/ota/notify` (over the MQTT session the device
// opened) only says which target to look at: before installing anything the agent refreshes the
// tenant's TUF metadata with tuf-js (root chain, timestamp freshness, snapshot consistency, targets
// signed by the offline release keys), checks the target is meant for this hardware and is not older than
// what runs (unless the signed metadata authorises that downgrade), downloads it over mutual TLS
// (resuming with Range requests) and lets tuf-js verify length and hashes. Progress goes to
// `devices/{id}/ota/status`.
import { EventEmitter } from 'node:events';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { topics, type OtaNotice, type OtaState, type OtaStatusReport } from '@bulwark/protocol';
import { Updater } from 'tuf-js';
import type { TargetFile } from '@tufjs/models';
import { MtlsFetcher, type MtlsFetcherOptions } from './fetcher.ts';
import { compareVersions, hardwareMatches } from './version.ts';

/** How the agent talks to the platform over MQTT (the device's own session). */
export interface OtaMessaging {
  subscribe(topic: string, onMessage: (payload: Buffer) => void): Promise<void>;
  publish(topic: string, payload: Buffer): Promise<void>;
}

export interface OtaTarget {
  readonly path: string;
  readonly version: string;
  readonly length: number;
  readonly custom: Readonly<Record<string, unknown>>;
}

/** The device-specific part: what runs, how to install, reboot and roll back. */
export interface OtaInstaller {
  /** The version running now (undefined: nothing installed yet). */
  version(): Promise<string | undefined> | string | undefined;
  /** Installs the verified file (A/B: writes the inactive slot). Throws to fail the update. */
  install(file: string, target: OtaTarget): Promise<void>;
  /**
   * Switches to the new version. On a real device the process restarts and the agent, started again,
   * finds its saved state and reports the result; simulators resolve once "rebooted".
   */
  reboot?(target: OtaTarget): Promise<void>;
  /** After the reboot: `ok`, or anything else for a degraded device. */
  health?(): Promise<string>;
  /** Goes back to the previous version (A/B: the other slot). */
  rollback?(version: string | undefined): Promise<void>;
}

export interface OtaAgentOptions {
  deviceId: string;
  /** Tenant whose repository serves this device. */
  tenant: string;
  /** Platform HTTPS base URL, e.g. `https://bulwark.example:8443`. */
  url: string;
  /** Client certificate and key (mutual TLS) and the CA of the platform's server certificate. */
  tls: MtlsFetcherOptions['tls'];
  /** Metadata, partial downloads and the agent's state live here. */
  stateDir: string;
  /** The tenant's trusted root metadata (JSON), provisioned out of band: the anchor of all trust. */
  trustedRoot: string | Buffer;
  messaging: OtaMessaging;
  installer: OtaInstaller;
  hardware: { model: string; revision?: string };
  /** Which releases concern this agent: firmware, or one software component by name. */
  component?: { kind: 'firmware' } | { kind: 'software'; name: string };
  /** Download attempts (each resumes the previous one). Default 3. */
  attempts?: number;
  timeoutMs?: number;
  /** Largest targets metadata accepted (bytes); tuf-js defaults otherwise. */
  maxTargetsBytes?: number;
}

export interface OtaResult {
  readonly state: 'succeeded' | 'failed' | 'skipped';
  readonly reason?: string;
  readonly version?: string;
}

export interface OtaEvents {
  status: [report: OtaStatusReport];
  warning: [error: Error];
}

/** Refused by the agent's own checks (not a network problem): never retried. */
export class OtaRefusedError extends Error {
  override readonly name = 'OtaRefusedError';
}

interface SavedState {
  campaign: string;
  target: string;
  version: string;
  previous: string | undefined;
}

const STATE_FILE = 'state.json';

export class OtaAgent extends EventEmitter<OtaEvents> {
  readonly #o: OtaAgentOptions;
  readonly #dir: string;
  readonly #fetcher: MtlsFetcher;
  #queue: Promise<unknown> = Promise.resolve();
  #cancelled = new Set<string>();
  #started = false;
  #closed = false;

  constructor(options: OtaAgentOptions) {
    super();
    this.#o = options;
    this.#dir = join(options.stateDir, 'ota');
    this.#fetcher = new MtlsFetcher({
      tls: options.tls,
      partialDir: join(this.#dir, 'partial'),
      ...(options.timeoutMs !== undefined ? { timeoutMs: options.timeoutMs } : {}),
    });
  }

  /** Transfer counters of the downloader (bytes fetched, resumed requests). */
  get transfer(): { bytes: number; resumed: number } {
    return { bytes: this.#fetcher.bytesFetched, resumed: this.#fetcher.resumed };
  }

  get #base(): string {
    return `${this.#o.url.replace(/\/+$/, '')}/ota/${this.#o.tenant}`;
  }

  /** Finishes an update interrupted by a reboot, then listens for notices. */
  async start(): Promise<void> {
    if (this.#started) throw new Error('start() was already called');
    this.#started = true;
    await this.#prepare();
    await this.#resumeAfterReboot();
    await this.#o.messaging.subscribe(topics.otaNotify(this.#o.deviceId), (payload) =>
      this.#onNotice(payload),
    );
  }

  #prepared: Promise<void> | undefined;
  #prepare(): Promise<void> {
    return (this.#prepared ??= (async () => {
      await mkdir(join(this.#dir, 'metadata'), { recursive: true, mode: 0o700 });
      await mkdir(join(this.#dir, 'targets'), { recursive: true, mode: 0o700 });
      const root = join(this.#dir, 'metadata', 'root.json');
      // The trusted root is written once: later roots come only through the signed rotation chain.
      if (!existsSync(root)) await writeFile(root, this.#o.trustedRoot, { mode: 0o600 });
    })());
  }

  close(): void {
    this.#closed = true;
    this.#fetcher.close();
  }

  /** Resolves when every notice received so far has been handled. */
  async idle(): Promise<void> {
    for (let q = this.#queue; ; q = this.#queue) {
      await q;
      if (q === this.#queue) return;
    }
  }

  #onNotice(payload: Buffer): void {
    if (payload.length === 0 || this.#closed) return; // a cleared retained notice
    let n: OtaNotice;
    try {
      n = JSON.parse(payload.toString('utf8')) as OtaNotice;
      if (typeof n.campaign !== 'string' || !['install', 'rollback', 'cancel'].includes(n.action))
        throw new Error('bad notice');
    } catch {
      this.emit('warning', new Error('ignored a malformed update notice'));
      return;
    }
    if (n.action === 'cancel') {
      this.#cancelled.add(n.campaign);
      return;
    }
    this.#queue = this.#queue
      .then(async () => {
        if (n.action === 'install') await this.#install(n);
        else await this.#rollback(n);
      })
      .catch((err: unknown) => this.emit('warning', err instanceof Error ? err : new Error(String(err))));
  }

  async #report(campaign: string, state: OtaState, extra: Omit<OtaStatusReport, 'campaign' | 'state'> = {}) {
    const report: OtaStatusReport = { campaign, state, ...extra };
    this.emit('status', report);
    await this.#o.messaging
      .publish(topics.otaStatus(this.#o.deviceId), Buffer.from(JSON.stringify(report)))
      .catch((err: unknown) => this.emit('warning', err instanceof Error ? err : new Error(String(err))));
  }

  async #install(n: OtaNotice): Promise<OtaResult> {
    if (!n.target) {
      await this.#report(n.campaign, 'failed', { reason: 'the notice names no target' });
      return { state: 'failed', reason: 'no target' };
    }
    const result = await this.update(n.target, {
      campaign: n.campaign,
      ...(n.version ? { version: n.version } : {}),
    });
    return result;
  }

  async #rollback(n: OtaNotice): Promise<void> {
    if (!this.#o.installer.rollback) return;
    try {
      await this.#o.installer.rollback(n.version);
      await this.#report(n.campaign, 'rolled-back', { version: (await this.#o.installer.version()) ?? '' });
    } catch (err) {
      this.emit('warning', new Error(`rollback failed: ${(err as Error).message}`));
    }
  }

  /**
   * Verifies, downloads and installs `targetPath`, reporting progress for `campaign` (when given).
   * Never installs anything tuf-js did not verify against the trusted metadata.
   */
  async update(targetPath: string, opts: { campaign?: string; version?: string } = {}): Promise<OtaResult> {
    const campaign = opts.campaign;
    const report = (state: OtaState, extra: Omit<OtaStatusReport, 'campaign' | 'state'> = {}) =>
      campaign === undefined ? Promise.resolve() : this.#report(campaign, state, extra);
    const fail = async (reason: string): Promise<OtaResult> => {
      await report('failed', { reason: reason.slice(0, 256) });
      return { state: 'failed', reason };
    };
    await this.#prepare();
    const installed = await this.#o.installer.version();
    let target: OtaTarget;
    let file: string;
    try {
      await report('downloading', { progress: 0 });
      const updater = this.#updater();
      await updater.refresh();
      const info = await updater.getTargetInfo(targetPath);
      if (!info) throw new OtaRefusedError(`${targetPath} is not in the signed targets metadata`);
      target = this.#check(info, installed, opts.version);
      if (installed !== undefined && compareVersions(target.version, installed) === 0) {
        await report('succeeded', { version: installed, health: await this.#health() });
        return { state: 'skipped', reason: 'already installed', version: installed };
      }
      if (campaign !== undefined && this.#cancelled.has(campaign))
        return { state: 'skipped', reason: 'cancelled' };
      file = await this.#download(updater, info);
      await report('downloading', { progress: 100 });
    } catch (err) {
      return fail(describe(err));
    }
    if (campaign !== undefined && this.#cancelled.has(campaign)) {
      await rm(file, { force: true });
      return { state: 'skipped', reason: 'cancelled' };
    }
    try {
      await report('installing');
      await this.#o.installer.install(file, target);
    } catch (err) {
      await rm(file, { force: true });
      return fail(`install failed: ${(err as Error).message}`);
    }
    await rm(file, { force: true });
    const saved: SavedState = {
      campaign: campaign ?? '',
      target: target.path,
      version: target.version,
      previous: installed,
    };
    await writeFile(join(this.#dir, STATE_FILE), JSON.stringify(saved), { mode: 0o600 });
    await report('rebooting');
    if (this.#o.installer.reboot) {
      try {
        await this.#o.installer.reboot(target);
      } catch (err) {
        await rm(join(this.#dir, STATE_FILE), { force: true });
        return fail(`reboot failed: ${(err as Error).message}`);
      }
    }
    return this.#finish(saved);
  }

  /** After the (possibly real) reboot: did the device come back on the new version? */
  async #finish(saved: SavedState): Promise<OtaResult> {
    await rm(join(this.#dir, STATE_FILE), { force: true });
    const now = await this.#o.installer.version();
    const report = (state: OtaState, extra: Omit<OtaStatusReport, 'campaign' | 'state'>) =>
      saved.campaign === '' ? Promise.resolve() : this.#report(saved.campaign, state, extra);
    if (now === undefined || compareVersions(now, saved.version) !== 0) {
      const reason = `came back on ${now ?? 'no version'} instead of ${saved.version}`;
      await report('failed', { reason, ...(now !== undefined ? { version: now } : {}) });
      return { state: 'failed', reason };
    }
    const health = await this.#health();
    if (health !== 'ok') {
      const reason = `unhealthy after the update: ${health}`;
      await report('failed', { reason, version: now, health });
      return { state: 'failed', reason, version: now };
    }
    await report('succeeded', { version: now, health });
    return { state: 'succeeded', version: now };
  }

  async #resumeAfterReboot(): Promise<void> {
    const path = join(this.#dir, STATE_FILE);
    if (!existsSync(path)) return;
    let saved: SavedState;
    try {
      saved = JSON.parse(await readFile(path, 'utf8')) as SavedState;
    } catch {
      await rm(path, { force: true });
      return;
    }
    await this.#finish(saved);
  }

  async #health(): Promise<string> {
    try {
      return (await this.#o.installer.health?.()) ?? 'ok';
    } catch (err) {
      return `health check failed: ${(err as Error).message}`.slice(0, 32);
    }
  }

  #updater(): Updater {
    return new Updater({
      metadataDir: join(this.#dir, 'metadata'),
      metadataBaseUrl: `${this.#base}/metadata`,
      targetDir: join(this.#dir, 'targets'),
      targetBaseUrl: `${this.#base}/targets`,
      fetcher: this.#fetcher,
      config: {
        // Resumable downloads: the fetcher resumes, so one request per attempt here.
        fetchRetries: 0,
        ...(this.#o.maxTargetsBytes !== undefined ? { targetsMaxLength: this.#o.maxTargetsBytes } : {}),
      },
    });
  }

  /** What the signed metadata says about the target, checked against this device. */
  #check(info: TargetFile, installed: string | undefined, noticeVersion: string | undefined): OtaTarget {
    const c = info.custom as Record<string, unknown>;
    const version = typeof c.version === 'string' ? c.version : undefined;
    if (!version) throw new OtaRefusedError(`${info.path} has no version in its signed metadata`);
    if (noticeVersion !== undefined && noticeVersion !== version)
      throw new OtaRefusedError(`the notice says ${noticeVersion} but the signed metadata says ${version}`);
    const hw = Array.isArray(c.hardware) ? c.hardware.filter((h): h is string => typeof h === 'string') : [];
    if (!hardwareMatches(hw, this.#o.hardware.model, this.#o.hardware.revision))
      throw new OtaRefusedError(
        `${info.path} is not for this hardware (${this.#o.hardware.model}${this.#o.hardware.revision ? `@${this.#o.hardware.revision}` : ''})`,
      );
    const component = this.#o.component ?? { kind: 'firmware' };
    if (c.kind !== component.kind || (component.kind === 'software' && c.name !== component.name))
      throw new OtaRefusedError(`${info.path} is not a release of this component`);
    if (installed !== undefined && compareVersions(version, installed) < 0 && c.allowDowngrade !== true)
      throw new OtaRefusedError(
        `refusing to downgrade from ${installed} to ${version}: the signed metadata does not authorise it`,
      );
    return { path: info.path, version, length: info.length, custom: c };
  }

  async #download(updater: Updater, info: TargetFile): Promise<string> {
    const attempts = this.#o.attempts ?? 3;
    let last: unknown;
    for (let i = 0; i < attempts; i++) {
      try {
        const file = await updater.downloadTarget(info);
        await rm(this.#fetcher.partialPath(this.#targetUrl(info)), { force: true });
        return file;
      } catch (err) {
        last = err;
        this.#fetcher.cancel();
        // A verification failure is final and its partial bytes are worthless; a network error resumes.
        if (isVerificationError(err)) {
          await rm(this.#fetcher.partialPath(this.#targetUrl(info)), { force: true });
          throw err;
        }
      }
    }
    throw last;
  }

  #targetUrl(info: TargetFile): string {
    const slash = info.path.lastIndexOf('/');
    const dir = slash < 0 ? '' : `${info.path.slice(0, slash)}/`;
    const name = info.path.slice(slash + 1);
    const hash = info.hashes.sha256 ?? Object.values(info.hashes)[0] ?? '';
    return `${this.#base}/targets/${dir}${hash}.${name}`;
  }
}

function isVerificationError(err: unknown): boolean {
  const name = (err as Error)?.constructor?.name ?? '';
  return ['LengthOrHashMismatchError', 'DownloadLengthMismatchError', 'OtaRefusedError'].includes(name);
}

/** A short, safe description of why an update failed (tuf-js error class + message). */
function describe(err: unknown): string {
  if (err instanceof OtaRefusedError) return err.message;
  const e = err as Error;
  const name = e?.constructor?.name ?? 'Error';
  return `${name}: ${e?.message ?? String(err)}`;
}
