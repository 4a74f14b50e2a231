-- A local user is linked to at most one user of each identity provider, as each provider user is
-- linked to at most one local user (the primary key): linking an existing user (Clerk's
-- external_id, `tokensmith clerk link`) can then never give one local account to two people, even
-- when two requests link at once.
CREATE UNIQUE INDEX external_identities_one_per_user ON external_identities(provider, user_id);
-- The local user existed before the link (it was linked by Clerk's external_id or by hand): its
-- username, email and names stay the operator's, since its password login goes by them; the
-- provider's events still decide whether it may sign in and, with a roles mapping, its flags.
ALTER TABLE external_identities ADD COLUMN keeps_local_profile BOOLEAN NOT NULL DEFAULT FALSE;
