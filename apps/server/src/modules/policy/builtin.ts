import type { PolicyDocument } from './model.ts';

/** Every device: connect as itself, and publish/subscribe/receive only inside devices/{its id}/. */
export const deviceDefaultPolicy: PolicyDocument = {
  id: 'builtin:device-default',
  description:
    'A device may connect with its own id, use only its own topic namespace devices/{id}/#, and download from its tenant’s update repository.',
  statements: [
    {
      sid: 'connect-as-self',
      effect: 'allow',
      actions: ['mqtt:connect'],
      resources: ['bulwark:${device.tenant}:client/${device.id}'],
    },
    {
      sid: 'own-namespace',
      effect: 'allow',
      actions: ['mqtt:publish', 'mqtt:subscribe', 'mqtt:receive'],
      resources: ['bulwark:${device.tenant}:topic/devices/${device.id}/#'],
    },
    {
      sid: 'ota-download',
      effect: 'allow',
      actions: ['ota:download'],
      resources: ['bulwark:${device.tenant}:ota/*'],
    },
  ],
};

/** The built-in group every tenant has: devices in it are held to status and update topics. */
export const QUARANTINE_GROUP = 'quarantine';

/**
 * Attached to the quarantine group. A deny with notResources ("everything except") cannot be widened
 * by any allow elsewhere, so a quarantined device keeps only what it needs to report and be repaired.
 */
export const quarantinePolicy: PolicyDocument = {
  id: 'builtin:quarantine',
  description:
    'Quarantine: MQTT limited to devices/{id}/status, devices/{id}/update/# and the OTA topics devices/{id}/ota/#, whatever else is attached; the device may still report tampering (devices/{id}/events/tamper).',
  statements: [
    {
      sid: 'limit-to-status-and-update',
      effect: 'deny',
      actions: ['mqtt:publish', 'mqtt:subscribe', 'mqtt:receive'],
      notResources: [
        'bulwark:${device.tenant}:topic/devices/${device.id}/status',
        'bulwark:${device.tenant}:topic/devices/${device.id}/update/#',
        'bulwark:${device.tenant}:topic/devices/${device.id}/ota/#',
        'bulwark:${device.tenant}:topic/devices/${device.id}/events/tamper',
      ],
    },
    {
      sid: 'tamper-reports-outbound-only',
      effect: 'deny',
      actions: ['mqtt:subscribe', 'mqtt:receive'],
      resources: ['bulwark:${device.tenant}:topic/devices/${device.id}/events/tamper'],
    },
    {
      sid: 'status-and-update',
      effect: 'allow',
      actions: ['mqtt:publish', 'mqtt:subscribe', 'mqtt:receive'],
      resources: [
        'bulwark:${device.tenant}:topic/devices/${device.id}/status',
        'bulwark:${device.tenant}:topic/devices/${device.id}/update/#',
        'bulwark:${device.tenant}:topic/devices/${device.id}/ota/#',
      ],
    },
    {
      // A device held in quarantine is exactly the one whose tamper reports matter.
      sid: 'tamper-reports',
      effect: 'allow',
      actions: ['mqtt:publish'],
      resources: ['bulwark:${device.tenant}:topic/devices/${device.id}/events/tamper'],
    },
  ],
};

/** Everything an auditor reads; the security officer reads the same and may change a few things. */
const AUDIT_READ_ACTIONS = [
  'devices:read',
  'certs:read',
  'telemetry:read',
  'audit:read',
  'metrics:read',
  'policies:read',
  'fleets:read',
  'groups:read',
  'accounts:read',
  'roles:read',
  'tokens:read',
  'sessions:read',
  'idp:read',
  'webhooks:read',
  'releases:read',
  'campaigns:read',
  'posture:read',
];

/** Built-in roles for people and programs, always confined to their own tenant. */
export const rolePolicies: Record<string, PolicyDocument> = {
  owner: {
    id: 'builtin:role-owner',
    description: 'Everything within the tenant.',
    statements: [
      { sid: 'all', effect: 'allow', actions: ['*'], resources: ['bulwark:${principal.tenant}:*'] },
    ],
  },
  admin: {
    id: 'builtin:role-admin',
    description: 'Everything within the tenant.',
    statements: [
      { sid: 'all', effect: 'allow', actions: ['*'], resources: ['bulwark:${principal.tenant}:*'] },
    ],
  },
  operator: {
    id: 'builtin:role-operator',
    description:
      'Manage devices and certificates, read telemetry, fleets, groups, policies and posture findings; quarantine devices.',
    statements: [
      {
        sid: 'fleet',
        effect: 'allow',
        actions: [
          'devices:*',
          'certs:*',
          'telemetry:read',
          'fleets:read',
          'groups:read',
          'policies:read',
          'metrics:read',
          'releases:read',
          'campaigns:*',
          'posture:read',
        ],
        resources: ['bulwark:${principal.tenant}:*'],
      },
      {
        sid: 'quarantine',
        effect: 'allow',
        actions: ['groups:write'],
        resources: ['bulwark:${principal.tenant}:group/quarantine'],
      },
    ],
  },
  auditor: {
    id: 'builtin:role-auditor',
    description: 'Read-only, plus the audit log.',
    statements: [
      {
        sid: 'read',
        effect: 'allow',
        actions: AUDIT_READ_ACTIONS,
        resources: ['bulwark:${principal.tenant}:*'],
      },
    ],
  },
  'security-officer': {
    id: 'builtin:role-security-officer',
    description:
      'Read everything; manage policies, groups (quarantine), sign-in (IdP), sessions; revoke certificates; resolve posture findings.',
    statements: [
      {
        sid: 'read',
        effect: 'allow',
        actions: AUDIT_READ_ACTIONS,
        resources: ['bulwark:${principal.tenant}:*'],
      },
      {
        sid: 'security',
        effect: 'allow',
        actions: [
          'policies:write',
          'groups:write',
          'certs:revoke',
          'idp:write',
          'sessions:write',
          'posture:write',
        ],
        resources: ['bulwark:${principal.tenant}:*'],
      },
    ],
  },
  viewer: {
    id: 'builtin:role-viewer',
    description: 'Read devices, certificates and telemetry.',
    statements: [
      {
        sid: 'read',
        effect: 'allow',
        actions: [
          'devices:read',
          'certs:read',
          'telemetry:read',
          'fleets:read',
          'groups:read',
          'releases:read',
          'campaigns:read',
        ],
        resources: ['bulwark:${principal.tenant}:*'],
      },
    ],
  },
};

/**
 * Every person and program may look after its own account: read it, manage its own tokens, sessions
 * and second factor. What a new token may do is still limited to what its owner holds (covers.ts).
 */
export const selfServicePolicy: PolicyDocument = {
  id: 'builtin:self-service',
  description: 'Own account: whoami, own tokens, own sessions, own MFA.',
  statements: [
    {
      sid: 'own-account',
      effect: 'allow',
      actions: [
        'accounts:read',
        'tokens:read',
        'tokens:write',
        'sessions:read',
        'sessions:write',
        'credentials:write',
      ],
      resources: [
        'bulwark:${principal.tenant}:account/${principal.id}',
        'bulwark:${principal.tenant}:account/${principal.id}/*',
      ],
    },
  ],
};
