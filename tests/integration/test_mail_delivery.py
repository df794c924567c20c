"""Mail transport against a real SMTP server (aiosmtpd) and a real Maildir."""

from __future__ import annotations

import json
import mailbox
import os
import subprocess
import sys
import time
from email.message import EmailMessage
from pathlib import Path

import pytest

from engine.adapters.mail import (
    DeliveryError,
    LocalMailbox,
    SmtpMailer,
    mailer_from_settings,
)
from engine.config import Settings
from tests.support.servers import free_port
from tests.support.smtp_sink import SmtpSink

REPO = Path(__file__).resolve().parents[2]


def reminder_email(reminder_id: str, to: str = "ann@example.org") -> EmailMessage:
    message = EmailMessage()
    message["From"] = "reminders@aih-pathways.local"
    message["To"] = to
    message["Subject"] = "A blood test is due this week"
    message["Message-ID"] = f"<reminder-{reminder_id}@aih-pathways.local>"
    message.set_content("Dear Ann,\n\nA blood test is due this week.\n")
    message.add_alternative("<p>Dear Ann,</p><p>A blood test is due this week.</p>", subtype="html")
    return message


@pytest.fixture
def mailer(smtp_sink: SmtpSink):
    mailer = SmtpMailer(smtp_sink.host, smtp_sink.port, timeout=5.0)
    yield mailer
    mailer.close()


def test_smtp_mailer_delivers_each_reminder_once_over_one_connection(mailer, smtp_sink):
    for n in range(5):
        mailer.send(reminder_email(f"r{n}"))
    assert smtp_sink.wait_for(5, timeout=5)
    counts = smtp_sink.count_by_message_id()
    assert counts == {f"<reminder-r{n}@aih-pathways.local>": 1 for n in range(5)}
    received = smtp_sink.messages[0]
    assert received["Subject"] == "A blood test is due this week"
    assert received.get_body(("plain",)).get_content().startswith("Dear Ann,")


def test_a_451_is_a_transient_failure_and_the_retry_is_delivered(mailer, smtp_sink):
    smtp_sink.fail_next(1)
    with pytest.raises(DeliveryError) as caught:
        mailer.send(reminder_email("r-451"))
    assert caught.value.permanent is False
    assert "451" in caught.value.reason
    assert smtp_sink.messages == []

    mailer.send(reminder_email("r-451"))
    assert smtp_sink.wait_for(1, timeout=5)
    assert smtp_sink.count_by_message_id() == {"<reminder-r-451@aih-pathways.local>": 1}


def test_after_the_server_restarts_the_next_send_reconnects_and_delivers(mailer, smtp_sink):
    mailer.send(reminder_email("before-restart"))
    smtp_sink.stop()
    smtp_sink.start()
    mailer.send(reminder_email("after-restart"))
    assert smtp_sink.wait_for(2, timeout=5)
    assert smtp_sink.count_by_message_id() == {
        "<reminder-before-restart@aih-pathways.local>": 1,
        "<reminder-after-restart@aih-pathways.local>": 1,
    }


def test_a_refused_recipient_is_a_permanent_failure(mailer, smtp_sink):
    smtp_sink.refuse(r"^nobody@")
    with pytest.raises(DeliveryError) as caught:
        mailer.send(reminder_email("r-550", to="nobody@example.org"))
    assert caught.value.permanent is True
    assert "550" in caught.value.reason
    assert "nobody@example.org" not in caught.value.reason  # the address stays out of audit lines

    mailer.send(reminder_email("r-ok", to="ann@example.org"))
    assert smtp_sink.wait_for(1, timeout=5)
    assert smtp_sink.count_by_message_id() == {"<reminder-r-ok@aih-pathways.local>": 1}


def test_a_5xx_reply_to_the_message_is_permanent(mailer, smtp_sink):
    smtp_sink.fail_next(1, code=554)
    with pytest.raises(DeliveryError) as caught:
        mailer.send(reminder_email("r-554"))
    assert caught.value.permanent is True


def test_nothing_listening_is_a_transient_failure():
    mailer = SmtpMailer("127.0.0.1", free_port(), timeout=2.0)
    with pytest.raises(DeliveryError) as caught:
        mailer.send(reminder_email("r-refused"))
    assert caught.value.permanent is False
    assert "Connection" in caught.value.reason
    mailer.close()


def test_server_gone_for_good_after_a_send_is_a_transient_failure(mailer, smtp_sink):
    mailer.send(reminder_email("r-first"))
    smtp_sink.stop()
    with pytest.raises(DeliveryError) as caught:
        mailer.send(reminder_email("r-second"))
    assert caught.value.permanent is False


