-- A pull cursor belongs to the incarnation of this database it was saved in (ADR 0012): once
-- this database is found to be an older copy of the region (a new incarnation), the cursors
-- saved before are void and every pull peer is bootstrapped again — its snapshot holds this
-- region's own writes that the copy lacks. '' = saved before this migration (valid).
ALTER TABLE sync_peer_cursors ADD COLUMN local_incarnation VARCHAR(32) COLLATE "C" NOT NULL DEFAULT '';

-- The incarnation each peer region last showed (in its feed cursors and the
-- Regionsync-Incarnation header): a change means its database was replaced or restored.
CREATE TABLE sync_peer_incarnations (
    peer VARCHAR(32) COLLATE "C" NOT NULL PRIMARY KEY,
    incarnation VARCHAR(32) COLLATE "C" NOT NULL,
    previous VARCHAR(32) COLLATE "C" NOT NULL DEFAULT '',
    first_seen_at TIMESTAMP NOT NULL,
    changed_at TIMESTAMP NULL
);
