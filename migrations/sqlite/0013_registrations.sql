-- Registrations (POST /api/register/) per client address, for REGISTRATION_LIMIT an hour. A
-- row is reserved before the password is hashed and deleted when the registration is refused.
-- In the database, so the limit holds across replicas. (0012 is password reset's.)
CREATE TABLE registrations (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    client_addr   TEXT    NOT NULL,
    registered_at INTEGER NOT NULL
);
CREATE INDEX registrations_addr ON registrations(client_addr, registered_at);
