"""The interactive API documentation at `/docs`, served entirely by the app (no CDN).

Swagger UI's script and stylesheet come from the `fastapi-offline` package, which ships them;
the page starts Swagger UI from a static script of ours, so it needs no inline script.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI, Request, Response
from fastapi.responses import FileResponse, HTMLResponse

from api.errors import NotFound

ASSETS = Path(str(files("fastapi_offline") / "static"))
STARTER = Path(__file__).parent / "pages" / "static" / "swagger-start.js"
SERVED = {
    "swagger-ui-bundle.js": ASSETS / "swagger-ui-bundle.js",
    "swagger-ui.css": ASSETS / "swagger-ui.css",
    "favicon.png": ASSETS / "favicon.png",
    "swagger-start.js": STARTER,
}
PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>aih-pathways API</title>
  <link rel="icon" href="/docs/assets/favicon.png">
  <link rel="stylesheet" href="/docs/assets/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui" data-openapi-url="/openapi.json"></div>
  <script src="/docs/assets/swagger-ui-bundle.js"></script>
  <script src="/docs/assets/swagger-start.js"></script>
</body>
</html>
"""

def install(app: FastAPI) -> None:
    """Serve the page at `/docs` and its assets at `/docs/assets/<name>` (no token needed)."""
    app.add_route("/docs", documentation, include_in_schema=False)
    app.add_route("/docs/assets/{name}", asset, include_in_schema=False)


async def documentation(_: Request) -> Response:
    """The Swagger UI page for `/openapi.json`."""
    return HTMLResponse(PAGE)


async def asset(request: Request) -> Response:
    """One of the page's assets, by name from a fixed list: nothing else can be read."""
    name = request.path_params["name"]
    if name not in SERVED:
        raise NotFound(f"no documentation asset {name!r}")
    return FileResponse(SERVED[name], headers={"Cache-Control": "public, max-age=86400"})
