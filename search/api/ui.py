"""The search page: one static HTML file, one script, one stylesheet; the browser talks to /v1 itself."""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, send_from_directory

STATIC = Path(__file__).resolve().parent.parent / "static"

# Assets at /ui/<file>; the app's own /static route is not relied on.
bp = Blueprint("ui", __name__, static_folder=str(STATIC), static_url_path="/ui")


@bp.get("/")
def index():  # noqa: ANN201 - a Flask response
    response = send_from_directory(STATIC, "index.html", max_age=0)
    # The page only ever talks to this origin; nothing may be loaded from anywhere else.
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; img-src 'self' blob: data:; media-src 'self' blob:; "
        "style-src 'self'; script-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
    )
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response
