"""District branches (docs/branches.md): the branch model and its queries.

A branch owns districts or single MFYs, zones and gateways; the database gives every address,
account, device, point and meter the branch of what it belongs to (migration 0800) and shows
a session only the rows of its branches (0801). This module holds what billing and the
command line need of branches:

* adding branches, their requisites and payment contracts, assigning what they own;
* the numbering of a branch's documents (gapless series per branch and year);
* the requisites a document of an account prints (its branch's, or the utility's for an
  account of no branch), refused with the missing fields named;
* the scope of a synchronous session (:func:`use_scope`) for the payment callbacks.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import psycopg
from psycopg import errors as pg_errors
from psycopg import sql
from psycopg.rows import tuple_row

from billing.errors import BillingError, DocumentError

Series = Literal["invoice", "receipt"]
Provider = Literal["payme", "click"]
ALL = "*"
"""The scope of a session that sees every branch (the setting ``suvnet.branches``)."""

_CODE_RE = re.compile(r"^[A-Z][A-Z0-9]{1,7}$")
_DIGITS = {"inn": 9, "bank_account": 20, "mfo": 5}
REQUISITE_FIELDS: tuple[tuple[str, str, bool], ...] = (
    ("legal_name", "name", True),
    ("inn", "STIR", True),
    ("bank_account", "bank account", True),
    ("mfo", "MFO", True),
    ("bank", "bank", False),
    ("address", "address", False),
    ("phone", "phone", False),
)
"""The requisites a branch prints: (column, what, required). A blank optional one prints the
utility's setting instead."""


class BranchError(BillingError):
    """A branch could not be added, changed or assigned, or is unknown."""


@dataclass(frozen=True)
class Branch:
    id: int
    code: str
    name: str
    legal_name: str = ""
    inn: str = ""
    bank: str = ""
    bank_account: str = ""
    mfo: str = ""
    address: str = ""
    phone: str = ""

    def missing_requisites(self) -> list[str]:
        """What a document of this branch needs and the branch lacks (the ``what`` words of
        :data:`REQUISITE_FIELDS`), in their order."""
        return [
            what for col, what, required in REQUISITE_FIELDS if required and not getattr(self, col)
        ]


_BRANCH_COLS = "id, code, name, legal_name, inn, bank, bank_account, mfo, address, phone"


def _branch(row: Sequence[Any]) -> Branch:
    return Branch(int(row[0]), *(str(v) for v in row[1:]))


@dataclass(frozen=True)
class Seller:
    """The seller's requisites a document prints: a branch's, or the utility's settings."""

    name: str
    inn: str
    bank: str
    bank_account: str
    mfo: str
    address: str
    phone: str
    branch_code: str | None = None


def utility_seller(cfg: Any) -> Seller:
    """The utility's own requisites (the settings of :class:`billing.config.BillingConfig`)."""
    return Seller(
        cfg.utility_name,
        cfg.utility_inn,
        cfg.utility_bank,
        cfg.utility_bank_account,
        cfg.utility_mfo,
        cfg.utility_address,
        cfg.utility_phone,
    )


class RequisitesMissingError(DocumentError):
    """A document of a branch that lacks a required requisite: ``missing`` names them by
    column (``legal_name``, ``inn``, ``bank_account``, ``mfo``), for the API to say in the
    user's language (:mod:`api.branch_text`)."""

    def __init__(self, branch: Branch, missing: list[str]) -> None:
        words = [what for col, what, _ in REQUISITE_FIELDS if col in missing]
        super().__init__(
            f"branch {branch.code} ({branch.name}) has no {', '.join(words)} for its "
            f"documents: set them with suvnet branches set {branch.code} (docs/branches.md)"
        )
        self.branch_code = branch.code
        self.branch_name = branch.name
        self.missing = tuple(missing)


def require_requisites(branch: Branch) -> None:
    """Refuse (:class:`RequisitesMissingError`) a document of a branch that lacks a required
    requisite, naming every missing one and how to set them."""
    missing = [
        col for col, _, required in REQUISITE_FIELDS if required and not getattr(branch, col)
    ]
    if missing:
        raise RequisitesMissingError(branch, missing)


