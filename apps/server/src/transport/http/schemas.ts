// JSON schemas of the REST API; they validate requests, shape responses and generate the OpenAPI document.

export const problemSchema = {
  type: 'object',
  description: 'RFC 9457 problem details with a stable `code`.',
  properties: {
    type: { type: 'string' },
    title: { type: 'string' },
    status: { type: 'integer' },
    code: { type: 'string' },
    detail: { type: 'string' },
    instance: { type: 'string' },
    requestId: { type: 'string' },
    errors: {
      type: 'array',
      items: { type: 'object', properties: { path: { type: 'string' }, message: { type: 'string' } } },
    },
  },
  required: ['type', 'title', 'status', 'code'],
} as const;

export const deviceIdParam = {
  type: 'object',
  properties: {
    id: { type: 'string', minLength: 1, maxLength: 128, pattern: '^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$' },
  },
  required: ['id'],
} as const;

export const attributesSchema = {
  type: 'object',
  additionalProperties: { type: 'string', maxLength: 256 },
  maxProperties: 64,
} as const;

export const deviceSchema = {
  type: 'object',
  properties: {
    id: { type: 'string' },
    tenant: { type: 'string' },
    status: { type: 'string', enum: ['active', 'disabled'] },
    attributes: attributesSchema,
    createdAt: { type: 'string', format: 'date-time' },
    updatedAt: { type: 'string', format: 'date-time' },
    connected: { type: 'boolean' },
    certificates: { type: 'array', items: { $ref: 'CertificateSummary#' } },
  },
  required: ['id', 'tenant', 'status', 'attributes', 'createdAt', 'updatedAt'],
} as const;

export const certificateSummarySchema = {
  $id: 'CertificateSummary',
  type: 'object',
  properties: {
    serial: { type: 'string' },
    deviceId: { type: ['string', 'null'] },
    status: { type: 'string', enum: ['active', 'revoked', 'expired'] },
    keyType: { type: 'string' },
    notBefore: { type: 'string', format: 'date-time' },
    notAfter: { type: 'string', format: 'date-time' },
    revokedAt: { type: ['string', 'null'], format: 'date-time' },
    fingerprint256: { type: 'string' },
  },
  required: ['serial', 'status', 'keyType', 'notBefore', 'notAfter', 'fingerprint256'],
} as const;

export const pageQuery = {
  type: 'object',
  properties: {
    limit: { type: 'integer', minimum: 1, maximum: 1000 },
    cursor: { type: 'string', maxLength: 512 },
  },
  additionalProperties: false,
} as const;

export const errorResponses = {
  400: { $ref: 'Problem#' },
  401: { $ref: 'Problem#' },
  403: { $ref: 'Problem#' },
  404: { $ref: 'Problem#' },
  409: { $ref: 'Problem#' },
} as const;
