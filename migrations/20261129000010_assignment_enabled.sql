-- A job on a list of device ids needs, per device, its region and whether it is enabled.
-- The region (and a copy of the hostname) live in device_assignments and `enabled` in
-- devices, so a job on a thousand devices joined a thousand rows of each: half the cost of
-- creating it. The assignment row now carries a copy of `enabled` too, kept by the
-- triggers below, and such a job reads device_assignments alone.
ALTER TABLE device_assignments ADD COLUMN enabled BOOLEAN NOT NULL DEFAULT true;
UPDATE device_assignments a SET enabled = d.enabled
FROM devices d WHERE d.id = a.device_id AND NOT d.enabled;

CREATE OR REPLACE FUNCTION devices_create_assignments() RETURNS trigger AS $$
BEGIN
    INSERT INTO device_assignments (device_id, customer_id, hostname, enabled)
    SELECT id, customer_id, hostname, enabled FROM new_devices;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE FUNCTION devices_enable_assignment() RETURNS trigger AS $$
BEGIN
    UPDATE device_assignments SET enabled = NEW.enabled WHERE device_id = NEW.id;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER devices_enable_assignment
    AFTER UPDATE OF enabled ON devices
    FOR EACH ROW WHEN (OLD.enabled IS DISTINCT FROM NEW.enabled)
    EXECUTE FUNCTION devices_enable_assignment();
