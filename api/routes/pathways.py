"""Pathways: the versions this deployment runs, a version's definition, and its diagram."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import Response

from api import schemas
from api.deps import PathwayReader, reject_unknown_query
from api.errors import NotFound, problems
from engine.domain.errors import UnknownCode
from engine.services import pathway_catalogue

router = APIRouter(
    prefix="/pathways", tags=["pathways"], dependencies=[Depends(reject_unknown_query)]
)
PathwayKey = Annotated[
    str, Path(min_length=1, max_length=64, description="`aih@1.0.0`, or `aih` for the newest")
]
MEDIA = {"mermaid": "text/vnd.mermaid; charset=utf-8", "svg": "image/svg+xml"}


@router.get(
    "",
    response_model=list[schemas.PathwayVersion],
    responses=problems(401, 403),
    summary="Pathway versions",
)
def versions(_: PathwayReader) -> list[dict]:
    return pathway_catalogue.pathway_versions()


@router.get(
    "/{key}",
    response_model=schemas.PathwayDefinition,
    responses=problems(401, 403, 404),
    summary="A pathway version's definition (states, transitions, rules, sources, ...)",
)
def definition(_: PathwayReader, key: PathwayKey) -> dict:
    try:
        return pathway_catalogue.pathway_definition(key)
    except UnknownCode as unknown:
        raise NotFound(unknown.message) from None


@router.get(
    "/{key}/diagram",
    response_class=Response,
    responses={
        200: {
            "description": "Mermaid stateDiagram-v2 text, or an SVG drawing",
            "content": {
                "text/vnd.mermaid": {"schema": {"type": "string"}},
                "image/svg+xml": {"schema": {"type": "string"}},
            },
        },
        **problems(401, 403, 404, 422),
    },
    summary="A diagram generated from the pathway data",
)
def diagram(
    _: PathwayReader,
    key: PathwayKey,
    format: Annotated[Literal["mermaid", "svg"], Query()] = "mermaid",
) -> Response:
    try:
        text = pathway_catalogue.pathway_diagram(key, format)
    except UnknownCode as unknown:
        raise NotFound(unknown.message) from None
    return Response(text, media_type=MEDIA[format])
