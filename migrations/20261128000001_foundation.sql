-- Tenants, people, their credentials and their browser sessions.

CREATE TABLE customers (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT customers_name_key UNIQUE (name)
);

CREATE TABLE users (
    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    username       TEXT NOT NULL CHECK (length(username) BETWEEN 1 AND 150),
    password_hash  TEXT NOT NULL,
    role           TEXT NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
    is_superuser   BOOLEAN NOT NULL DEFAULT false,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_login_at  TIMESTAMPTZ,
    CONSTRAINT users_username_key UNIQUE (username)
);

CREATE TABLE user_customers (
    user_id      BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    customer_id  BIGINT NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    CONSTRAINT user_customers_pkey PRIMARY KEY (user_id, customer_id)
);
CREATE INDEX user_customers_customer_idx ON user_customers (customer_id);

CREATE TABLE api_tokens (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id       BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name          TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    -- The first characters of the token, enough to tell tokens apart in a list.
    prefix        TEXT NOT NULL,
    -- SHA-256 of the whole token, hex: the secret itself is never stored.
    token_hash    TEXT NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_used_at  TIMESTAMPTZ,
    CONSTRAINT api_tokens_token_hash_key UNIQUE (token_hash)
);
CREATE INDEX api_tokens_user_idx ON api_tokens (user_id);

-- tower-sessions records, one JSONB document per session.
CREATE TABLE sessions (
    id           TEXT PRIMARY KEY,
    data         JSONB NOT NULL,
    expiry_date  TIMESTAMPTZ NOT NULL
);
CREATE INDEX sessions_expiry_idx ON sessions (expiry_date);

-- Failed sign-ins per username and per client address, for throttling. Shared by every
-- server process, so running several servers does not multiply the allowance.
CREATE TABLE login_failures (
    key               TEXT PRIMARY KEY,
    failures          INTEGER NOT NULL,
    window_started_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
