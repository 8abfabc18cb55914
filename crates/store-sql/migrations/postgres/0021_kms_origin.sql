-- Issue 5, bring-your-own-key (X.1642 8.2(3)): where a key's material came from. 'parapet' for
-- material generated here, 'external' for material a tenant imported wrapped by a wrapping key.
ALTER TABLE kms_keys ADD COLUMN origin TEXT NOT NULL DEFAULT 'parapet';
