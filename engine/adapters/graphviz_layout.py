"""Graphviz's `dot` as a layout engine: DOT text in, standalone SVG out.

`dot` (Debian package `graphviz`, installed by `make services`) runs as a subprocess with a
timeout; its SVG is returned without the XML prolog and DOCTYPE, so it can sit inline in a
page or be served as `image/svg+xml`. A layout is a pure function of its DOT text, so results
are cached by that text: one pathway version is laid out once per process.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from functools import lru_cache

from engine.domain.errors import DomainError

DOT_TIMEOUT_SECONDS = 20.0
_PROLOG = re.compile(r"^\s*(<\?xml[^>]*\?>\s*)?(<!DOCTYPE[^>]*>\s*)?", re.DOTALL)


class LayoutUnavailable(DomainError):
    """The layout engine is missing, failed or took too long; the message says which."""

    code = "layout_unavailable"


def quoted(text: str) -> str:
    """A DOT double-quoted string: backslashes and quotes escaped, line breaks as `\\n`."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + escaped.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "\\n") + '"'


@lru_cache(maxsize=16)
def dot_svg(dot_source: str, timeout: float = DOT_TIMEOUT_SECONDS) -> str:
    """The SVG `dot -Tsvg` draws for `dot_source` (cached by the source text)."""
    binary = shutil.which("dot")
    if binary is None:
        raise LayoutUnavailable(
            "the diagram needs Graphviz's dot, which is not installed (make services)"
        )
    try:
        done = subprocess.run(
            [binary, "-Tsvg"],
            input=dot_source.encode(),
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise LayoutUnavailable(f"Graphviz dot took longer than {timeout:g} s") from None
    if done.returncode != 0:
        reason = done.stderr.decode(errors="replace").strip().splitlines()[:1]
        raise LayoutUnavailable(f"Graphviz dot failed: {' '.join(reason) or done.returncode}")
    return _PROLOG.sub("", done.stdout.decode())
