-- Issue 3: the tamper-evident audit log. See the SQLite migration of the same number for the
-- reasoning; the counter row's lock, held to commit, orders commits by index.
CREATE TABLE audit_head (
    one      INTEGER PRIMARY KEY CHECK (one = 1),
    next_seq BIGINT NOT NULL
);
INSERT INTO audit_head (one, next_seq) SELECT 1, COUNT(*) FROM audit_events;

ALTER TABLE audit_events DISABLE TRIGGER audit_events_no_change;
ALTER TABLE audit_events ADD COLUMN seq BIGINT;
UPDATE audit_events SET seq = n.seq FROM
    (SELECT id, row_number() OVER (ORDER BY id) - 1 AS seq FROM audit_events) n
    WHERE audit_events.id = n.id;
ALTER TABLE audit_events ALTER COLUMN seq SET NOT NULL;
ALTER TABLE audit_events ENABLE TRIGGER audit_events_no_change;
CREATE UNIQUE INDEX audit_events_by_seq ON audit_events (seq);
DROP INDEX audit_events_by_tenant;
CREATE INDEX audit_events_by_tenant ON audit_events (tenant_id, seq);

CREATE TABLE audit_log (
    one        INTEGER PRIMARY KEY CHECK (one = 1),
    origin     TEXT NOT NULL,
    vkey       TEXT NOT NULL,
    size       BIGINT NOT NULL,
    root       BYTEA NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE TABLE audit_tiles (
    level  INTEGER NOT NULL,
    idx    BIGINT NOT NULL,
    width  INTEGER NOT NULL,
    hashes BYTEA NOT NULL,
    PRIMARY KEY (level, idx)
);
CREATE TABLE audit_checkpoints (
    size   BIGINT PRIMARY KEY,
    root   BYTEA NOT NULL,
    time   BIGINT NOT NULL,
    signed TEXT NOT NULL
);
CREATE FUNCTION audit_checkpoints_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'audit_checkpoints is append-only'; END $$;
CREATE TRIGGER audit_checkpoints_no_change BEFORE UPDATE OR DELETE ON audit_checkpoints
FOR EACH ROW EXECUTE FUNCTION audit_checkpoints_append_only();
