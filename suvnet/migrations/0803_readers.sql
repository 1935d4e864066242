-- Read-only database roles for Grafana and other reporting tools (issue 20).
--
-- * suvnet_reader: a group role that may read every table except the secrets (password and
--   one-time-code hashes, refresh tokens, Payme keys, the branches' merchant secrets). The
--   whole region's Grafana logs in as a member of it (deploy/postgres: grafana_reader).
-- * suvnet_branch_reader: the same reading rights, for logins that see their own branches
--   only (a branch's Grafana organisation). Such a login is a member of this role, and its
--   branches are rows of branch_readers (`suvnet branches reader`, docs/branches.md). The
--   row-level security of 0801/0802 scopes it like a branch user of the API. Unlike the API's
--   role, its scope does not come from the setting suvnet.branches, which any session may
--   change, but from branch_readers, which it may not write: a Grafana editor who types SQL
--   sees no more than a viewer. A member with no rows there sees no branch's rows at all.
-- * The telemetry tables (readings and their rollups) carry no branch policy: their rows
--   are found through points, which are scoped, so every dashboard shows a branch reader its
--   own points only; SQL written by hand that names another branch's point id reads its
--   values (docs/branches.md, "Grafana per branch").

DO $$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['suvnet_reader', 'suvnet_branch_reader'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
            BEGIN
                EXECUTE format('CREATE ROLE %I NOLOGIN', r);
            EXCEPTION
                WHEN duplicate_object OR unique_violation THEN NULL;  -- made meanwhile
                WHEN insufficient_privilege THEN
                    RAISE EXCEPTION 'the role % does not exist and % may not create it', r, current_user
                        USING HINT = 'as a superuser run: CREATE ROLE ' || r
                                     || ' NOLOGIN; then suvnet db migrate again (docs/branches.md)';
            END;
        END IF;
    END LOOP;
END
$$;

GRANT USAGE ON SCHEMA public TO suvnet_reader, suvnet_branch_reader;
GRANT SELECT ON ALL TABLES IN SCHEMA public TO suvnet_reader, suvnet_branch_reader;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO suvnet_reader, suvnet_branch_reader;

-- the secrets: whole tables, or the columns that hold them
REVOKE SELECT ON api_refresh_tokens, payme_keys FROM suvnet_reader, suvnet_branch_reader;
REVOKE SELECT ON api_users, customer_codes, branch_payment_contracts
    FROM suvnet_reader, suvnet_branch_reader;
GRANT SELECT (id, username, full_name, role, account_no, active, created_at, branch_id, regional)
    ON api_users TO suvnet_reader, suvnet_branch_reader;
GRANT SELECT (id, account_no, issued_at, expires_at, used_at, issued_by)
    ON customer_codes TO suvnet_reader, suvnet_branch_reader;
GRANT SELECT (branch_id, provider, merchant_id, service_id, updated_at)
    ON branch_payment_contracts TO suvnet_reader, suvnet_branch_reader;

-- an older installation's Grafana login read every table, secrets too: it becomes a reader
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'grafana_reader') THEN
        REVOKE SELECT ON api_refresh_tokens, payme_keys, api_users, customer_codes,
            branch_payment_contracts FROM grafana_reader;
        GRANT suvnet_reader TO grafana_reader;
    END IF;
END
$$;

-- ------------------------------------------------------------------ branch readers
CREATE TABLE branch_readers (
    role_name  name NOT NULL,
    branch_id  bigint NOT NULL REFERENCES branches(id) ON DELETE CASCADE,
    PRIMARY KEY (role_name, branch_id)
);
COMMENT ON TABLE branch_readers IS
  'The branches a read-only login (member of suvnet_branch_reader) sees: suvnet branches reader; docs/branches.md';
GRANT SELECT ON branch_readers TO PUBLIC;

-- Whether the session is a branch reader: its login, or the role it has switched to, is
-- suvnet_branch_reader or a direct member of it (a superuser is not one). The web server's
-- role suvnet_app never is (a reader cannot become it), and is answered without a catalog
-- lookup: the policies ask once per query, and the API's queries are the busy ones.
CREATE FUNCTION suvnet_is_branch_reader() RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT current_user <> 'suvnet_app' AND (
        current_user = 'suvnet_branch_reader' OR session_user = 'suvnet_branch_reader'
        OR EXISTS (SELECT 1 FROM pg_auth_members m
                   WHERE m.roleid = 'suvnet_branch_reader'::regrole
                     AND m.member IN (current_user::regrole, session_user::regrole)))
$$;

CREATE OR REPLACE FUNCTION suvnet_scope_all() RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT CASE coalesce(current_setting('suvnet.branches', true), '')
               WHEN '*' THEN current_user = 'suvnet_app' OR NOT suvnet_is_branch_reader()
               WHEN '' THEN current_user <> 'suvnet_app' AND NOT suvnet_is_branch_reader()
               ELSE false
           END
$$;

CREATE OR REPLACE FUNCTION suvnet_scope_branches() RETURNS bigint[]
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN current_user <> 'suvnet_app' AND suvnet_is_branch_reader()
                THEN coalesce((SELECT array_agg(branch_id ORDER BY branch_id) FROM branch_readers
                               WHERE role_name = session_user), '{}'::bigint[])
                WHEN coalesce(current_setting('suvnet.branches', true), '') ~ '^[0-9]{1,18}(,[0-9]{1,18})*$'
                THEN string_to_array(current_setting('suvnet.branches', true), ',')::bigint[]
                ELSE '{}'::bigint[]
           END
$$;

COMMENT ON FUNCTION suvnet_is_branch_reader() IS
  'true for a read-only login of some branches (member of suvnet_branch_reader): its scope is branch_readers, not suvnet.branches; docs/branches.md';
