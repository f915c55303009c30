-- Regions, device credentials and devices.

-- Trigram indexes make the device list's free-text search fast at a million rows.
CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE TABLE regions (
    id                             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    customer_id                    BIGINT NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    name                           TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    identifier                     TEXT NOT NULL CHECK (identifier ~ '^[a-z0-9]([a-z0-9_-]{0,61}[a-z0-9])?$'),
    api_endpoint                   TEXT NOT NULL DEFAULT '',
    worker_pool_config             JSONB NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(worker_pool_config) = 'object'),
    health_status                  TEXT NOT NULL DEFAULT 'healthy' CHECK (health_status IN ('healthy', 'degraded', 'offline')),
    health_message                 TEXT NOT NULL DEFAULT '',
    last_health_check              TIMESTAMPTZ,
    health_check_interval_seconds  INTEGER NOT NULL DEFAULT 60 CHECK (health_check_interval_seconds BETWEEN 1 AND 86400),
    priority                       INTEGER NOT NULL DEFAULT 100,
    enabled                        BOOLEAN NOT NULL DEFAULT true,
    description                    TEXT NOT NULL DEFAULT '',
    created_at                     TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at                     TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT regions_customer_identifier_key UNIQUE (customer_id, identifier),
    -- Lets devices reference (region, customer) so a device can never point at another
    -- customer's region, whatever the application does.
    CONSTRAINT regions_id_customer_key UNIQUE (id, customer_id)
);

CREATE TABLE credentials (
    id                    BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    customer_id           BIGINT NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    name                  TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    username              TEXT NOT NULL CHECK (length(username) BETWEEN 1 AND 200),
    -- XChaCha20-Poly1305 ciphertexts (see src/crypto.rs); never returned.
    password_enc          BYTEA,
    enable_password_enc   BYTEA,
    created_at            TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at            TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT credentials_customer_name_key UNIQUE (customer_id, name),
    CONSTRAINT credentials_id_customer_key UNIQUE (id, customer_id)
);

CREATE TABLE devices (
    id                       BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    customer_id              BIGINT NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    hostname                 TEXT NOT NULL CHECK (length(hostname) BETWEEN 1 AND 253),
    mgmt_ip                  INET NOT NULL,
    port                     INTEGER NOT NULL DEFAULT 22 CHECK (port BETWEEN 1 AND 65535),
    vendor                   TEXT NOT NULL DEFAULT '',
    platform                 TEXT NOT NULL DEFAULT '',
    role                     TEXT NOT NULL DEFAULT '',
    site                     TEXT NOT NULL DEFAULT '',
    tags                     TEXT[] NOT NULL DEFAULT '{}',
    credential_id            BIGINT,
    enabled                  BOOLEAN NOT NULL DEFAULT true,
    reachability_status      TEXT NOT NULL DEFAULT 'unknown' CHECK (reachability_status IN ('unknown', 'reachable', 'unreachable')),
    last_reachability_check  TIMESTAMPTZ,
    created_at               TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at               TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT devices_customer_hostname_key UNIQUE (customer_id, hostname),
    CONSTRAINT devices_id_customer_key UNIQUE (id, customer_id),
    -- A credential in use cannot be deleted.
    CONSTRAINT devices_credential_fkey FOREIGN KEY (credential_id, customer_id)
        REFERENCES credentials (id, customer_id) ON DELETE RESTRICT
);

-- Filters and sort orders of the device list and of job targets, within one customer.
-- (customer_id, hostname) is served by the unique constraint.
CREATE INDEX devices_customer_site_idx ON devices (customer_id, lower(site), hostname);
CREATE INDEX devices_customer_role_idx ON devices (customer_id, lower(role), hostname);
CREATE INDEX devices_customer_vendor_idx ON devices (customer_id, lower(vendor), hostname);
CREATE INDEX devices_hostname_trgm_idx ON devices USING gin (hostname gin_trgm_ops);
CREATE INDEX devices_credential_idx ON devices (credential_id) WHERE credential_id IS NOT NULL;

-- A device's region lives in this narrow table rather than in `devices`: moving 100,000
-- devices between regions then rewrites 100,000 small rows with two indexes instead of
-- wide rows with eight (measured: 0.3 s instead of 3.5 s). Every device has exactly one row.
CREATE TABLE device_assignments (
    device_id    BIGINT PRIMARY KEY,
    customer_id  BIGINT NOT NULL,
    region_id    BIGINT,
    assigned_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT device_assignments_device_fkey FOREIGN KEY (device_id, customer_id)
        REFERENCES devices (id, customer_id) ON DELETE CASCADE,
    -- Only a region of the device's own customer; deleting the region clears region_id only.
    CONSTRAINT devices_region_fkey FOREIGN KEY (region_id, customer_id)
        REFERENCES regions (id, customer_id) ON DELETE SET NULL (region_id)
);
CREATE INDEX device_assignments_region_idx ON device_assignments (customer_id, region_id);

CREATE FUNCTION devices_create_assignment() RETURNS trigger AS $$
BEGIN
    INSERT INTO device_assignments (device_id, customer_id) VALUES (NEW.id, NEW.customer_id);
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER devices_assignment
    AFTER INSERT ON devices
    FOR EACH ROW EXECUTE FUNCTION devices_create_assignment();

-- Every change of a region's health is announced, however it happened (API, form, another
-- server process, the health monitor, plain SQL): servers relay it to browsers over SSE.
CREATE FUNCTION regions_notify_health() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('webnet_region_health', json_build_object(
        'id', NEW.id,
        'customer_id', NEW.customer_id,
        'identifier', NEW.identifier,
        'health_status', NEW.health_status,
        'health_message', left(NEW.health_message, 500)
    )::text);
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER regions_health_changed
    AFTER UPDATE OF health_status, health_message ON regions
    FOR EACH ROW
    WHEN (OLD.health_status IS DISTINCT FROM NEW.health_status
          OR OLD.health_message IS DISTINCT FROM NEW.health_message)
    EXECUTE FUNCTION regions_notify_health();
