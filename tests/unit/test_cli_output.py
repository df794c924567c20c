"""`aihp` as a person and a script use it: tables by default and JSON with --json, users with
passwords from stdin (never echoed); and, running the real CLI in a subprocess, a demo whose
printed commands run as printed with whole ids, progress lines in a log, a reused database, and
a server that stops before any work when its port is taken."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from engine.adapters.migrate import upgrade
from engine.bootstrap import unit_of_work_factory
from engine.config import Settings, get_settings
from engine.services import sign_in
from engine.services.patients import enrol_patient, record_lab_result

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "a long enough passphrase"


def aihp(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run this checkout's `aihp` in a subprocess with output to pipes, as in a log or CI."""
    return subprocess.run(
        [sys.executable, "-m", "cli.main", *args],
        cwd=ROOT,
        env={**os.environ, "COLUMNS": "120"},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def url(tmp_path_factory) -> str:
    found = f"sqlite:///{tmp_path_factory.mktemp('cli') / 'cli.db'}"
    upgrade(found)
    return found


@pytest.fixture
def cli(url, monkeypatch):
    """The `aihp` app in this process on the test database (output as in a pipe)."""
    from cli.main import app

    monkeypatch.setenv("AIHP_DATABASE_URL", url)
    get_settings.cache_clear()

    def run(*args: str, stdin: str | None = None) -> SimpleNamespace:
        result = CliRunner().invoke(app, list(args), input=stdin)
        return SimpleNamespace(code=result.exit_code, stdout=result.stdout, stderr=result.stderr)

    yield run
    get_settings.cache_clear()


@pytest.fixture(scope="module")
def patient(url) -> str:
    uow_factory = unit_of_work_factory(Settings(database_url=url))
    enrolled = enrol_patient(
        uow_factory(),
        "test",
        site="north",
        clinician="dr-a",
        birth_date="1980-03-01",
        sex="F",
        weight_kg=62,
    )
    record_lab_result(
        uow_factory(), "test", enrolled["patient_id"], code="ALT", value=420, unit="U/L"
    )
    return enrolled["patient_id"]


def test_status_is_a_readable_summary_by_default_and_json_on_request(cli, patient):
    shown = cli("status", patient)
    assert shown.code == 0, shown.stderr
    assert f"Patient {patient}" in shown.stdout  # the whole id
    assert re.search(r"^State screening since ", shown.stdout, re.M)
    assert "Next milestones" in shown.stdout and "SCR-" in shown.stdout
    assert not shown.stdout.lstrip().startswith("{")
    scripted = cli("status", patient, "--json")
    answer = json.loads(scripted.stdout)
    assert answer["patient_id"] == patient and answer["state"] == "screening"
    assert {"next_milestones", "open_alerts", "regimen", "state_why"} <= set(answer)


def test_history_and_what_if_print_tables_and_json(cli, patient):
    history = cli("history", patient)
    assert history.code == 0, history.stderr
    assert "Labs" in history.stdout and "420 U/L" in history.stdout
    assert json.loads(cli("history", patient, "--json").stdout)["labs"][0]["code"] == "ALT"
    what_if = cli("what-if", patient, "lab", "code=ALT", "value=80", "unit=U/L")
    assert what_if.code == 0, what_if.stderr
    assert "nothing is written" in what_if.stdout and "State screening -> " in what_if.stdout
    asked = cli("what-if", patient, "lab", "code=ALT", "value=80", "unit=U/L", "--json")
    assert json.loads(asked.stdout)["allowed"] is True


def test_a_user_gets_a_password_from_stdin_that_is_never_echoed(cli, url):
    added = cli(
        "user", "add", "--name", "carol", "--role", "clinician", "--password-stdin",
        stdin=PASSWORD + "\n",
    )  # fmt: skip
    assert added.code == 0, added.stderr
    assert PASSWORD not in added.stdout + added.stderr
    assert json.loads(added.stdout)["name"] == "carol"
    settings = Settings(database_url=url)
    opened = sign_in.sign_in(
        unit_of_work_factory(settings)(), "carol", PASSWORD, sign_in.SignInPolicy()
    )
    assert opened.principal.name == "carol"
    weak = cli("user", "set-password", "carol", "--password-stdin", stdin="carol\n")
    assert weak.code == 2 and "at least 12 characters" in weak.stderr
    listed = cli("user", "list")
    assert re.search(r"carol\s+.*clinician", listed.stdout), listed.stdout
    names = [u["name"] for u in json.loads(cli("user", "list", "--json").stdout)]
    assert "carol" in names
    issued = json.loads(cli("token", "create", "--user", "carol").stdout)
    tokens = cli("token", "list", "--user", "carol").stdout
    assert issued["id"] in tokens and issued["token"] not in tokens


def _taken_port() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    return sock


def test_a_server_whose_port_is_taken_exits_before_any_work(tmp_path):
    with _taken_port() as taken:
        port = str(taken.getsockname()[1])
        database = tmp_path / "demo.db"
        demo = aihp("demo", "--port", port, "--path", str(database), "--patients", "2")
        api = aihp("api", "--port", port)
    for refused in (demo, api):
        assert refused.returncode == 2, refused.stdout + refused.stderr
        assert f"cannot listen on 127.0.0.1:{port}" in refused.stderr
        assert "Traceback" not in refused.stderr
    assert not database.exists() and not (tmp_path / "demo-mail").exists()
    assert "dispatched" not in demo.stdout


def test_the_demo_logs_progress_prints_runnable_commands_and_is_reused(tmp_path):
    database = tmp_path / "demo.db"
    seeded = aihp("demo", "--no-serve", "--patients", "3", "--months", "1", "--path", str(database))
    assert seeded.returncode == 0, seeded.stdout[-2000:] + seeded.stderr[-2000:]
    assert re.search(r"^simulating +0% ", seeded.stderr, re.M)
    assert re.search(r"^simulating 100% ", seeded.stderr, re.M)
    assert "demo only" in seeded.stdout and re.search(r"password demo-\S{12,}", seeded.stdout)
    commands = [line.strip() for line in seeded.stdout.splitlines() if "AIHP_DATABASE_URL=" in line]
    assert len(commands) == 4
    ids = re.findall(r"\b[0-9a-f]{32}\b", commands[0])
    assert ids and ids[0] in seeded.stdout.split("Try:")[0]  # the example list shows it whole
    for command in (commands[0], commands[2], commands[3]):  # status, what-if, status --json
        ran = subprocess.run(command, shell=True, capture_output=True, text=True, timeout=120)
        assert ran.returncode == 0, (command, ran.stderr[-1000:])
    assert json.loads(ran.stdout)["patient_id"] == ids[0]  # the last one asks for --json
    again = aihp("demo", "--no-serve", "--path", str(database))
    assert again.returncode == 0, again.stderr[-2000:]
    assert "reusing" in again.stdout and "simulating" not in again.stderr
    assert re.search(r"aihp status [0-9a-f]{32}$", again.stdout, re.M)


def test_numbers_in_tables_keep_their_digits_never_exponents():
    from cli.tables import cell

    assert cell(1234567.0) == "1234567"
    assert cell(26.990000000000002) == "26.99"
    assert cell(float("nan")) == "not a number"
