// The EST and external-CA stores on every backend (SQLite, PostgreSQL): atomic code use under
// concurrency, one-time registration codes, request state machine, fleet settings, superseded
// certificates, and the certificate inventory filters (fleet subtree, enrolled via, key type).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { backends } from '../../../test/support/db.ts';
import type { Db } from '../src/kernel/index.ts';
import { createEstStore, type EnrollmentCode, type EstStore } from '../src/modules/est/index.ts';
import {
  createPkiStore,
  type ExternalCaRecord,
  type PkiStore,
  type StoredCertificate,
} from '../src/modules/pki/index.ts';

const NOW = 1_800_000_000_000;

const code = (over: Partial<EnrollmentCode> = {}): EnrollmentCode => ({
  id: 'enc_1',
  tenantId: 't1',
  hash: 'a'.repeat(64),
  deviceId: null,
  fleet: 'f',
  quota: 3,
  used: 0,
  approval: false,
  expiresAt: NOW + 60_000,
  revokedAt: null,
  createdBy: 'user:1',
  createdAt: NOW,
  ...over,
});

const cert = (serial: string, over: Partial<StoredCertificate> = {}): StoredCertificate => ({
  serial,
  tenantId: 't1',
  caId: 'issuing:t1:1',
  deviceId: `d-${serial}`,
  kind: 'device',
  subject: 'CN=x',
  sans: [],
  keyType: 'P-256',
  fingerprint256: `FP:${serial}`,
  notBefore: NOW - 1000,
  notAfter: NOW + 86_400_000,
  pem: '',
  status: 'active',
  revokedAt: null,
  revocationReason: null,
  createdAt: NOW,
  fleet: null,
  enrolledVia: null,
  ...over,
});

