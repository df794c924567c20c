"""Shared dependencies as `Annotated[..., Depends(...)]` aliases: settings, clock, units of work,
the authenticated principal, the access policy's checks (one alias per action, site scoping of a
patient), If-Match and Idempotency-Key.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterator
from functools import partial
from typing import Annotated, Any

from fastapi import Depends, Header, Path, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel

from api.errors import PreconditionFailed
from engine.bootstrap import UnitOfWorkFactory
from engine.clock import Clock
from engine.config import Settings
from engine.domain.errors import InvalidInput
from engine.services import access, access_policy, fhir_reads
from engine.services.access_policy import Principal
from engine.services.admission import Admission
from engine.services.idempotency import KeyedRequest, Replay
from engine.services.unit_of_work import SqlAlchemyUnitOfWork


def reject_unknown_query(request: Request) -> None:
    """422 for a query parameter the route does not declare, or one given twice: `?stat=x` (a
    typo) must not silently answer with every patient. (No route takes a list in the query.)"""
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    if dependant is None:
        return
    known = set(_query_names(dependant))
    unknown = sorted(set(request.query_params) - known)
    if unknown:
        raise InvalidInput(f"unknown query parameter(s): {', '.join(unknown)}")
    repeated = sorted(
        k for k in set(request.query_params) if len(request.query_params.getlist(k)) > 1
    )
    if repeated:
        raise InvalidInput(f"query parameter(s) given more than once: {', '.join(repeated)}")


def _query_names(dependant: Any) -> Iterator[str]:
    yield from (param.alias for param in dependant.query_params)
    for sub in dependant.dependencies:
        yield from _query_names(sub)


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_clock(request: Request) -> Clock:
    return request.app.state.clock


def get_uow_factory(request: Request) -> UnitOfWorkFactory:
    return request.app.state.uow_factory


SettingsDep = Annotated[Settings, Depends(get_settings)]
ClockDep = Annotated[Clock, Depends(get_clock)]
UnitOfWork = Annotated[UnitOfWorkFactory, Depends(get_uow_factory)]

bearer = HTTPBearer(auto_error=False, description="A token from `aihp token create`.")


def get_principal(
    request: Request,
    uow: UnitOfWork,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    """The caller, from `Authorization: Bearer <token>`; 401 if missing, unknown or revoked."""
    principal = access.authenticate(uow(), credentials.credentials if credentials else None)
    request.state.principal_id = principal.user_id  # the access log names the caller by id
    request.state.principal = principal
    return principal


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]


def permit(action: str) -> Callable[[Principal], Principal]:
    """A dependency admitting only callers the access policy allows to take `action` (403
    otherwise). The route's action is kept on the dependency, so tests read it from the app."""

    def check(principal: CurrentPrincipal) -> Principal:
        return access_policy.enforce(principal, action)

    check.action = action  # type: ignore[attr-defined]
    return check


def route_action(dependant: Any) -> str | None:
    """The policy action a route's dependencies ask for (None: the route needs no action)."""
    for sub in dependant.dependencies:
        found = getattr(sub.call, "action", None) or route_action(sub)
        if found:
            return found
    return None


PatientReader = Annotated[Principal, Depends(permit("patient.read"))]
Enroller = Annotated[Principal, Depends(permit("patient.enrol"))]
WhatIfAsker = Annotated[Principal, Depends(permit("patient.what_if"))]
CarePlanner = Annotated[Principal, Depends(permit("care_plan.apply"))]
LabSender = Annotated[Principal, Depends(permit("lab.record"))]
EventRecorder = Annotated[Principal, Depends(permit("event.record"))]
Prescriber = Annotated[Principal, Depends(permit("order.place"))]
PathwayReader = Annotated[Principal, Depends(permit("pathway.read"))]
QueueReader = Annotated[Principal, Depends(permit("queue.read"))]
QueueWorker = Annotated[Principal, Depends(permit("queue.work"))]
QueueTakeOver = Annotated[Principal, Depends(permit("queue.take_over"))]
Acknowledger = Annotated[Principal, Depends(permit("reminder.acknowledge"))]
AuditReader = Annotated[Principal, Depends(permit("audit.read"))]
Me = Annotated[Principal, Depends(permit("user.self"))]
UserLister = Annotated[Principal, Depends(permit("user.list"))]
UserCreator = Annotated[Principal, Depends(permit("user.create"))]
TokenIssuer = Annotated[Principal, Depends(permit("token.issue"))]
TokenRevoker = Annotated[Principal, Depends(permit("token.revoke"))]
PasswordSetter = Annotated[Principal, Depends(permit("password.set"))]

PatientId = Annotated[str, Path(min_length=1, max_length=64, description="Patient id")]


_ETAG = re.compile(r'^(?:W/)?"?v?(\d{1,9})"?$')


def get_if_match(
    if_match: Annotated[
        str | None,
        Header(
            alias="If-Match",
            max_length=64,
            description='The patient version the change is based on: `"v3"` (the ETag).',
        ),
    ] = None,
) -> str | None:
    return if_match


