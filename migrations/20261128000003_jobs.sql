-- Jobs, where they were sent (dispatches), what happened on each device, their logs, and
-- configuration snapshots.

CREATE TABLE jobs (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    customer_id     BIGINT NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    type            TEXT NOT NULL CHECK (type IN ('run_commands', 'config_backup', 'check_reachability')),
    status          TEXT NOT NULL DEFAULT 'queued'
                    CHECK (status IN ('queued', 'scheduled', 'running', 'success', 'partial', 'failed', 'cancelled')),
    user_id         BIGINT REFERENCES users (id) ON DELETE SET NULL,
    -- The region of the highest-priority regional dispatch; NULL when all went to the default queue.
    region_id       BIGINT REFERENCES regions (id) ON DELETE SET NULL,
    requested_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    started_at      TIMESTAMPTZ,
    finished_at     TIMESTAMPTZ,
    target_summary  JSONB NOT NULL,
    payload         JSONB NOT NULL DEFAULT '{}'::jsonb,
    result_summary  JSONB NOT NULL DEFAULT '{}'::jsonb,
    retry_of        BIGINT REFERENCES jobs (id) ON DELETE SET NULL
);
CREATE INDEX jobs_customer_requested_idx ON jobs (customer_id, requested_at DESC);
CREATE INDEX jobs_region_idx ON jobs (region_id, requested_at DESC) WHERE region_id IS NOT NULL;
CREATE INDEX jobs_status_idx ON jobs (status) WHERE status IN ('queued', 'running');

-- One per queue a job was sent to.
CREATE TABLE job_dispatches (
    id                BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_id            BIGINT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    region_id         BIGINT REFERENCES regions (id) ON DELETE SET NULL,
    queue             TEXT NOT NULL,
    device_ids        BIGINT[] NOT NULL,
    status            TEXT NOT NULL DEFAULT 'queued'
                      CHECK (status IN ('queued', 'running', 'success', 'partial', 'failed', 'cancelled')),
    worker            TEXT,
    -- The apalis task (apalis.jobs.id) carrying this dispatch.
    task_id           TEXT NOT NULL,
    routing_reason    TEXT NOT NULL DEFAULT '',
    failed_over_from  TEXT,
    started_at        TIMESTAMPTZ,
    finished_at       TIMESTAMPTZ
);
CREATE INDEX job_dispatches_job_idx ON job_dispatches (job_id);
CREATE INDEX job_dispatches_open_idx ON job_dispatches (queue) WHERE status IN ('queued', 'running');

-- What happened on each device.
CREATE TABLE job_device_results (
    dispatch_id  BIGINT NOT NULL REFERENCES job_dispatches (id) ON DELETE CASCADE,
    device_id    BIGINT NOT NULL,
    job_id       BIGINT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    hostname     TEXT NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('success', 'failed', 'cancelled')),
    detail       JSONB NOT NULL DEFAULT '{}'::jsonb,
    finished_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (dispatch_id, device_id)
);
CREATE INDEX job_device_results_job_idx ON job_device_results (job_id);

CREATE TABLE job_logs (
    id       BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_id   BIGINT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    ts       TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
    level    TEXT NOT NULL CHECK (level IN ('debug', 'info', 'warning', 'error')),
    host     TEXT NOT NULL DEFAULT '',
    message  TEXT NOT NULL
);
CREATE INDEX job_logs_job_idx ON job_logs (job_id, id);

-- Live log tails and job status badges: announce new log lines and status changes.
CREATE FUNCTION job_logs_notify() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('webnet_job_log', json_build_object('job_id', NEW.job_id, 'id', NEW.id)::text);
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER job_logs_inserted AFTER INSERT ON job_logs
    FOR EACH ROW EXECUTE FUNCTION job_logs_notify();

CREATE TABLE config_snapshots (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    device_id    BIGINT NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    job_id       BIGINT REFERENCES jobs (id) ON DELETE SET NULL,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    config_hash  TEXT NOT NULL,
    config_text  TEXT NOT NULL
);
CREATE INDEX config_snapshots_device_idx ON config_snapshots (device_id, created_at DESC);

-- Trust on first use: the SSH host key fingerprint first seen on each device.
ALTER TABLE devices ADD COLUMN ssh_host_key TEXT;
-- A different key a device presented later: the device fails until an admin accepts it.
ALTER TABLE devices ADD COLUMN ssh_host_key_presented TEXT;