for (const backend of backends) {
  describe(`EST and external CA stores (${backend.name})`, { skip: backend.skip }, () => {
    let db: Db;
    let est: EstStore;
    let pki: PkiStore;
    let cleanup: () => Promise<void>;
    before(async () => {
      const opened = await backend.open();
      db = opened.db;
      cleanup = opened.cleanup;
      est = createEstStore(db);
      pki = createPkiStore(db);
      await db.run('INSERT INTO tenants (id, name, created_at) VALUES (?, ?, ?)', ['t1', 't1', NOW]);
    });
    after(async () => {
      await cleanup();
    });

    test('codes: found by hash, used at most quota times under concurrency, released, revoked, expired', async () => {
      await est.insertCode(code());
      assert.equal((await est.findCodeByHash('a'.repeat(64)))?.id, 'enc_1');
      assert.equal(await est.findCodeByHash('b'.repeat(64)), undefined);
      const results = await Promise.all(Array.from({ length: 8 }, () => est.useCode('enc_1', NOW)));
      assert.equal(results.filter(Boolean).length, 3);
      await est.releaseCode('enc_1');
      assert.equal(await est.useCode('enc_1', NOW), true);
      assert.equal(await est.useCode('enc_1', NOW), false);
      await est.insertCode(code({ id: 'enc_2', hash: 'c'.repeat(64) }));
      assert.equal(await est.useCode('enc_2', NOW + 60_000), false, 'expired');
      assert.equal(await est.revokeCode('t1', 'enc_2', NOW), true);
      assert.equal(await est.revokeCode('t1', 'enc_2', NOW), false);
      assert.equal(await est.useCode('enc_2', NOW), false, 'revoked');
      assert.equal(await est.tenantExists('t1'), true);
      assert.equal(await est.tenantExists('t2'), false);
      assert.deepEqual(
        (await est.listCodes('t1', 10)).map((c) => c.id),
        ['enc_2', 'enc_1'],
      );
    });

    test('requests: one per device and credential; decisions move only from the expected state', async () => {
      const r = {
        id: 'req_1',
        tenantId: 't1',
        deviceId: 'd1',
        method: 'code' as const,
        sourceId: 'enc_1',
        fleet: '',
        keyType: 'P-256',
        source: '127.0.0.1',
        status: 'pending' as const,
        createdAt: NOW,
        decidedAt: null,
        decidedBy: null,
      };
      assert.equal(await est.insertRequest(r), true);
      assert.equal(await est.insertRequest({ ...r, id: 'req_2' }), false);
      assert.equal(await est.decideRequest('t1', 'req_1', 'approved', 'issued', NOW, null), false);
      assert.equal(await est.decideRequest('t1', 'req_1', 'pending', 'approved', NOW, 'user:1'), true);
      assert.equal((await est.getRequest('t1', 'd1', 'enc_1'))?.status, 'approved');
      assert.equal((await est.listRequests('t1', 'pending', 10)).length, 0);
      assert.equal((await est.getRequestById('t1', 'req_1'))?.decidedBy, 'user:1');
    });

    test('fleet settings and superseded certificates', async () => {
      await est.putFleetSettings('t1', { fleet: 'a', certDays: 30, graceSeconds: 60, updatedAt: NOW });
      await est.putFleetSettings('t1', { fleet: 'a', certDays: 20, graceSeconds: 0, updatedAt: NOW });
      assert.deepEqual(
        (await est.listFleetSettings('t1')).map((s) => [s.fleet, s.certDays]),
        [['a', 20]],
      );
      assert.equal(await est.deleteFleetSettings('t1', 'a'), true);
      const s = { tenantId: 't1', serial: 'ab', deviceId: 'd1', replacedBy: '', revokeAt: NOW };
      assert.equal(await est.insertSuperseded(s), true);
      assert.equal(await est.insertSuperseded(s), false, 'a certificate is superseded once');
      assert.deepEqual(await est.listDueSuperseded(NOW, 10), [], 'not due before it names its successor');
      await est.setSupersededBy('t1', 'ab', 'cd');
      assert.equal((await est.listDueSuperseded(NOW, 10)).length, 1);
      assert.equal((await est.listDueSuperseded(NOW - 1, 10)).length, 0);
      await est.deleteSuperseded('t1', 'ab');
      assert.equal(await est.getSuperseded('t1', 'ab'), undefined);
    });

    test('external CAs: unique per tenant and fingerprint; registration codes are one-time and expire', async () => {
      const ca: ExternalCaRecord = {
        id: 'ext_1',
        tenantId: 't1',
        name: 'Maker',
        subject: 'CN=Maker',
        fingerprint256: 'AA:BB',
        certPem: 'pem',
        fleet: 'f',
        deviceIdFrom: 'cn',
        approval: true,
        notBefore: NOW,
        notAfter: NOW + 1,
        status: 'active',
        createdAt: NOW,
        updatedAt: NOW,
      };
      assert.equal(await pki.insertExternalCa(ca), true);
      assert.equal(await pki.insertExternalCa({ ...ca, id: 'ext_2' }), false);
      assert.equal(await pki.insertExternalCa({ ...ca, id: 'ext_3', tenantId: 't2' }), true);
      assert.equal((await pki.getExternalCa('t1', 'ext_1'))?.approval, true);
      assert.equal(await pki.getExternalCa('t2', 'ext_1'), undefined, 'tenant isolation');
      assert.equal(await pki.updateExternalCaStatus('t1', 'ext_1', 'disabled', NOW), true);
      assert.equal((await pki.listExternalCas('t1'))[0]?.status, 'disabled');
      assert.equal(await pki.deleteExternalCa('t1', 'ext_1'), true);
      assert.equal(await pki.deleteExternalCa('t1', 'ext_1'), false);
      await pki.insertRegistrationCode('c0de', 't1', NOW + 1000);
      assert.equal(await pki.useRegistrationCode('c0de', 't2', NOW), false, 'other tenant');
      assert.equal(await pki.useRegistrationCode('c0de', 't1', NOW + 1000), false, 'expired');
      assert.equal(await pki.useRegistrationCode('c0de', 't1', NOW), true);
      assert.equal(await pki.useRegistrationCode('c0de', 't1', NOW), false, 'one-time');
    });

    test('inventory filters: fleet subtree (no LIKE wildcards), enrolled via, key type, CA revocation', async () => {
      await pki.insertCertificate(cert('01', { fleet: 'plant_a' }));
      await pki.insertCertificate(cert('02', { fleet: 'plant_a/line-1', enrolledVia: 'ca:ext_9' }));
      await pki.insertCertificate(cert('03', { fleet: 'plantxa', keyType: 'Ed25519' }));
      await pki.insertCertificate(cert('04', { fleet: 'plant_ab', caId: 'issuing:t1:2' }));
      const q = { tenantId: 't1', now: NOW, limit: 10 };
      const serials = async (extra: object) =>
        (await pki.listCertificates({ ...q, ...extra })).map((c) => c.serial);
      assert.deepEqual(await serials({ fleet: 'plant_a' }), ['01', '02']);
      assert.deepEqual(await serials({ enrolledVia: 'ca:ext_9' }), ['02']);
      assert.deepEqual(await serials({ keyType: 'Ed25519' }), ['03']);
      assert.deepEqual(await serials({ caId: 'issuing:t1:2' }), ['04']);
      assert.equal(await pki.revokeCertificatesOfCa('issuing:t1:1', NOW, 'cACompromise'), 3);
      assert.deepEqual(await serials({ status: 'active' }), ['04']);
      assert.deepEqual(
        (await pki.listActiveEnrolledVia('t1', 'ca:ext_9')).map((c) => c.serial),
        [],
      );
    });
  });
}
