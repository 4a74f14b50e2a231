-- The admin API lists a user's live sessions: where each came from (the client address that
-- logged in; "password", "clerk" or another issuer's name, "django", "admin") and when it was
-- last used. Sessions from before this migration say neither (NULL).
ALTER TABLE refresh_families ADD COLUMN provider TEXT;
ALTER TABLE refresh_families ADD COLUMN client_addr TEXT;

-- Who did it, when an admin did: the acting staff user (the user columns name the target).
-- NULL for everything else (the CLI, a user acting on their own account, a provider's events).
ALTER TABLE audit_events ADD COLUMN actor_id INTEGER;
ALTER TABLE audit_events ADD COLUMN actor_username TEXT;
