"""The pathway page: version and review status, states (nested) and transitions with their
guards and rule IDs, hard blocks, the diagram drawn from the data, and the Mermaid source."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from api.pages.session import PathwayViewer, render
from engine.domain.errors import UnknownCode
from engine.services import pathway_catalogue

router = APIRouter(prefix="/pathway", include_in_schema=False)


@router.get("", response_class=HTMLResponse)
def pathway_page(
    request: Request,
    _: PathwayViewer,
    key: Annotated[str, Query(min_length=1, max_length=64)] = "aih",
) -> HTMLResponse:
    try:
        p = pathway_catalogue.pathway(key)
    except (UnknownCode, KeyError):
        return render(
            request, "error.html", {"status": 404, "message": f"No pathway {key!r}."}, 404
        )
    raw = p.raw.get("transitions", [])
    transitions = [
        {
            "trigger": t.trigger,
            "sources": t.sources,
            "dest": t.dest,
            "guards": [_guard(g) for g in raw[t.index].get("guards", [])]
            if t.index < len(raw)
            else [],
            "why": p.explain(t.rules),
        }
        for t in p.transitions
    ]
    context: dict[str, Any] = {
        "pathway": p,
        "versions": pathway_catalogue.pathway_versions(),
        "tops": [name for name in p.states if "." not in name],
        "transitions": transitions,
        "svg": pathway_catalogue.svg_diagram(p),
        "mermaid": pathway_catalogue.mermaid_diagram(p),
    }
    return render(request, "pathway.html", context)


def _guard(guard: Any) -> str:
    """A named guard as its name; an inline condition as compact JSON."""
    return guard if isinstance(guard, str) else json.dumps(guard, separators=(", ", ": "))
