-- The purge every ten minutes (`Store::purge_expired`) deletes by expiry: without these
-- indexes each of its statements read the whole table, holding SQLite's write lock meanwhile.
CREATE INDEX login_transactions_expires_idx ON login_transactions (expires_at);
CREATE INDEX authorization_codes_expires_idx ON authorization_codes (expires_at);
CREATE INDEX refresh_tokens_expires_idx ON refresh_tokens (expires_at);
CREATE INDEX grants_expires_idx ON grants (expires_at);
CREATE INDEX grants_revoked_idx ON grants (revoked_at) WHERE revoked_at IS NOT NULL;
CREATE INDEX sessions_expires_idx ON sessions (expires_at);
CREATE INDEX sessions_ended_idx ON sessions (ended_at) WHERE ended_at IS NOT NULL;
CREATE INDEX revoked_tokens_expires_idx ON revoked_tokens (expires_at);
CREATE INDEX throttles_window_idx ON throttles (window_start);
