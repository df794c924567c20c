"""`aihp hl7 send` and `aihp hl7 listen`: exit codes and messages (one run as a real process,
the others through typer's runner with the settings read from a fresh environment)."""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app
from engine.config import get_settings
from engine.services import access

EXAMPLE = Path(__file__).resolve().parents[2] / "lab_feed" / "examples" / "oru-r01.hl7"


@pytest.fixture
def aihp(monkeypatch, database_url):
    """Run `aihp hl7 ...` in this process with AIHP_* settings given as keywords."""

    def run(*args: str, **env: str):
        for name in [k for k in os.environ if k.startswith("AIHP_")]:
            monkeypatch.delenv(name)
        for name, value in {"AIHP_DATABASE_URL": database_url, **env}.items():
            monkeypatch.setenv(name, value)
        get_settings.cache_clear()
        try:
            # in a thread of its own: the browser tests' Playwright keeps an event loop running
            # in this one, and `aihp hl7 listen` starts its own with asyncio.run
            with ThreadPoolExecutor(1) as thread:
                return thread.submit(CliRunner().invoke, app, ["hl7", *args]).result()
        finally:
            get_settings.cache_clear()

    return run


def test_send_as_a_real_process_prints_each_ack_and_exits_0(port, enrol_north, labs_of, tmp_path):
    patient = enrol_north("NR-0001")["patient_id"]
    twice = tmp_path / "twice.hl7"
    twice.write_text(EXAMPLE.read_text() * 2)  # the same message resent on one connection

    sent = subprocess.run(
        [sys.executable, "-m", "cli.main", "hl7", "send", str(twice), "--port", str(port)],
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert sent.returncode == 0, sent.stderr
    assert "MSA|AA|MSG00001|4 results recorded" in sent.stdout
    assert "MSA|AA|MSG00001|already recorded" in sent.stdout
    assert len(labs_of(patient)) == 4


def test_send_exits_3_when_a_message_is_refused_and_2_when_nobody_listens(aihp, port):
    refused = aihp("send", str(EXAMPLE), "--port", str(port))  # NR-0001 is nobody here
    with_nobody = aihp("send", str(EXAMPLE), "--port", "1")

    assert refused.exit_code == 3
    assert "MSA|AE|MSG00001|nothing recorded" in refused.stdout
    assert with_nobody.exit_code == 2


def test_listen_exits_non_zero_with_a_reason(aihp, port, uow_factory):
    lab = access.create_user(uow_factory(), "test", name="feed", role="lab-interface")
    auditor = access.create_user(uow_factory(), "test", name="audit", role="auditor")
    token = access.issue_token(uow_factory(), "test", lab["id"], days=3650)["token"]
    not_a_lab = access.issue_token(uow_factory(), "test", auditor["id"], days=3650)["token"]

    taken = aihp("listen", "--port", str(port), AIHP_HL7_TOKEN=token)
    no_token = aihp("listen", "--port", "0")
    bad_token = aihp("listen", "--port", "0", AIHP_HL7_TOKEN="nope")
    wrong_role = aihp("listen", "--port", "0", AIHP_HL7_TOKEN=not_a_lab)

    assert taken.exit_code == 1 and "cannot listen on 127.0.0.1" in taken.output
    assert no_token.exit_code == 2 and "AIHP_HL7_TOKEN" in no_token.output
    assert bad_token.exit_code == 2 and "unknown, expired or revoked" in bad_token.output
    assert wrong_role.exit_code == 2 and "may not record lab results" in wrong_role.output
