"""The floor: the least a process can do to deliver the same reminders, as a plain script.

`python -m bench.dispatch.floor --url URL --port P` loops: in one transaction, take up to
--batch due email reminders with their contacts (one query, FOR UPDATE SKIP LOCKED, so two
copies share the work), compose the same emails with the same templates, send them with
smtplib over one connection, mark them sent with one UPDATE, commit; until none are due.
No Celery, no lease, no retry, no audit, no journal: what is left is the irreducible work
(one query, rendering, SMTP, one update). It prints one JSON line: sent, seconds, CPU seconds.
"""

from __future__ import annotations

import argparse
import json
import smtplib
import time
from datetime import UTC, datetime

import psycopg

from engine.notifications.compose import ReminderNotice, compose_reminder, message_id
from engine.services.reminders import milestone_reasons

_TAKE = """
SELECT r.id, r.recipient, r.due_at, r.title, r.milestone_kind, r.purpose, r.urgent,
       r.rule_ids, r.site, p.id AS patient_id, p.external_id, p.given_name, p.email,
       p.pathway_key, c.name AS clinician_name, c.email AS clinician_email
FROM reminders r
JOIN patients p ON p.id = r.patient_id
LEFT JOIN clinicians c ON c.id = r.clinician
WHERE r.id IN (
    SELECT id FROM reminders
    WHERE status = 'scheduled' AND channel = 'email' AND next_attempt_at <= now()
    ORDER BY next_attempt_at LIMIT %s FOR UPDATE SKIP LOCKED)
"""
_MARK_SENT = """
UPDATE reminders SET status = 'sent', sent_at = now(), message_id = v.mid
FROM unnest(%s::text[], %s::text[]) AS v(id, mid) WHERE reminders.id = v.id
"""


def deliver_all(url: str, port: int, batch: int, domain: str, mail_from: str) -> int:
    """Deliver every due email reminder; returns how many were sent."""
    sent = 0
    smtp = smtplib.SMTP("127.0.0.1", port)
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        while True:
            with conn.transaction():
                rows = conn.execute(_TAKE, (batch,)).fetchall()
                if not rows:
                    break
                now = datetime.now(UTC)
                ids, mids = [], []
                for row in rows:
                    (rid, recipient, due_at, title, kind, purpose, urgent, rule_ids, site,
                     patient_id, external_id, given_name, email, pathway_key,
                     clinician_name, clinician_email) = row  # fmt: skip
                    patient = recipient == "patient"
                    notice = ReminderNotice(
                        reminder_id=rid,
                        recipient_role=recipient,
                        to_address=email if patient else clinician_email,
                        recipient_name=(given_name or "there") if patient else clinician_name,
                        patient_ref=external_id or patient_id[:8],
                        milestone_title=title,
                        milestone_kind=kind,
                        due_at=due_at,
                        urgent=urgent,
                        escalation=purpose == "escalate",
                        reasons=milestone_reasons(pathway_key, tuple(rule_ids)),
                        site=site,
                        clinic_name="Hepatology clinic",
                    )
                    smtp.send_message(
                        compose_reminder(
                            notice, mail_from=mail_from, message_domain=domain, sent_at=now
                        )
                    )
                    ids.append(rid)
                    mids.append(message_id(rid, domain))
                conn.execute(_MARK_SENT, (ids, mids))
                sent += len(ids)
    smtp.quit()
    return sent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--domain", default="aih-pathways.local")
    parser.add_argument("--mail-from", default="reminders@aih-pathways.local")
    args = parser.parse_args()
    wall0, cpu0 = time.perf_counter(), time.process_time()
    sent = deliver_all(args.url, args.port, args.batch, args.domain, args.mail_from)
    seconds, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    print(json.dumps({"sent": sent, "seconds": seconds, "cpu": cpu}), flush=True)


if __name__ == "__main__":
    main()
