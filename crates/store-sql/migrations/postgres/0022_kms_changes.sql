-- Issue 5, key service speed: every replica polls the keys changed since its last look (by
-- `updated_at`, which every change of a key sets) so its in-memory key cache can hold keys
-- until they change instead of re-reading each one every second.
CREATE INDEX kms_keys_updated ON kms_keys (updated_at);
