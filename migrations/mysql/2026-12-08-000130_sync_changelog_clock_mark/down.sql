ALTER TABLE sync_changelog ADD INDEX sync_changelog_hlc (hlc);
ALTER TABLE sync_sequences DROP COLUMN max_hlc;
