"""`aihp pathway verify`: run the pathway verifier and print its findings with rich."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import typer
import yaml
from rich.markup import escape

from cli.console import err, out
from engine.domain.errors import DomainError
from engine.domain.pathway import Pathway
from engine.domain.pathway_exploration import ExplorationBounds
from engine.domain.pathway_verification import Finding, VerificationReport, verify_pathway


def run_verify(pathway_file: Path | None, depth: int | None, max_sequences: int | None) -> None:
    """Load the pathway, verify it, print the report; exit 0 clean, 1 findings, 2 bad file."""
    pathway = _load(pathway_file)
    default = ExplorationBounds()
    bounds = replace(
        default,
        depth=default.depth if depth is None else depth,
        max_sequences=default.max_sequences if max_sequences is None else max_sequences,
    )
    if bounds.depth < 1 or bounds.max_sequences < 1:
        err.print("[bold red]error[/] --depth and --max-sequences must be at least 1")
        raise typer.Exit(2)
    started = time.perf_counter()
    report = verify_pathway(pathway, bounds)
    seconds = time.perf_counter() - started
    print_report(report, seconds)
    if not report.passed:
        raise typer.Exit(1)


def _load(pathway_file: Path | None) -> Pathway:
    from engine.adapters.pathway_files import latest, load_pathway_file

    try:
        return load_pathway_file(pathway_file) if pathway_file else latest()
    except (DomainError, OSError, ValueError, yaml.YAMLError) as problem:
        err.print(f"[bold red]invalid pathway[/] {escape(str(problem))}")
        raise typer.Exit(2) from None


def print_report(report: VerificationReport, seconds: float) -> None:
    """The counts, then each finding: unacknowledged first, each with its input sequence."""
    out.print(
        f"[bold]{report.pathway_key}[/]: explored {report.sequences} input sequences "
        f"({report.situations} distinct situations, {report.order_checks} same-day order "
        f"checks, {report.states_reached}/{report.states} states reached) in {seconds:.1f} s "
        f"(depth {report.bounds.depth}, at most {report.bounds.max_sequences} sequences)"
    )
    open_findings, acknowledged = (
        report.unacknowledged,
        len(report.findings) - len(report.unacknowledged),
    )
    for finding in report.findings:
        _print_finding(finding)
    for transition in report.unfired_transitions:
        out.print(f"[dim]note: transition never seen to fire: {escape(transition)}[/]")
    for pattern in report.stale_acknowledgements:
        out.print(f"[dim]note: acknowledgement {escape(pattern)} matches no finding[/]")
    colour = "green" if not open_findings else "red"
    out.print(
        f"[bold {colour}]{len(open_findings)} unacknowledged finding(s)[/], "
        f"{acknowledged} acknowledged"
    )


def _print_finding(finding: Finding) -> None:
    if finding.acknowledged is None:
        out.print(f"[bold red]finding[/] [bold]{escape(finding.heading)}[/] ({finding.key})")
    else:
        out.print(f"[yellow]acknowledged[/] {escape(finding.heading)} ({finding.key})")
    out.print(f"  {escape(finding.text)}")
    if finding.rules:
        out.print(f"  rules: {', '.join(finding.rules)}")
    if finding.acknowledged is not None:
        out.print(f"  reason: {escape(finding.acknowledged)}")
    for step in finding.sequence:
        out.print(f"    - {escape(step)}")
