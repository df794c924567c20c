"""The pathway versions this deployment runs, each with its one shared CarePathway."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import yaml

from engine.adapters import pathway_files
from engine.config import get_settings
from engine.domain.care import CarePathway
from engine.domain.labs import ReferenceLimits


@cache
def care_pathway(key: str | None = None) -> CarePathway:
    """The CarePathway for a version key (`aih@1.0.0`), or the newest AIH version."""
    settings = get_settings()
    directory = settings.pathway_dir or pathway_files.PATHWAY_DIR
    pathway = pathway_files.get(key, directory) if key else pathway_files.latest("aih", directory)
    return CarePathway(
        pathway, ReferenceLimits(pathway.labs, _site_limits(settings.site_limits_file))
    )


def _site_limits(path: Path | None) -> dict[str, dict[str, float]]:
    """Site overrides of upper limits of normal: `{site: {ALT: 33, ...}}` in a YAML file."""
    if path is None or not Path(path).exists():
        return {}
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    return {str(site): {str(k): float(v) for k, v in labs.items()} for site, labs in data.items()}