def branch_seller(branch: Branch, cfg: Any) -> Seller:
    """The requisites on a branch's documents (refused by :func:`require_requisites` when
    one is missing); a blank bank name, address or phone prints the utility's."""
    require_requisites(branch)
    return Seller(
        branch.legal_name,
        branch.inn,
        branch.bank or cfg.utility_bank,
        branch.bank_account,
        branch.mfo,
        branch.address or cfg.utility_address,
        branch.phone or cfg.utility_phone,
        branch.code,
    )


def account_branch(conn: psycopg.Connection[Any], account_id: int) -> Branch | None:
    """The branch of an account (None: the account belongs to no branch)."""
    row = conn.execute(
        f"SELECT {', '.join('b.' + c.strip() for c in _BRANCH_COLS.split(','))} "  # noqa: S608 - constants
        "FROM accounts a JOIN branches b ON b.id = a.branch_id WHERE a.id = %s",
        (account_id,),
    ).fetchone()
    return None if row is None else _branch(row)


def seller_of_account(conn: psycopg.Connection[Any], account_id: int, cfg: Any) -> Seller:
    """The requisites on the documents of an account: its branch's, else the utility's."""
    branch = account_branch(conn, account_id)
    return utility_seller(cfg) if branch is None else branch_seller(branch, cfg)


def session_branch(conn: psycopg.Connection[Any]) -> Branch | None:
    """The branch of a session that sees exactly one (a branch user's), else None."""
    row = conn.execute(
        f"SELECT {_BRANCH_COLS} FROM branches WHERE id = suvnet_session_branch()"  # noqa: S608 - constants
    ).fetchone()
    return None if row is None else _branch(row)


# ------------------------------------------------------------------ numbering
def allocate(
    conn: psycopg.Connection[Any], branch: Branch | None, series: Series, year: int, n: int
) -> list[str]:
    """``n`` consecutive numbers of a series, in the caller's transaction: gapless (a rolled
    back transaction gives its numbers back) and, per branch and year, in the order taken.
    A branch's numbers carry its code (``URG-2026-0000001``, receipts
    ``K-URG-2026-0000001``); without a branch the utility's series of before
    (``2026-0000001``, ``K-2026-0000001``) goes on."""
    if n <= 0:
        return []
    if branch is None:
        table = "invoice_counters" if series == "invoice" else "cashier_receipt_counters"
        conn.execute(
            f"INSERT INTO {table} (year, last) VALUES (%s, 0) ON CONFLICT DO NOTHING",  # noqa: S608 - one of two table names
            (year,),
        )
        row = conn.execute(
            f"UPDATE {table} SET last = last + %s WHERE year = %s RETURNING last",  # noqa: S608 - one of two table names
            (n, year),
        ).fetchone()
        prefix = f"{year}-" if series == "invoice" else f"K-{year}-"
    else:
        row = conn.execute(
            """INSERT INTO branch_number_counters (branch_id, series, year, last)
               VALUES (%s, %s, %s, %s)
               ON CONFLICT (branch_id, series, year)
               DO UPDATE SET last = branch_number_counters.last + EXCLUDED.last
               RETURNING last""",
            (branch.id, series, year, n),
        ).fetchone()
        prefix = f"{branch.code}-{year}-" if series == "invoice" else f"K-{branch.code}-{year}-"
    assert row is not None
    last = int(row[0])
    return [f"{prefix}{i:07d}" for i in range(last - n + 1, last + 1)]


def branches_of_accounts(
    conn: psycopg.Connection[Any], account_ids: Iterable[int]
) -> dict[int, Branch | None]:
    """The branch of each account (None: of no branch)."""
    ids = list(dict.fromkeys(account_ids))
    rows = conn.execute(
        f"SELECT a.id, {', '.join('b.' + c.strip() for c in _BRANCH_COLS.split(','))} "  # noqa: S608 - constants
        "FROM accounts a LEFT JOIN branches b ON b.id = a.branch_id WHERE a.id = ANY(%s)",
        (ids,),
    ).fetchall()
    return {int(r[0]): None if r[1] is None else _branch(r[1:]) for r in rows}


