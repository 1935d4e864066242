-- Branches (issue 20): one installation for a region's district branches.
--
-- * branches: a district branch under the regional office, with the requisites printed on
--   its documents (name, STIR, bank, account, MFO, address, phone) and the code that prefixes
--   its document numbers.
-- * A branch owns districts wholly (branch_districts) or single MFYs of a split district
--   (branch_mahallas), zones and gateways (their branch_id). A district is either wholly one
--   branch's or split by MFYs, never both, and never two branches' (refused, see below).
-- * Everything else takes its branch from those: mahallas, streets, houses and accounts from
--   the address (MFY, else its district), devices from their gateway (else their zone),
--   points from their device, meters from the account they are connected to (else their
--   zone). These branch_id columns are kept by the triggers below and are only read by the
--   row-level security policies of 0801 and by the reports; nothing writes them by hand.
-- * api_users: a staff user belongs to one branch (branch_id) or to the region (regional).
--   A user with neither cannot log in (api.users).
-- * The database role suvnet_app: the API runs every request as this role (SET ROLE), so
--   that the policies of 0801 apply even when the API logs in as the tables' owner or as a
--   superuser. It owns nothing; it may read and write every table.
-- * The scope of a session is the setting suvnet.branches: '*' every branch, '3,7' those
--   branches, '' (or unset) none for suvnet_app and every branch for any other role (the
--   services: ingest, alarm workers, billing runs, the command line). docs/branches.md.

