-- Issue 3: the tamper-evident audit log.
--
-- Every record gets its log index (`seq`, from 0) in the transaction that writes it, from the
-- single-row counter `audit_head`: the counter's row lock (PostgreSQL) or the single writer
-- (SQLite) makes indexes gap-free and committed in index order, so the sequencer can read
-- `seq >= size` and never miss a record that commits late. A rolled-back transaction gives its
-- index back.
CREATE TABLE audit_head (
    one      INTEGER PRIMARY KEY CHECK (one = 1),
    next_seq INTEGER NOT NULL
);
INSERT INTO audit_head (one, next_seq) SELECT 1, COUNT(*) FROM audit_events;

DROP TRIGGER audit_events_no_update;
ALTER TABLE audit_events ADD COLUMN seq INTEGER;
UPDATE audit_events SET seq = (SELECT COUNT(*) FROM audit_events e WHERE e.id < audit_events.id);
CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END;
CREATE TRIGGER audit_events_seq_required BEFORE INSERT ON audit_events WHEN NEW.seq IS NULL
BEGIN SELECT RAISE(ABORT, 'audit_events.seq is required'); END;
CREATE UNIQUE INDEX audit_events_by_seq ON audit_events (seq);
DROP INDEX audit_events_by_tenant;
CREATE INDEX audit_events_by_tenant ON audit_events (tenant_id, seq);

-- The log's identity and the tree size and root of its latest checkpoint.
CREATE TABLE audit_log (
    one        INTEGER PRIMARY KEY CHECK (one = 1),
    origin     TEXT NOT NULL,
    vkey       TEXT NOT NULL,
    size       INTEGER NOT NULL,
    root       BLOB NOT NULL,
    updated_at INTEGER NOT NULL
);
-- C2SP tlog-tiles hash tiles (height 8). A partial tile is rewritten as it grows; a full tile
-- never changes.
CREATE TABLE audit_tiles (
    level  INTEGER NOT NULL,
    idx    INTEGER NOT NULL,
    width  INTEGER NOT NULL,
    hashes BLOB NOT NULL,
    PRIMARY KEY (level, idx)
);
-- Every signed checkpoint, by tree size.
CREATE TABLE audit_checkpoints (
    size   INTEGER PRIMARY KEY,
    root   BLOB NOT NULL,
    time   INTEGER NOT NULL,
    signed TEXT NOT NULL
);
CREATE TRIGGER audit_checkpoints_no_update BEFORE UPDATE ON audit_checkpoints
BEGIN SELECT RAISE(ABORT, 'audit_checkpoints is append-only'); END;
CREATE TRIGGER audit_checkpoints_no_delete BEFORE DELETE ON audit_checkpoints
BEGIN SELECT RAISE(ABORT, 'audit_checkpoints is append-only'); END;
