"""What every `aihp` command shares: consoles, the actor and --json options, calling a service,
and serving on a port bound before any work."""

from __future__ import annotations

import getpass
import json
import socket
import sys
from typing import Annotated, Any

import typer
from rich.console import Console

from cli.tables import View
from engine.bootstrap import unit_of_work_factory
from engine.domain.errors import DomainError, HardBlock

#: Wide enough for tables with whole ids when the output is a file or a pipe (a terminal's own
#: width otherwise).
out = Console(width=None if sys.stdout.isatty() else 140)
err = Console(stderr=True)

Actor = Annotated[str, typer.Option(help="Who is acting (recorded in the audit log).")]
AsJson = Annotated[
    bool, typer.Option("--json", help="Print the service's JSON answer (for scripts).")
]


def actor_default() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no login name in some containers
        return "cli"


def run_service(
    call, *args: Any, view: View | None = None, as_json: bool = False, **kwargs: Any
) -> None:
    """Call a service and print its answer (through `view` for a person, JSON when there is no
    view or `as_json`), or exit 2 with the domain error's reason (3 for a refusal)."""
    try:
        result = call(unit_of_work_factory()(), *args, **kwargs)
    except HardBlock as refused:
        err.print(f"[bold red]refused[/] {refused.message}")
        raise typer.Exit(3) from None
    except DomainError as problem:
        err.print(f"[bold red]error[/] ({problem.code}) {problem.message}")
        raise typer.Exit(2) from None
    except Exception as problem:  # a bug or an outage: a message and exit 1, never a traceback
        err.print(f"[bold red]failed[/] {type(problem).__name__}; see the service log")
        raise typer.Exit(1) from None
    if view is None or as_json:
        out.print_json(json.dumps(result, default=str))
    else:
        view(out, result)


def listening_socket(host: str, port: int) -> socket.socket:
    """A socket bound to host:port, or exit 2 with a message: a server that cannot listen must
    stop before it seeds, migrates or dispatches anything."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as problem:
        sock.close()
        err.print(
            f"[bold red]error[/] cannot listen on {host}:{port} ({problem.strerror or problem}); "
            "nothing was started. Free the port or choose another (--port, make demo PORT=...).",
            highlight=False,
        )
        raise typer.Exit(2) from None
    return sock


def serve(app: Any, sock: socket.socket) -> None:
    """Run uvicorn on an already-bound socket (no access log: the API logs its own, no PHI)."""
    import uvicorn

    host, port = sock.getsockname()[:2]
    config = uvicorn.Config(app, host=host, port=port, access_log=False)
    uvicorn.Server(config).run(sockets=[sock])
