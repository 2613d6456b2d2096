-- MQTT client ids and topics (devices/{id}/...) are one namespace for the whole broker, so a device id
-- must name one device platform-wide: otherwise a device of one tenant could take over the session of, or
-- receive the commands meant for, a device with the same id in another tenant.
CREATE UNIQUE INDEX devices_id_platform_wide ON devices (id);