def allocate_for_accounts(
    conn: psycopg.Connection[Any], account_ids: Sequence[int], series: Series, year: int
) -> list[str]:
    """One number of ``series`` for each account (in that order), from its branch's series
    (gapless per branch and year; accounts of no branch use the utility's series)."""
    branch_of = branches_of_accounts(conn, account_ids)
    groups: dict[int | None, list[int]] = {}
    for i, aid in enumerate(account_ids):
        b = branch_of.get(aid)
        groups.setdefault(None if b is None else b.id, []).append(i)
    out = [""] * len(account_ids)
    for key in sorted(groups, key=lambda k: -1 if k is None else k):  # one lock order
        idx = groups[key]
        branch = branch_of[account_ids[idx[0]]]
        for i, number in zip(idx, allocate(conn, branch, series, year, len(idx)), strict=True):
            out[i] = number
    return out


# ------------------------------------------------------------------ the session's scope
def use_scope(conn: psycopg.Connection[Any], branches: str) -> None:
    """Set what the session sees (``*`` every branch, ``'3'`` or ``'3,7'`` those branches),
    on top of the role the API gave the connection (api.syncdb). For the payment callbacks,
    which have no login: they see the merchant's branch, or every branch for the utility's
    own cash desk."""
    if branches != ALL and not re.fullmatch(r"[0-9]{1,18}(,[0-9]{1,18})*", branches):
        raise BranchError(f"not a branch scope: {branches!r}")
    conn.execute("SELECT set_config('suvnet.branches', %s, false)", (branches,))


# ------------------------------------------------------------------ payment contracts
@dataclass(frozen=True)
class Contract:
    """A branch's own contract with a payment provider."""

    branch_id: int
    branch_code: str
    provider: Provider
    merchant_id: str
    secret: str = field(repr=False)
    service_id: str | None = None


def contracts(conn: psycopg.Connection[Any], provider: Provider) -> list[Contract]:
    """The branches' own contracts with ``provider`` (read in any scope: a callback has no
    login and must find its merchant before it knows the branch)."""
    rows = conn.execute(
        """SELECT c.branch_id, b.code, c.provider, c.merchant_id, c.secret, c.service_id
           FROM branch_payment_contracts c JOIN branches b ON b.id = c.branch_id
           WHERE c.provider = %s ORDER BY c.branch_id""",
        (provider,),
    ).fetchall()
    return [Contract(int(r[0]), r[1], r[2], r[3], r[4], r[5]) for r in rows]


@dataclass(frozen=True)
class MerchantRoute:
    """Which accounts a payment callback may pay: a branch's own contract serves that
    branch's accounts; the utility's own serves the rest (accounts of no branch and of
    branches without their own contract with this provider)."""

    contract: Contract | None
    """None: the utility's own merchant (the SUVNET_PAYME_* / SUVNET_CLICK_* settings)."""
    own_contracts: tuple[int, ...] = ()
    """The branches that have their own contract with this provider."""

    @property
    def scope(self) -> str:
        """What the callback's session sees."""
        return ALL if self.contract is None else str(self.contract.branch_id)

    def serves(self, branch_id: int | None) -> bool:
        if self.contract is not None:
            return branch_id == self.contract.branch_id
        return branch_id is None or branch_id not in self.own_contracts

    def enter(self, conn: psycopg.Connection[Any]) -> None:
        """Give the callback's session this merchant's scope."""
        use_scope(conn, self.scope)


def route_for(contract: Contract | None, all_contracts: Sequence[Contract]) -> MerchantRoute:
    return MerchantRoute(contract, tuple(c.branch_id for c in all_contracts))


ACCOUNT_CONTRACTS_SQL = """
SELECT c.branch_id, b.code, c.provider, c.merchant_id, c.secret, c.service_id
FROM accounts a JOIN branch_payment_contracts c ON c.branch_id = a.branch_id
JOIN branches b ON b.id = c.branch_id
WHERE a.number = %s"""
"""The own contracts of an account's branch, by the account's number (for async callers too:
:func:`contracts_of_rows` reads the rows)."""


def contracts_of_rows(rows: Iterable[Sequence[Any]]) -> dict[Provider, Contract]:
    return {r[2]: Contract(int(r[0]), r[1], r[2], r[3], r[4], r[5]) for r in rows}


def account_contracts(conn: psycopg.Connection[Any], number: str) -> dict[Provider, Contract]:
    """The payment contracts of the account's branch, by provider (empty: the account pays
    through the utility's own merchants). Payment links use them (billing.paylinks): a
    customer of a branch with its own Payme cash desk pays into that desk."""
    return contracts_of_rows(conn.execute(ACCOUNT_CONTRACTS_SQL, (number,)).fetchall())


