-- The operator's decision and the identity provider's, kept apart: a user is active only when
-- neither refuses it (is_active = NOT disabled_locally AND provider_allows), so a provider
-- event can deactivate a user but never undo `tokensmith user deactivate`.
ALTER TABLE users ADD COLUMN disabled_locally BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE users ADD COLUMN provider_allows BOOLEAN NOT NULL DEFAULT TRUE;
-- Who deactivated a user before this migration is not recorded: count it as the operator, so
-- no provider event revives it (`tokensmith user activate` does).
UPDATE users SET disabled_locally = TRUE WHERE NOT is_active;
-- Users their provider deleted were deactivated for good (source_updated_at at its maximum):
-- the provider refuses them, so an operator's activation does not revive them either.
UPDATE users SET provider_allows = FALSE
 WHERE id IN (SELECT user_id FROM external_identities WHERE source_updated_at = 9223372036854775807);
-- Usernames are compared ignoring case when a provider's user is created or renamed.
CREATE INDEX users_username_lower ON users (lower(username));
