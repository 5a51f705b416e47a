-- 0004: the operator's audit trail. (0003 belongs to another change; the numbers only order the files.)
-- Times are Unix milliseconds.

-- One row per message an operator's action (`petrel queue hold|release|retry|delete|bounce`) acted on,
-- written by the CLI in the same transaction as the action. The server logs each row once, beside the
-- delivery lines, and deletes it: the log is the trail, this table only carries it across processes.
CREATE TABLE operator_audit (
    id            INTEGER PRIMARY KEY,
    queue_id      TEXT    NOT NULL,
    action        TEXT    NOT NULL CHECK (action IN ('hold', 'release', 'retry', 'delete', 'bounce')),
    operator      TEXT    NOT NULL,          -- who: the Unix user of the CLI
    reason        TEXT,                      -- the operator's words, when given
    whole_message INTEGER NOT NULL,          -- 1: every recipient was meant; 0: those a filter chose
    recipients    TEXT    NOT NULL DEFAULT '',  -- the recipients acted on, one address a line
    in_delivery   TEXT    NOT NULL DEFAULT '',  -- delete/bounce: recipients that were being delivered then
    handed_over   TEXT    NOT NULL DEFAULT '',  -- of those, the ones a later delete/bounce took over while waiting
    requested_at  INTEGER NOT NULL
);

-- A delete or bounce that waits for an attempt under way names its audit row: the row is logged once no
-- pending action points at it any more, with the recipients the action reached in the end.
ALTER TABLE pending_action ADD COLUMN audit_id INTEGER REFERENCES operator_audit(id) ON DELETE SET NULL;
CREATE INDEX pending_action_audit ON pending_action(audit_id) WHERE audit_id IS NOT NULL;
