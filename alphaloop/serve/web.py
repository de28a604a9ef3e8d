"""The web app's pages: plain HTML, JavaScript and CSS shipped in the package (`serve/web/`), no build step.

    GET /             the app (index.html): Chat, Play and Runs, switched by the URL's #fragment
    GET /web/{file}   its scripts and style sheet

The pages talk to the same server's APIs (/v1/models, /v1/chat/completions, /v1/games, /api/runs), so
what the browser does is what any client could do. Only the files that are in the package directory
when the server starts are served, by exact name: a path cannot reach anything else.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

from alphaloop.serve.errors import APIError

WEB_DIR = Path(__file__).resolve().parent / "web"
_MEDIA = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
          ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml", ".png": "image/png"}
# Read once: the set of names is the whole allow-list.
FILES = {p.name: p for p in WEB_DIR.iterdir() if p.is_file() and p.suffix in _MEDIA} if WEB_DIR.is_dir() else {}

router = APIRouter()


def _file(name: str) -> FileResponse:
    path = FILES.get(name)
    if path is None:
        raise APIError(404, f"no page file {name!r}; the web app is at /", param="file")
    # no-cache: the browser revalidates (cheap, ETag), so a new version of the package shows at once
    return FileResponse(path, media_type=_MEDIA[path.suffix], headers={"Cache-Control": "no-cache"})


@router.get("/", include_in_schema=False)
async def index() -> FileResponse:
    """The web app."""
    return _file("index.html")


@router.get("/web/{name}", include_in_schema=False)
async def asset(name: str) -> FileResponse:
    """A script, style sheet or image of the web app."""
    return _file(name)
