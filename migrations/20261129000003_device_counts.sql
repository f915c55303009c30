-- Exact device counts per customer and region (a NULL region: devices without one), kept by
-- statement-level triggers on device_assignments. The device list's total and the region
-- list's device counts then cost an index lookup at any fleet size, where counting a
-- million assignment rows took a quarter of a second. A bulk statement updates each counter
-- once, with the rows it changed grouped by (customer, region).
CREATE TABLE device_counts (
    customer_id  BIGINT NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    -- No foreign key: a deleted region's counter drains to 0 when its devices lose their
    -- region, and the region list never reads a counter without its region.
    region_id    BIGINT,
    devices      BIGINT NOT NULL,
    CONSTRAINT device_counts_key UNIQUE NULLS NOT DISTINCT (customer_id, region_id)
);

-- An update moves devices: +1 for the new (customer, region), -1 for the old. A transition
-- table rules out a column list (`UPDATE OF region_id`), so updates of other columns reach
-- it too and add nothing.
CREATE FUNCTION device_counts_add() RETURNS trigger AS $$
BEGIN
    -- Rows in key order, so that two statements lock shared counters in the same order.
    INSERT INTO device_counts AS c (customer_id, region_id, devices)
    SELECT customer_id, region_id, sum(delta)
    FROM (
        SELECT customer_id, region_id, 1 AS delta FROM changed_new
        UNION ALL
        SELECT customer_id, region_id, -1 FROM changed_old
    ) AS changes
    GROUP BY customer_id, region_id
    HAVING sum(delta) <> 0
    ORDER BY customer_id, region_id
    ON CONFLICT (customer_id, region_id) DO UPDATE SET devices = c.devices + EXCLUDED.devices;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

-- An insert has only new rows and a delete only old ones, so each has a function of its own.
CREATE FUNCTION device_counts_on_insert() RETURNS trigger AS $$
BEGIN
    INSERT INTO device_counts AS c (customer_id, region_id, devices)
    SELECT customer_id, region_id, count(*) FROM changed_new
    GROUP BY customer_id, region_id ORDER BY customer_id, region_id
    ON CONFLICT (customer_id, region_id) DO UPDATE SET devices = c.devices + EXCLUDED.devices;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE FUNCTION device_counts_on_delete() RETURNS trigger AS $$
BEGIN
    UPDATE device_counts c SET devices = c.devices - gone.n
    FROM (SELECT customer_id, region_id, count(*) AS n FROM changed_old
          GROUP BY customer_id, region_id ORDER BY customer_id, region_id) AS gone
    WHERE c.customer_id = gone.customer_id AND c.region_id IS NOT DISTINCT FROM gone.region_id;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER device_counts_insert AFTER INSERT ON device_assignments
    REFERENCING NEW TABLE AS changed_new
    FOR EACH STATEMENT EXECUTE FUNCTION device_counts_on_insert();
CREATE TRIGGER device_counts_update AFTER UPDATE ON device_assignments
    REFERENCING OLD TABLE AS changed_old NEW TABLE AS changed_new
    FOR EACH STATEMENT EXECUTE FUNCTION device_counts_add();
CREATE TRIGGER device_counts_delete AFTER DELETE ON device_assignments
    REFERENCING OLD TABLE AS changed_old
    FOR EACH STATEMENT EXECUTE FUNCTION device_counts_on_delete();

INSERT INTO device_counts (customer_id, region_id, devices)
SELECT customer_id, region_id, count(*) FROM device_assignments GROUP BY customer_id, region_id;

-- Each new device gets its assignment row in one statement per INSERT, not one trigger call
-- per row: seeding a million devices no longer runs a million trigger calls.
DROP TRIGGER devices_assignment ON devices;
DROP FUNCTION devices_create_assignment();

CREATE FUNCTION devices_create_assignments() RETURNS trigger AS $$
BEGIN
    INSERT INTO device_assignments (device_id, customer_id)
    SELECT id, customer_id FROM new_devices;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER devices_assignments
    AFTER INSERT ON devices
    REFERENCING NEW TABLE AS new_devices
    FOR EACH STATEMENT EXECUTE FUNCTION devices_create_assignments();
