export type Outcome = 'success' | 'denied' | 'failure';

export interface AuditEntry {
  readonly tenant: string | null;
  readonly actor: {
    readonly type: 'user' | 'service' | 'device' | 'system' | 'anonymous';
    readonly id: string;
  };
  /** Dotted verb, e.g. `device.create`, `mqtt.connect`, `mqtt.publish`, `cert.revoke`. */
  readonly action: string;
  readonly target?: { readonly type: string; readonly id: string };
  readonly outcome: Outcome;
  readonly reason?: string;
  /** Source address of the request or connection. */
  readonly source?: string;
  readonly details?: Readonly<Record<string, unknown>>;
}

export interface AuditRecord extends AuditEntry {
  readonly seq: number;
  readonly ts: number;
}

export interface AuditStore {
  append(entries: readonly (AuditEntry & { ts: number })[]): Promise<void>;
  /** With `includePlatform`, also entries that belong to no tenant (refused TLS handshakes and the like). */
  list(
    tenant: string,
    opts: { limit: number; beforeSeq?: number; action?: string; includePlatform?: boolean },
  ): Promise<AuditRecord[]>;
}
