"""The web page at ``/``: static HTML, JavaScript and CSS from ``api/web`` (no build step).

The page talks to the same REST API as every other client, with the API key the person enters.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

__all__ = ["WEB_DIR", "mount_web", "router"]

WEB_DIR = Path(__file__).resolve().parent.parent / "web"

router = APIRouter(tags=["web"])


@router.get("/", include_in_schema=False)
def index() -> FileResponse:
    # Revalidated on every visit, so a new release's page is never mixed with old scripts.
    return FileResponse(WEB_DIR / "index.html", media_type="text/html", headers={"Cache-Control": "no-cache"})


@router.get("/favicon.ico", include_in_schema=False)
def favicon() -> FileResponse:
    # Browsers and bookmark tools ask for /favicon.ico whatever the page links; the icon is SVG.
    return FileResponse(
        WEB_DIR / "favicon.svg", media_type="image/svg+xml", headers={"Cache-Control": "max-age=86400"}
    )


def mount_web(app: FastAPI) -> None:
    app.include_router(router)
    app.mount("/web", StaticFiles(directory=WEB_DIR, check_dir=True), name="web")