def account_branch_id(conn: psycopg.Connection[Any], account_id: int) -> int | None:
    row = conn.execute("SELECT branch_id FROM accounts WHERE id = %s", (account_id,)).fetchone()
    return None if row is None or row[0] is None else int(row[0])


def set_contract(
    conn: psycopg.Connection[Any],
    code: str,
    provider: Provider,
    *,
    merchant_id: str,
    secret: str,
    service_id: str | None = None,
) -> Contract:
    """Give a branch its own Payme cash desk or Click service (replacing an earlier one)."""
    branch = get_branch(conn, code)
    if provider == "click" and not (service_id or "").strip():
        raise BranchError("a Click contract needs its service id (--service-id)")
    if provider == "payme":
        service_id = None
    if not merchant_id.strip() or not secret.strip():
        raise BranchError("the merchant id and the key must not be empty")
    try:
        with conn.transaction():
            conn.execute(
                """INSERT INTO branch_payment_contracts
                       (branch_id, provider, merchant_id, service_id, secret)
                   VALUES (%s, %s, %s, %s, %s)
                   ON CONFLICT (branch_id, provider) DO UPDATE
                   SET merchant_id = EXCLUDED.merchant_id, service_id = EXCLUDED.service_id,
                       secret = EXCLUDED.secret, updated_at = now()""",
                (branch.id, provider, merchant_id.strip(), service_id, secret.strip()),
            )
    except pg_errors.UniqueViolation as exc:
        raise BranchError(
            f"this {provider} merchant or service is already another branch's contract"
        ) from exc
    return Contract(
        branch.id, branch.code, provider, merchant_id.strip(), secret.strip(), service_id
    )


# ------------------------------------------------------------------ branches
def get_branch(conn: psycopg.Connection[Any], code: str) -> Branch:
    row = conn.execute(
        f"SELECT {_BRANCH_COLS} FROM branches WHERE code = %s",  # noqa: S608 - constants
        (code.strip().upper(),),
    ).fetchone()
    if row is None:
        raise BranchError(f"no branch {code!r} (suvnet branches list shows them)")
    return _branch(row)


