// Public face of the PKI module: the platform CA hierarchy, device and server certificates,
// client-certificate identification for the TLS edge, revocation and CRLs.
export { createPkiService, type CaSummary, type PkiService, type PkiServiceOptions } from './service.ts';
export { certsOnlyPkcs7 } from './x509.ts';
export { checkFleet, FLEET_PATTERN, type ExternalIdentity } from './external.ts';
export { pkiRoutes, type PkiRouteDeps } from './http.ts';
export { createPkiStore } from './store.ts';
export { softwareCaKeys, signerFromPkcs8 } from './signer.ts';
export { PLATFORM_TENANT, TENANT_ID_PATTERN, revocationReasons } from './model.ts';
export type {
  CaKeyProvider,
  CaKind,
  CaRecord,
  CaRevokedEvent,
  CaStatus,
  ClusterEvents,
  DeviceIdSource,
  ExternalCaRecord,
  ExternalCaStatus,
  RegisterExternalCaInput,
  CertificateKind,
  CertificatePage,
  CertificateRecord,
  CertificateStatus,
  ClientIdentity,
  IssuedCertificate,
  KeyProtector,
  KeyType,
  ListCertificatesQuery,
  PkiStore,
  RevocationReason,
  RevokedEvent,
  ServerCertificate,
  ServerCertificateOptions,
  SignDeviceCsrInput,
  Signer,
  StoredCertificate,
} from './model.ts';
