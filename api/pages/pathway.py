"""The pathway page: version and review status, states (nested) and transitions with their
guards in words and rule IDs, hard blocks, the diagram Graphviz lays out from the data, and the
Mermaid source."""

from __future__ import annotations

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
    transitions = [
        {
            "trigger": t.trigger,
            "sources": t.sources,
            "dest": t.dest,
            "guards": pathway_catalogue.guards_in_words(p, t),
            "why": p.explain(t.rules),
        }
        for t in p.transitions
    ]
    try:
        svg, svg_problem = pathway_catalogue.svg_diagram(p), None
    except pathway_catalogue.LayoutUnavailable as unavailable:
        svg, svg_problem = None, unavailable.message
    context: dict[str, Any] = {
        "pathway": p,
        "versions": pathway_catalogue.pathway_versions(),
        "tops": [name for name in p.states if "." not in name],
        "transitions": transitions,
        "svg": svg,
        "svg_problem": svg_problem,
        "mermaid": pathway_catalogue.mermaid_diagram(p),
    }
    return render(request, "pathway.html", context)
