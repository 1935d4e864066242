"""A customer's cabinet login: the one-time code the office issues (from the API or the
account card) and the first password the customer sets with it (from the API or the
cabinet's activation page), each with its audit row. The logins themselves are
:mod:`api.users`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import Request
from psycopg import AsyncConnection

from api import users
from api.audit import write_audit
from api.deps import client_ip, get_state
from api.security import Principal, Role


async def issue_code(
    conn: AsyncConnection[Any], request: Request, who: Principal, account_no: str
) -> tuple[str, datetime]:
    """A new one-time code for the account (an earlier unused one stops working) and when it
    expires; the code itself is not audited, only that it was issued."""
    st = get_state(request)
    number = account_no.strip()
    code, expires = await users.issue_customer_code(conn, number, who.user_id, st.clock())
    await write_audit(
        conn,
        request,
        who,
        action="issue_code",
        entity="customer",
        entity_id=number,
        after={"expires_at": expires},
    )
    return code, expires


async def activate(
    conn: AsyncConnection[Any], request: Request, *, account_no: str, code: str, password: str
) -> users.TokenPair:
    """Set the customer's password with the code (rate-limited like a login), audit it and
    open a session: the new token pair. NotAuthenticatedError for a wrong or expired code,
    TooManyAttemptsError, InvalidError for a refused password."""
    st = get_state(request)
    user = await users.activate_customer(
        conn,
        account_no=account_no,
        code=code,
        password=password,
        ip=client_ip(request),
        now=st.clock(),
        policy=st.rate_limit,
    )
    p = Principal(user["id"], user["username"], Role.CUSTOMER, user["account_no"])
    await write_audit(
        conn, request, p, action="set_password", entity="customer", entity_id=user["account_no"]
    )
    return await users.issue_tokens(conn, p, st.secret, st.clock())
