CREATE INDEX sync_changelog_hlc ON sync_changelog (hlc);
ALTER TABLE sync_sequences DROP COLUMN max_hlc;
