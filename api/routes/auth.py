"""Auth endpoints (OAuth2 password flow, refresh, logout), users, customer codes, audit log."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.security import OAuth2PasswordBearer, OAuth2PasswordRequestForm
from pydantic import BaseModel, Field

from api import users
from api.audit import list_audit, write_audit
from api.deps import Conn, Paging, State, client_ip, require
from api.security import (
    ISSUE_CUSTOMER_CODES,
    MANAGE_USERS,
    READ_AUDIT,
    Principal,
    Role,
)
from api.services import customer_logins

# Declared so that the OpenAPI page offers the "Authorize" button for the password flow.
oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/token", auto_error=False)

router = APIRouter(prefix="/api/v1", tags=["auth"])


class TokenOut(BaseModel):
    access_token: str
    refresh_token: str
    token_type: str = "bearer"  # noqa: S105 - the OAuth2 token type, not a secret
    role: str
    username: str


class RefreshIn(BaseModel):
    refresh_token: str = Field(min_length=1, max_length=4096)


class UserIn(BaseModel):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=8, max_length=256)
    role: Role
    full_name: str = Field("", max_length=200)
    account_no: str | None = Field(None, min_length=1, max_length=32)
    branch: str | None = Field(
        None, min_length=2, max_length=8, description="staff: the code of their branch"
    )
    regional: bool | None = Field(None, description="staff: the regional office's user")


class UserPatch(BaseModel):
    full_name: str | None = Field(None, max_length=200)
    role: Role | None = None
    active: bool | None = None
    password: str | None = Field(None, min_length=8, max_length=256)
    branch: str | None = Field(
        None,
        min_length=2,
        max_length=8,
        description="move a staff user to this branch (a regional administrator only)",
    )
    regional: bool | None = Field(
        None, description="true: move a staff user to the region (a regional administrator only)"
    )


class UserOut(BaseModel):
    id: int
    username: str
    full_name: str
    role: Role
    account_no: str | None
    active: bool
    created_at: datetime


class CodeOut(BaseModel):
    account_no: str
    code: str
    expires_at: datetime


class ActivateIn(BaseModel):
    account_no: str = Field(min_length=1, max_length=32)
    code: str = Field(min_length=1, max_length=32)
    password: str = Field(min_length=8, max_length=256)


@router.post("/auth/token", response_model=TokenOut, summary="Log in (OAuth2 password flow)")
async def token(
    request: Request,
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
    conn: Conn,
    st: State,
) -> dict[str, Any]:
    """Exchange a user name and password for an access token (15 minutes) and a refresh
    token (14 days). Customers use their account number as the user name. Five wrong
    passwords for one name from one address within 15 minutes block that name from that
    address for the rest of the window; 30 failures block the address; 100 failures for one
    name from anywhere block it except from addresses where that user logged in before."""
    pair = await users.login(
        conn,
        username=form.username,
        password=form.password,
        ip=client_ip(request),
        secret=st.secret,
        now=st.clock(),
        policy=st.rate_limit,
    )
    return pair.as_json()


@router.post("/auth/refresh", response_model=TokenOut, summary="New tokens for a refresh token")
async def refresh_tokens(body: RefreshIn, conn: Conn, st: State) -> dict[str, Any]:
    """Each refresh token works once: it is revoked and a new pair is returned. A refresh
    token used a second time (more than 20 seconds after its first use) ends its whole
    session, the newest refresh token included: someone else holds a copy."""
    pair = await users.refresh(conn, body.refresh_token, st.secret, st.clock())
    return pair.as_json()


@router.post("/auth/logout", status_code=204, summary="Revoke a refresh token")
async def logout(body: RefreshIn, conn: Conn, st: State) -> None:
    """Ends the session of this refresh token, and every access token of the user stops
    working (other sessions get a new one from their own refresh token)."""
    await users.revoke(conn, body.refresh_token, st.secret, st.clock())


@router.get("/auth/me", response_model=UserOut, summary="The logged-in user")
async def me(*, who: Annotated[Principal, Depends(require(*Role))], conn: Conn) -> dict[str, Any]:
    return await users.get_user(conn, who.user_id)


@router.get("/users", tags=["users"], summary="List users")
async def list_users(
    *,
    who: Annotated[Principal, Depends(require(MANAGE_USERS))],
    conn: Conn,
    pg: Paging,
    role: Role | None = None,
    q: Annotated[str | None, Query(max_length=64, description="part of the name")] = None,
) -> dict[str, Any]:
    return await users.list_users(conn, pg, role=role, q=q)


@router.post("/users", tags=["users"], status_code=201, response_model=UserOut)
async def add_user(
    *,
    request: Request,
    body: UserIn,
    who: Annotated[Principal, Depends(require(MANAGE_USERS))],
    conn: Conn,
) -> dict[str, Any]:
    row = await users.create_user(
        conn,
        username=body.username,
        password=body.password,
        role=body.role,
        full_name=body.full_name,
        account_no=body.account_no,
        branch_id=None if body.branch is None else await users.branch_id_of(conn, body.branch),
        regional=body.regional,
    )
    await write_audit(
        conn,
        request,
        who,
        action="create",
        entity="user",
        entity_id=row["id"],
        before=None,
        after=row,
    )
    return row


@router.patch("/users/{user_id}", tags=["users"], response_model=UserOut)
async def change_user(
    *,
    request: Request,
    user_id: Annotated[int, Path(ge=1, le=2**62)],
    body: UserPatch,
    who: Annotated[Principal, Depends(require(MANAGE_USERS))],
    conn: Conn,
    st: State,
) -> dict[str, Any]:
    """A new role, disabling and a new password take effect at once: the user's current
    access tokens are refused from the next request on. Disabling and a new password also
    revoke the user's refresh tokens (logged out everywhere). A new branch (or ``regional``)
    moves a staff user; only a regional administrator may (docs/branches.md)."""
    if body.branch is not None or body.regional:
        await users.require_regional(conn)
        branch_id = None if body.branch is None else await users.branch_id_of(conn, body.branch)
        moved_from, moved_to = await users.set_scope(
            conn, user_id, branch_id=branch_id, regional=bool(body.regional)
        )
        await write_audit(
            conn,
            request,
            who,
            action="update",
            entity="user",
            entity_id=user_id,
            before=moved_from,
            after=moved_to,
        )
    before, after = await users.update_user(
        conn,
        user_id,
        now=st.clock(),
        full_name=body.full_name,
        role=body.role,
        active=body.active,
        password=body.password,
    )
    if after is before:
        return before
    audit_after = dict(after or {})
    if body.password is not None:
        audit_after["password"] = "changed"  # noqa: S105 - never the password itself
    await write_audit(
        conn,
        request,
        who,
        action="update",
        entity="user",
        entity_id=user_id,
        before=before,
        after=audit_after,
    )
    return after


@router.post(
    "/customers/{account_no}/code",
    tags=["users"],
    status_code=201,
    response_model=CodeOut,
    summary="Issue a one-time code for a customer's first password",
)
async def customer_code(
    *,
    request: Request,
    account_no: str,
    who: Annotated[Principal, Depends(require(ISSUE_CUSTOMER_CODES))],
    conn: Conn,
) -> dict[str, Any]:
    """The code is shown once (give it to the customer on paper); it works for 7 days and
    replaces any earlier unused code of the account."""
    code, expires = await customer_logins.issue_code(conn, request, who, account_no)
    return {"account_no": account_no.strip(), "code": code, "expires_at": expires}


@router.post(
    "/customers/activate",
    tags=["users"],
    response_model=TokenOut,
    summary="Set a customer's password with the one-time code",
)
async def activate(*, request: Request, body: ActivateIn, conn: Conn) -> dict[str, Any]:
    pair = await customer_logins.activate(
        conn, request, account_no=body.account_no, code=body.code, password=body.password
    )
    return pair.as_json()


@router.get("/audit", tags=["audit"], summary="The audit log (newest first)")
async def audit_log(
    *,
    who: Annotated[Principal, Depends(require(READ_AUDIT))],
    conn: Conn,
    pg: Paging,
    entity: Annotated[str | None, Query(max_length=64)] = None,
    entity_id: Annotated[str | None, Query(max_length=64)] = None,
    actor: Annotated[str | None, Query(max_length=64)] = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> dict[str, Any]:
    return await list_audit(
        conn, pg, entity=entity, entity_id=entity_id, actor=actor, since=since, until=until
    )
