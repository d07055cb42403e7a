-- Multi-factor authentication: company policies, reseller minimums and enforcement, the
-- users' factors and recovery codes, reset requests, and the outgoing email queue.

-- A company's own MFA settings. A company without a row has the default policy (off).
CREATE TABLE mfa_policies (
    company_id                TEXT PRIMARY KEY REFERENCES companies (id) ON DELETE CASCADE,
    mode                      TEXT NOT NULL,
    methods                   TEXT NOT NULL,
    allow_skip                INTEGER NOT NULL,
    -- How many times a user may skip enrolment (NULL: remembered, no limit) and until when.
    skip_limit                INTEGER,
    skip_deadline             INTEGER,
    allow_self_reset          INTEGER NOT NULL,
    keep_enrollments_when_off INTEGER NOT NULL,
    updated_at                INTEGER NOT NULL,
    CONSTRAINT mfa_policies_mode_check CHECK (mode IN ('off', 'optional', 'required'))
) STRICT;

-- Company admins notified of reset requests.
CREATE TABLE mfa_policy_approvers (
    company_id TEXT NOT NULL REFERENCES companies (id) ON DELETE CASCADE,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    PRIMARY KEY (company_id, user_id)
) STRICT;

-- The minimum a reseller sets for all its companies; they may only tighten it.
-- `methods` NULL means any method.
CREATE TABLE reseller_mfa_minimums (
    reseller_id TEXT PRIMARY KEY REFERENCES resellers (id) ON DELETE CASCADE,
    mode        TEXT NOT NULL,
    methods     TEXT,
    updated_at  INTEGER NOT NULL,
    CONSTRAINT reseller_mfa_minimums_mode_check CHECK (mode IN ('off', 'optional', 'required'))
) STRICT;

-- A reseller enforcing MFA on one of its companies: required, no skip, no opt-out, and
-- optionally a narrower list of methods.
CREATE TABLE mfa_enforcements (
    company_id  TEXT PRIMARY KEY REFERENCES companies (id) ON DELETE CASCADE,
    reseller_id TEXT NOT NULL REFERENCES resellers (id) ON DELETE CASCADE,
    methods     TEXT,
    created_at  INTEGER NOT NULL
) STRICT;

-- Per-user MFA state: the admin's opt-out (with a reason and an optional expiry) and the
-- remembered skip.
CREATE TABLE user_mfa (
    user_id            TEXT PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    opt_out            INTEGER NOT NULL,
    opt_out_reason     TEXT,
    opt_out_expires_at INTEGER,
    skipped_at         INTEGER,
    skip_count         INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL
) STRICT;

-- Enrolled (and pending) second factors. TOTP secrets are sealed with AES-256-GCM under the
-- master key, bound to the factor id. `last_step` is the last TOTP time step accepted, so a
-- code is never accepted twice. A factor is usable once `confirmed_at` is set.
CREATE TABLE mfa_factors (
    id           TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind         TEXT NOT NULL,
    secret       BLOB,
    destination  TEXT,
    last_step    INTEGER,
    created_at   INTEGER NOT NULL,
    confirmed_at INTEGER,
    CONSTRAINT mfa_factors_kind_check CHECK (kind IN ('totp', 'email', 'sms', 'webauthn'))
) STRICT;
CREATE INDEX mfa_factors_user_idx ON mfa_factors (user_id);

-- Single-use recovery codes, stored as keyed hashes (HMAC under a key derived from the
-- master key, so a database dump alone cannot be brute-forced offline).
CREATE TABLE recovery_codes (
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_hash  TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    used_at    INTEGER,
    PRIMARY KEY (user_id, code_hash)
) STRICT;

-- Requests to reset a user's MFA. At most one pending request per user.
CREATE TABLE mfa_reset_requests (
    id          TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    company_id  TEXT NOT NULL REFERENCES companies (id) ON DELETE CASCADE,
    status      TEXT NOT NULL,
    source      TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    decided_at  INTEGER,
    decided_by  TEXT,
    CONSTRAINT mfa_reset_requests_status_check CHECK (status IN ('pending', 'approved', 'declined'))
) STRICT;
CREATE UNIQUE INDEX mfa_reset_requests_pending_key ON mfa_reset_requests (user_id) WHERE status = 'pending';

-- Outgoing email, written in the same transaction as the change it reports and sent by a
-- background worker with retries, so a message is never lost and a slow or failing mail
-- server never blocks the user.
CREATE TABLE email_outbox (
    id              TEXT PRIMARY KEY,
    recipient       TEXT NOT NULL,
    kind            TEXT NOT NULL,
    subject         TEXT NOT NULL,
    body_text       TEXT NOT NULL,
    body_html       TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    attempts        INTEGER NOT NULL,
    next_attempt_at INTEGER NOT NULL,
    sent_at         INTEGER,
    failed_at       INTEGER,
    last_error      TEXT
) STRICT;
CREATE INDEX email_outbox_due_idx ON email_outbox (next_attempt_at) WHERE sent_at IS NULL AND failed_at IS NULL;

-- When a second factor was last verified in this session (step-up, sensitive actions).
ALTER TABLE sessions ADD COLUMN mfa_verified_at INTEGER;

-- What the code exchange needs to re-check the MFA decision: the client's acr_values and
-- whether the user skipped enrolment during this login.
ALTER TABLE authorization_codes ADD COLUMN acr_values TEXT NOT NULL DEFAULT '[]';
ALTER TABLE authorization_codes ADD COLUMN skipped INTEGER NOT NULL DEFAULT 0;

-- Whether the login behind a grant skipped enrolment, to re-check the policy at refresh.
ALTER TABLE grants ADD COLUMN skipped INTEGER NOT NULL DEFAULT 0;

-- The provider's own account pages sign users in through the same login flow, as this
-- built-in client. It has no redirect URI and no grant, so no relying party can use it.
INSERT INTO clients (id, name, secret_hash, public, first_party, redirect_uris, post_logout_redirect_uris,
                     grant_types, scopes, id_token_alg, reseller_id, company_id, created_at)
VALUES ('portcullis-account', 'Account settings', NULL, 1, 1, '[]', '[]', '[]', 'openid', 'RS256', NULL, NULL, 0);
