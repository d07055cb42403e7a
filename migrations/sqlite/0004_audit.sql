-- The audit log: every security event. Append-only: the triggers refuse changes.
CREATE TABLE audit_events (
    id          TEXT PRIMARY KEY,
    at          INTEGER NOT NULL,
    type        TEXT NOT NULL,
    outcome     TEXT NOT NULL,
    actor       TEXT,
    actor_kind  TEXT NOT NULL,
    subject     TEXT,
    company_id  TEXT,
    reseller_id TEXT,
    client_ip   TEXT,
    detail      TEXT NOT NULL,
    CONSTRAINT audit_events_outcome_check CHECK (outcome IN ('success', 'failure'))
) STRICT;
CREATE INDEX audit_events_company ON audit_events (company_id, id);
CREATE INDEX audit_events_reseller ON audit_events (reseller_id, id);
CREATE INDEX audit_events_subject ON audit_events (subject, id);

CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit events are append-only');
END;
CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit events are append-only');
END;
