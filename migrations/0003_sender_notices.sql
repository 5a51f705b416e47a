-- 0003: one delivery status notification per message for the results found together (RFC 3464 §2),
-- and a recipient's last result typed: a server's reply, or a local error where no server answered.
-- Times are Unix milliseconds.

-- A local error (connection refused, timeout, DNS, TLS, our own conversion) that ended the last attempt.
-- Exactly one of last_reply (the server's reply, from last_relay) and last_error is set by an attempt.
ALTER TABLE recipient ADD COLUMN last_error TEXT;

-- A recipient's result that the sender must be told of (failed, delayed, relayed), written in the same
-- transaction as the result. The message's notification is made from all of its rows, in one transaction
-- that deletes them, when no other recipient of the message is still being delivered (or its last open
-- recipient settles, or the row has waited `noted_at` + a short bound): a crash loses no notice and
-- sends none twice.
CREATE TABLE pending_notice (
    recipient_id          INTEGER PRIMARY KEY REFERENCES recipient(id) ON DELETE CASCADE,
    message_id            INTEGER NOT NULL REFERENCES message(id) ON DELETE CASCADE,
    action                TEXT    NOT NULL CHECK (action IN ('failed', 'delayed', 'relayed')),
    status                TEXT    NOT NULL,  -- RFC 3464 §2.3.4, its class agrees with the action
    remote_mta            TEXT,              -- RFC 3464 §2.3.5: only a server that answered
    diagnostic_code       TEXT,              -- RFC 3464 §2.3.6 with its type: 'smtp; 550 …' or 'X-Petrel; …'
    last_attempt_at       INTEGER NOT NULL,
    will_retry_until      INTEGER,           -- delayed: when the relay gives up
    reporting_mta         TEXT    NOT NULL,  -- this relay's host name, as the DSN names it
    notification_lifetime INTEGER NOT NULL,  -- how long the DSN may stay queued, in milliseconds
    noted_at              INTEGER NOT NULL
);
CREATE INDEX pending_notice_message ON pending_notice(message_id);
CREATE INDEX pending_notice_age ON pending_notice(noted_at);
