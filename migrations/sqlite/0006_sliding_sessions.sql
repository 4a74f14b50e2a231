-- A sliding token (simplejwt's SlidingToken) is a session of its own with no refresh tokens: its
-- row's id is the token's jti and expires_at its refresh_exp. Marked, so that flushing expired
-- records does not take a live one for a session left empty.
ALTER TABLE refresh_families ADD COLUMN sliding BOOLEAN NOT NULL DEFAULT FALSE;
