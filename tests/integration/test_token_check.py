"""Bearer tokens checked from memory for a few seconds: no statement per request, and still
refused at once when revoked in this process or expired by the clock."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import event

from engine.services import access


@pytest.fixture
def token(uow_factory):
    access.forget_tokens()
    user = access.create_user(uow_factory(), "test", name="dr-token", role="clinician")
    return access.issue_token(uow_factory(), "test", user["id"], days=1)


def _statements(uow_factory, call) -> int:
    uow = uow_factory()
    engine = uow._sessions.kw["bind"]
    seen: list[str] = []

    def count(*args) -> None:
        seen.append(args[2])

    event.listen(engine, "before_cursor_execute", count)
    try:
        call(uow)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    return len(seen)


def test_a_token_checked_a_moment_ago_costs_no_statement(uow_factory, token):
    first = _statements(uow_factory, lambda uow: access.authenticate(uow, token["token"]))
    again = _statements(uow_factory, lambda uow: access.authenticate(uow, token["token"]))

    assert first >= 1
    assert again == 0


def test_a_revoked_token_is_refused_at_once_although_it_was_just_checked(uow_factory, token):
    access.authenticate(uow_factory(), token["token"])

    access.revoke_token(uow_factory(), "test", token["id"])

    with pytest.raises(access.NotAuthenticated):
        access.authenticate(uow_factory(), token["token"])


def test_a_remembered_token_still_expires_by_the_clock(uow_factory, clock, token):
    access.authenticate(uow_factory(), token["token"])

    clock.advance(timedelta(days=1, seconds=1))

    with pytest.raises(access.NotAuthenticated):
        access.authenticate(uow_factory(), token["token"])
