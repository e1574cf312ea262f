-- A version before batch rows would read a batch row as one entry: roll back only once no
-- batch row is left (prune deletes them with the entries they hold; see ADR 0026).
ALTER TABLE sync_changelog DROP COLUMN first_seq;
