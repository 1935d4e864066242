-- Tokens are checked against the users table on every request (issue 13).
--
-- token_version: every access token carries the version of its user at the time it was made
-- ("ver" claim); the API refuses a token whose version is not the user's current one. It goes
-- up on logout, a new password, a role change and disabling, so that those take effect at
-- once instead of when the 15-minute access token runs out.
ALTER TABLE api_users ADD COLUMN token_version integer NOT NULL DEFAULT 1;

-- Refresh-token families: a login starts a family; each rotation adds a token to it. A token
-- that is presented again after it was rotated (a stolen copy, or the owner's after a thief
-- used it first) revokes the whole family, the newest token included.
ALTER TABLE api_refresh_tokens ADD COLUMN family uuid;
ALTER TABLE api_refresh_tokens ADD COLUMN rotated_at timestamptz;
UPDATE api_refresh_tokens SET family = jti WHERE family IS NULL;
ALTER TABLE api_refresh_tokens ALTER COLUMN family SET NOT NULL;
CREATE INDEX api_refresh_tokens_family_idx ON api_refresh_tokens (family);

-- Successful logins from an address are looked up by (user name, address) to tell the user's
-- own addresses from an attacker's (see api.security.login_blocked).
CREATE INDEX api_login_attempts_user_ip_idx ON api_login_attempts (username, ip, ts);
