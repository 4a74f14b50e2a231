-- Users of external identity providers (Clerk first), linked to local users by (provider, subject).

CREATE TABLE external_identities (
    provider          TEXT    NOT NULL,             -- "clerk", or a configured issuer's name
    subject           TEXT    NOT NULL,             -- the provider's user id (Clerk: user_…)
    user_id           INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at        INTEGER NOT NULL,
    source_updated_at INTEGER NOT NULL DEFAULT 0,   -- the provider's updated_at (ms): older events are ignored
    PRIMARY KEY (provider, subject)
);
CREATE INDEX external_identities_user ON external_identities(user_id);

-- The active organization at exchange time, carried into every access token of the session.
ALTER TABLE refresh_families ADD COLUMN org_id TEXT;
ALTER TABLE refresh_families ADD COLUMN org_role TEXT;
ALTER TABLE refresh_families ADD COLUMN org_slug TEXT;

-- Webhook deliveries already applied (Svix delivers at least once): a redelivery is a no-op.
CREATE TABLE webhook_deliveries (
    id          TEXT    PRIMARY KEY,                -- provider:svix-id
    received_at INTEGER NOT NULL
);
CREATE INDEX webhook_deliveries_received ON webhook_deliveries(received_at);
