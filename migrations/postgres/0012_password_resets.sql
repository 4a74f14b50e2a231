-- Password reset by email. A token is stored only as its SHA-256 (hex): the database alone
-- cannot reset a password. password_fingerprint is the SHA-256 of the user's password hash when
-- the token was made: a password changed since (by any means) kills the token.
CREATE TABLE password_resets (
    id                   BIGSERIAL PRIMARY KEY,
    token_hash           TEXT    NOT NULL UNIQUE,
    user_id              BIGINT  NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    password_fingerprint TEXT    NOT NULL,
    created_at           BIGINT  NOT NULL,
    expires_at           BIGINT  NOT NULL,
    used_at              BIGINT
);
CREATE INDEX password_resets_expiry ON password_resets(expires_at);

-- Reset requests, known addresses or not, counted per client address and per email (lower
-- case) for throttling. In the database, so the limits hold across replicas.
CREATE TABLE password_reset_requests (
    id           BIGSERIAL PRIMARY KEY,
    client_addr  TEXT    NOT NULL,
    email        TEXT    NOT NULL,
    requested_at BIGINT  NOT NULL
);
CREATE INDEX password_reset_requests_addr ON password_reset_requests(client_addr, requested_at);
CREATE INDEX password_reset_requests_email ON password_reset_requests(email, requested_at);
