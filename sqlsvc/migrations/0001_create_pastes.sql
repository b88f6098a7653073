-- The metadata table: one row per paste. `seq` is an internal, strictly increasing
-- insertion number that orders listings (keyset pagination) and stays stable across
-- VACUUM, unlike an implicit rowid. Later migrations add columns (delete-token hash,
-- views) with ALTER TABLE.
CREATE TABLE pastes (
    paste_id   TEXT    PRIMARY KEY NOT NULL,
    paste_path TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NULL,
    size       INTEGER NULL,
    seq        INTEGER NOT NULL
);

-- Serves `ORDER BY seq DESC` with `WHERE seq < ?` for listings, and MAX(seq).
CREATE UNIQUE INDEX pastes_seq ON pastes (seq);

-- For a future sweeper that deletes expired rows (and their texts).
CREATE INDEX pastes_expires_at ON pastes (expires_at) WHERE expires_at IS NOT NULL;
