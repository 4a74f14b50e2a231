-- One row per session, whatever its number of refreshes: a session's row holds its current
-- refresh token and the one that token replaced (and when), and a rotation updates the row in
-- place. Refresh tokens name their session in a `sid` claim from now on; `refresh_tokens` keeps
-- the records of those that do not (minted before this migration, or imported from simplejwt),
-- which still find their session through it. Live sessions carry over: each takes its live
-- token as current and its latest rotated one as previous.
ALTER TABLE refresh_families ADD COLUMN current_jti TEXT;
ALTER TABLE refresh_families ADD COLUMN previous_jti TEXT;
ALTER TABLE refresh_families ADD COLUMN rotated_at_ms BIGINT;        -- when previous_jti was rotated away
ALTER TABLE refresh_families ADD COLUMN refresh_expires_at BIGINT;   -- when current_jti expires

UPDATE refresh_families SET
    current_jti = (SELECT t.jti FROM refresh_tokens t WHERE t.family_id = refresh_families.id
                   AND t.used_at_ms IS NULL AND t.revoked_at IS NULL ORDER BY t.issued_at DESC LIMIT 1),
    previous_jti = (SELECT t.jti FROM refresh_tokens t WHERE t.family_id = refresh_families.id
                    AND t.used_at_ms IS NOT NULL ORDER BY t.used_at_ms DESC LIMIT 1),
    rotated_at_ms = (SELECT MAX(t.used_at_ms) FROM refresh_tokens t WHERE t.family_id = refresh_families.id),
    refresh_expires_at = (SELECT MAX(t.expires_at) FROM refresh_tokens t WHERE t.family_id = refresh_families.id)
WHERE NOT sliding;

-- Room in each page for a row's next version: no indexed column changes in a rotation, so the
-- update stays on its page (HOT) and the table does not grow between vacuums.
ALTER TABLE refresh_families SET (fillfactor = 70);
