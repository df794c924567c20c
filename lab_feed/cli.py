"""`aihp hl7 listen` (the MLLP listener) and `aihp hl7 send FILE` (for testing a feed)."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Annotated

import typer

from cli.console import err, out
from engine.bootstrap import unit_of_work_factory
from engine.clock import SystemClock
from engine.config import get_settings
from engine.domain.errors import DomainError
from engine.services.access import authenticate
from engine.services.access_policy import Forbidden, enforce
from lab_feed.listener import LabListener, ListenerLimits
from lab_feed.receiver import LabFeed
from lab_feed.sender import MllpConnection, messages_in
from lab_feed.site_feeds import load_site_feeds

app = typer.Typer(no_args_is_help=True, help="HL7 v2 lab feed (ORU^R01 over MLLP).")

Host = Annotated[str, typer.Option(help="Address to listen on / send to.")]
Port = Annotated[int, typer.Option(help="TCP port (MLLP).")]


@app.command("listen")
def listen(
    host: Host = "127.0.0.1",
    port: Port = 2575,
    site: Annotated[
        str | None,
        typer.Option(help="Serve one site (else MSH-4 names the site, from its feed file)."),
    ] = None,
    max_message_bytes: Annotated[int, typer.Option(help="Largest message accepted.")] = 1_000_000,
    idle_seconds: Annotated[float, typer.Option(help="Close a connection idle this long.")] = 300,
) -> None:
    """Listen for ORU^R01 lab results as the user AIHP_HL7_TOKEN stands for (lab-interface)."""
    token = get_settings().hl7_token
    if not token:
        err.print("[bold red]error[/] set AIHP_HL7_TOKEN to a lab-interface user's token")
        raise typer.Exit(2)
    uow_factory = unit_of_work_factory()
    try:
        principal = enforce(authenticate(uow_factory(), token), "lab.feed")
        sites = load_site_feeds(site)
    except (DomainError, Forbidden) as problem:
        err.print(f"[bold red]error[/] ({problem.code}) {problem.message}")
        raise typer.Exit(2) from None
    if site and principal.site and site != principal.site:
        err.print(f"[bold red]error[/] the token's user records labs for {principal.site} only")
        raise typer.Exit(2)
    feed = LabFeed(uow_factory, principal, sites, SystemClock())
    listener = LabListener(feed, ListenerLimits(max_message_bytes, idle_seconds))

    async def run() -> None:
        try:
            await listener.start(host, port)
        except OSError as problem:
            err.print(f"[bold red]error[/] cannot listen on {host}:{port}: {problem.strerror}")
            raise typer.Exit(1) from None
        served = ", ".join(sites.feeds) or "none (no feed files)"
        out.print(f"HL7 listener on {host}:{listener.port} as {principal.name}; sites: {served}")
        await listener.serve_forever()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())


@app.command("send")
def send(
    file: Annotated[Path, typer.Argument(help="HL7 file: one or more messages, each from MSH.")],
    host: Host = "127.0.0.1",
    port: Port = 2575,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for each ACK.")] = 30,
) -> None:
    """Send the file's messages over MLLP and print each ACK; exit 3 unless every ACK is AA."""
    try:
        messages = messages_in(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as problem:
        err.print(f"[bold red]error[/] cannot read {file}: {problem}")
        raise typer.Exit(2) from None
    if not messages:
        err.print(f"[bold red]error[/] {file} holds no message (each begins with MSH)")
        raise typer.Exit(2)
    accepted = True
    try:
        with MllpConnection(host, port, timeout) as connection:
            for message in messages:
                ack = connection.send(message).decode("utf-8", "replace")
                typer.echo(ack.replace("\r", "\n").rstrip("\n"))
                accepted &= "\rMSA" in ack and ack.split("\rMSA")[1][1:3] == "AA"
    except OSError as problem:
        err.print(f"[bold red]error[/] {host}:{port}: {problem}")
        raise typer.Exit(2) from None
    if not accepted:
        raise typer.Exit(3)
