-- The certificate list pages by (created_at, serial) within a tenant (GET /api/v1/certificates). Without
-- this index every page sorted the tenant's certificates.
CREATE INDEX certificates_created ON certificates (tenant_id, created_at, serial);
