-- PostgreSQL twin of sqlite/0003_otp_codes.sql.
-- One-time codes sent by email or SMS, for enrolment and challenges.

-- A pending email or SMS factor whose code was confirmed waits for the user's "Finish"
-- before it becomes active (confirmed_at).
ALTER TABLE mfa_factors ADD COLUMN verified_at BIGINT;

-- The code outstanding for a factor: at most one, so sending a new code invalidates the
-- previous one. Stored as a keyed hash; valid until `expires_at`; `attempts` counts
-- guesses; `used_at` makes it single use.
CREATE TABLE otp_codes (
    factor_id  TEXT PRIMARY KEY REFERENCES mfa_factors (id) ON DELETE CASCADE,
    code_hash  TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    attempts   BIGINT NOT NULL,
    used_at    BIGINT
);
