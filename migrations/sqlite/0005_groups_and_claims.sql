-- Groups (Django's auth.Group) and per-user custom claims, which access tokens carry
-- (TOKEN_CLAIMS=groups; `tokensmith user set-claims`).
CREATE TABLE groups (
    id   INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT    NOT NULL UNIQUE                    -- as Django's: case-sensitive, at most 150 characters
);

CREATE TABLE user_groups (
    user_id  INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    group_id INTEGER NOT NULL REFERENCES groups(id) ON DELETE CASCADE,
    PRIMARY KEY (user_id, group_id)
);
CREATE INDEX user_groups_group ON user_groups(group_id);

-- A JSON object merged into the user's access tokens.
ALTER TABLE users ADD COLUMN custom_claims TEXT NOT NULL DEFAULT '{}';

-- USERNAME_FIELD=email logs in by email, ignoring case.
CREATE INDEX users_email_lower ON users (lower(email));