def _check_requisites(values: dict[str, str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for col, raw in values.items():
        value = raw.strip()
        digits = _DIGITS.get(col)
        if digits and value and not (value.isdigit() and len(value) == digits):
            what = {c: w for c, w, _ in REQUISITE_FIELDS}[col]
            raise BranchError(f"the {what} must have {digits} digits, not {value!r}")
        out[col] = value
    return out


def add_branch(conn: psycopg.Connection[Any], code: str, name: str, **requisites: str) -> Branch:
    """A new branch; ``code`` (2 to 8 capital letters and digits, a letter first) prefixes
    its document numbers and cannot be changed later."""
    code = code.strip().upper()
    if not _CODE_RE.match(code):
        raise BranchError(
            f"the branch code must be 2 to 8 capital Latin letters or digits, starting with a "
            f"letter (it prefixes the branch's invoice numbers), not {code!r}"
        )
    if not name.strip():
        raise BranchError("the branch needs a name")
    req = _check_requisites({k: v for k, v in requisites.items() if v is not None})
    cols = ["code", "name", *req]
    try:
        with conn.transaction():
            row = conn.execute(
                f"INSERT INTO branches ({', '.join(cols)}) "  # noqa: S608 - column names are REQUISITE_FIELDS'
                f"VALUES ({', '.join(['%s'] * len(cols))}) RETURNING {_BRANCH_COLS}",
                [code, name.strip(), *req.values()],
            ).fetchone()
    except pg_errors.UniqueViolation as exc:
        raise BranchError(f"a branch {code} or with this bank account already exists") from exc
    assert row is not None
    return _branch(row)


def set_requisites(conn: psycopg.Connection[Any], code: str, **requisites: str | None) -> Branch:
    """Change a branch's name and requisites (the ones given; ``''`` clears one)."""
    branch = get_branch(conn, code)
    allowed = {c for c, _, _ in REQUISITE_FIELDS} | {"name"}
    values = {k: v for k, v in requisites.items() if v is not None}
    unknown = set(values) - allowed
    if unknown:
        raise BranchError(f"unknown requisites: {', '.join(sorted(unknown))}")
    if not values:
        return branch
    req = _check_requisites(values)
    if "name" in req and not req["name"]:
        raise BranchError("the branch needs a name")
    try:
        with conn.transaction():
            row = conn.execute(
                f"UPDATE branches SET {', '.join(f'{c} = %s' for c in req)} "  # noqa: S608 - column names checked against REQUISITE_FIELDS
                f"WHERE id = %s RETURNING {_BRANCH_COLS}",
                [*req.values(), branch.id],
            ).fetchone()
    except pg_errors.UniqueViolation as exc:
        raise BranchError("another branch has this bank account") from exc
    assert row is not None
    return _branch(row)


async def visible_branches(conn: psycopg.AsyncConnection[Any]) -> list[dict[str, str]]:
    """``{"code", "name"}`` of the branches the connection's scope sees (all for the region's)."""
    async with conn.cursor(row_factory=tuple_row) as cur:
        await cur.execute("SELECT code, name FROM branches ORDER BY code")
        return [{"code": str(r[0]), "name": str(r[1])} for r in await cur.fetchall()]


async def branch_id_by_code(conn: psycopg.AsyncConnection[Any], code: str) -> int | None:
    """The id of the branch with this code (any case, spaces trimmed), or None."""
    async with conn.cursor(row_factory=tuple_row) as cur:
        await cur.execute("SELECT id FROM branches WHERE code = %s", (code.strip().upper(),))
        row = await cur.fetchone()
    return None if row is None else int(row[0])


def list_branches(conn: psycopg.Connection[Any]) -> list[dict[str, Any]]:
    """Every branch with what it owns: districts, MFYs, zones, gateways, accounts, users."""
    rows = conn.execute(
        f"""SELECT {_BRANCH_COLS},
                  (SELECT string_agg(d.name_uz, ', ' ORDER BY d.name_uz) FROM branch_districts bd
                   JOIN districts d ON d.id = bd.district_id WHERE bd.branch_id = b.id),
                  (SELECT string_agg(m.name_uz, ', ' ORDER BY m.name_uz) FROM branch_mahallas bm
                   JOIN mahallas m ON m.id = bm.mahalla_id WHERE bm.branch_id = b.id),
                  (SELECT string_agg(z.code, ', ' ORDER BY z.code) FROM zones z
                   WHERE z.branch_id = b.id),
                  (SELECT string_agg(g.code, ', ' ORDER BY g.code) FROM gateways g
                   WHERE g.branch_id = b.id),
                  (SELECT count(*) FROM accounts a WHERE a.branch_id = b.id),
                  (SELECT count(*) FROM api_users u WHERE u.branch_id = b.id)
           FROM branches b ORDER BY b.code"""  # noqa: S608 - constants
    ).fetchall()
    out = []
    for r in rows:
        branch = _branch(r[:10])
        out.append(
            {
                "branch": branch,
                "districts": r[10] or "",
                "mahallas": r[11] or "",
                "zones": r[12] or "",
                "gateways": r[13] or "",
                "accounts": int(r[14]),
                "users": int(r[15]),
            }
        )
    return out


def _one_id(conn: psycopg.Connection[Any], table: str, column: str, value: str, what: str) -> int:
    rows = conn.execute(
        f"SELECT id FROM {table} WHERE {column} = %s",  # noqa: S608 - table and column are this module's constants
        (value.strip(),),
    ).fetchall()
    if not rows:
        raise BranchError(f"no {what} {value!r}")
    if len(rows) > 1:
        hint = " or district/MFY" if table == "mahallas" else ""
        raise BranchError(f"{len(rows)} {what}s are called {value!r}; give the code{hint} instead")
    return int(rows[0][0])


def _area_id(conn: psycopg.Connection[Any], table: str, value: str, what: str) -> int:
    """A district or MFY by its code, else by its Uzbek name; an MFY also as
    ``district/MFY`` (names of MFYs repeat across districts)."""
    if table == "mahallas" and "/" in value:
        district, _, mahalla = value.partition("/")
        rows = conn.execute(
            "SELECT m.id FROM mahallas m JOIN districts d ON d.id = m.district_id "
            "WHERE d.name_uz = %s AND m.name_uz = %s",
            (district.strip(), mahalla.strip()),
        ).fetchall()
        if len(rows) != 1:
            raise BranchError(f"no MFY {mahalla.strip()!r} in the district {district.strip()!r}")
        return int(rows[0][0])
    row = conn.execute(
        f"SELECT id FROM {table} WHERE code = %s",  # noqa: S608 - one of two table names
        (value.strip(),),
    ).fetchone()
    if row is not None:
        return int(row[0])
    return _one_id(conn, table, "name_uz", value, what)


@dataclass
class Assigned:
    districts: int = 0
    mahallas: int = 0
    zones: int = 0
    gateways: int = 0
    accounts: int = 0


def assign(
    conn: psycopg.Connection[Any],
    code: str,
    *,
    districts: Sequence[str] = (),
    mahallas: Sequence[str] = (),
    zones: Sequence[str] = (),
    gateways: Sequence[str] = (),
) -> Assigned:
    """Give a branch districts (wholly), MFYs (of a district split between branches), zones
    (with their gateways that have no other branch) and gateways, in one transaction.

    An overlap is refused with both branches named: a district or MFY that is already
    another branch's, an MFY of a district that is wholly another branch's, a district split
    by MFYs of another branch. A zone or gateway of another branch is moved (say so first:
    ``suvnet branches list`` shows who owns what)."""
    branch = get_branch(conn, code)
    done = Assigned()
    try:
        with conn.transaction():
            for d in districts:
                did = _area_id(conn, "districts", d, "district")
                conn.execute(
                    "INSERT INTO branch_districts (district_id, branch_id) VALUES (%s, %s) "
                    "ON CONFLICT (district_id) DO UPDATE SET branch_id = EXCLUDED.branch_id",
                    (did, branch.id),
                )
                done.districts += 1
            for m in mahallas:
                mid = _area_id(conn, "mahallas", m, "MFY")
                conn.execute(
                    "INSERT INTO branch_mahallas (mahalla_id, branch_id) VALUES (%s, %s) "
                    "ON CONFLICT (mahalla_id) DO UPDATE SET branch_id = EXCLUDED.branch_id",
                    (mid, branch.id),
                )
                done.mahallas += 1
            for z in zones:
                zid = _one_id(conn, "zones", "code", z, "zone")
                old = conn.execute("SELECT branch_id FROM zones WHERE id = %s", (zid,)).fetchone()
                conn.execute("UPDATE zones SET branch_id = %s WHERE id = %s", (branch.id, zid))
                cur = conn.execute(
                    "UPDATE gateways SET branch_id = %s WHERE zone_id = %s "
                    "AND branch_id IS NOT DISTINCT FROM %s",
                    (branch.id, zid, old[0] if old else None),
                )
                done.zones += 1
                done.gateways += cur.rowcount
            for g in gateways:
                gid = _one_id(conn, "gateways", "code", g, "gateway")
                conn.execute("UPDATE gateways SET branch_id = %s WHERE id = %s", (branch.id, gid))
                done.gateways += 1
            row = conn.execute(
                "SELECT count(*) FROM accounts WHERE branch_id = %s", (branch.id,)
            ).fetchone()
            done.accounts = int(row[0]) if row else 0
    except pg_errors.ExclusionViolation as exc:
        raise BranchError(_db_message(exc)) from exc
    return done


def release(
    conn: psycopg.Connection[Any],
    code: str,
    *,
    districts: Sequence[str] = (),
    mahallas: Sequence[str] = (),
) -> int:
    """Take districts or MFYs from a branch; returns how many were its."""
    branch = get_branch(conn, code)
    n = 0
    with conn.transaction():
        for d in districts:
            cur = conn.execute(
                "DELETE FROM branch_districts WHERE district_id = %s AND branch_id = %s",
                (_area_id(conn, "districts", d, "district"), branch.id),
            )
            n += cur.rowcount
        for m in mahallas:
            cur = conn.execute(
                "DELETE FROM branch_mahallas WHERE mahalla_id = %s AND branch_id = %s",
                (_area_id(conn, "mahallas", m, "MFY"), branch.id),
            )
            n += cur.rowcount
    return n


def _db_message(exc: psycopg.Error) -> str:
    diag = exc.diag.message_primary
    return diag if diag else str(exc).strip()


# ------------------------------------------------------------------ read-only logins
# A branch's Grafana (or any reporting tool) logs in as a read-only database role that sees
# its branches only (migration 0803): a member of suvnet_branch_reader, its branches rows of
# branch_readers. docs/branches.md, "Grafana per branch".

READER_GROUP = "suvnet_branch_reader"
_READER_RE = re.compile(r"^[a-z][a-z0-9_]{2,62}$")


def _is_reader(conn: psycopg.Connection[Any], role: str) -> bool | None:
    """None: no such role; else whether it is a branch reader (a direct member)."""
    row = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM pg_auth_members m "
        "JOIN pg_roles g ON g.oid = m.roleid AND g.rolname = %s "
        "WHERE m.member = r.oid) FROM pg_roles r WHERE r.rolname = %s",
        (READER_GROUP, role),
    ).fetchone()
    return None if row is None else bool(row[0])


def set_reader(
    conn: psycopg.Connection[Any], role: str, codes: Sequence[str], password: str | None
) -> list[Branch]:
    """Make (or change) the read-only login ``role`` that sees the branches ``codes`` only;
    ``password`` sets its password (required for a new login). A role that exists and is
    not a branch reader (the owner, the API's login, a person) is refused."""
    if not _READER_RE.match(role):
        raise BranchError(
            f"reader name {role!r}: 3-63 small Latin letters, digits or _, starting with a "
            "letter (e.g. grafana_urg)"
        )
    if not codes:
        raise BranchError("name the branch(es) the reader sees: --branch CODE")
    branches = [get_branch(conn, c) for c in codes]
    known = _is_reader(conn, role)
    if known is False:
        raise BranchError(
            f"the database role {role} exists and is not a branch reader; choose another name"
        )
    if known is None and not password:
        raise BranchError(f"a new reader needs a password (the login {role} does not exist)")
    ident = sql.Identifier(role)
    try:
        if known is None:
            conn.execute(
                sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(ident, sql.Literal(password))
            )
        elif password:
            conn.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(ident, sql.Literal(password)))
        conn.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(READER_GROUP), ident))
        conn.execute(
            sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(
                sql.Identifier(conn.info.dbname), ident
            )
        )
        conn.execute(sql.SQL("ALTER ROLE {} SET statement_timeout = '30s'").format(ident))
    except pg_errors.InsufficientPrivilege as exc:
        raise BranchError(
            f"this database login may not create or change roles ({exc.diag.message_primary}); "
            "run it as the database owner with CREATEROLE"
        ) from exc
    conn.execute("DELETE FROM branch_readers WHERE role_name = %s", (role,))
    for b in branches:
        conn.execute(
            "INSERT INTO branch_readers (role_name, branch_id) VALUES (%s, %s)", (role, b.id)
        )
    return branches


