ALTER TABLE ship_instance DROP COLUMN incarnation_at;
ALTER TABLE ship_instance DROP COLUMN previous_incarnation;
ALTER TABLE ship_instance DROP COLUMN incarnation;
