-- The register pages and the account search (issue 15).
--
-- * account_search: one normalised search key per account, kept up to date by the triggers
--   below (accounts, the address dictionary, meters, service connections). The key holds the
--   account's number, name, phone, INN, legacy id, address in every spelling the dictionary
--   has (street, house, apartment, mahalla, district), and meter serials, each folded by
--   suvnet_search_fold (Uzbek Latin, Uzbek Cyrillic and Russian to one Latin skeleton:
--   Bog'bon, Боғбон and Богбон are all "bogbon"; the rules are billing/search.py's fold(),
--   which made this function's text). Words appear once, in the order of their first place,
--   without the words that only say what a part of an address is (ko'chasi, улица, MFY...).
--   The key starts and ends with a space. Its words are also an array (words) with a GIN
--   index, with what people type instead of a whole word (its first 3 or more letters, a
--   phone's last 9 or 7 digits): a query such as "Navoiy 12", "Nav 12", "Каримов Анвар" or
--   "90 123 45 67" is one index lookup.
-- * A trigram index (pg_trgm, GIN) on the key when the extension can be had: the first
--   letters of a word ("Nav 12") and a part of a number (a phone's last digits) are then
--   found with LIKE '%nav%' through the index. Without pg_trgm those read the whole table
--   and a warning says so; billing_search_setup('on') adds the index later (suvnet_meta
--   'search_index' = 'trgm' or 'plain').
-- * meter_seals: the seals put on a meter (one open seal a meter).
-- * account_residents_history: each change of the number of residents, from when and why.

CREATE FUNCTION suvnet_search_fold(t text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN btrim(replace(replace(replace(' ' || btrim(regexp_replace(translate(replace(replace(replace(replace(replace(replace(replace(replace(translate(translate(t, 'ABCDEFGHIJKLMNOPQRSTUVWXYZАБВГДЕЁЖЗИЙКЛМНОПРСТУФХЦЧШЩЪЫЬЭЮЯЎҚҒҲŞÇĞÖÜİ',
    'abcdefghijklmnopqrstuvwxyzабвгдеёжзийклмнопрстуфхцчшщъыьэюяўқғҳşçğöüi'), '''`´ʹʻʼЪЬъь‘’′', ''), 'ё', 'yo'), 'ч', 'ch'), 'ш', 'sh'), 'щ', 'sh'), 'ю', 'yu'), 'я', 'ya'), 'ş', 'sh'), 'ç', 'ch'),
    'xqwабвгдежзийклмнопрстуфхцыэўқғҳğöüı', 'hkvabvgdejziyklmnoprstufhsieokghgoui'),
    '[^abcdefghijklmnopqrstuvwxyz0123456789]+', ' ', 'g')) || ' ', 'dj', 'j'), 'ye', 'e'), 'iy ', 'i '));

COMMENT ON FUNCTION suvnet_search_fold(text) IS
  'The search skeleton of a text: lower-case Latin letters and digits, words separated by one space (billing/search.py fold)';

CREATE TABLE account_search (
    account_id  bigint PRIMARY KEY REFERENCES accounts(id) ON DELETE CASCADE,
    key         text NOT NULL,             -- ' word word ... ': found inside with LIKE
    words       text[] NOT NULL,           -- the key's words, their first letters, phone tails
    -- what the ranking of the matches looks at, without reading the accounts
    number      text NOT NULL,
    name        text NOT NULL,             -- folded
    street      text NOT NULL,             -- folded, every spelling
    house       text NOT NULL,             -- folded
    apartment   text NOT NULL DEFAULT '',  -- folded
    phone       text NOT NULL DEFAULT '',  -- digits
    inn         text NOT NULL DEFAULT ''
);

-- Words that name what a part of an address is; left out of the keys (billing/search.py
-- STOP_WORDS, folded: the queries leave them out too).
CREATE FUNCTION billing_search_stop_words() RETURNS text[] LANGUAGE sql IMMUTABLE
RETURN ARRAY['berk', 'd', 'dom', 'honadon', 'kocha', 'kochasi', 'kuchasi', 'kv', 'kvartira', 'mahalla', 'mahallasi', 'mahallya', 'mfy', 'obl', 'oblast', 'per', 'pereulok', 'pr', 'proezd', 'prospekt', 'rayon', 'shoh', 'tor', 'tuman', 'tumani', 'ul', 'ulisa', 'ulitsa', 'uy', 'viloyati']::text[];

-- The keys of the given accounts, written when they changed. Each street's names (with its
-- mahalla and district) are folded once for all its accounts; fold(a || ' ' || b) is
-- fold(a) || ' ' || fold(b), so the parts are folded apart and joined.
CREATE FUNCTION billing_search_refresh(ids bigint[]) RETURNS void LANGUAGE sql AS $$
WITH acc AS MATERIALIZED (
    SELECT a.id, a.number, a.name, a.phone, a.inn, a.legacy_ref, h.number AS house,
           h.street_id, ap.number AS apartment,
           (SELECT string_agg(mt.serial_no || ' '
                              || regexp_replace(mt.serial_no, '[^[:alnum:]]', '', 'g'),
                              ' ' ORDER BY sc.installed_at)
            FROM service_connections sc JOIN meters mt ON mt.id = sc.meter_id
            WHERE sc.account_id = a.id) AS serials  -- as typed and without dashes
    FROM (SELECT DISTINCT id FROM unnest(ids) AS u(id)) u
    JOIN accounts a ON a.id = u.id
    JOIN houses h ON h.id = a.house_id
    LEFT JOIN apartments ap ON ap.id = a.apartment_id
), addr AS MATERIALIZED (
    SELECT s.id AS street_id,
           suvnet_search_fold(concat_ws(' ', s.name_uz, s.name_uz_cyrl, s.name_ru)) AS street,
           suvnet_search_fold(concat_ws(' ', m.name_uz, m.name_uz_cyrl, m.name_ru, d.name_uz,
                                        d.name_uz_cyrl, d.name_ru)) AS area
    FROM streets s
    JOIN mahallas m ON m.id = s.mahalla_id
    JOIN districts d ON d.id = m.district_id
    WHERE s.id IN (SELECT street_id FROM acc)
), src AS MATERIALIZED (
    SELECT acc.id, acc.number, acc.phone, acc.inn, f.name, addr.street, f.house, f.apartment,
           concat_ws(' ', addr.street, f.house, f.apartment, addr.area, f.name, f.rest) AS t
    FROM acc
    JOIN addr USING (street_id)
    CROSS JOIN LATERAL (
        SELECT suvnet_search_fold(acc.name) AS name,
               suvnet_search_fold(acc.house) AS house,
               coalesce(suvnet_search_fold(acc.apartment), '') AS apartment,
               suvnet_search_fold(concat_ws(' ', acc.number, acc.phone, acc.inn,
                                            acc.legacy_ref, acc.serials)) AS rest
        OFFSET 0
    ) f
), w AS MATERIALIZED (
    SELECT src.*, ARRAY(
        SELECT t.w FROM unnest(string_to_array(src.t, ' ')) WITH ORDINALITY AS t(w, o)
        WHERE t.w <> '' AND t.w <> ALL (billing_search_stop_words())
          AND (length(t.w) > 1 OR t.w ~ '^[0-9]$')
        GROUP BY t.w ORDER BY min(t.o)) AS words
    FROM src
), x AS (
    -- the words, then what a person may type instead of a whole word: the first 3 or more
    -- letters of a word ("Nav" for Navoiy), a phone's last 9 and 7 digits; and the street
    -- with the house
    SELECT w.*, words || ARRAY(
        SELECT DISTINCT p FROM (
            SELECT substr(v, 1, k) AS p
            FROM unnest(words) AS v, generate_series(3, length(v) - 1) AS k
            WHERE v ~ '[a-z]'
            UNION ALL
            SELECT right(d, k) FROM (SELECT regexp_replace(phone, '[^0-9]', '', 'g') AS d) ph,
                                    (VALUES (9), (7)) AS tail(k)
            WHERE length(d) > k
            UNION ALL
            -- a street's word (or its first 3 or more letters) with the house number,
            -- "navoi#12": the usual "Navoiy 12" is one short list of the index
            SELECT substr(v, 1, k) || '#' || house
            FROM unnest(string_to_array(street, ' ')) AS v, generate_series(3, length(v)) AS k
            WHERE v ~ '[a-z]' AND house <> '' AND v <> ALL (billing_search_stop_words())
        ) extra WHERE p <> ALL (words)) AS lookup
    FROM w
)
INSERT INTO account_search AS cur
    (account_id, key, words, number, name, street, house, apartment, phone, inn)
SELECT id, ' ' || array_to_string(words, ' ') || ' ', lookup, number, name, street, house,
       apartment, coalesce(regexp_replace(phone, '[^0-9]', '', 'g'), ''), coalesce(inn, '')
FROM x
ON CONFLICT (account_id) DO UPDATE
    SET key = EXCLUDED.key, words = EXCLUDED.words, number = EXCLUDED.number,
        name = EXCLUDED.name, street = EXCLUDED.street, house = EXCLUDED.house,
        apartment = EXCLUDED.apartment, phone = EXCLUDED.phone, inn = EXCLUDED.inn
    WHERE (cur.key, cur.words, cur.number, cur.name, cur.street, cur.house, cur.apartment,
           cur.phone, cur.inn)
          IS DISTINCT FROM (EXCLUDED.key, EXCLUDED.words, EXCLUDED.number, EXCLUDED.name,
                            EXCLUDED.street, EXCLUDED.house, EXCLUDED.apartment,
                            EXCLUDED.phone, EXCLUDED.inn)
$$;

-- Statement-level triggers with transition tables: a COPY of 100,000 accounts refreshes
-- their keys in one set-based statement, not 100,000 times.
CREATE FUNCTION billing_search_on_accounts_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM billing_search_refresh(ARRAY(SELECT id FROM new_rows));
    RETURN NULL;
END
$$;
CREATE TRIGGER accounts_search_insert AFTER INSERT ON accounts
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION billing_search_on_accounts_insert();

CREATE FUNCTION billing_search_on_accounts_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM billing_search_refresh(ARRAY(
        SELECT n.id FROM new_rows n JOIN old_rows o ON o.id = n.id
        WHERE (n.number, n.name, n.phone, n.inn, n.house_id, n.apartment_id, n.legacy_ref)
              IS DISTINCT FROM
              (o.number, o.name, o.phone, o.inn, o.house_id, o.apartment_id, o.legacy_ref)));
    RETURN NULL;
END
$$;
CREATE TRIGGER accounts_search_update AFTER UPDATE ON accounts
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION billing_search_on_accounts_update();

CREATE FUNCTION billing_search_on_connections_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM billing_search_refresh(ARRAY(SELECT account_id FROM new_rows));
    RETURN NULL;
END
$$;
CREATE TRIGGER service_connections_search_insert AFTER INSERT ON service_connections
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION billing_search_on_connections_insert();

CREATE FUNCTION billing_search_on_connections_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM billing_search_refresh(ARRAY(
        SELECT x.account_id FROM new_rows n JOIN old_rows o ON o.id = n.id,
               LATERAL (VALUES (n.account_id), (o.account_id)) AS x(account_id)
        WHERE (n.account_id, n.meter_id) IS DISTINCT FROM (o.account_id, o.meter_id)));
    RETURN NULL;
END
$$;
CREATE TRIGGER service_connections_search_update AFTER UPDATE ON service_connections
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION billing_search_on_connections_update();

CREATE FUNCTION billing_search_on_meters_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM billing_search_refresh(ARRAY(
        SELECT sc.account_id FROM new_rows n JOIN old_rows o ON o.id = n.id
        JOIN service_connections sc ON sc.meter_id = n.id
        WHERE n.serial_no IS DISTINCT FROM o.serial_no));
    RETURN NULL;
END
$$;
CREATE TRIGGER meters_search_update AFTER UPDATE ON meters
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION billing_search_on_meters_update();

CREATE FUNCTION billing_search_on_houses_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM billing_search_refresh(ARRAY(
        SELECT a.id FROM new_rows n JOIN old_rows o ON o.id = n.id
        JOIN accounts a ON a.house_id = n.id
        WHERE (n.number, n.street_id) IS DISTINCT FROM (o.number, o.street_id)));
    RETURN NULL;
END
$$;
CREATE TRIGGER houses_search_update AFTER UPDATE ON houses
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION billing_search_on_houses_update();

CREATE FUNCTION billing_search_on_apartments_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM billing_search_refresh(ARRAY(
        SELECT a.id FROM new_rows n JOIN old_rows o ON o.id = n.id
        JOIN accounts a ON a.apartment_id = n.id
        WHERE n.number IS DISTINCT FROM o.number));
    RETURN NULL;
END
$$;
CREATE TRIGGER apartments_search_update AFTER UPDATE ON apartments
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION billing_search_on_apartments_update();

CREATE FUNCTION billing_search_on_streets_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM billing_search_refresh(ARRAY(
        SELECT a.id FROM new_rows n JOIN old_rows o ON o.id = n.id
        JOIN houses h ON h.street_id = n.id JOIN accounts a ON a.house_id = h.id
        WHERE (n.name_uz, n.name_uz_cyrl, n.name_ru, n.mahalla_id)
              IS DISTINCT FROM (o.name_uz, o.name_uz_cyrl, o.name_ru, o.mahalla_id)));
    RETURN NULL;
END
$$;
CREATE TRIGGER streets_search_update AFTER UPDATE ON streets
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION billing_search_on_streets_update();

CREATE FUNCTION billing_search_on_mahallas_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM billing_search_refresh(ARRAY(
        SELECT a.id FROM new_rows n JOIN old_rows o ON o.id = n.id
        JOIN streets s ON s.mahalla_id = n.id JOIN houses h ON h.street_id = s.id
        JOIN accounts a ON a.house_id = h.id
        WHERE (n.name_uz, n.name_uz_cyrl, n.name_ru, n.district_id)
              IS DISTINCT FROM (o.name_uz, o.name_uz_cyrl, o.name_ru, o.district_id)));
    RETURN NULL;
END
$$;
CREATE TRIGGER mahallas_search_update AFTER UPDATE ON mahallas
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION billing_search_on_mahallas_update();

CREATE FUNCTION billing_search_on_districts_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM billing_search_refresh(ARRAY(
        SELECT a.id FROM new_rows n JOIN old_rows o ON o.id = n.id
        JOIN mahallas m ON m.district_id = n.id JOIN streets s ON s.mahalla_id = m.id
        JOIN houses h ON h.street_id = s.id JOIN accounts a ON a.house_id = h.id
        WHERE (n.name_uz, n.name_uz_cyrl, n.name_ru, n.region_id)
              IS DISTINCT FROM (o.name_uz, o.name_uz_cyrl, o.name_ru, o.region_id)));
    RETURN NULL;
END
$$;
CREATE TRIGGER districts_search_update AFTER UPDATE ON districts
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION billing_search_on_districts_update();

CREATE FUNCTION billing_search_on_regions_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM billing_search_refresh(ARRAY(
        SELECT a.id FROM new_rows n JOIN old_rows o ON o.id = n.id
        JOIN districts d ON d.region_id = n.id JOIN mahallas m ON m.district_id = d.id
        JOIN streets s ON s.mahalla_id = m.id JOIN houses h ON h.street_id = s.id
        JOIN accounts a ON a.house_id = h.id
        WHERE (n.name_uz, n.name_uz_cyrl, n.name_ru)
              IS DISTINCT FROM (o.name_uz, o.name_uz_cyrl, o.name_ru)));
    RETURN NULL;
END
$$;
CREATE TRIGGER regions_search_update AFTER UPDATE ON regions
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION billing_search_on_regions_update();

-- The index of the keys' words, and the trigram index when pg_trgm can be had ('auto'),
-- must ('on') or must not ('off'); answers 'trgm' or 'plain' and records it in suvnet_meta
-- ('search_index'). A bulk load may drop both indexes, fill the keys with one
-- billing_search_refresh and call this to build them again (much faster than indexing row by
-- row).
CREATE FUNCTION billing_search_setup(mode text DEFAULT 'auto') RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    have boolean;
BEGIN
    IF mode NOT IN ('auto', 'on', 'off') THEN
        RAISE EXCEPTION 'billing_search_setup: mode must be auto, on or off, not %', mode;
    END IF;
    IF mode <> 'off' AND NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm')
       AND EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm') THEN
        BEGIN
            CREATE EXTENSION IF NOT EXISTS pg_trgm;
        EXCEPTION WHEN insufficient_privilege THEN
            RAISE WARNING 'pg_trgm is installed on the server, but this user may not create it: %',
                SQLERRM;
        END;
    END IF;
    have := mode <> 'off' AND EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm');
    CREATE INDEX IF NOT EXISTS account_search_words ON account_search USING gin (words);
    IF have THEN
        CREATE INDEX IF NOT EXISTS account_search_key_trgm ON account_search
            USING gin (key gin_trgm_ops);
    ELSE
        DROP INDEX IF EXISTS account_search_key_trgm;
        IF mode = 'on' THEN
            RAISE EXCEPTION 'the PostgreSQL extension pg_trgm is not available on this server: '
                'install it (Debian: postgresql-contrib), then SELECT billing_search_setup(''on'')';
        END IF;
        RAISE WARNING 'account search without a trigram index: the PostgreSQL extension pg_trgm '
            'is not available (Debian: install postgresql-contrib, then run '
            'SELECT billing_search_setup(''on'')); the search reads every key meanwhile';
    END IF;
    INSERT INTO suvnet_meta (key, value) VALUES ('search_index', CASE WHEN have THEN 'trgm' ELSE 'plain' END)
    ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value;
    RETURN CASE WHEN have THEN 'trgm' ELSE 'plain' END;
END
$$;

-- The search of whole words (billing/search.py search_function_sql made this text): the
-- candidates from the words' index, ranked, the best with their address. A function, so that
-- its plan is made once a session: planning the statement costs more than running it.
CREATE FUNCTION billing_search_words(p_words text[], p_digits text, p_numbers text[],
    p_letters text[], p_compact text, p_candidates integer, p_limit integer)
RETURNS TABLE (id bigint, number text, kind text, name text, phone text, status text,
    inn text, district text, mahalla text, street text, house text, apartment text)
LANGUAGE plpgsql STABLE SET plan_cache_mode = force_generic_plan AS $$
#variable_conflict use_column
BEGIN
RETURN QUERY WITH cand AS MATERIALIZED (SELECT account_id, key, number, name, street, house, apartment, phone, inn FROM account_search s WHERE s.words @> p_words::text[]  LIMIT p_candidates), top AS (SELECT c.account_id, c.number, 
  (CASE WHEN p_digits = '' THEN 0 WHEN c.number = p_digits THEN 1000
        WHEN c.inn = p_digits THEN 900
        WHEN length(p_digits) >= 7 AND right(c.phone, length(p_digits)) = p_digits
        THEN 800 ELSE 0 END)
+ (CASE WHEN c.house = ANY(p_numbers::text[]) THEN 100 ELSE 0 END)
+ (CASE WHEN c.apartment <> '' AND c.apartment = ANY(p_numbers::text[]) THEN 20 ELSE 0 END)
+ (CASE WHEN cardinality(p_letters::text[]) > 0 AND NOT EXISTS (
        SELECT 1 FROM unnest(p_letters::text[]) l
        WHERE strpos(' ' || c.name || ' ', ' ' || l) = 0) THEN 30 ELSE 0 END)
+ (SELECT 15 * count(*) FROM unnest(p_letters::text[]) l
   WHERE strpos(' ' || c.street || ' ', ' ' || l) > 0)
+ (SELECT coalesce(sum(CASE WHEN strpos(c.key, ' ' || l || ' ') > 0 THEN 10
                            WHEN strpos(c.key, ' ' || l) > 0 THEN 5 ELSE 0 END), 0)
   FROM unnest(p_letters::text[]) l)
+ (CASE WHEN p_compact <> '' AND strpos(c.key, p_compact) > 0 THEN 50 ELSE 0 END) AS score FROM cand c ORDER BY score DESC, c.number LIMIT p_limit)
SELECT a.id, a.number, a.kind, a.name, a.phone, a.status, a.inn, d.name_uz AS district,
       m.name_uz AS mahalla, s.name_uz AS street, h.number AS house, ap.number AS apartment
FROM top JOIN accounts a ON a.id = top.account_id
JOIN houses h ON h.id = a.house_id
LEFT JOIN apartments ap ON ap.id = a.apartment_id
JOIN streets s ON s.id = h.street_id
JOIN mahallas m ON m.id = s.mahalla_id
JOIN districts d ON d.id = m.district_id
ORDER BY top.score DESC, top.number;
END
$$;

SELECT billing_search_refresh(ARRAY(SELECT id FROM accounts));
SELECT billing_search_setup(coalesce(nullif(current_setting('suvnet.search_trgm', true), ''), 'auto'));

-- ------------------------------------------------------------------ meter seals
CREATE TABLE meter_seals (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    meter_id    bigint NOT NULL REFERENCES meters(id),
    seal_no     text NOT NULL CHECK (seal_no ~ '^[A-Za-z0-9][A-Za-z0-9/-]{0,31}$'),
    sealed_at   timestamptz NOT NULL,
    removed_at  timestamptz,              -- broken, replaced or the meter removed
    note        text NOT NULL DEFAULT '',
    entered_by  text NOT NULL DEFAULT '',
    CHECK (removed_at IS NULL OR removed_at >= sealed_at)
);
CREATE UNIQUE INDEX meter_seals_one_open ON meter_seals (meter_id) WHERE removed_at IS NULL;

-- ------------------------------------------------------------------ residents
CREATE TABLE account_residents_history (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id  bigint NOT NULL REFERENCES accounts(id),
    residents   integer NOT NULL CHECK (residents BETWEEN 0 AND 200),
    since       date NOT NULL,
    reason      text NOT NULL DEFAULT '',
    document    text NOT NULL DEFAULT '',  -- e.g. the mahalla's certificate number
    entered_by  text NOT NULL DEFAULT '',
    entered_at  timestamptz NOT NULL
);
CREATE INDEX account_residents_history_idx ON account_residents_history (account_id, since);