-- ------------------------------------------------------------------ the API's role
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'suvnet_app') THEN
        BEGIN
            CREATE ROLE suvnet_app NOLOGIN;
        EXCEPTION WHEN insufficient_privilege THEN
            RAISE EXCEPTION 'the role suvnet_app does not exist and % may not create it', current_user
                USING HINT = 'as a superuser run: CREATE ROLE suvnet_app NOLOGIN; GRANT suvnet_app TO '
                             || current_user || '; then suvnet db migrate again (docs/branches.md)';
        END;
    END IF;
    -- the migrating role (usually also the API's login) may become suvnet_app
    IF NOT pg_has_role(current_user, 'suvnet_app', 'MEMBER') THEN
        EXECUTE format('GRANT suvnet_app TO %I', current_user);
    END IF;
END
$$;

GRANT USAGE ON SCHEMA public TO suvnet_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO suvnet_app;
GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO suvnet_app;
-- tables and sequences that later migrations create (as the same migrating role)
ALTER DEFAULT PRIVILEGES IN SCHEMA public
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO suvnet_app;
ALTER DEFAULT PRIVILEGES IN SCHEMA public
    GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO suvnet_app;

-- ------------------------------------------------------------------ the session's scope
-- Whether the session sees every branch: suvnet.branches = '*', or unset/'' for any role but
-- suvnet_app (the owner and the services). The policies call it as (SELECT ...), an InitPlan
-- worked out once per query, not once per row.
CREATE FUNCTION suvnet_scope_all() RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT CASE coalesce(current_setting('suvnet.branches', true), '')
               WHEN '*' THEN true
               WHEN '' THEN current_user <> 'suvnet_app'
               ELSE false
           END
$$;

-- The branches the session sees one by one ('3,7' -> {3,7}); empty for '*', '' and junk.
CREATE FUNCTION suvnet_scope_branches() RETURNS bigint[]
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN coalesce(current_setting('suvnet.branches', true), '') ~ '^[0-9]{1,18}(,[0-9]{1,18})*$'
                THEN string_to_array(current_setting('suvnet.branches', true), ',')::bigint[]
                ELSE '{}'::bigint[]
           END
$$;

-- The branch a row made in this session belongs to when nothing else says: the session's
-- branch when it sees exactly one, else NULL (regional: the row is nobody's until assigned).
CREATE FUNCTION suvnet_session_branch() RETURNS bigint
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN coalesce(current_setting('suvnet.branches', true), '') ~ '^[0-9]{1,18}$'
                THEN current_setting('suvnet.branches', true)::bigint
           END
$$;

COMMENT ON FUNCTION suvnet_scope_all() IS
  'true when the session sees every branch (suvnet.branches = ''*'', or unset for roles other than suvnet_app); docs/branches.md';
COMMENT ON FUNCTION suvnet_scope_branches() IS
  'the branch ids the session sees (suvnet.branches = ''3,7''); docs/branches.md';

-- ------------------------------------------------------------------ branches
CREATE TABLE branches (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- prefix of the branch's document numbers (URG-2026-0000001, K-URG-2026-0000001)
    code          text NOT NULL UNIQUE CHECK (code ~ '^[A-Z][A-Z0-9]{1,7}$'),
    name          text NOT NULL CHECK (length(btrim(name)) BETWEEN 1 AND 200),
    region_id     bigint REFERENCES regions(id),
    -- requisites on the branch's documents; '' = not set (a document then names what is missing)
    legal_name    text NOT NULL DEFAULT '' CHECK (length(legal_name) <= 300),
    inn           text NOT NULL DEFAULT '' CHECK (inn = '' OR inn ~ '^[0-9]{9}$'),          -- STIR
    bank          text NOT NULL DEFAULT '' CHECK (length(bank) <= 200),
    bank_account  text NOT NULL DEFAULT '' CHECK (bank_account = '' OR bank_account ~ '^[0-9]{20}$'),
    mfo           text NOT NULL DEFAULT '' CHECK (mfo = '' OR mfo ~ '^[0-9]{5}$'),
    address       text NOT NULL DEFAULT '' CHECK (length(address) <= 300),
    phone         text NOT NULL DEFAULT '' CHECK (length(phone) <= 40),
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX branches_bank_account_idx ON branches (bank_account) WHERE bank_account <> '';
COMMENT ON TABLE branches IS
  'District branches of the regional office: requisites and the prefix of their document numbers (docs/branches.md)';

-- A branch's own payment contracts: Payme cash desk or Click service with its own key. A
-- callback is routed by its merchant (Payme: the cash-desk key it authenticates with; Click:
-- service_id) and is accepted only for accounts of that branch.
CREATE TABLE branch_payment_contracts (
    branch_id    bigint NOT NULL REFERENCES branches(id) ON DELETE CASCADE,
    provider     text NOT NULL CHECK (provider IN ('payme', 'click')),
    merchant_id  text NOT NULL CHECK (length(merchant_id) BETWEEN 1 AND 100),
    service_id   text CHECK (length(service_id) BETWEEN 1 AND 100),   -- Click only
    secret       text NOT NULL CHECK (length(secret) BETWEEN 1 AND 200), -- Payme key / Click SECRET_KEY
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (branch_id, provider),
    UNIQUE (provider, merchant_id),
    UNIQUE (provider, service_id),
    CHECK ((provider = 'click') = (service_id IS NOT NULL))
);

-- ------------------------------------------------------------------ what a branch owns
CREATE TABLE branch_districts (
    district_id  bigint PRIMARY KEY REFERENCES districts(id),
    branch_id    bigint NOT NULL REFERENCES branches(id) ON DELETE CASCADE
);
CREATE INDEX branch_districts_branch_idx ON branch_districts (branch_id);

CREATE TABLE branch_mahallas (
    mahalla_id   bigint PRIMARY KEY REFERENCES mahallas(id),
    branch_id    bigint NOT NULL REFERENCES branches(id) ON DELETE CASCADE
);
CREATE INDEX branch_mahallas_branch_idx ON branch_mahallas (branch_id);

-- Overlaps are refused with a message that names both branches (SQLSTATE 23P01).
CREATE FUNCTION branch_districts_check() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    other text;
BEGIN
    SELECT b.code INTO other FROM branch_districts bd JOIN branches b ON b.id = bd.branch_id
    WHERE bd.district_id = NEW.district_id AND bd.branch_id <> NEW.branch_id;
    IF FOUND THEN
        RAISE EXCEPTION 'the district % already belongs to branch %',
            (SELECT name_uz FROM districts WHERE id = NEW.district_id), other
            USING ERRCODE = 'exclusion_violation';
    END IF;
    SELECT b.code INTO other FROM branch_mahallas bm JOIN branches b ON b.id = bm.branch_id
    JOIN mahallas m ON m.id = bm.mahalla_id
    WHERE m.district_id = NEW.district_id AND bm.branch_id <> NEW.branch_id LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'the district % is split by MFYs and has MFYs of branch %',
            (SELECT name_uz FROM districts WHERE id = NEW.district_id), other
            USING ERRCODE = 'exclusion_violation';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER branch_districts_check BEFORE INSERT OR UPDATE ON branch_districts
    FOR EACH ROW EXECUTE FUNCTION branch_districts_check();

CREATE FUNCTION branch_mahallas_check() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    other text;
BEGIN
    SELECT b.code INTO other FROM branch_mahallas bm JOIN branches b ON b.id = bm.branch_id
    WHERE bm.mahalla_id = NEW.mahalla_id AND bm.branch_id <> NEW.branch_id;
    IF FOUND THEN
        RAISE EXCEPTION 'the MFY % already belongs to branch %',
            (SELECT name_uz FROM mahallas WHERE id = NEW.mahalla_id), other
            USING ERRCODE = 'exclusion_violation';
    END IF;
    SELECT b.code INTO other FROM mahallas m JOIN branch_districts bd ON bd.district_id = m.district_id
    JOIN branches b ON b.id = bd.branch_id
    WHERE m.id = NEW.mahalla_id AND bd.branch_id <> NEW.branch_id;
    IF FOUND THEN
        RAISE EXCEPTION 'the MFY % lies in a district that belongs wholly to branch %',
            (SELECT name_uz FROM mahallas WHERE id = NEW.mahalla_id), other
            USING ERRCODE = 'exclusion_violation';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER branch_mahallas_check BEFORE INSERT OR UPDATE ON branch_mahallas
    FOR EACH ROW EXECUTE FUNCTION branch_mahallas_check();

-- ------------------------------------------------------------------ branch_id columns
ALTER TABLE mahallas ADD COLUMN branch_id bigint REFERENCES branches(id);
ALTER TABLE streets  ADD COLUMN branch_id bigint REFERENCES branches(id);
ALTER TABLE houses   ADD COLUMN branch_id bigint REFERENCES branches(id);
ALTER TABLE accounts ADD COLUMN branch_id bigint REFERENCES branches(id);
ALTER TABLE zones    ADD COLUMN branch_id bigint REFERENCES branches(id) DEFAULT suvnet_session_branch();
ALTER TABLE gateways ADD COLUMN branch_id bigint REFERENCES branches(id);
ALTER TABLE devices  ADD COLUMN branch_id bigint REFERENCES branches(id);
ALTER TABLE points   ADD COLUMN branch_id bigint REFERENCES branches(id);
ALTER TABLE meters   ADD COLUMN branch_id bigint REFERENCES branches(id);
CREATE INDEX mahallas_branch_idx ON mahallas (branch_id);
CREATE INDEX streets_branch_idx ON streets (branch_id);
CREATE INDEX houses_branch_idx ON houses (branch_id);
CREATE INDEX accounts_branch_idx ON accounts (branch_id);
CREATE INDEX zones_branch_idx ON zones (branch_id);
CREATE INDEX gateways_branch_idx ON gateways (branch_id);
CREATE INDEX devices_branch_idx ON devices (branch_id);
CREATE INDEX points_branch_idx ON points (branch_id);
CREATE INDEX meters_branch_idx ON meters (branch_id);

-- The branch of an MFY: its own assignment, else its district's.
CREATE FUNCTION branch_of_mahalla(p_mahalla bigint, p_district bigint) RETURNS bigint
LANGUAGE sql STABLE AS $$
    SELECT coalesce((SELECT branch_id FROM branch_mahallas WHERE mahalla_id = p_mahalla),
                    (SELECT branch_id FROM branch_districts WHERE district_id = p_district))
$$;

-- Each level takes its branch from the level above when a row is written (BEFORE ROW), and
-- passes a change down in one statement per level (AFTER STATEMENT with transition tables).
CREATE FUNCTION branch_set_mahalla() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.branch_id := branch_of_mahalla(NEW.id, NEW.district_id);
    RETURN NEW;
END
$$;
CREATE TRIGGER mahallas_branch BEFORE INSERT OR UPDATE OF district_id, branch_id ON mahallas
    FOR EACH ROW EXECUTE FUNCTION branch_set_mahalla();

CREATE FUNCTION branch_set_street() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.branch_id := (SELECT branch_id FROM mahallas WHERE id = NEW.mahalla_id);
    RETURN NEW;
END
$$;
CREATE TRIGGER streets_branch BEFORE INSERT OR UPDATE OF mahalla_id, branch_id ON streets
    FOR EACH ROW EXECUTE FUNCTION branch_set_street();

CREATE FUNCTION branch_set_house() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.branch_id := (SELECT branch_id FROM streets WHERE id = NEW.street_id);
    RETURN NEW;
END
$$;
CREATE TRIGGER houses_branch BEFORE INSERT OR UPDATE OF street_id, branch_id ON houses
    FOR EACH ROW EXECUTE FUNCTION branch_set_house();

CREATE FUNCTION branch_set_account() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.branch_id := (SELECT branch_id FROM houses WHERE id = NEW.house_id);
    RETURN NEW;
END
$$;
CREATE TRIGGER accounts_branch BEFORE INSERT OR UPDATE OF house_id, branch_id ON accounts
    FOR EACH ROW EXECUTE FUNCTION branch_set_account();

CREATE FUNCTION branch_down_mahallas() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE streets s SET branch_id = n.branch_id FROM new_rows n
    WHERE s.mahalla_id = n.id AND s.branch_id IS DISTINCT FROM n.branch_id;
    RETURN NULL;
END
$$;
CREATE TRIGGER mahallas_branch_down AFTER UPDATE ON mahallas
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION branch_down_mahallas();

CREATE FUNCTION branch_down_streets() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE houses h SET branch_id = n.branch_id FROM new_rows n
    WHERE h.street_id = n.id AND h.branch_id IS DISTINCT FROM n.branch_id;
    RETURN NULL;
END
$$;
CREATE TRIGGER streets_branch_down AFTER UPDATE ON streets
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION branch_down_streets();

CREATE FUNCTION branch_down_houses() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE accounts a SET branch_id = n.branch_id FROM new_rows n
    WHERE a.house_id = n.id AND a.branch_id IS DISTINCT FROM n.branch_id;
    RETURN NULL;
END
$$;
CREATE TRIGGER houses_branch_down AFTER UPDATE ON houses
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION branch_down_houses();

-- an account's meters follow it (the meters connected now)
CREATE FUNCTION branch_down_accounts() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE meters m SET branch_id = n.branch_id
    FROM new_rows n JOIN service_connections sc ON sc.account_id = n.id AND sc.removed_at IS NULL
    WHERE m.id = sc.meter_id AND m.branch_id IS DISTINCT FROM n.branch_id;
    RETURN NULL;
END
$$;
CREATE TRIGGER accounts_branch_down AFTER UPDATE ON accounts
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION branch_down_accounts();

-- a change of the assignments re-reads the branch of the MFYs concerned
CREATE FUNCTION branch_districts_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE mahallas m SET branch_id = NULL
    WHERE m.district_id IN (SELECT district_id FROM changed)
      AND m.branch_id IS DISTINCT FROM branch_of_mahalla(m.id, m.district_id);
    RETURN NULL;
END
$$;
CREATE TRIGGER branch_districts_ins AFTER INSERT ON branch_districts
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION branch_districts_changed();
CREATE TRIGGER branch_districts_upd AFTER UPDATE ON branch_districts
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION branch_districts_changed();
CREATE TRIGGER branch_districts_del AFTER DELETE ON branch_districts
    REFERENCING OLD TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION branch_districts_changed();

CREATE FUNCTION branch_mahallas_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE mahallas m SET branch_id = NULL
    WHERE m.id IN (SELECT mahalla_id FROM changed)
      AND m.branch_id IS DISTINCT FROM branch_of_mahalla(m.id, m.district_id);
    RETURN NULL;
END
$$;
CREATE TRIGGER branch_mahallas_ins AFTER INSERT ON branch_mahallas
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION branch_mahallas_changed();
CREATE TRIGGER branch_mahallas_upd AFTER UPDATE ON branch_mahallas
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION branch_mahallas_changed();
CREATE TRIGGER branch_mahallas_del AFTER DELETE ON branch_mahallas
    REFERENCING OLD TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION branch_mahallas_changed();

-- Network: zones and gateways are assigned; a gateway written without a branch takes its
-- zone's (or the writing session's); a device takes its gateway's, else its zone's; a point
-- its device's.
CREATE FUNCTION branch_set_gateway() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.branch_id IS NULL THEN
        NEW.branch_id := coalesce((SELECT branch_id FROM zones WHERE id = NEW.zone_id),
                                  suvnet_session_branch());
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER gateways_branch BEFORE INSERT OR UPDATE OF zone_id, branch_id ON gateways
    FOR EACH ROW EXECUTE FUNCTION branch_set_gateway();

CREATE FUNCTION branch_set_device() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.branch_id := coalesce((SELECT branch_id FROM gateways WHERE id = NEW.gateway_id),
                              (SELECT branch_id FROM zones WHERE id = NEW.zone_id),
                              suvnet_session_branch());
    RETURN NEW;
END
$$;
CREATE TRIGGER devices_branch BEFORE INSERT OR UPDATE OF gateway_id, zone_id, branch_id ON devices
    FOR EACH ROW EXECUTE FUNCTION branch_set_device();

CREATE FUNCTION branch_set_point() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.branch_id := (SELECT branch_id FROM devices WHERE id = NEW.device_id);
    RETURN NEW;
END
$$;
CREATE TRIGGER points_branch BEFORE INSERT OR UPDATE OF device_id, branch_id ON points
    FOR EACH ROW EXECUTE FUNCTION branch_set_point();

CREATE FUNCTION branch_down_zones() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE devices d SET branch_id = NULL FROM new_rows n     -- re-read by devices_branch
    WHERE d.zone_id = n.id AND d.gateway_id IS NULL AND d.branch_id IS DISTINCT FROM n.branch_id;
    RETURN NULL;
END
$$;
CREATE TRIGGER zones_branch_down AFTER UPDATE ON zones
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION branch_down_zones();

CREATE FUNCTION branch_down_gateways() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE devices d SET branch_id = NULL FROM new_rows n
    WHERE d.gateway_id = n.id AND d.branch_id IS DISTINCT FROM n.branch_id;
    RETURN NULL;
END
$$;
CREATE TRIGGER gateways_branch_down AFTER UPDATE ON gateways
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION branch_down_gateways();

CREATE FUNCTION branch_down_devices() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE points p SET branch_id = n.branch_id FROM new_rows n
    WHERE p.device_id = n.id AND p.branch_id IS DISTINCT FROM n.branch_id;
    RETURN NULL;
END
$$;
CREATE TRIGGER devices_branch_down AFTER UPDATE ON devices
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION branch_down_devices();

-- Meters: the account they are connected to, else their zone's, else the writing session's.
CREATE FUNCTION branch_set_meter() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.branch_id := coalesce(
        (SELECT a.branch_id FROM service_connections sc JOIN accounts a ON a.id = sc.account_id
         WHERE sc.meter_id = NEW.id AND sc.removed_at IS NULL LIMIT 1),
        (SELECT branch_id FROM zones WHERE id = NEW.zone_id),
        CASE WHEN TG_OP = 'INSERT' THEN suvnet_session_branch() ELSE OLD.branch_id END);
    RETURN NEW;
END
$$;
CREATE TRIGGER meters_branch BEFORE INSERT OR UPDATE OF zone_id, branch_id ON meters
    FOR EACH ROW EXECUTE FUNCTION branch_set_meter();

CREATE FUNCTION branch_connection_meter() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE meters m SET branch_id = a.branch_id
    FROM new_rows n JOIN accounts a ON a.id = n.account_id
    WHERE m.id = n.meter_id AND n.removed_at IS NULL AND m.branch_id IS DISTINCT FROM a.branch_id;
    RETURN NULL;
END
$$;
CREATE TRIGGER service_connections_branch_ins AFTER INSERT ON service_connections
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION branch_connection_meter();

-- ------------------------------------------------------------------ users
-- regional: sees every branch. A staff user has a branch or is regional; existing users are
-- regional (they saw everything before branches existed).
ALTER TABLE api_users ADD COLUMN branch_id bigint REFERENCES branches(id) ON DELETE SET NULL;
ALTER TABLE api_users ADD COLUMN regional boolean NOT NULL DEFAULT true;
ALTER TABLE api_users ADD CONSTRAINT api_users_branch_or_region
    CHECK (NOT (regional AND branch_id IS NOT NULL));

-- ------------------------------------------------------------------ numbering per branch
-- Gapless series of a branch per year: invoices (URG-2026-0000001), cashier receipts
-- (K-URG-2026-0000001). Accounts without a branch keep the series of 0200/0300.
CREATE TABLE branch_number_counters (
    branch_id  bigint NOT NULL REFERENCES branches(id),
    series     text NOT NULL CHECK (series IN ('invoice', 'receipt')),
    year       integer NOT NULL,
    last       bigint NOT NULL DEFAULT 0 CHECK (last >= 0),
    PRIMARY KEY (branch_id, series, year)
);

-- ------------------------------------------------------------------ audit
-- The audit rows written in a one-branch session carry that branch (policies of 0801).
ALTER TABLE audit_log ADD COLUMN branch_id bigint DEFAULT suvnet_session_branch();
CREATE INDEX audit_log_branch_idx ON audit_log (branch_id, ts);

GRANT SELECT, INSERT, UPDATE, DELETE ON branches, branch_payment_contracts, branch_districts,
    branch_mahallas, branch_number_counters TO suvnet_app;
