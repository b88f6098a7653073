-- The deletion log: one row per deleted paste, numbered in commit order, so that each
-- webserver can drop cached copies by polling `GET /deletions?since=N` (one request
-- per webserver, not per paste). AUTOINCREMENT: a number is never handed out twice,
-- even after the oldest rows are pruned.
CREATE TABLE deletions (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    paste_id   TEXT    NOT NULL,
    deleted_at INTEGER NOT NULL
);

-- A random number drawn once per database: a webserver that sees it change knows the
-- log it followed is gone (another database file) and forgets everything it cached.
CREATE TABLE log_epoch (epoch INTEGER NOT NULL);
INSERT INTO log_epoch (epoch) VALUES (abs(random() % 9007199254740991));
