-- A fleet's device list pages by (created_at, id) (GET /api/v1/devices?fleet=...). With only
-- devices_fleet (tenant_id, fleet, id) every page sorted the whole fleet, or walked the tenant's devices
-- in creation order until it had found a page of the fleet's (bench/suites/platform-api.ts).
CREATE INDEX devices_fleet_created ON devices (tenant_id, fleet, created_at, id);
