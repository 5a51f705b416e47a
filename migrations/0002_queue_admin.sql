-- 0002: the operator's queue administration (`petrel queue list|stats|hold|release|retry|delete|bounce`).
-- Times are Unix milliseconds.

-- An action the operator asked for on a recipient that was being delivered at that moment (leased).
-- The attempt is not interrupted: when it ends, QueueStore.recordResults applies the action to the
-- recipient unless it was delivered or failed by that attempt. Releasing the lease without an attempt
-- (shutdown, a restart after a crash) applies it too.
CREATE TABLE pending_action (
    recipient_id          INTEGER PRIMARY KEY REFERENCES recipient(id) ON DELETE CASCADE,
    action                TEXT    NOT NULL CHECK (action IN ('delete', 'bounce')),
    reason                TEXT,              -- bounce: the operator's words, for the DSN
    reporting_mta         TEXT,              -- bounce: this relay's host name, as the DSN names it
    notification_lifetime INTEGER,           -- bounce: how long the DSN may stay queued, in milliseconds
    requested_at          INTEGER NOT NULL
);

-- `petrel queue stats`: recipients counted by state, deferred ones by domain and by message, from the
-- index alone; `--state` filters.
CREATE INDEX recipient_state ON recipient(state, domain, message_id);

-- Recipients being delivered right now (`stats`, `show`): the few leased rows, not a scan of the queue.
CREATE INDEX recipient_leased ON recipient(lease_expires_at) WHERE lease_owner IS NOT NULL;

-- `petrel queue list --state held`, oldest first, and the held count, without a scan of the queue.
CREATE INDEX message_held ON message(arrived_at) WHERE is_held = 1;
