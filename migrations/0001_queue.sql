-- 0001: the mail queue. Times are Unix milliseconds. A shipped migration is never edited:
-- a change to the schema is a new numbered file.

-- One row per accepted message: its envelope (RFC 5321 §3.3) with the DSN parameters of RFC 3461.
CREATE TABLE message (
    id              INTEGER PRIMARY KEY,
    queue_id        TEXT    NOT NULL UNIQUE,
    return_path     TEXT    NOT NULL,            -- '' is the null reverse path <>
    size            INTEGER NOT NULL,            -- octets stored: trace headers plus text
    arrived_at      INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL,
    client_address  TEXT    NOT NULL,
    client_helo     TEXT    NOT NULL,
    protocol        TEXT    NOT NULL,            -- SMTP, ESMTP, ESMTPS, ESMTPSA (RFC 3848)
    auth_user       TEXT,
    body_type       TEXT,                        -- 7BIT | 8BITMIME | NULL (RFC 6152)
    is_smtputf8     INTEGER NOT NULL DEFAULT 0,  -- RFC 6531
    dsn_ret         TEXT,                        -- FULL | HDRS | NULL (RFC 3461 §4.3)
    dsn_envid       TEXT,                        -- xtext (RFC 3461 §4.4)
    is_held         INTEGER NOT NULL DEFAULT 0,
    delay_warned_at INTEGER,
    spool_file      TEXT                         -- NULL: the text is inline in message_content
);
CREATE INDEX message_arrival ON message(arrived_at);

-- The bytes, apart from the envelope so that scans of the queue never page them in.
CREATE TABLE message_content (
    message_id    INTEGER PRIMARY KEY REFERENCES message(id) ON DELETE CASCADE,
    trace_headers BLOB NOT NULL,                 -- header fields Petrel prepends: Received:, Date:, Message-ID:
    body          BLOB                           -- the text as received; NULL when it is in a spool file
);

-- One row per recipient: each has its own state, attempts and last reply.
CREATE TABLE recipient (
    id               INTEGER PRIMARY KEY,
    message_id       INTEGER NOT NULL REFERENCES message(id) ON DELETE CASCADE,
    address          TEXT    NOT NULL,
    domain           TEXT    NOT NULL,           -- lowercased, for routing and per-domain views
    orcpt            TEXT,                       -- RFC 3461 §4.2, as sent
    notify           TEXT,                       -- NULL (not given), NEVER, or e.g. SUCCESS,FAILURE
    state            TEXT    NOT NULL DEFAULT 'queued'
                     CHECK (state IN ('queued', 'deferred', 'delivered', 'failed')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  INTEGER NOT NULL,
    last_attempt_at  INTEGER,
    last_reply       TEXT,
    last_relay       TEXT,
    lease_owner      TEXT,
    lease_expires_at INTEGER
);
CREATE INDEX recipient_message ON recipient(message_id);
-- Due work is found through this index: the cost of a pick does not grow with the queue.
CREATE INDEX recipient_due ON recipient(next_attempt_at) WHERE state IN ('queued', 'deferred');
CREATE INDEX recipient_domain ON recipient(domain, state);