IfMatch = Annotated[str | None, Depends(get_if_match)]


def requested_version(if_match: str | None, body_version: int | None) -> int | None:
    """The patient version the caller based the change on (`If-Match`, else the body's
    `expected_version`; None: any; 412 if both are given and differ). The use case checks it
    on the patient it loads (412). Called in the route, after the body was validated."""
    if if_match is None or if_match.strip() == "*":
        return body_version
    found = _ETAG.match(if_match.strip())
    if found is None:
        raise PreconditionFailed(f'If-Match {if_match!r} is not an ETag like "v3"')
    version = int(found.group(1))
    if body_version not in (None, version):
        raise PreconditionFailed(  # one of the two is stale, whatever the patient's version
            f"If-Match names version {version} but expected_version {body_version}; "
            "reload and retry"
        )
    return version


def get_admission(principal: CurrentPrincipal, request: Request) -> Admission:
    """The route's admission: the policy action the route asks for, checked by the use case on
    the patient it loads (a write adds the version the caller saw: `based_on`)."""
    return Admission(principal, route_action(request.scope["route"].dependant) or "patient.read")


Admitted = Annotated[Admission, Depends(get_admission)]


def etag(version: int) -> str:
    return f'"v{version}"'


class Once:
    """Runs a POST's use case in one unit of work, once per Idempotency-Key: the key and the
    answer are stored by the use case's own commit (`KeyedRequest`), and an answered key is
    replayed before any work. `admission` lets the same unit of work check the caller's access
    to the patient it loads and the version the caller saw (no look-up beforehand)."""

    def __init__(
        self, uow: UnitOfWorkFactory, principal: Principal, key: str | None, request: Request
    ):
        self.uow, self.principal, self.key, self.request = uow, principal, key, request

    def __call__(
        self,
        work: Callable[[SqlAlchemyUnitOfWork], Any],
        model: type[BaseModel],
        status_code: int = 200,
        location: Callable[[dict[str, Any]], str] | None = None,
        admission: Admission | None = None,
    ) -> JSONResponse:
        """Do `work` on the request's unit of work (or replay it), answer with its result
        validated by `model`."""
        render = partial(_rendered, model)
        keyed = None
        if self.key is not None:
            keyed = KeyedRequest(
                self.principal.actor,
                self.key,
                self.request.method,
                self.request.url.path,
                _body_hash(self.request.state.body, f"{self.principal.actor}\n{self.key}"),
                status_code,
                render,
            )
        uow = self.uow(admission=admission, keyed=keyed)
        try:
            body = render(work(uow))
        except Replay as replay:
            if admission is not None:  # the caller may have lost the patient since
                self._admit_again(admission)
            response = _answer(replay.stored.body, replay.stored.status, location)
            response.headers["Idempotent-Replayed"] = "true"
            return response
        return _answer(body, status_code, location)

    def _admit_again(self, admission: Admission) -> None:
        """The policy on the route's patient as it is now (its site), before a replay."""
        patient_id = str(self.request.path_params.get("patient_id", ""))
        site = fhir_reads.patient_sites(self.uow(), [patient_id]).get(patient_id)
        admission.admit_at(patient_id, site)


def _rendered(model: type[BaseModel], result: Any) -> Any:
    return jsonable_encoder(model.model_validate(result))


def _answer(
    body: Any, status_code: int, location: Callable[[dict[str, Any]], str] | None
) -> JSONResponse:
    headers = {}
    if isinstance(body, dict) and isinstance(body.get("version"), int):
        headers["ETag"] = etag(body["version"])
    if location is not None and isinstance(body, dict):
        headers["Location"] = location(body)
    return JSONResponse(body, status_code=status_code, headers=headers)


#: Body fields that are secrets: the request's hash, kept with its Idempotency-Key, holds one
#: only through a slow derivation salted by the principal and the key, so that a reader of the
#: database cannot test guesses of a user's password against a fast hash.
SECRET_FIELDS = frozenset({"password"})


def _body_hash(raw: bytes, salt: str) -> str:
    try:
        body = json.loads(raw)
    except ValueError:
        return hashlib.sha256(raw).hexdigest()
    if isinstance(body, dict):
        body = {
            name: _slow_digest(value, salt)
            if name in SECRET_FIELDS and isinstance(value, str)
            else value
            for name, value in body.items()
        }
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(canonical).hexdigest()


def _slow_digest(secret: str, salt: str) -> str:
    key = secret.encode("utf-8", "surrogatepass")
    return hashlib.scrypt(key, salt=salt.encode("utf-8", "surrogatepass"), n=2**14, r=8, p=1).hex()


async def get_once(
    request: Request,
    uow: UnitOfWork,
    principal: CurrentPrincipal,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            min_length=1,
            max_length=128,
            description="The same key again replays the first answer; the work is done once.",
        ),
    ] = None,
) -> Once:
    request.state.body = await request.body()
    return Once(uow, principal, idempotency_key, request)


Idempotent = Annotated[Once, Depends(get_once)]
