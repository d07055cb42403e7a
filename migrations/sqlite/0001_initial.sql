-- The tenancy tree, the relying-party clients, and the state the OpenID Connect protocol
-- needs. Times are unix seconds; every time comes from the application's clock, never from
-- a column default, so that tests can move the clock.

-- Tenancy: reseller -> company -> user.
CREATE TABLE resellers (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    created_at  INTEGER NOT NULL
) STRICT;

CREATE TABLE companies (
    id          TEXT PRIMARY KEY,
    reseller_id TEXT NOT NULL REFERENCES resellers (id),
    name        TEXT NOT NULL,
    created_at  INTEGER NOT NULL
) STRICT;
CREATE INDEX companies_reseller_idx ON companies (reseller_id);

-- The login name is unique across the instance and stored normalised (lower case), so the
-- unique constraint is also case-insensitive.
CREATE TABLE users (
    id             TEXT PRIMARY KEY,
    company_id     TEXT NOT NULL REFERENCES companies (id),
    username       TEXT NOT NULL,
    email          TEXT NOT NULL,
    email_verified INTEGER NOT NULL,
    phone          TEXT,
    name           TEXT,
    role           TEXT NOT NULL,
    password_hash  TEXT,
    active         INTEGER NOT NULL,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL,
    CONSTRAINT users_username_key UNIQUE (username),
    CONSTRAINT users_role_check CHECK (role IN ('user', 'company_admin', 'reseller_admin'))
) STRICT;
CREATE INDEX users_company_idx ON users (company_id);

-- Relying parties. A confidential client stores the SHA-256 of its secret: the secret is 256
-- random bits, so a slow hash would add nothing but latency. Lists are JSON arrays.
CREATE TABLE clients (
    id                        TEXT PRIMARY KEY,
    name                      TEXT NOT NULL,
    secret_hash               TEXT,
    public                    INTEGER NOT NULL,
    first_party               INTEGER NOT NULL,
    redirect_uris             TEXT NOT NULL,
    post_logout_redirect_uris TEXT NOT NULL,
    grant_types               TEXT NOT NULL,
    scopes                    TEXT NOT NULL,
    id_token_alg              TEXT NOT NULL,
    reseller_id               TEXT REFERENCES resellers (id),
    company_id                TEXT REFERENCES companies (id),
    created_at                INTEGER NOT NULL,
    CONSTRAINT clients_alg_check CHECK (id_token_alg IN ('RS256', 'ES256')),
    CONSTRAINT clients_secret_check CHECK ((public = 1) = (secret_hash IS NULL))
) STRICT;

-- When a client has rows here it serves only those companies' users.
CREATE TABLE client_companies (
    client_id  TEXT NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    company_id TEXT NOT NULL REFERENCES companies (id) ON DELETE CASCADE,
    PRIMARY KEY (client_id, company_id)
) STRICT;

-- Signing keys are shared by every instance that uses this database. The private key is
-- PKCS#8 DER sealed with AES-256-GCM under the master key in the key directory, so a
-- database dump alone cannot sign tokens.
CREATE TABLE signing_keys (
    kid          TEXT PRIMARY KEY,
    alg          TEXT NOT NULL,
    private_key  BLOB NOT NULL,
    public_jwk   TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    retired_at   INTEGER,
    CONSTRAINT signing_keys_alg_check CHECK (alg IN ('RS256', 'ES256'))
) STRICT;

-- A login in progress: the validated authorization request and the state machine's state.
-- `version` is bumped by every step, and a step applies only to the version it read, so a
-- replayed or concurrent form post cannot move the same transaction twice.
CREATE TABLE login_transactions (
    id            TEXT PRIMARY KEY,
    browser_hash  TEXT NOT NULL,
    csrf_token    TEXT NOT NULL,
    client_id     TEXT NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    request       TEXT NOT NULL,
    state         TEXT NOT NULL,
    user_id       TEXT REFERENCES users (id) ON DELETE CASCADE,
    version       INTEGER NOT NULL,
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL
) STRICT;

-- Browser sessions (single sign-on). The cookie holds a secret; only its hash is stored.
CREATE TABLE sessions (
    id           TEXT PRIMARY KEY,
    secret_hash  TEXT NOT NULL,
    user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    auth_time    INTEGER NOT NULL,
    amr          TEXT NOT NULL,
    acr          TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    ended_at     INTEGER,
    CONSTRAINT sessions_secret_key UNIQUE (secret_hash)
) STRICT;
CREATE INDEX sessions_user_idx ON sessions (user_id);

-- Single-use authorization codes, stored hashed. `grant_id` is set when the code is
-- exchanged, so that a replay can revoke what the first exchange issued.
CREATE TABLE authorization_codes (
    code_hash       TEXT PRIMARY KEY,
    client_id       TEXT NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    user_id         TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    session_id      TEXT NOT NULL,
    login_id        TEXT,
    redirect_uri    TEXT NOT NULL,
    scope           TEXT NOT NULL,
    nonce           TEXT,
    code_challenge  TEXT,
    auth_time       INTEGER NOT NULL,
    amr             TEXT NOT NULL,
    acr             TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL,
    used_at         INTEGER,
    grant_id        TEXT
) STRICT;

-- A grant is what one code exchange issued: the access tokens (which carry its id) and the
-- family of refresh tokens. Revoking it ends all of them.
CREATE TABLE grants (
    id          TEXT PRIMARY KEY,
    client_id   TEXT NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    user_id     TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    session_id  TEXT NOT NULL,
    scope       TEXT NOT NULL,
    auth_time   INTEGER NOT NULL,
    amr         TEXT NOT NULL,
    acr         TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    revoked_at  INTEGER
) STRICT;
CREATE INDEX grants_session_idx ON grants (session_id);

CREATE TABLE refresh_tokens (
    token_hash  TEXT PRIMARY KEY,
    grant_id    TEXT NOT NULL REFERENCES grants (id) ON DELETE CASCADE,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    used_at     INTEGER
) STRICT;
CREATE INDEX refresh_tokens_grant_idx ON refresh_tokens (grant_id);

-- Access tokens revoked one by one (RFC 7009), kept until they would have expired anyway.
CREATE TABLE revoked_tokens (
    jti         TEXT PRIMARY KEY,
    expires_at  INTEGER NOT NULL
) STRICT;

-- Failed-login counters, per account and per client address, shared by every instance.
CREATE TABLE throttles (
    key           TEXT PRIMARY KEY,
    failures      INTEGER NOT NULL,
    window_start  INTEGER NOT NULL,
    locked_until  INTEGER NOT NULL
) STRICT;

-- Scopes a user has granted to a third-party client.
CREATE TABLE consents (
    user_id     TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    client_id   TEXT NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    scope       TEXT NOT NULL,
    granted_at  INTEGER NOT NULL,
    PRIMARY KEY (user_id, client_id)
) STRICT;
