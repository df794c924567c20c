"""Issue 10, part A, finding by finding: data stays inside its site, the pages, the API, the FHIR
facade and the CLI give the policy's one answer, claims are owned, and refused access is audited
without revealing whether a patient exists. Each test first does what the finding did.
"""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from engine.domain.errors import InvalidInput
from engine.services import access
from engine.services.access_policy import POLICY, ROLES, Decision, Principal, Resource, decide
from tests.api.test_queues_api import work_item_of
from tests.security.policy_world import log_in

ORIGIN = {"Origin": "http://testserver"}  # the `client` fixture's own origin


@pytest.fixture
def north_staff(callers, uow_factory):
    """An auditor, an admin and a second coordinator at `north`."""
    callers.add(uow_factory, "auditor-north", "auditor", "north")
    callers.add(uow_factory, "admin-north", "admin", "north")
    callers.add(uow_factory, "coordinator-b", "coordinator", "north")
    return callers


def _audit(client, callers, caller: str, **params):
    return client.get("/audit", params=params, headers=callers[caller])


# ---- Critical: data across sites ----------------------------------------------------------------


def test_a_north_auditor_gets_404_for_a_south_patients_audit_trail_exactly_like_an_unknown_id(
    client, north_staff, enrol
):
    south = enrol(site="south")["patient_id"]

    other_site = _audit(client, north_staff, "auditor-north", patient_id=south)
    unknown = _audit(client, north_staff, "auditor-north", patient_id="no-such-patient")

    assert other_site.status_code == unknown.status_code == 404
    assert other_site.json() | {"detail": ""} == unknown.json() | {"detail": ""}
    assert other_site.json()["detail"].replace(south, "?") == unknown.json()["detail"].replace(
        "no-such-patient", "?"
    )
    assert _audit(client, north_staff, "auditor", patient_id=south).status_code == 200


def test_a_north_auditor_listing_the_audit_log_sees_only_north(client, north_staff, enrol):
    north = enrol(site="north")["patient_id"]
    south = enrol(site="south")["patient_id"]
    client.get(f"/patients/{south}", headers=north_staff["clinician-anywhere"])
    client.get("/queues", headers=north_staff["coordinator-south"])

    rows = _audit(client, north_staff, "auditor-north", limit=1000).json()

    patients = {row["patient_id"] for row in rows if row["patient_id"]}
    assert north in patients and south not in patients
    north_actors = {
        f"user:{user['id']}" for user in north_staff.users.values() if user["site"] == "north"
    }
    assert {row["actor"] for row in rows if not row["patient_id"]} <= north_actors
    everything = _audit(client, north_staff, "auditor", limit=1000).json()
    assert south in {row["patient_id"] for row in everything}


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"role": "clinician"}, 403),  # no site: a user of every site
        ({"role": "clinician", "site": "south"}, 403),
        ({"role": "admin", "site": "north"}, 403),
        ({"role": "admin"}, 403),
        ({"role": "clinician", "site": "  "}, 422),
        ({"role": "clinician", "site": "north"}, 201),
    ],
)
def test_a_north_admin_creates_only_north_users_that_are_not_admins(
    client, north_staff, body, status
):
    response = client.post(
        "/users", json={"name": "new-user", **body}, headers=north_staff["admin-north"]
    )
    assert response.status_code == status, response.text
    if status == 201:
        assert response.json()["site"] == "north"


def test_a_blank_site_never_makes_a_user_of_every_site(uow_factory):
    with pytest.raises(InvalidInput):
        access.create_user(uow_factory(), "test", name="blank", role="clinician", site="  ")


def test_only_an_admin_without_a_site_creates_users_of_every_site_and_admins(client, north_staff):
    for name, role in (("global-clinician", "clinician"), ("second-admin", "admin")):
        response = client.post(
            "/users", json={"name": name, "role": role}, headers=north_staff["admin"]
        )
        assert response.status_code == 201, response.text
        assert response.json()["site"] is None


def test_a_north_admin_cannot_mint_or_revoke_tokens_of_global_or_south_users(client, north_staff):
    admin = north_staff["admin-north"]
    for target in ("admin", "clinician-anywhere", "coordinator-south"):
        user_id = north_staff.users[target]["id"]
        minted = client.post(f"/users/{user_id}/tokens", json={"days": 7}, headers=admin)
        assert minted.status_code == 404, (target, minted.text)
        token_id = north_staff.tokens[target]["id"]
        revoked = client.post(f"/users/{user_id}/tokens/{token_id}/revoke", headers=admin)
        assert revoked.status_code == 404, (target, revoked.text)
    unknown = client.post("/users/no-such-user/tokens", json={"days": 7}, headers=admin)
    assert unknown.status_code == 404
    assert minted.json() | {"detail": ""} == unknown.json() | {"detail": ""}


