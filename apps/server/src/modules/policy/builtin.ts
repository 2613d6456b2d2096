import type { PolicyDocument } from './model.ts';

/** Every device: connect as itself, and publish/subscribe/receive only inside devices/{its id}/. */
export const deviceDefaultPolicy: PolicyDocument = {
  id: 'builtin:device-default',
  description: 'A device may connect with its own id and use only its own topic namespace devices/{id}/#.',
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
  ],
};

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
    description: 'Manage devices and certificates, read telemetry.',
    statements: [
      {
        sid: 'fleet',
        effect: 'allow',
        actions: ['devices:*', 'certs:*', 'telemetry:read'],
        resources: ['bulwark:${principal.tenant}:*'],
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
        actions: ['devices:read', 'certs:read', 'telemetry:read', 'audit:read', 'policies:read'],
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
        actions: ['devices:read', 'certs:read', 'telemetry:read'],
        resources: ['bulwark:${principal.tenant}:*'],
      },
    ],
  },
};
