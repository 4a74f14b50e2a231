-- Failed logins, counted per (username, client address) and per client address within
-- LOGIN_FAILURE_WINDOW. In the database, so the limits hold across replicas.
CREATE TABLE login_failures (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    username    TEXT    NOT NULL,
    client_addr TEXT    NOT NULL,
    failed_at   INTEGER NOT NULL
);
CREATE INDEX login_failures_user ON login_failures(username, client_addr, failed_at);
CREATE INDEX login_failures_addr ON login_failures(client_addr, failed_at);
