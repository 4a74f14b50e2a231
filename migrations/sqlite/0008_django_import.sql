-- Each Django user as `tokensmith import django` last read it (JSON). The next import applies
-- only what changed in Django since, so it never undoes a change made here (a password set or
-- upgraded at login, a deactivation). No foreign key: the row outlives a user deleted here, so
-- that importing again does not bring them back.
CREATE TABLE django_imported_users (
    user_id     INTEGER PRIMARY KEY,
    record      TEXT    NOT NULL,
    imported_at INTEGER NOT NULL
);
