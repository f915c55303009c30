-- Administration in the browser: deactivated users, token expiry, and the audit trail.

ALTER TABLE users ADD COLUMN is_active BOOLEAN NOT NULL DEFAULT true;

ALTER TABLE api_tokens ADD COLUMN expires_at TIMESTAMPTZ;

-- Sessions are found by user to end them (deactivation, "sign out everywhere else").
CREATE INDEX sessions_user_idx ON sessions ((data ->> 'user_id'));

-- One row per change, written in the transaction of the change. Rows outlive what they
-- describe: no foreign keys but the actor's, which is kept as a name too.
CREATE TABLE audit_log (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at            TIMESTAMPTZ NOT NULL DEFAULT now(),
    actor_id      BIGINT REFERENCES users (id) ON DELETE SET NULL,
    actor         TEXT NOT NULL,
    token         TEXT,
    client_addr   INET,
    -- The customers whose members may read the row; empty: superusers only.
    customer_ids  BIGINT[] NOT NULL DEFAULT '{}',
    object_type   TEXT NOT NULL,
    object_id     BIGINT,
    object_repr   TEXT NOT NULL,
    action        TEXT NOT NULL,
    changes       JSONB NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX audit_log_at_idx ON audit_log (at DESC, id DESC);
CREATE INDEX audit_log_customers_idx ON audit_log USING gin (customer_ids);
CREATE INDEX audit_log_object_idx ON audit_log (object_type, object_id, at DESC);
CREATE INDEX audit_log_actor_idx ON audit_log (actor, at DESC);
