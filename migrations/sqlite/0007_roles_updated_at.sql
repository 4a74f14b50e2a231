-- When the roles last applied to a linked user were the provider's (ms on its clock): a user
-- object's updated_at (webhook, sync, Backend API) or a session token's iat. Roles older than
-- these never overwrite them, so a stale session token cannot bring back a role a webhook took
-- away. Kept apart from source_updated_at: a token carries roles, not the profile, so applying
-- one must not make a delayed webhook's email or names look stale.
ALTER TABLE external_identities ADD COLUMN roles_updated_at INTEGER NOT NULL DEFAULT 0;
UPDATE external_identities SET roles_updated_at = source_updated_at;
