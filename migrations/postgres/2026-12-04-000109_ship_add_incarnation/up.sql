-- The incarnation of this database (ADR 0012): a random id made when the region is bound to a
-- new database, and made anew when this database turns out to be an older copy of the region
-- (a restored backup). Peers scope what they believe about the region by it. '' = not yet
-- assigned (a database bound before this migration): the next start assigns one.
ALTER TABLE ship_instance ADD COLUMN incarnation VARCHAR(32) COLLATE "C" NOT NULL DEFAULT '';
-- The one it replaced when this database was found to be an older copy ('' otherwise), and when.
ALTER TABLE ship_instance ADD COLUMN previous_incarnation VARCHAR(32) COLLATE "C" NOT NULL DEFAULT '';
ALTER TABLE ship_instance ADD COLUMN incarnation_at TIMESTAMP NULL;
