"""Users and their bearer tokens (admins, within their site), and `GET /users/me` for every
caller. A site admin manages only its own site's users (not admins); another site's user is a
404, exactly like an unknown id; only an admin without a site creates global users or admins.
A user created with a password can log in to the pages (engine/services/sign_in.py)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path

from api import schemas
from api.deps import (
    Idempotent,
    Me,
    PasswordSetter,
    SettingsDep,
    TokenIssuer,
    TokenRevoker,
    UnitOfWork,
    UserCreator,
    UserLister,
    reject_unknown_query,
)
from api.errors import problems
from engine.services import access, sign_in
from engine.services.sign_in import SignInPolicy

router = APIRouter(prefix="/users", tags=["users"], dependencies=[Depends(reject_unknown_query)])
Id = Annotated[str, Path(min_length=1, max_length=64)]


@router.get("/me", response_model=schemas.Me, responses=problems(401), summary="The caller")
def me(principal: Me) -> dict:
    return {
        "user_id": principal.user_id,
        "name": principal.name,
        "role": principal.role,
        "site": principal.site,
    }


@router.get(
    "",
    response_model=list[schemas.User],
    responses=problems(401, 403),
    summary="List users (a site admin: its site's)",
)
def list_users(principal: UserLister, uow: UnitOfWork) -> list[dict]:
    return access.list_users(uow(), by=principal)


@router.post(
    "",
    status_code=201,
    response_model=schemas.User,
    responses=problems(401, 403, 409, 422),
    summary="Create a user with one role (coordinators need a site; a site admin: its site only)",
)
def create_user(
    body: schemas.UserRequest,
    principal: UserCreator,
    uow: UnitOfWork,
    once: Idempotent,
    settings: SettingsDep,
):
    """With `password`, the user can log in to the pages (the password policy applies: 422);
    the answer never carries it."""
    password = body.password.get_secret_value() if body.password is not None else None
    return once(
        lambda uow: access.create_user(
            uow,
            principal.actor,
            name=body.name,
            role=body.role,
            site=body.site,
            by=principal,
            password=password,
            password_policy=SignInPolicy.from_settings(settings),
        ),
        schemas.User,
        201,
    )


@router.post(
    "/{user_id}/tokens",
    status_code=201,
    response_model=schemas.IssuedToken,
    responses=problems(401, 403, 404, 422),
    summary="Issue a bearer token (shown once; not replayed by Idempotency-Key)",
)
def issue_token(
    body: schemas.TokenRequest, principal: TokenIssuer, uow: UnitOfWork, user_id: Id
) -> dict:
    return access.issue_token(uow(), principal.actor, user_id, days=body.days, by=principal)


@router.post(
    "/{user_id}/password",
    response_model=schemas.PasswordSet,
    responses=problems(401, 403, 404, 422),
    summary="Set a user's password (their sessions end, a lockout of their name is lifted)",
)
def set_password(
    body: schemas.PasswordRequest,
    principal: PasswordSetter,
    uow: UnitOfWork,
    settings: SettingsDep,
    user_id: Id,
) -> dict:
    return sign_in.set_password(
        uow(),
        principal.actor,
        user_id,
        body.password.get_secret_value(),
        SignInPolicy.from_settings(settings),
        by=principal,
    )


@router.post(
    "/{user_id}/tokens/{token_id}/revoke",
    response_model=schemas.TokenInfo,
    responses=problems(401, 403, 404),
    summary="Revoke a token now",
)
def revoke_token(principal: TokenRevoker, uow: UnitOfWork, user_id: Id, token_id: Id) -> dict:
    return access.revoke_token(uow(), principal.actor, token_id, user_id=user_id, by=principal)