def test_the_local_mailbox_writes_a_message_a_person_can_read(tmp_path):
    local = LocalMailbox(tmp_path / "mail")
    local.send(reminder_email("r-local"))
    box = mailbox.Maildir(tmp_path / "mail", create=False)
    messages = list(box)
    assert len(messages) == 1
    assert messages[0]["Message-ID"] == "<reminder-r-local@aih-pathways.local>"
    assert messages[0]["Subject"] == "A blood test is due this week"
    assert len(os.listdir(tmp_path / "mail" / "new")) == 1
    assert os.listdir(tmp_path / "mail" / "tmp") == []


def test_the_local_mailbox_keeps_one_copy_of_a_reminder_delivered_twice(tmp_path):
    local = LocalMailbox(tmp_path / "mail")
    local.send(reminder_email("r-twice"))
    local.send(reminder_email("r-twice"))
    local.send(reminder_email("r-other"))
    ids = sorted(m["Message-ID"] for m in mailbox.Maildir(tmp_path / "mail", create=False))
    assert ids == [
        "<reminder-r-other@aih-pathways.local>",
        "<reminder-r-twice@aih-pathways.local>",
    ]


def test_the_local_mailbox_still_one_copy_after_the_reader_has_seen_it(tmp_path):
    local = LocalMailbox(tmp_path / "mail")
    local.send(reminder_email("r-seen"))
    box = mailbox.Maildir(tmp_path / "mail", create=False)
    key = next(iter(box.keys()))
    seen = box[key]
    seen.set_subdir("cur")
    seen.add_flag("S")
    box[key] = seen
    assert os.listdir(tmp_path / "mail" / "new") == []

    local.send(reminder_email("r-seen"))
    assert len(mailbox.Maildir(tmp_path / "mail", create=False)) == 1


def test_settings_without_smtp_host_use_the_local_mailbox(tmp_path):
    mailer = mailer_from_settings(Settings(smtp_host=None, mail_dir=tmp_path / "box"))
    assert isinstance(mailer, LocalMailbox)
    assert (tmp_path / "box" / "new").is_dir()


def test_the_mail_dir_is_read_from_its_former_variable_too(monkeypatch, tmp_path):
    """Deployed configurations still name AIHP_OUTBOX_DIR; AIHP_MAIL_DIR wins when both are set."""
    monkeypatch.setenv("AIHP_OUTBOX_DIR", str(tmp_path / "former"))
    assert Settings(_env_file=None).mail_dir == tmp_path / "former"
    monkeypatch.setenv("AIHP_MAIL_DIR", str(tmp_path / "mail"))
    assert Settings(_env_file=None).mail_dir == tmp_path / "mail"
    assert Settings(_env_file=None, mail_dir=tmp_path / "given").mail_dir == tmp_path / "given"


def test_settings_with_smtp_host_use_smtp(smtp_sink):
    settings = Settings(smtp_host=smtp_sink.host, smtp_port=smtp_sink.port)
    mailer = mailer_from_settings(settings)
    assert isinstance(mailer, SmtpMailer)
    mailer.send(reminder_email("r-settings"))
    mailer.close()
    assert smtp_sink.count_by_message_id() == {"<reminder-r-settings@aih-pathways.local>": 1}


def test_sink_as_a_separate_process_appends_a_json_line_per_message(tmp_path):
    port, jsonl = free_port(), tmp_path / "received.jsonl"
    sink = subprocess.Popen(
        [sys.executable, "-m", "tests.support.smtp_sink", "--port", str(port), "--jsonl", jsonl],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert "listening" in sink.stdout.readline()
        mailer = SmtpMailer("127.0.0.1", port, timeout=5.0)
        mailer.send(reminder_email("r-proc-1"))
        mailer.send(reminder_email("r-proc-2", to="dr.lee@clinic.test"))
        mailer.close()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and len(_lines(jsonl)) < 2:
            time.sleep(0.05)
        lines = _lines(jsonl)
        assert [line["message_id"] for line in lines] == [
            "<reminder-r-proc-1@aih-pathways.local>",
            "<reminder-r-proc-2@aih-pathways.local>",
        ]
        assert lines[1]["to"] == "dr.lee@clinic.test"
        assert lines[0]["subject"] == "A blood test is due this week"
    finally:
        sink.terminate()
        assert sink.wait(timeout=10) == 0


def _lines(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_the_local_mailbox_creates_its_folders_on_a_fresh_checkout(tmp_path):
    local = LocalMailbox(tmp_path / "var" / "mail")
    assert (tmp_path / "var" / "mail" / "new").is_dir()
    local.close()