def test_a_token_a_north_admin_mints_reads_north_patients_only(client, north_staff, enrol):
    south = enrol(site="south")["patient_id"]
    north = enrol(site="north")["patient_id"]
    admin = north_staff["admin-north"]
    made = client.post(
        "/users", json={"name": "dr-new", "role": "clinician", "site": "north"}, headers=admin
    ).json()
    token = client.post(f"/users/{made['id']}/tokens", json={"days": 7}, headers=admin).json()
    headers = {"Authorization": f"Bearer {token['token']}"}
    assert client.get(f"/patients/{north}", headers=headers).status_code == 200
    assert client.get(f"/patients/{south}", headers=headers).status_code == 404


def test_a_north_admin_lists_only_north_users(client, north_staff):
    listed = client.get("/users", headers=north_staff["admin-north"]).json()
    assert listed and {user["site"] for user in listed} == {"north"}
    everyone = client.get("/users", headers=north_staff["admin"]).json()
    assert {user["site"] for user in everyone} >= {"north", "south", None}


# ---- The pages, the API and the FHIR facade give one answer -----------------------------------


def _log_in(client, callers, caller: str) -> str:
    return log_in(client, callers.tokens[caller]["token"])


def test_a_clinician_cannot_claim_or_complete_through_the_pages_as_the_api_refuses(
    client, callers, enrol, uow_factory
):
    item = work_item_of(enrol()["patient_id"], uow_factory)
    assert (
        client.post(f"/queues/items/{item['id']}/claim", headers=callers["clinician"]).status_code
        == 403
    )
    csrf = _log_in(client, callers, "clinician")
    for action in ("claim", "complete"):
        page = client.post(
            f"/ui/queues/items/{item['id']}/{action}", data={"csrf": csrf}, headers=ORIGIN
        )
        assert page.status_code == 403, action
    assert work_item_of(item["patient_id"], uow_factory)["status"] == "open"


def test_an_auditor_is_refused_the_queue_page_as_the_api_refuses_and_lands_on_the_patients(
    client, callers
):
    assert client.get("/queues", headers=callers["auditor"]).status_code == 403
    _log_in(client, callers, "auditor")
    assert client.get("/ui/queues").status_code == 403
    landing = client.get("/ui/", follow_redirects=False)
    assert landing.headers["location"] == "/ui/patients"
    assert client.get("/ui/patients").status_code == 200
    assert client.get("/ui/outbox").status_code == 200


def test_an_auditor_is_refused_the_queue_as_fhir_tasks_too(client, callers):
    response = client.get("/fhir/Task", headers=callers["auditor"])
    assert response.status_code == 403
    assert response.json()["resourceType"] == "OperationOutcome"


def test_every_surface_asks_the_policy_table_and_no_surface_keeps_role_lists():
    assert set(POLICY) >= {"queue.read", "queue.work", "queue.take_over", "audit.read"}
    for action, rule in POLICY.items():
        assert rule.roles <= set(ROLES), action
    auditor = Principal("a", "a", "auditor", "north")
    assert decide(auditor, "queue.read") is Decision.DENY
    assert decide(auditor, "audit.read", Resource("south")) is Decision.NOT_FOUND
    assert decide(Principal("m", "m", "admin", "north"), "user.create", Resource(None)) is (
        Decision.DENY
    )


# ---- Claims are owned ----------------------------------------------------------------------------


@pytest.fixture
def cli(database_url, monkeypatch):
    """The `aihp` app on the test database (settings are read once per process: re-read)."""
    from cli.main import app
    from engine.config import get_settings

    monkeypatch.setenv("AIHP_DATABASE_URL", database_url)
    get_settings.cache_clear()

    def run(*args: str) -> SimpleNamespace:
        result = CliRunner().invoke(app, list(args))
        return SimpleNamespace(exit_code=result.exit_code, output=" ".join(result.output.split()))

    yield run
    get_settings.cache_clear()


