"""One access policy: may this caller take this action on a resource of this site?

`decide(principal, action, resource)` answers ALLOW, DENY (403: the role may not, or the target
lies outside the caller's remit) or NOT_FOUND (404: the resource belongs to another site, and
is answered exactly like an unknown id, so its existence is not disclosed). `POLICY`, the table
beside it, lists for every action the roles that may take it. The native API, the FHIR facade,
the pages and the CLI acting as a user all ask `decide` (through `enforce`); the README's role
table is tested against `POLICY`.

Site scope applies to every role, auditors and admins included: a caller with a site acts only
on that site's patients, work items, audit rows and users; a caller without a site (a global
user) acts everywhere. Users are resources too: a site admin manages its own site's users, but
only a global admin manages admins or creates users of every site.

Pure: no database, no framework; the services and entry points look up the resource's site.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from engine.domain.errors import DomainError

ROLES = ("clinician", "coordinator", "lab-interface", "auditor", "admin", "ehr")
#: Users with these roles are managed by global admins only.
GLOBAL_ONLY_ROLES = frozenset({"admin"})


class Decision(StrEnum):
    ALLOW = "allow"
    DENY = "deny"
    NOT_FOUND = "not_found"


class Forbidden(DomainError):
    """The caller may not take this action (its role, or a target outside its site)."""

    code = "forbidden"


@dataclass(frozen=True)
class Principal:
    """The authenticated caller: one user with one role, scoped to a site when `site` is set."""

    user_id: str
    name: str
    role: str
    site: str | None = None

    @property
    def actor(self) -> str:
        """How the audit log names this caller."""
        return f"user:{self.user_id}"


@dataclass(frozen=True)
class Rule:
    """Who may take an action, and what it is in clinic words (for messages and the README)."""

    roles: frozenset[str]
    what: str
    creates: bool = False  # the resource is being created: another site is refused, not hidden


@dataclass(frozen=True)
class Resource:
    """What an action touches: the site it belongs to (None: every site), and for a user being
    created or managed, that user's role."""

    site: str | None
    role: str | None = None


def _rule(roles: str, what: str, creates: bool = False) -> Rule:
    return Rule(frozenset(roles.split()), what, creates)


#: The policy table: action -> who may take it. The README's role table is tested against it.
POLICY: dict[str, Rule] = {
    "patient.enrol": _rule("clinician", "enrol a patient", creates=True),
    "patient.read": _rule("clinician coordinator auditor", "read a patient's status and history"),
    "patient.what_if": _rule("clinician", "ask what an input would do (nothing is written)"),
    "care_plan.apply": _rule("clinician", "apply the pathway to a patient (FHIR $apply)"),
    "lab.record": _rule("clinician lab-interface", "record lab results"),
    "lab.feed": _rule("lab-interface", "record lab results from a laboratory's HL7 feed"),
    "event.record": _rule("clinician", "record clinical events"),
    "order.place": _rule("clinician", "order medication"),
    "order.review": _rule("ehr", "check an EHR's draft orders against the pathway (CDS Hooks)"),
    "pathway.read": _rule("clinician coordinator auditor admin", "read the pathway"),
    "queue.read": _rule("clinician coordinator", "see the coordinator queues"),
    "queue.work": _rule("coordinator", "claim, release, complete or snooze work items"),
    "queue.take_over": _rule("coordinator", "take over another coordinator's claimed item"),
    "reminder.acknowledge": _rule("clinician coordinator", "acknowledge a reminder"),
    "outbox.read": _rule("clinician coordinator auditor", "see the reminder outbox"),
    "outbox.resend": _rule("coordinator", "re-send a failed reminder email"),
    "audit.read": _rule("auditor", "read the audit log"),
    "user.self": _rule(" ".join(ROLES), "see who they are"),
    "user.list": _rule("admin", "list users"),
    "user.create": _rule("admin", "create users", creates=True),
    "token.issue": _rule("admin", "issue tokens"),
    "token.revoke": _rule("admin", "revoke tokens"),
    "password.set": _rule("admin", "set a user's password (their sessions end)"),
}


def in_scope(site_scope: str | None, site: str | None) -> bool:
    """Whether a caller scoped to `site_scope` (None: every site) may see a resource at `site`."""
    return site_scope is None or site == site_scope


def decide(principal: Principal, action: str, resource: Resource | None = None) -> Decision:
    """The policy's answer for `principal` taking `action` on `resource` (None: no single
    resource, e.g. a listing, which the caller's site then filters)."""
    return _verdict(principal, action, resource)[0]


def enforce(
    principal: Principal,
    action: str,
    resource: Resource | None = None,
    *,
    missing: Callable[[], DomainError] | None = None,
) -> Principal:
    """`principal` if allowed; Forbidden if denied; `missing()` (an unknown-resource error) if
    the resource is not the caller's to see."""
    decision, reason = _verdict(principal, action, resource)
    if decision is Decision.NOT_FOUND and missing is not None:
        raise missing()
    if decision is not Decision.ALLOW:
        raise Forbidden(reason)
    return principal


@dataclass(frozen=True)
class ListingScope:
    """The site a listing may show (`site`; None: every site). `empty` when the caller asked
    for a site outside their remit: the answer is an empty list, as for a site with nobody."""

    site: str | None
    empty: bool = False


def listing_scope(principal: Principal, action: str, requested: str | None = None) -> ListingScope:
    """Where a listing for `action` may look: the caller's own site for a site-scoped caller
    (whatever they asked for), else the site asked for. Forbidden if the role may not."""
    enforce(principal, action)
    if principal.site is None:
        return ListingScope(requested)
    return ListingScope(principal.site, empty=bool(requested) and requested != principal.site)


#: Roles whose queue listing shows their own patients' work only.
OWN_PATIENTS_ONLY = frozenset({"clinician"})


def clinician_scope(principal: Principal) -> str | None:
    """The clinician whose patients' work items a caller may list: a clinician sees their own
    patients' (their user name is the clinician id the patients are registered with); other
    roles every clinician's (None)."""
    return principal.name if principal.role in OWN_PATIENTS_ONLY else None


def queue_scope(principal: Principal) -> dict[str, str | None]:
    """What a caller's queue listings and item changes reach, as the queue service's keywords:
    their site's items (`site_scope`) and, for a clinician, their own patients' only
    (`clinician_scope`). Every surface passes both, so none can forget one."""
    return {"site_scope": principal.site, "clinician_scope": clinician_scope(principal)}


def allowed_roles(action: str) -> frozenset[str]:
    """The roles that may take `action` (at their own site)."""
    return POLICY[action].roles


def _verdict(principal: Principal, action: str, resource: Resource | None) -> tuple[Decision, str]:
    rule = POLICY[action]
    if principal.role not in rule.roles:
        return Decision.DENY, f"the {principal.role} role may not {rule.what}"
    if resource is None or principal.site is None:
        return Decision.ALLOW, ""
    if not in_scope(principal.site, resource.site):
        if rule.creates:
            return Decision.DENY, f"you can {rule.what} at site {principal.site} only"
        return Decision.NOT_FOUND, "not found"
    if resource.role in GLOBAL_ONLY_ROLES:
        return Decision.DENY, f"only an admin without a site manages {resource.role} users"
    return Decision.ALLOW, ""
