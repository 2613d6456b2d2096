-- Group memberships of a device are read on every MQTT connect and policy recompile. A covering index
-- (with group_name) so the planner never prefers the primary key and scans the tenant's memberships.
CREATE INDEX group_members_by_device ON group_members (tenant_id, device_id, group_name);
DROP INDEX group_members_device;