@pytest.fixture
def claimed(client, north_staff, enrol, uow_factory):
    """A north item coordinator A (`coordinator`) has claimed."""
    item = work_item_of(enrol()["patient_id"], uow_factory)
    response = client.post(f"/queues/items/{item['id']}/claim", headers=north_staff["coordinator"])
    assert response.status_code == 200
    return item


@pytest.mark.parametrize("action", ["release", "complete", "snooze", "claim"])
def test_coordinator_b_changing_a_claimed_item_sees_the_conflict_on_the_page(
    client, north_staff, claimed, action
):
    csrf = _log_in(client, north_staff, "coordinator-b")
    form = {"csrf": csrf, "days": "3", "reason": "away", "note": "done"}

    page = client.post(f"/ui/queues/items/{claimed['id']}/{action}", data=form, headers=ORIGIN)
    panel = client.post(
        f"/ui/queues/items/{claimed['id']}/{action}",
        data=form,
        headers=ORIGIN | {"HX-Request": "true"},
    )

    assert page.status_code == 409
    for answer in (page, panel):
        assert re.search(
            r'role="alert">claimed by user:[\w-]+; only they can change it', answer.text
        )


def test_coordinator_b_takes_over_through_the_page_with_a_reason(
    client, north_staff, claimed, uow_factory
):
    csrf = _log_in(client, north_staff, "coordinator-b")
    url = f"/ui/queues/items/{claimed['id']}/take-over"
    refused = client.post(url, data={"csrf": csrf, "reason": ""}, headers=ORIGIN)
    assert refused.status_code == 422 and "needs a reason" in refused.text
    taken = client.post(
        url, data={"csrf": csrf, "reason": "A is off sick"}, headers=ORIGIN, follow_redirects=False
    )
    assert taken.status_code == 303
    holder = work_item_of(claimed["patient_id"], uow_factory)["claimed_by"]
    assert holder == f"user:{north_staff.users['coordinator-b']['id']}"


def test_the_cli_refuses_to_change_another_coordinators_claim_and_takes_over_with_a_reason(
    claimed, north_staff, cli, uow_factory
):
    def token(caller: str) -> str:  # valid by the system clock the CLI reads
        user_id = north_staff.users[caller]["id"]
        return access.issue_token(uow_factory(), "test", user_id, days=3650)["token"]

    refused = cli(
        "queue", "complete", claimed["id"], "--outcome", "called_patient",
        "--token", token("coordinator-b"),
    )  # fmt: skip
    taken = cli(
        "queue",
        "take-over",
        claimed["id"],
        "--reason",
        "A on leave",
        "--token",
        token("coordinator-b"),
    )
    clinician = cli("queue", "claim", claimed["id"], "--token", token("clinician"))
    south = cli("queue", "release", claimed["id"], "--token", token("coordinator-south"))

    assert refused.exit_code == 2 and "only they can change it" in refused.output
    assert taken.exit_code == 0, taken.output
    assert clinician.exit_code == 3 and "may not" in clinician.output
    assert south.exit_code == 2 and "no coordinator item" in south.output


def test_snoozes_beyond_28_days_are_refused_on_every_surface(client, callers, claimed, cli):
    for until in ("9999-12-31T00:00:00+00:00", "2199-12-31T00:00:00+00:00"):
        api = client.post(
            f"/queues/items/{claimed['id']}/snooze",
            json={"until": until, "reason": "away"},
            headers=callers["coordinator"],
        )
        assert api.status_code == 422, api.text
    assert "28 days" in api.json()["detail"]
    csrf = _log_in(client, callers, "coordinator")
    page = client.post(
        f"/ui/queues/items/{claimed['id']}/snooze",
        data={"csrf": csrf, "days": "29", "reason": "away"},
        headers=ORIGIN,
    )
    assert page.status_code == 422 and "snooze for one of" in page.text
    command = cli(
        "queue", "snooze", claimed["id"], "--until", "2199-12-31T00:00:00Z", "--reason", "x"
    )
    assert command.exit_code == 2 and "28 days" in command.output


def test_an_offset_or_a_forged_cursor_is_a_422_not_a_500(client, callers):
    api = client.get(
        "/queues", params={"offset": "99999999999999999999"}, headers=callers["coordinator"]
    )
    assert api.status_code == 422
    forged = client.get(
        "/queues", params={"cursor": "W1tbW1tdXV1d"}, headers=callers["coordinator"]
    )
    assert forged.status_code == 422
    _log_in(client, callers, "coordinator")
    assert client.get("/ui/queues", params={"cursor": "99999999999999999999"}).status_code == 422


