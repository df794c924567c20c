"""The pathway versions this deployment knows, their definitions, and diagrams drawn from the data.

`mermaid_diagram` writes a Mermaid `stateDiagram-v2` (nested states, every transition labelled
with its trigger and rule IDs); `svg_diagram` draws the top-level states and the transitions
between them as a standalone SVG. Both are generated from the pathway file, never by hand.
"""

from __future__ import annotations

from html import escape
from typing import Any

from engine.adapters import pathway_files
from engine.config import get_settings
from engine.domain.pathway import Pathway

DIAGRAM_FORMATS = ("mermaid", "svg")


def _directory():
    return get_settings().pathway_dir or pathway_files.PATHWAY_DIR


def pathway_versions() -> list[dict[str, Any]]:
    """Every loaded version, newest first within a pathway, marking the one new patients get."""
    loaded = pathway_files.load_all(_directory()).values()
    newest = {p.id: pathway_files.latest(p.id, _directory()).key for p in loaded}
    return [
        {
            "key": p.key,
            "id": p.id,
            "version": p.version,
            "title": p.title,
            "review_status": p.review.get("status", ""),
            "latest": newest[p.id] == p.key,
        }
        for p in sorted(loaded, key=lambda p: (p.id, _semver(p.version)), reverse=True)
    ]


def pathway(key: str) -> Pathway:
    """A version by key (`aih@1.0.0`) or, given a pathway id (`aih`), its newest version."""
    if "@" in key:
        return pathway_files.get(key, _directory())
    return pathway_files.latest(key, _directory())


def pathway_definition(key: str) -> dict[str, Any]:
    """The version's data as loaded from its file."""
    p = pathway(key)
    return {
        "key": p.key,
        "id": p.id,
        "version": p.version,
        "title": p.title,
        "review_status": p.review.get("status", ""),
        "definition": p.raw,
    }


def mermaid_diagram(p: Pathway) -> str:
    """A Mermaid stateDiagram-v2 of the pathway: nested states and cited transitions."""
    lines = ["stateDiagram-v2", f"    %% {p.key}: {p.title}"]

    def declare(name: str, depth: int) -> None:
        pad = "    " * depth
        state = p.states[name]
        label = name.rsplit(".", 1)[-1]
        lines.append(f'{pad}state "{label}" as {_node(name)}')
        if state.children:
            lines.append(f"{pad}state {_node(name)} {{")
            for child in state.children:
                declare(child, depth + 1)
            lines.append(f"{pad}}}")

    for name in p.states:
        if "." not in name:
            declare(name, 1)
    lines.append(f"    [*] --> {_node(p.initial)}")
    for t in p.transitions:
        label = f"{t.trigger} [{', '.join(t.rules)}]"
        for source in t.sources:
            lines.append(f"    {_node(source)} --> {_node(t.dest)} : {label}")
    for name, state in p.states.items():
        if state.final:
            lines.append(f"    {_node(name)} --> [*]")
    return "\n".join(lines) + "\n"


def svg_diagram(p: Pathway) -> str:
    """An SVG of the top-level states (sub-states listed inside) and the triggers between them."""
    tops = [name for name in p.states if "." not in name]
    columns, width, gap_x, gap_y = 4, 230, 70, 90
    heights = {n: 44 + 16 * len(p.states[n].children) for n in tops}
    row_height = max(heights.values()) + gap_y
    place = {
        n: ((i % columns) * (width + gap_x) + 20, (i // columns) * row_height + 50)
        for i, n in enumerate(tops)
    }
    edges: dict[tuple[str, str], set[str]] = {}
    for t in p.transitions:
        for source in t.sources:
            a, b = source.split(".")[0], t.dest.split(".")[0]
            if a != b:
                edges.setdefault((a, b), set()).add(t.trigger)
    total_w = columns * (width + gap_x) + 20
    total_h = ((len(tops) - 1) // columns + 1) * row_height + 40
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{total_w}" height="{total_h}" '
        f'viewBox="0 0 {total_w} {total_h}" font-family="sans-serif" font-size="12">',
        f"<title>{escape(p.key)}: {escape(p.title)}</title>",
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z"/>'
        "</marker></defs>",
    ]
    for (a, b), triggers in sorted(edges.items()):
        (xa, ya), (xb, yb) = place[a], place[b]
        x1, y1 = xa + width / 2, ya + heights[a] / 2
        x2, y2 = xb + width / 2, yb + heights[b] / 2
        out.append(
            f'<path d="M{x1:.0f},{y1:.0f} Q{(x1 + x2) / 2 + 30:.0f},{(y1 + y2) / 2 - 30:.0f} '
            f'{x2:.0f},{y2:.0f}" fill="none" stroke="#888" marker-end="url(#arrow)">'
            f"<title>{escape(a)} -&gt; {escape(b)}: {escape(', '.join(sorted(triggers)))}"
            "</title></path>"
        )
    for name in tops:
        x, y = place[name]
        state = p.states[name]
        stroke = "#1f6feb" if name == p.initial else "#333"
        out.append(
            f'<g id="{escape(name)}"><rect x="{x}" y="{y}" width="{width}" '
            f'height="{heights[name]}" rx="8" fill="#fff" stroke="{stroke}"/>'
            f'<text x="{x + 10}" y="{y + 20}" font-weight="bold">{escape(name)}</text>'
            f'<text x="{x + 10}" y="{y + 36}" fill="#666">{escape(", ".join(state.rules))}</text>'
        )
        for i, child in enumerate(state.children):
            out.append(
                f'<text x="{x + 20}" y="{y + 54 + 16 * i}">'
                f"{escape(child.rsplit('.', 1)[-1])}</text>"
            )
        out.append("</g>")
    out.append("</svg>")
    return "\n".join(out) + "\n"


def pathway_diagram(key: str, fmt: str = "mermaid") -> str:
    """The diagram of a version in `fmt` (mermaid or svg)."""
    p = pathway(key)
    return svg_diagram(p) if fmt == "svg" else mermaid_diagram(p)


def _node(state: str) -> str:
    """Mermaid ids cannot hold dots: `taper.7_5mg` -> `taper__7_5mg`."""
    return state.replace(".", "__")


def _semver(version: str) -> tuple[int, ...]:
    return tuple(int(x) for x in version.split(".") if x.isdigit())
