// The one catalog of error codes. Codes are stable: never renamed, never reused.
// docs/errors.md is generated from this table (`npm run docs:errors`); a test fails if they drift.

export type ErrorKind =
  | 'invalid'
  | 'unauthenticated'
  | 'forbidden'
  | 'not_found'
  | 'conflict'
  | 'rate_limited'
  | 'too_large'
  | 'unavailable'
  | 'internal';

export interface ErrorSpec {
  readonly kind: ErrorKind;
  readonly title: string;
  readonly description: string;
}

export const errorCatalog = {
  ERR_VALIDATION: {
    kind: 'invalid',
    title: 'Request validation failed',
    description:
      'The request body, query or path parameters do not match the schema. `errors` lists each problem.',
  },
  ERR_NOT_FOUND: {
    kind: 'not_found',
    title: 'No such resource',
    description: 'The route does not exist.',
  },
  ERR_PAYLOAD_TOO_LARGE: {
    kind: 'too_large',
    title: 'Payload too large',
    description: 'The request body exceeds the configured limit.',
  },
  ERR_INTERNAL: {
    kind: 'internal',
    title: 'Internal error',
    description:
      'An unexpected error. Details are in the server log under the request id, never in the response.',
  },
  ERR_UNAVAILABLE: {
    kind: 'unavailable',
    title: 'Service unavailable',
    description: 'The platform is starting, stopping or a dependency (database) is unreachable.',
  },
  ERR_RATE_LIMITED: {
    kind: 'rate_limited',
    title: 'Too many requests',
    description: 'The client exceeded a rate limit; retry after the time given in `Retry-After`.',
  },
  ERR_CONFIG_INVALID: {
    kind: 'invalid',
    title: 'Invalid configuration',
    description:
      'The configuration file or BULWARK_* environment variables are invalid; every problem is listed.',
  },
  ERR_AUTH_MISSING: {
    kind: 'unauthenticated',
    title: 'Authentication required',
    description:
      'The request has neither an `Authorization: Bearer <token>` header nor a console session cookie.',
  },
  ERR_AUTH_INVALID_TOKEN: {
    kind: 'unauthenticated',
    title: 'Invalid token',
    description: 'The bearer token is unknown, revoked or expired.',
  },
  ERR_POLICY_DENIED: {
    kind: 'forbidden',
    title: 'Not allowed',
    description: 'The policy engine denied the action on the resource for this principal.',
  },
  ERR_POLICY_INVALID: {
    kind: 'invalid',
    title: 'Invalid policy document',
    description:
      'The policy document is malformed (structure, ids, effects, list sizes); `errors` lists every problem with its path.',
  },
  ERR_POLICY_UNKNOWN_ACTION: {
    kind: 'invalid',
    title: 'Unknown action in policy',
    description:
      'A statement names an action the engine does not know. Actions are `service:verb` from the documented list, `service:*` or `*`.',
  },
  ERR_POLICY_BAD_VARIABLE: {
    kind: 'invalid',
    title: 'Bad variable in policy',
    description:
      'A resource uses an unknown or unterminated variable. Known: `${principal.id}`, `${principal.tenant}`, `${principal.type}`, `${device.id}`, `${device.tenant}`, `${device.fleet}`, `${device.attr.<name>}`.',
  },
  ERR_POLICY_BAD_TOPIC_FILTER: {
    kind: 'invalid',
    title: 'Malformed topic filter in policy',
    description:
      'A topic resource is not a valid MQTT topic filter: `#` must be a whole, last level, `+` a whole level; `*` is not an MQTT wildcard.',
  },
  ERR_POLICY_BAD_RESOURCE: {
    kind: 'invalid',
    title: 'Bad resource in policy',
    description:
      'A resource is not `bulwark:<tenant>:<kind>/<id>` (or the `<kind>/<id>` shorthand), or names another tenant.',
  },
  ERR_POLICY_BAD_CONDITION: {
    kind: 'invalid',
    title: 'Bad condition in policy',
    description:
      'A condition is unknown or malformed (CIDR blocks, `HH:MM` times, day names, attribute names).',
  },
  ERR_POLICY_NOT_FOUND: {
    kind: 'not_found',
    title: 'Policy not found',
    description: 'No policy with this id exists in the tenant.',
  },
  ERR_POLICY_EXISTS: {
    kind: 'conflict',
    title: 'Policy already exists',
    description: 'A policy with this id already exists in the tenant; update it instead.',
  },
  ERR_POLICY_VERSION_CONFLICT: {
    kind: 'conflict',
    title: 'Policy version conflict',
    description: 'The policy changed since the version given (`expectedVersion`); read it again and retry.',
  },
  ERR_POLICY_BUILTIN: {
    kind: 'conflict',
    title: 'Built-in policy',
    description: 'Built-in policies (`builtin:*`) cannot be created, changed, attached or deleted.',
  },
  ERR_POLICY_ATTACHED: {
    kind: 'conflict',
    title: 'Policy is attached',
    description: 'The policy is still attached somewhere; detach it everywhere before deleting it.',
  },
  ERR_POLICY_ALREADY_ATTACHED: {
    kind: 'conflict',
    title: 'Policy already attached',
    description: 'The policy is already attached to this target.',
  },
  ERR_POLICY_NOT_ATTACHED: {
    kind: 'not_found',
    title: 'Policy not attached',
    description: 'The policy is not attached to this target.',
  },
  ERR_POLICY_TARGET_NOT_FOUND: {
    kind: 'not_found',
    title: 'Attachment target not found',
    description: 'The fleet, group, device or tenant to attach to does not exist in your tenant.',
  },
  ERR_POLICY_PLATFORM_ONLY: {
    kind: 'forbidden',
    title: 'Platform attachment not allowed',
    description: 'Only principals of the platform tenant may attach policies at the platform level.',
  },
  ERR_POLICY_PRINCIPAL_NOT_FOUND: {
    kind: 'not_found',
    title: 'Principal not found',
    description: 'The user or service account to explain does not exist in the tenant.',
  },
  ERR_FLEET_INVALID_PATH: {
    kind: 'invalid',
    title: 'Invalid fleet path',
    description:
      'Fleet paths are 1-8 segments joined by `/`; each segment is 1-63 lower-case letters, digits, `_` or `-`, starting with a letter or digit.',
  },
  ERR_FLEET_NOT_FOUND: {
    kind: 'not_found',
    title: 'Fleet not found',
    description: 'No fleet with this path exists in the tenant.',
  },
  ERR_FLEET_EXISTS: {
    kind: 'conflict',
    title: 'Fleet already exists',
    description: 'A fleet with this path already exists in the tenant.',
  },
  ERR_FLEET_PARENT_NOT_FOUND: {
    kind: 'not_found',
    title: 'Parent fleet not found',
    description: 'Create the parent fleet first: `plant-a/line-3` needs `plant-a`.',
  },
  ERR_FLEET_NOT_EMPTY: {
    kind: 'conflict',
    title: 'Fleet not empty',
    description:
      'The fleet still has devices, sub-fleets or attached policies; move, delete or detach them first.',
  },
  ERR_GROUP_INVALID_NAME: {
    kind: 'invalid',
    title: 'Invalid group name',
    description:
      'Group names are 1-64 lower-case letters, digits, `.`, `_` or `-`, starting with a letter or digit.',
  },
  ERR_GROUP_NOT_FOUND: {
    kind: 'not_found',
    title: 'Group not found',
    description: 'No group with this name exists in the tenant.',
  },
  ERR_GROUP_EXISTS: {
    kind: 'conflict',
    title: 'Group already exists',
    description: 'A group with this name already exists in the tenant (`quarantine` is built in).',
  },
  ERR_GROUP_QUERY_INVALID: {
    kind: 'invalid',
    title: 'Invalid group query',
    description:
      'The dynamic group query does not parse; the detail says where. See docs/policies.md for the grammar.',
  },
  ERR_GROUP_DYNAMIC: {
    kind: 'conflict',
    title: 'Group is dynamic',
    description: 'Members of a dynamic group follow its query; they cannot be added or removed by hand.',
  },
  ERR_GROUP_BUILTIN: {
    kind: 'conflict',
    title: 'Built-in group',
    description: 'The built-in `quarantine` group cannot be deleted or made dynamic.',
  },
  ERR_GROUP_IN_USE: {
    kind: 'conflict',
    title: 'Group in use',
    description: 'Policies are attached to the group; detach them before deleting it.',
  },
  ERR_DEVICE_NOT_FOUND: {
    kind: 'not_found',
    title: 'Device not found',
    description: 'No device with this id exists in the tenant.',
  },
  ERR_DEVICE_EXISTS: {
    kind: 'conflict',
    title: 'Device already exists',
    description: 'A device with this id already exists in the tenant.',
  },
  ERR_DEVICE_INVALID_ID: {
    kind: 'invalid',
    title: 'Invalid device id',
    description:
      'Device ids are 1-128 characters of letters, digits, `.`, `_`, `-` and `:`, starting with a letter or digit.',
  },
  ERR_DEVICE_DISABLED: {
    kind: 'conflict',
    title: 'Device disabled',
    description:
      'The device is disabled; it cannot receive certificates or connect until it is enabled again.',
  },
  ERR_PKI_CSR_INVALID: {
    kind: 'invalid',
    title: 'Invalid certificate signing request',
    description: 'The CSR could not be parsed as PEM or DER PKCS#10.',
  },
  ERR_PKI_CSR_SIGNATURE: {
    kind: 'invalid',
    title: 'CSR signature does not verify',
    description: 'The CSR is not signed by the key it carries (no proof of possession).',
  },
  ERR_PKI_KEY_TYPE: {
    kind: 'invalid',
    title: 'Key type not allowed',
    description: 'Allowed device keys: ECDSA P-256 or P-384, Ed25519, RSA of at least 2048 bits.',
  },
  ERR_PKI_CERT_NOT_FOUND: {
    kind: 'not_found',
    title: 'Certificate not found',
    description: 'No certificate with this serial number exists in the tenant.',
  },
  ERR_PKI_CA_KEY: {
    kind: 'internal',
    title: 'CA key unavailable',
    description: 'The CA private key could not be loaded or decrypted (wrong master key?).',
  },
  ERR_TELEMETRY_NOT_JSON: {
    kind: 'invalid',
    title: 'Telemetry payload is not JSON',
    description: 'Telemetry payloads must be UTF-8 JSON.',
  },
  ERR_TELEMETRY_NOT_OBJECT: {
    kind: 'invalid',
    title: 'Telemetry payload is not a JSON object',
    description: 'Telemetry payloads must be a JSON object at the top level.',
  },
  ERR_TELEMETRY_TOO_LARGE: {
    kind: 'too_large',
    title: 'Telemetry payload too large',
    description: 'The telemetry payload exceeds `telemetry.maxPayloadBytes`.',
  },
  ERR_TELEMETRY_BAD_TOPIC: {
    kind: 'invalid',
    title: 'Not a telemetry topic',
    description:
      'Telemetry goes to `devices/{deviceId}/telemetry` or `devices/{deviceId}/telemetry/{stream}`.',
  },
  ERR_TELEMETRY_BAD_RANGE: {
    kind: 'invalid',
    title: 'Invalid time range',
    description: '`from` and `to` must be ISO 8601 timestamps with `from` <= `to`.',
  },
  ERR_TELEMETRY_OVERLOADED: {
    kind: 'unavailable',
    title: 'Ingest queue full',
    description: 'The telemetry ingest queue is full; the message was not acknowledged and must be resent.',
  },
  ERR_PAGE_CURSOR: {
    kind: 'invalid',
    title: 'Invalid page cursor',
    description: 'The `cursor` parameter is not one this server returned.',
  },
  ERR_PKI_CSR_IDENTITY: {
    kind: 'invalid',
    title: 'CSR names another identity',
    description:
      "The CSR's subject CN or SAN URI names a different device or tenant than the one being enrolled.",
  },
  ERR_PKI_UNKNOWN_ISSUER: {
    kind: 'unauthenticated',
    title: 'Certificate issuer not trusted',
    description:
      'The client certificate is not signed by an active issuing CA of the tenant it names (checked by signature, not by name).',
  },
  ERR_PKI_CERT_EXPIRED: {
    kind: 'unauthenticated',
    title: 'Certificate expired',
    description: 'The certificate (or its issuing CA) is past its notAfter time.',
  },
  ERR_PKI_CERT_NOT_YET_VALID: {
    kind: 'unauthenticated',
    title: 'Certificate not yet valid',
    description: 'The certificate is before its notBefore time.',
  },
  ERR_PKI_CERT_USAGE: {
    kind: 'unauthenticated',
    title: 'Certificate not for client authentication',
    description: 'The certificate is a CA certificate or lacks the clientAuth extended key usage.',
  },
  ERR_PKI_CERT_IDENTITY: {
    kind: 'unauthenticated',
    title: 'Certificate names no device',
    description: 'The certificate has no single valid SAN URI `urn:bulwark:{tenant}:device:{deviceId}`.',
  },
  ERR_PKI_CERT_REVOKED: {
    kind: 'unauthenticated',
    title: 'Certificate revoked',
    description: 'The certificate has been revoked.',
  },
  ERR_PKI_TENANT_INVALID: {
    kind: 'invalid',
    title: 'Invalid tenant id',
    description:
      'Tenant ids are 1-63 characters of lower-case letters, digits and `-`, starting with a letter or digit.',
  },
  ERR_PKI_HOSTNAME_INVALID: {
    kind: 'invalid',
    title: 'Invalid server host name',
    description: 'Server certificates need at least one DNS name or IP address; wildcards are not issued.',
  },
  ERR_PKI_VALIDITY_INVALID: {
    kind: 'invalid',
    title: 'Invalid certificate validity',
    description: '`validityDays` must be a whole number from 1 to 397.',
  },
  ERR_PKI_REVOCATION_REASON: {
    kind: 'invalid',
    title: 'Invalid revocation reason',
    description:
      'Allowed reasons (RFC 5280 §5.3.1): unspecified, keyCompromise, cACompromise, affiliationChanged, superseded, cessationOfOperation, certificateHold, privilegeWithdrawn.',
  },
  ERR_PKI_CA_NOT_FOUND: {
    kind: 'not_found',
    title: 'No issuing CA for the tenant',
    description: 'The tenant has no active issuing CA yet; it is created on first use of the tenant.',
  },
  ERR_PKI_CA_EXISTS: {
    kind: 'conflict',
    title: 'Issuing CA already exists',
    description: 'The tenant already has an active issuing CA; rotate it instead of importing another.',
  },
  ERR_PKI_CA_INVALID: {
    kind: 'invalid',
    title: 'Invalid CA certificate or key',
    description:
      'The imported CA certificate does not parse, is not a CA, does not chain to the platform root, or does not match its key.',
  },
  ERR_PKI_MASTER_KEY: {
    kind: 'internal',
    title: 'Master key unavailable',
    description:
      'The key-encryption master key is missing, malformed (32 bytes, base64) or its file is readable by other users.',
  },
  ERR_PKI_CA_REVOKED: {
    kind: 'conflict',
    title: 'CA revoked',
    description:
      'The certificate authority has been revoked; it is no longer trusted and issues nothing. A tenant gets a new issuing CA on its next issuance.',
  },
  ERR_PKI_CA_NOT_REVOCABLE: {
    kind: 'invalid',
    title: 'CA cannot be revoked here',
    description:
      'Only tenant issuing CAs and external CAs can be revoked through the API; the root and the platform CA are replaced offline.',
  },
  ERR_PKI_EXTERNAL_CA_NOT_FOUND: {
    kind: 'not_found',
    title: 'External CA not found',
    description: 'No external CA with this id is registered in the tenant.',
  },
  ERR_PKI_EXTERNAL_CA_EXISTS: {
    kind: 'conflict',
    title: 'External CA already registered',
    description: 'A CA with the same certificate is already registered in the tenant.',
  },
  ERR_PKI_EXTERNAL_CA_INVALID: {
    kind: 'invalid',
    title: 'Not an acceptable CA certificate',
    description:
      'The certificate is not a usable CA: it must parse, have basicConstraints CA=true and keyCertSign, be within its validity, and use an allowed key (ECDSA P-256/P-384, Ed25519, RSA >= 2048).',
  },
  ERR_PKI_CA_CHALLENGE: {
    kind: 'invalid',
    title: 'Proof of possession failed',
    description:
      'The verification certificate must be signed by the CA being registered and carry, as its subject CN, an unexpired, unused registration code issued to this tenant (`POST /api/v1/cas/external/registration-codes`).',
  },
  ERR_PKI_FLEET_INVALID: {
    kind: 'invalid',
    title: 'Invalid fleet path',
    description:
      'Fleet paths are 1-8 segments of lower-case letters, digits and `-`, joined by `/` (e.g. `sensors/gen2`).',
  },
  ERR_OCSP_REQUEST_INVALID: {
    kind: 'invalid',
    title: 'Malformed OCSP request',
    description:
      'The body is not a DER OCSPRequest (RFC 6960 §4.1); the responder answers `malformedRequest`.',
  },
  ERR_EST_AUTH_REQUIRED: {
    kind: 'unauthenticated',
    title: 'EST authentication required',
    description:
      'Enrollment needs a TLS client certificate (the current device certificate, or a manufacturer certificate of a registered CA) or HTTP Basic credentials: device id and enrollment code.',
  },
  ERR_EST_CODE_INVALID: {
    kind: 'unauthenticated',
    title: 'Enrollment code not valid',
    description:
      'No enrollment code matches, or the code is bound to another device id. Attempts are rate-limited and audited.',
  },
  ERR_EST_CODE_USED: {
    kind: 'forbidden',
    title: 'Enrollment code used up',
    description: 'The code was one-time and has been used, or its quota is exhausted.',
  },
  ERR_EST_CODE_EXPIRED: {
    kind: 'forbidden',
    title: 'Enrollment code expired or revoked',
    description: 'The enrollment code is past its expiry or an operator revoked it.',
  },
  ERR_EST_CODE_NOT_FOUND: {
    kind: 'not_found',
    title: 'Enrollment code not found',
    description: 'No enrollment code with this id exists in the tenant.',
  },
  ERR_EST_DEVICE_EXISTS: {
    kind: 'forbidden',
    title: 'Device already enrolled',
    description:
      'A fleet enrollment code or a manufacturer certificate cannot take over a device that exists and was not enrolled through the same credential; renew with `simplereenroll` or use a code made for this device.',
  },
  ERR_EST_DEVICE_DISABLED: {
    kind: 'forbidden',
    title: 'Device disabled',
    description: 'The device is disabled; it gets no certificate until it is enabled again.',
  },
  ERR_EST_UNKNOWN_CA: {
    kind: 'unauthenticated',
    title: 'Client certificate from an unknown CA',
    description:
      'The TLS client certificate was issued neither by the platform nor by an active registered external CA of this tenant.',
  },
  ERR_EST_CA_DISABLED: {
    kind: 'forbidden',
    title: 'External CA disabled',
    description:
      'The manufacturer CA that issued the client certificate is disabled or removed in this tenant.',
  },
  ERR_EST_IDEVID_INVALID: {
    kind: 'unauthenticated',
    title: 'Manufacturer certificate not acceptable',
    description:
      'The manufacturer certificate is expired or not yet valid, is a CA, lacks the clientAuth usage, or does not name a valid device id.',
  },
  ERR_EST_CERT_SUPERSEDED: {
    kind: 'forbidden',
    title: 'Certificate already renewed',
    description:
      'This certificate was already replaced through `simplereenroll`; only the newest certificate can renew (a copied old certificate cannot fork the identity).',
  },
  ERR_EST_REENROLL_CERT: {
    kind: 'unauthenticated',
    title: 'simplereenroll needs the current certificate',
    description:
      '`simplereenroll` authenticates with the device certificate being renewed, as the TLS client certificate (RFC 7030 §4.2.2).',
  },
  ERR_EST_CONTENT_TYPE: {
    kind: 'invalid',
    title: 'Wrong content type',
    description: 'EST enrollment requests are `application/pkcs10`, a base64 DER PKCS#10 (RFC 7030 §4.2.1).',
  },
  ERR_EST_TENANT_NOT_FOUND: {
    kind: 'not_found',
    title: 'Unknown EST label',
    description: 'The label in `/.well-known/est/<label>/...` names no tenant.',
  },
  ERR_EST_REJECTED: {
    kind: 'forbidden',
    title: 'Enrollment rejected',
    description: 'An operator rejected this enrollment request.',
  },
  ERR_EST_REQUEST_NOT_FOUND: {
    kind: 'not_found',
    title: 'Enrollment request not found',
    description: 'No pending enrollment request with this id exists in the tenant.',
  },
  ERR_AUTH_INVALID_CREDENTIALS: {
    kind: 'unauthenticated',
    title: 'Invalid credentials',
    description:
      'The user name or password is wrong (the answer does not say which, nor whether the account exists).',
  },
  ERR_AUTH_LOCKED: {
    kind: 'rate_limited',
    title: 'Sign-in temporarily locked',
    description:
      'Too many failed sign-ins for this account; retry after the time given in `Retry-After` (the lock doubles with each further failure, up to 15 minutes).',
  },
  ERR_AUTH_MFA_REQUIRED: {
    kind: 'unauthenticated',
    title: 'Second factor required',
    description:
      'The password is right and the account has MFA: send the current TOTP `code` (or a `recoveryCode`) with the sign-in.',
  },
  ERR_AUTH_MFA_INVALID: {
    kind: 'unauthenticated',
    title: 'Invalid second factor',
    description:
      'The TOTP code or recovery code is wrong, expired or already used. Counts as a failed sign-in.',
  },
  ERR_AUTH_SESSION_INVALID: {
    kind: 'unauthenticated',
    title: 'Session expired or unknown',
    description:
      'The session cookie names no live session: signed out, revoked, idle for too long, or past its absolute lifetime.',
  },
  ERR_AUTH_CSRF: {
    kind: 'forbidden',
    title: 'CSRF token missing or wrong',
    description:
      "A state-changing request authenticated by the session cookie must carry the session's `x-csrf-token` header. Bearer-token requests need none.",
  },
  ERR_AUTH_NOT_SESSION: {
    kind: 'invalid',
    title: 'Not a console session',
    description:
      'This operation applies to a console session (cookie); the request was authenticated with a bearer token.',
  },
  ERR_AUTH_RESET_TOKEN: {
    kind: 'invalid',
    title: 'Invalid password token',
    description: 'The password setup or reset token is unknown, used or expired.',
  },
  ERR_AUTH_PASSWORD_WEAK: {
    kind: 'invalid',
    title: 'Password too weak',
    description:
      'Passwords need at least 12 characters, at most 256, and must not be a commonly used password or contain the user name.',
  },
  ERR_AUTH_ACCOUNT_DISABLED: {
    kind: 'unauthenticated',
    title: 'Account disabled',
    description: 'The account is disabled; an administrator can enable it again.',
  },
  ERR_AUTH_OIDC_NOT_CONFIGURED: {
    kind: 'not_found',
    title: 'Single sign-on not configured',
    description: 'The tenant has no enabled OIDC identity provider.',
  },
  ERR_AUTH_OIDC_STATE: {
    kind: 'unauthenticated',
    title: 'Sign-in attempt unknown or replayed',
    description:
      "The callback's `state` names no pending sign-in of this browser: it expired (10 minutes), was already used, or was started in another browser.",
  },
  ERR_AUTH_OIDC_FAILED: {
    kind: 'unauthenticated',
    title: 'Identity provider response rejected',
    description:
      'The authorization response or ID token did not validate (issuer, audience, signature, expiry, nonce, PKCE or a replayed code). Details are in the server log.',
  },
  ERR_AUTH_OIDC_NO_ROLE: {
    kind: 'forbidden',
    title: 'No role for this identity',
    description:
      "None of the identity's groups maps to a Bulwark role and the provider configuration has no default role.",
  },
  ERR_AUTH_OIDC_DISCOVERY: {
    kind: 'unavailable',
    title: 'Identity provider unreachable',
    description:
      "The issuer's discovery document could not be fetched or does not name the configured issuer.",
  },
  ERR_IAM_ESCALATION: {
    kind: 'forbidden',
    title: 'Would grant more than you hold',
    description:
      'A principal can only grant, create or attach permissions it holds itself (roles, token scopes, service accounts, role mappings). `errors` lists what is missing.',
  },
  ERR_IAM_SELF_CHANGE: {
    kind: 'forbidden',
    title: 'Cannot change your own access',
    description: 'Your own role, fleet scope and status can only be changed by someone else.',
  },
  ERR_IAM_ACCOUNT_NOT_FOUND: {
    kind: 'not_found',
    title: 'Account not found',
    description: 'No user or service account with this id exists in the tenant.',
  },
  ERR_IAM_ACCOUNT_EXISTS: {
    kind: 'conflict',
    title: 'Account name taken',
    description: 'An account with this name already exists in the tenant.',
  },
  ERR_IAM_TOKEN_NOT_FOUND: {
    kind: 'not_found',
    title: 'Token not found',
    description: 'No token with this id belongs to the account.',
  },
  ERR_IAM_TOKEN_OWNER: {
    kind: 'forbidden',
    title: 'Not your token to make',
    description: 'Tokens are made for yourself or for a service account, never for another person.',
  },
  ERR_IAM_TOKEN_LIFETIME: {
    kind: 'invalid',
    title: 'Invalid token lifetime',
    description: '`expiresInDays` must be a whole number from 1 to 366.',
  },
  ERR_IAM_ROLE_NOT_FOUND: {
    kind: 'not_found',
    title: 'Role not found',
    description: 'No built-in or custom role with this name exists in the tenant.',
  },
  ERR_IAM_ROLE_EXISTS: {
    kind: 'conflict',
    title: 'Role exists',
    description: 'A built-in or custom role with this name already exists.',
  },
  ERR_IAM_ROLE_IN_USE: {
    kind: 'conflict',
    title: 'Role in use',
    description: 'The role is still assigned to accounts or IdP group mappings.',
  },
  ERR_IAM_ROLE_INVALID: {
    kind: 'invalid',
    title: 'Invalid role',
    description:
      'Custom roles need a name of 1-64 lower-case letters, digits and `-`, and valid policy statements (known actions, resources of the tenant).',
  },
  ERR_IAM_LAST_OWNER: {
    kind: 'conflict',
    title: 'Last owner',
    description: 'The tenant must keep at least one active owner.',
  },
  ERR_IAM_SCOPE_INVALID: {
    kind: 'invalid',
    title: 'Invalid scope',
    description:
      'A scope names known actions (patterns like `devices:*` allowed) and at most one fleet path.',
  },
  ERR_IAM_MFA_STATE: {
    kind: 'conflict',
    title: 'MFA state does not allow this',
    description: 'TOTP is already enabled, or no enrollment is pending, or MFA is not enabled.',
  },
  ERR_IAM_IDP_INVALID: {
    kind: 'invalid',
    title: 'Invalid identity provider configuration',
    description:
      'The issuer must be an https URL (loopback http only when allowed by configuration); mapped roles must exist.',
  },
  ERR_WEBHOOK_URL: {
    kind: 'invalid',
    title: 'Webhook URL not allowed',
    description:
      'Webhook URLs must be https (http only to loopback when `webhooks.allowInsecureLoopback` is set), without credentials.',
  },
  ERR_WEBHOOK_NOT_FOUND: {
    kind: 'not_found',
    title: 'Webhook subscription not found',
    description: 'No webhook subscription with this id exists in the tenant.',
  },
  ERR_WEBHOOK_EVENT: {
    kind: 'invalid',
    title: 'Unknown event type',
    description:
      'Event types: see docs/iam.md (device.*, certificate.*, policy.changed, mqtt.*, telemetry, campaign.progress, posture.finding), `*` patterns allowed.',
  },
  ERR_WEBHOOK_OWNER: {
    kind: 'invalid',
    title: 'Subscription owner must be a service account',
    description:
      'Deliveries are filtered by what the owning service account may read, so the owner must be an active service account of the tenant.',
  },
  ERR_RELEASE_INVALID: {
    kind: 'invalid',
    title: 'Invalid release',
    description:
      'Name, version, hardware list, SBOM or artifact reference of a release is malformed; `errors` lists each problem.',
  },
  ERR_RELEASE_EXISTS: {
    kind: 'conflict',
    title: 'Release already exists',
    description: 'A release with this name and version exists; versions are immutable, publish a new one.',
  },
  ERR_RELEASE_NOT_FOUND: {
    kind: 'not_found',
    title: 'No such release',
    description: 'The release does not exist in this tenant.',
  },
  ERR_RELEASE_ARTIFACT_TOO_LARGE: {
    kind: 'too_large',
    title: 'Artifact too large',
    description:
      'The uploaded artifact exceeds `ota.maxArtifactBytes`; the upload was stopped and nothing was stored.',
  },
  ERR_RELEASE_ARTIFACT_NOT_FOUND: {
    kind: 'invalid',
    title: 'Unknown artifact',
    description: 'No uploaded artifact has this SHA-256; upload it first (`POST /api/v1/artifacts`).',
  },
  ERR_RELEASE_ARTIFACT_TYPE: {
    kind: 'invalid',
    title: 'Artifacts are uploaded as application/octet-stream',
    description: 'Send the artifact bytes as the request body with `Content-Type: application/octet-stream`.',
  },
  ERR_RELEASE_SIGNATURE_INVALID: {
    kind: 'invalid',
    title: 'Signature does not verify',
    description:
      'A TUF signature is not valid for the metadata being signed, uses a key the role does not list, or the threshold is not met.',
  },
  ERR_RELEASE_DRAFT_STALE: {
    kind: 'conflict',
    title: 'The metadata changed since it was fetched for signing',
    description:
      'Another release or signature changed the unsigned targets metadata; fetch it again (`bulwark release sign` does) and sign the new one.',
  },
  ERR_RELEASE_NOTHING_TO_SIGN: {
    kind: 'conflict',
    title: 'Nothing to sign',
    description: 'There is no unsigned root or targets metadata waiting for an offline signature.',
  },
  ERR_OTA_REPOSITORY_UNINITIALIZED: {
    kind: 'conflict',
    title: 'The update repository has no root yet',
    description:
      'Create the root and targets keys offline and sign the first root (`bulwark release keygen`, then `bulwark release sign`).',
  },
  ERR_OTA_ROOT_INVALID: {
    kind: 'invalid',
    title: 'Invalid root metadata',
    description:
      'The root metadata is malformed, has the wrong version, expires too soon, does not list the platform online snapshot and timestamp keys, or is not signed by the keys it must be signed by.',
  },
  ERR_OTA_CLIENT_CERT: {
    kind: 'unauthenticated',
    title: 'A valid device certificate is required',
    description:
      'The OTA repository serves devices only: present a client certificate issued by the platform that is valid, not revoked and names a device of this tenant.',
  },
  ERR_OTA_NOT_FOUND: {
    kind: 'not_found',
    title: 'No such metadata or target',
    description: 'The repository has no such metadata version or released target file.',
  },
  ERR_OTA_RANGE: {
    kind: 'invalid',
    title: 'Range not satisfiable',
    description:
      'The `Range` header is malformed, has several ranges, or starts past the end of the file (HTTP 416).',
  },
  ERR_OTA_STATUS_INVALID: {
    kind: 'invalid',
    title: 'Invalid update status report',
    description:
      'A device report on `devices/{id}/ota/status` is not a valid OtaStatusReport, names a campaign the device is not in, or moves backwards.',
  },
  ERR_CAMPAIGN_INVALID: {
    kind: 'invalid',
    title: 'Invalid campaign',
    description:
      'The target, waves, thresholds, rate limit or maintenance windows are malformed; `errors` lists each problem.',
  },
  ERR_CAMPAIGN_NOT_FOUND: {
    kind: 'not_found',
    title: 'No such campaign',
    description: 'The campaign does not exist in this tenant.',
  },
  ERR_CAMPAIGN_DOWNGRADE: {
    kind: 'conflict',
    title: 'The campaign would downgrade devices',
    description:
      'Some targeted devices run a newer version than the release. Set `allowDowngrade: true` (audited) and sign the release with downgrade authorisation, or target other devices.',
  },
  ERR_CAMPAIGN_NO_DEVICES: {
    kind: 'invalid',
    title: 'No device can take this release',
    description:
      'Every targeted device is excluded (incompatible hardware, not updatable, no capability report, already at the version...); the answer lists them.',
  },
  ERR_CAMPAIGN_STATE: {
    kind: 'conflict',
    title: 'Not possible in the campaign’s current state',
    description:
      'E.g. approving a wave that is not waiting for approval, resuming a campaign that is not paused, or changing a finished campaign.',
  },
  ERR_CAMPAIGN_RELEASE_UNSIGNED: {
    kind: 'conflict',
    title: 'The release is not signed yet',
    description:
      'Devices only install targets listed in signed targets metadata: sign the release (`bulwark release sign`) before starting a campaign.',
  },
  ERR_COMMAND_DEVICE_OFFLINE: {
    kind: 'conflict',
    title: 'Device not connected',
    description:
      'Commands reach a device only over the connection it opened; the device is not connected now.',
  },
  ERR_COMMAND_INVALID_NAME: {
    kind: 'invalid',
    title: 'Invalid command name',
    description:
      'Command names are 1-64 letters, digits, `.`, `_` and `-`, starting with a letter or digit; `result` is reserved.',
  },
  ERR_COMMAND_TOO_LARGE: {
    kind: 'too_large',
    title: 'Command payload too large',
    description: 'The command payload, as JSON, exceeds 64 KiB.',
  },
  ERR_COMMAND_TOO_MANY: {
    kind: 'rate_limited',
    title: 'Too many pending commands',
    description: 'The device already has the maximum number of commands waiting for a reply.',
  },
  ERR_COMMAND_RESULT_INVALID: {
    kind: 'invalid',
    title: 'Invalid command result',
    description:
      'A command result must be a JSON object `{id, status: "succeeded"|"failed", result?, error?}`.',
  },
  ERR_TWIN_VERSION_CONFLICT: {
    kind: 'conflict',
    title: 'Twin version conflict',
    description: 'The desired state changed since the version given in `version`; read it again and retry.',
  },
  ERR_TWIN_TOO_LARGE: {
    kind: 'too_large',
    title: 'Twin state too large',
    description: 'The desired or reported state, as JSON, exceeds 64 KiB.',
  },
  ERR_TWIN_INVALID: {
    kind: 'invalid',
    title: 'Invalid twin state',
    description:
      'Reported state must be a JSON object `{state: {...}, desiredVersion?}`; desired state a JSON object.',
  },
  ERR_CAPABILITIES_INVALID: {
    kind: 'invalid',
    title: 'Invalid capability report',
    description:
      'A capability report must be a JSON object whose known fields have the documented types (see the device SDK README).',
  },
  ERR_CAPABILITIES_NOT_FOUND: {
    kind: 'not_found',
    title: 'No capability report',
    description: 'The device has not reported its capabilities yet.',
  },
  ERR_IAM_ROLE_CONFLICT: {
    kind: 'conflict',
    title: 'Role changed meanwhile',
    description:
      'The custom role is no longer at the version the change was based on (`expectedVersion`); read it again and retry.',
  },
  ERR_AUTH_CLI_REDIRECT: {
    kind: 'invalid',
    title: 'Redirect not allowed',
    description:
      'A command-line sign-in returns only to the loopback address of the machine it started on (RFC 8252 §7.3): `http://127.0.0.1:<port>/<path>` or `http://[::1]:<port>/<path>`, no user info, query or fragment.',
  },
  ERR_AUTH_CLI_REQUEST: {
    kind: 'unauthenticated',
    title: 'Sign-in link unknown or used',
    description:
      'The command-line sign-in link names no pending sign-in: it expired (10 minutes), was already opened once, or never existed. Run `bulwark login --sso` again.',
  },
  ERR_AUTH_CLI_CODE_INVALID: {
    kind: 'unauthenticated',
    title: 'Sign-in code unknown or used',
    description: 'The one-time code of a command-line sign-in is unknown or was already exchanged.',
  },
  ERR_AUTH_CLI_CODE_EXPIRED: {
    kind: 'unauthenticated',
    title: 'Sign-in code expired',
    description: 'The one-time code of a command-line sign-in must be exchanged within 60 seconds.',
  },
  ERR_AUTH_CLI_VERIFIER: {
    kind: 'unauthenticated',
    title: 'Proof of the sign-in does not match',
    description:
      'The `codeVerifier` does not hash to the `codeChallenge` the sign-in started with (PKCE, RFC 7636): only the program that started it may finish it. The code is spent.',
  },
  ERR_POSTURE_FINDING_NOT_FOUND: {
    kind: 'not_found',
    title: 'Finding not found',
    description: 'No posture finding with this id exists in the tenant.',
  },
  ERR_POSTURE_TAMPER_INVALID: {
    kind: 'invalid',
    title: 'Invalid tamper report',
    description:
      'A tamper report on `devices/{id}/events/tamper` is a JSON object `{kind, detail?, at?}`: `kind` of 1-64 letters, digits, `.`, `_` or `-`, `detail` at most 512 characters, `at` an ISO 8601 time.',
  },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof errorCatalog;

export const httpStatusByKind: Record<ErrorKind, number> = {
  invalid: 400,
  unauthenticated: 401,
  forbidden: 403,
  not_found: 404,
  conflict: 409,
  too_large: 413,
  rate_limited: 429,
  unavailable: 503,
  internal: 500,
};

/** MQTT 5 reason codes by kind (MQTT 5.0 §2.4). */
export const mqttReasonByKind: Record<ErrorKind, number> = {
  invalid: 0x99, // Payload format invalid
  unauthenticated: 0x86,
  forbidden: 0x87,
  not_found: 0x80,
  conflict: 0x80,
  too_large: 0x95, // Packet too large
  rate_limited: 0x96, // Message rate too high
  unavailable: 0x97, // Quota exceeded
  internal: 0x80,
};

/** The body of an `application/problem+json` response (RFC 9457). */
export interface Problem {
  type: string;
  title: string;
  status: number;
  code: ErrorCode;
  detail?: string;
  instance?: string;
  requestId?: string;
  errors?: { path: string; message: string }[];
}
