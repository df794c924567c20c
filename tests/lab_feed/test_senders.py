"""MLLP carries no credentials: a site's laboratory is believed only from the addresses its feed
file lists (`senders`, by default this machine). Found by the security review: any machine that
could reach the published port could record results in a site's name."""

from __future__ import annotations

import dataclasses
import ipaddress
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from engine.services import access, audit_trail
from engine.services.access_policy import Forbidden, enforce
from lab_feed.listener import ListenerThread
from lab_feed.receiver import LabFeed
from lab_feed.sender import MllpConnection
from lab_feed.site_feeds import InvalidSiteFeed, SiteFeeds, load_site_feeds
from tests.lab_feed.oru_messages import ALT, Obx, oru, read_ack

TAKEN = datetime(2026, 1, 5, 9, 0, tzinfo=UTC) - timedelta(hours=3)


def _north_sending_from(feed: LabFeed, *networks: str) -> LabFeed:
    north = feed.sites.feeds["north"]
    senders = tuple(ipaddress.ip_network(n) for n in networks)
    sites = SiteFeeds({**feed.sites.feeds, "north": dataclasses.replace(north, senders=senders)})
    return dataclasses.replace(feed, sites=sites)


def test_a_message_from_an_address_not_the_labs_records_nothing_and_is_audited(
    feed, enrol_north, labs_of, uow_factory
):
    patient = enrol_north("NR-100")["patient_id"]
    elsewhere = _north_sending_from(feed, "203.0.113.0/24")

    listener = ListenerThread(elsewhere)
    with listener, MllpConnection("127.0.0.1", listener.start(), timeout=15) as connection:
        ack = read_ack(connection.send(oru("NR-100", (TAKEN, [Obx(ALT, "420", "U/L")]))))

    assert ack.code == "AR" and "not one site north's laboratory sends from" in ack.text
    assert labs_of(patient) == []
    entries = audit_trail.audit_entries(uow_factory(), "test", limit=10)
    assert [e["actor"] for e in entries if e["action"] == "access_refused"] == [
        feed.principal.actor
    ]


@pytest.mark.parametrize(
    ("peer", "code"),
    [
        ("127.0.0.1", "AA"),
        ("::1", "AA"),
        ("::ffff:127.0.0.1", "AA"),
        ("198.51.100.7", "AR"),
        ("", "AR"),
        ("not-an-address", "AR"),
    ],
)
def test_without_senders_only_this_machine_is_the_lab(feed, enrol_north, peer, code):
    enrol_north("NR-100")

    ack = read_ack(feed.answer(oru("NR-100", (TAKEN, [Obx(ALT, "420", "U/L")])), peer))

    assert ack.code == code


def test_a_lab_listed_by_network_is_taken_from_it(feed, enrol_north, labs_of):
    patient = enrol_north("NR-100")["patient_id"]
    lab = _north_sending_from(feed, "10.20.0.0/24")

    ack = read_ack(lab.answer(oru("NR-100", (TAKEN, [Obx(ALT, "420", "U/L")])), "10.20.0.9"))

    assert ack.code == "AA" and len(labs_of(patient)) == 1


@pytest.mark.parametrize("senders", ["[]", "10.0.0.1", "[10.0.0.300]", "[north-lab.example]"])
def test_a_feed_file_with_unusable_senders_is_refused_at_start(tmp_path: Path, senders):
    folder = tmp_path / "north"
    folder.mkdir()
    (folder / "feed.yaml").write_text(f"site: north\nsenders: {senders}\n")

    with pytest.raises(InvalidSiteFeed, match="senders"):
        load_site_feeds(directory=tmp_path)


def test_a_clinicians_token_cannot_stand_for_a_laboratory(feed, enrol_north, labs_of, uow_factory):
    """Found by the security review: `lab.record` let a clinician's token run the feed, so a
    laboratory's results were recorded in a person's name. The feed needs `lab.feed`."""
    patient = enrol_north("NR-100")["patient_id"]
    person = access.create_user(uow_factory(), "test", name="dr-x", role="clinician", site="north")
    token = access.issue_token(uow_factory(), "test", person["id"])["token"]
    as_clinician = dataclasses.replace(feed, principal=access.authenticate(uow_factory(), token))

    ack = read_ack(as_clinician.answer(oru("NR-100", (TAKEN, [Obx(ALT, "420", "U/L")]))))

    assert ack.code == "AR" and "may not record labs for site north" in ack.text
    assert labs_of(patient) == []
    with pytest.raises(Forbidden, match="clinician role may not record lab results from"):
        enforce(as_clinician.principal, "lab.feed")
