"""Mail transport: SMTP when configured, else a local mailbox (a Maildir) a person can read.

Senders raise DeliveryError; `.permanent` tells the caller whether retrying can help
(a refused recipient, a 5xx reply) or not yet (a 4xx reply, the server unreachable).
"""

from __future__ import annotations

import contextlib
import hashlib
import mailbox
import os
import re
import smtplib
import ssl
import threading
import uuid
from email.message import EmailMessage
from pathlib import Path
from typing import Protocol

from engine.config import Settings


class DeliveryError(Exception):
    """A message was not delivered; `.permanent` is True when a retry cannot succeed.

    `.unreachable` is True when no SMTP session could be had at all (refused, timed out, the
    session setup failed): the next message would fare no better, so a batch stops there.
    """

    def __init__(self, reason: str, *, permanent: bool, unreachable: bool = False):
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent
        self.unreachable = unreachable


class Mailer(Protocol):
    """Hands one finished email to a transport."""

    def send(self, message: EmailMessage) -> None: ...

    def close(self) -> None: ...


_CONNECTION_ERRORS = (smtplib.SMTPServerDisconnected, OSError)


class SmtpMailer:
    """SMTP delivery over one connection kept open across sends in this process.

    A connection that has gone stale since the last send (the server timed it out or
    restarted) is replaced once, transparently; a failure on a fresh connection is reported.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        starttls: bool = False,
        user: str | None = None,
        password: str | None = None,
        timeout: float = 10.0,
    ):
        self.host = host
        self.port = port
        self.starttls = starttls
        self.user = user
        self.password = password
        self.timeout = timeout
        self._connection: smtplib.SMTP | None = None
        self._lock = threading.Lock()

    def send(self, message: EmailMessage) -> None:
        """Deliver `message` to its To/Cc/Bcc recipients, or raise DeliveryError."""
        with self._lock:
            reused = self._connection is not None
            try:
                self._send_once(message)
            except _CONNECTION_ERRORS as exc:
                self._drop()
                if not reused:
                    raise DeliveryError(_describe(exc), permanent=False, unreachable=True) from exc
                try:
                    self._send_once(message)
                except _CONNECTION_ERRORS as again:
                    self._drop()
                    raise DeliveryError(
                        _describe(again), permanent=False, unreachable=True
                    ) from again

    def close(self) -> None:
        """Say QUIT and close the connection, if one is open."""
        with self._lock:
            if self._connection is not None:
                with contextlib.suppress(smtplib.SMTPException, OSError):
                    self._connection.quit()
                self._drop()

    def _send_once(self, message: EmailMessage) -> None:
        connection = self._connection or self._connect()
        try:
            refused = connection.send_message(message)
        except (ValueError, UnicodeError, smtplib.SMTPNotSupportedError) as exc:
            # the message cannot be put on the wire as it is (a header, an address): final
            raise DeliveryError(
                f"the message cannot be sent: {type(exc).__name__}", permanent=True
            ) from exc
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            raise DeliveryError(
                _refusals(exc.recipients), permanent=not all(400 <= c < 500 for c in codes)
            ) from exc
        except smtplib.SMTPResponseException as exc:
            if exc.smtp_code == 421:
                self._drop()
            raise DeliveryError(_describe(exc), permanent=500 <= exc.smtp_code < 600) from exc
        if refused:
            codes = [code for code, _ in refused.values()]
            raise DeliveryError(
                "some recipients refused: " + _refusals(refused),
                permanent=not all(400 <= c < 500 for c in codes),
            )

    def _connect(self) -> smtplib.SMTP:
        try:
            connection = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        except smtplib.SMTPConnectError as exc:
            raise DeliveryError(_describe(exc), permanent=False, unreachable=True) from exc
        try:
            if self.starttls:
                connection.starttls(context=ssl.create_default_context())
                connection.ehlo()
            if self.user:
                connection.login(self.user, self.password or "")
        except (smtplib.SMTPException, OSError) as exc:
            connection.close()
            raise DeliveryError(
                f"SMTP session setup with {self.host}:{self.port} failed: {_describe(exc)}",
                permanent=False,
                unreachable=True,
            ) from exc
        self._connection = connection
        return connection

    def _drop(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(OSError):
                self._connection.close()
        self._connection = None


class LocalMailbox:
    """The embedded default: each message becomes a file in a local Maildir (`new/`).

    The file is named after a hash of the Message-ID, so delivering the same reminder twice
    leaves one message; the hard link into `new/` makes that hold across processes too.
    """

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)  # var/ on a fresh clone
        self.maildir = mailbox.Maildir(self.path, create=True)

    @staticmethod
    def key_for(message_id: str) -> str:
        """The mailbox file name (Maildir key) for a Message-ID."""
        return hashlib.sha256(message_id.strip().encode()).hexdigest()[:40]

    def send(self, message: EmailMessage) -> None:
        """Write `message` into the mailbox unless one with its Message-ID is already there."""
        message_id = message["Message-ID"]
        if not message_id:
            raise DeliveryError("message has no Message-ID", permanent=True)
        key = self.key_for(message_id)
        if self._holds(key):
            return
        tmp = self.path / "tmp" / f"{key}.{os.getpid()}.{uuid.uuid4().hex}"
        try:
            data = message.as_bytes()
        except (ValueError, UnicodeError) as exc:
            reason = f"the message cannot be written: {type(exc).__name__}"
            raise DeliveryError(reason, permanent=True) from exc
        try:
            with open(tmp, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            with contextlib.suppress(FileExistsError):
                os.link(tmp, self.path / "new" / key)
        except OSError as exc:
            reason = f"cannot write to the local mailbox {self.path}: {exc}"
            raise DeliveryError(reason, permanent=False) from exc
        finally:
            tmp.unlink(missing_ok=True)

    def close(self) -> None:
        """Nothing to release."""

    def _holds(self, key: str) -> bool:
        if (self.path / "new" / key).exists():
            return True
        return any(
            name == key or name.startswith(key + ":") for name in os.listdir(self.path / "cur")
        )


def mailer_from_settings(settings: Settings) -> Mailer:
    """SMTP when `smtp_host` is set, else the local mailbox in `mail_dir`."""
    if settings.smtp_host:
        return SmtpMailer(
            settings.smtp_host,
            settings.smtp_port,
            starttls=settings.smtp_starttls,
            user=settings.smtp_user,
            password=settings.smtp_password,
            timeout=settings.smtp_timeout_seconds,
        )
    return LocalMailbox(settings.mail_dir)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, smtplib.SMTPResponseException):
        error = exc.smtp_error
        text = error.decode(errors="replace") if isinstance(error, bytes) else str(error)
        return f"SMTP {exc.smtp_code}: {_without_addresses(text)}"
    text = _without_addresses(str(exc))
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _refusals(recipients: dict[str, tuple[int, bytes]]) -> str:
    """What each refused recipient was told, without their address (it is the patient's, and
    the reason is kept as the reminder's error, shown in audit lines, the outbox and FHIR)."""
    return "; ".join(
        f"recipient {n}: SMTP {code} {_without_addresses(text.decode(errors='replace'))}"
        for n, (code, text) in enumerate(recipients.values(), start=1)
    )


#: An email address, with the angle brackets servers often put round it.
_ADDRESS = re.compile(r"<?[^\s<>@]+@[^\s<>]+>?")


def _without_addresses(text: str) -> str:
    """`text` with every email address in it replaced by `<address>`."""
    return _ADDRESS.sub("<address>", text)
