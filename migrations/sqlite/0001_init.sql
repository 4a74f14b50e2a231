-- Times are Unix seconds (INTEGER) so the same queries run on SQLite and PostgreSQL.

CREATE TABLE users (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    username      TEXT    NOT NULL UNIQUE,          -- case-sensitive, as Django's
    email         TEXT    NOT NULL DEFAULT '',
    first_name    TEXT    NOT NULL DEFAULT '',
    last_name     TEXT    NOT NULL DEFAULT '',
    password_hash TEXT,                             -- NULL: no password login (external identities)
    is_active     BOOLEAN NOT NULL DEFAULT TRUE,
    is_staff      BOOLEAN NOT NULL DEFAULT FALSE,
    is_superuser  BOOLEAN NOT NULL DEFAULT FALSE,
    created_at    INTEGER NOT NULL,
    last_login    INTEGER
);

-- One row per login: every refresh token rotated from it belongs to this family.
CREATE TABLE refresh_families (
    id                  TEXT    PRIMARY KEY,
    user_id             INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at          INTEGER NOT NULL,
    expires_at          INTEGER NOT NULL,           -- created_at + SESSION_MAX_LIFETIME
    revoked_at          INTEGER,
    external_session_id TEXT
);
CREATE INDEX refresh_families_user ON refresh_families(user_id);
CREATE INDEX refresh_families_external_session ON refresh_families(external_session_id);

-- One row per issued refresh token, by jti; the raw token is never stored.
CREATE TABLE refresh_tokens (
    jti         TEXT    PRIMARY KEY,
    family_id   TEXT    NOT NULL REFERENCES refresh_families(id) ON DELETE CASCADE,
    user_id     INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    parent_jti  TEXT,
    access_jti  TEXT,                               -- the access token issued with it
    issued_at   INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    used_at_ms  INTEGER,                            -- rotated away at, in ms: the reuse grace may be under a second
    revoked_at  INTEGER                             -- blacklisted at
);
CREATE INDEX refresh_tokens_family ON refresh_tokens(family_id);
CREATE INDEX refresh_tokens_access ON refresh_tokens(access_jti);
CREATE INDEX refresh_tokens_expires ON refresh_tokens(expires_at);

CREATE TABLE signing_keys (
    kid             TEXT    PRIMARY KEY,
    algorithm       TEXT    NOT NULL,
    private_key_pem TEXT    NOT NULL,
    created_at      INTEGER NOT NULL,
    retired_at      INTEGER
);
-- At most one signing key per algorithm: replicas racing to create the first one agree.
CREATE UNIQUE INDEX signing_keys_one_active ON signing_keys(algorithm) WHERE retired_at IS NULL;

CREATE TABLE audit_events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    occurred_at INTEGER NOT NULL,
    event       TEXT    NOT NULL,
    user_id     INTEGER,
    username    TEXT,
    client_addr TEXT,
    detail      TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX audit_events_time ON audit_events(occurred_at);