def drop_reader(conn: psycopg.Connection[Any], role: str) -> None:
    """Remove the read-only login ``role`` (only a branch reader)."""
    if not _is_reader(conn, role):
        raise BranchError(f"there is no branch reader {role} (suvnet branches readers)")
    conn.execute("DELETE FROM branch_readers WHERE role_name = %s", (role,))
    ident = sql.Identifier(role)
    conn.execute(
        sql.SQL("REVOKE CONNECT ON DATABASE {} FROM {}").format(
            sql.Identifier(conn.info.dbname), ident
        )
    )
    try:
        with conn.transaction():
            conn.execute(sql.SQL("DROP ROLE {}").format(ident))
    except pg_errors.DependentObjectsStillExist as exc:
        raise BranchError(
            f"the login {role} still has rights in another database of this server "
            f"({exc.diag.message_detail or exc}); remove them there first"
        ) from exc


def list_readers(conn: psycopg.Connection[Any]) -> list[tuple[str, list[str]]]:
    """Every branch reader and the codes of the branches it sees (none: it sees nothing)."""
    rows = conn.execute(
        """SELECT r.rolname, coalesce(array_agg(b.code ORDER BY b.code)
                                      FILTER (WHERE b.code IS NOT NULL), '{}')
           FROM pg_roles r
           JOIN pg_auth_members m ON m.member = r.oid
           JOIN pg_roles g ON g.oid = m.roleid AND g.rolname = %s
           LEFT JOIN branch_readers br ON br.role_name = r.rolname
           LEFT JOIN branches b ON b.id = br.branch_id
           GROUP BY r.rolname ORDER BY r.rolname""",
        (READER_GROUP,),
    ).fetchall()
    return [(str(r[0]), list(r[1])) for r in rows]
