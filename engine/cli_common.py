"""What every `aihp` command shares: consoles, the actor option, and calling a service."""

from __future__ import annotations

import getpass
import json
from typing import Annotated, Any

import typer
from rich.console import Console

from engine.bootstrap import unit_of_work_factory
from engine.domain.errors import DomainError, HardBlock

out = Console()
err = Console(stderr=True)

Actor = Annotated[str, typer.Option(help="Who is acting (recorded in the audit log).")]


def actor_default() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no login name in some containers
        return "cli"


def run_service(call, *args: Any, **kwargs: Any) -> None:
    """Call a service, print its JSON answer, or exit 2 with the domain error's reason."""
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
    out.print_json(json.dumps(result, default=str))
