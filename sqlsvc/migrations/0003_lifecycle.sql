-- A paste's lifecycle (issue 9): delete tokens, burn after reading, unlisted pastes,
-- view counts, and the texts waiting to be deleted from nosqlsvc.

-- SHA-256 of the delete token handed out at create (NULL for rows created before
-- this migration: only an operator's delete removes those).
ALTER TABLE pastes ADD COLUMN delete_hash BLOB NULL;
-- 1: the first read that returns the text removes the row (an atomic claim).
ALTER TABLE pastes ADD COLUMN burn INTEGER NOT NULL DEFAULT 0;
-- 1: readable by id, never listed.
ALTER TABLE pastes ADD COLUMN unlisted INTEGER NOT NULL DEFAULT 0;

-- Listings walk only what they may show (unlisted and burn rows are skipped by the
-- index, not by a scan), so millions of unlisted load-test pastes cost them nothing.
CREATE INDEX pastes_listed ON pastes (seq) WHERE unlisted = 0 AND burn = 0;

-- The orphan sweep asks "does a row point at this text?".
CREATE INDEX pastes_path ON pastes (paste_path);

-- Views per paste and month (YYYY-MM, UTC), fed by the webservers' batched flushes.
-- A paste's rows go with it.
CREATE TABLE views (
    paste_id TEXT    NOT NULL,
    month    TEXT    NOT NULL,
    views    INTEGER NOT NULL,
    PRIMARY KEY (paste_id, month)
) WITHOUT ROWID;

-- Texts whose rows are gone (deleted, burnt, expired), to be deleted from nosqlsvc by
-- the sweeper. Written in the transaction that removes the row, removed once nosqlsvc
-- confirmed: a crash at any point leaves either the row or this entry, never a text
-- forever orphaned.
CREATE TABLE text_trash (
    paste_path TEXT    PRIMARY KEY NOT NULL,
    since      INTEGER NOT NULL
) WITHOUT ROWID;