# ---- Refused access is audited -------------------------------------------------------------------


def _refusals(uow_factory) -> list[dict]:
    with uow_factory() as uow:
        rows = uow.audit.recent(1000)
    return [row for row in rows if row["action"] == "access_refused"]


def test_refused_access_is_audited_with_who_what_and_outcome(client, callers, uow_factory):
    client.get("/patients/whoever")  # no token
    client.get("/audit", headers=callers["lab-interface"])  # a role the policy refuses

    rows = _refusals(uow_factory)

    by_status = {row["detail"]["status"]: row for row in rows}
    assert by_status[401]["actor"] == "anonymous"
    assert by_status[401]["detail"]["route"] == "/patients/{patient_id}"
    assert by_status[403]["actor"] == f"user:{callers.users['lab-interface']['id']}"
    assert by_status[403]["detail"] | {"status": 0} == {
        "surface": "api",
        "method": "GET",
        "route": "/audit",
        "status": 0,
        "outcome": "forbidden",
    }
    assert all("whoever" not in str(row) for row in rows)


def test_an_unknown_and_another_sites_patient_leave_the_same_audit_row(
    client, callers, enrol, uow_factory
):
    south = enrol(site="south")["patient_id"]
    client.get(f"/patients/{south}", headers=callers["coordinator"])
    client.get("/patients/no-such-patient", headers=callers["coordinator"])

    other_site, unknown = _refusals(uow_factory)[:2]

    def shape(row: dict) -> dict:
        return {k: v for k, v in row.items() if k not in ("id", "at")}

    assert shape(other_site) == shape(unknown)
    assert other_site["patient_id"] is None and other_site["detail"]["outcome"] == "not-found"
    assert south not in str(other_site)


def test_refusals_on_the_fhir_facade_and_the_pages_are_audited_too(
    client, callers, enrol, uow_factory
):
    south = enrol(site="south")["patient_id"]
    client.get(f"/fhir/Patient/{south}", headers=callers["coordinator"])
    _log_in(client, callers, "lab-interface")
    client.get("/ui/queues")

    surfaces = {
        (row["detail"]["surface"], row["detail"]["outcome"]) for row in _refusals(uow_factory)
    }

    assert {("fhir", "not-found"), ("pages", "forbidden")} <= surfaces
    routes = {row["detail"]["route"] for row in _refusals(uow_factory)}
    assert {"/fhir/Patient/{patient_id}", "/ui/queues"} <= routes


def test_a_north_auditor_sees_the_refusals_of_north_users_only(client, north_staff, enrol):
    south = enrol(site="south")["patient_id"]
    client.get(f"/patients/{south}", headers=north_staff["coordinator"])
    client.get("/patients/whatever", headers=north_staff["coordinator-south"])

    rows = _audit(client, north_staff, "auditor-north", limit=1000).json()

    refused = [row for row in rows if row["action"] == "access_refused"]
    coordinator = f"user:{north_staff.users['coordinator']['id']}"
    assert refused and {row["actor"] for row in refused} == {coordinator}


def test_the_policy_allows_hides_or_refuses_what_a_north_admin_asks():
    north_admin = Principal("n", "n", "admin", "north")
    answers = {
        decide(north_admin, "token.issue", Resource("north", "clinician")),
        decide(north_admin, "token.issue", Resource(None, "admin")),
        decide(north_admin, "audit.read"),
    }
    assert answers == {Decision.ALLOW, Decision.NOT_FOUND, Decision.DENY}


def test_refused_access_from_the_cli_acting_as_a_user_is_audited(
    claimed, north_staff, cli, uow_factory
):
    def token(caller: str) -> str:
        user_id = north_staff.users[caller]["id"]
        return access.issue_token(uow_factory(), "test", user_id, days=3650)["token"]

    before = len(_refusals(uow_factory))
    cli("queue", "list", "--token", "not-a-token")  # 401
    cli("queue", "claim", claimed["id"], "--token", token("clinician"))  # 403
    cli("queue", "release", claimed["id"], "--token", token("coordinator-south"))  # 404

    rows = _refusals(uow_factory)[: len(_refusals(uow_factory)) - before]
    assert sorted(row["detail"]["status"] for row in rows) == [401, 403, 404]
    assert {row["detail"]["surface"] for row in rows} == {"cli"}
