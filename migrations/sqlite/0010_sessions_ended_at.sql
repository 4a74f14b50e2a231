-- When every session of the user was last ended here (a password set or changed, a deactivation,
-- revoke-all): a simplejwt token issued before it, carried over by a later `tokensmith import
-- django`, comes over ended, as it would have ended had it been here.
ALTER TABLE users ADD COLUMN sessions_ended_at INTEGER;
