export interface TelemetryRecord {
  readonly tenant: string;
  readonly deviceId: string;
  /** '' for the default stream (devices/{id}/telemetry). */
  readonly stream: string;
  readonly ts: number;
  /** The JSON object as received (validated, stored verbatim). */
  readonly json: string;
}

export interface TelemetryRow {
  readonly id: number;
  readonly ts: number;
  readonly stream: string;
  readonly json: string;
}

export interface TelemetryQuery {
  readonly from: number;
  readonly to: number;
  readonly stream?: string;
  readonly limit: number;
  readonly order: 'asc' | 'desc';
  readonly after?: { ts: number; id: number };
}

export interface TelemetryStore {
  /** Writes all records in one transaction: all or none. */
  insertBatch(records: readonly TelemetryRecord[]): Promise<void>;
  query(tenant: string, deviceId: string, q: TelemetryQuery): Promise<TelemetryRow[]>;
}
