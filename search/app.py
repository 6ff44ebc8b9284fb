"""Flask application factory: settings, one engine client, the read and write services, blueprints,
JSON errors.

Every service the routes use can be handed in (a client pointed elsewhere, a search service built on
it), so routing, validation and error mapping can be exercised with Flask's test client; by default
they are built from the settings.
"""

from __future__ import annotations

import tempfile

from flask import Flask, request
from werkzeug.exceptions import RequestEntityTooLarge

from core.config import Settings, get_settings
from core.es import Client, make_client
from core.logs import configure_logging
from ingest.service import IngestService
from search import openapi, security
from search.api import Services, collections, documents, files, health, identity, jobs, manifest, profiles, ui
from search.api import search as search_api
from search.errors import register_error_handlers
from search.metrics import REQUESTS
from search.observability import register_request_ids
from search.service import SearchService
from workers.jobs import ReencodeJobs
from workers.tasks import enqueue

BLUEPRINTS = (
    health.bp,
    identity.bp,
    ui.bp,
    collections.bp,
    documents.bp,
    files.bp,
    manifest.bp,
    search_api.bp,
    profiles.bp,
    jobs.bp,
)


def create_app(
    settings: Settings | None = None,
    es: Client | None = None,
    search_service: SearchService | None = None,
) -> Flask:
    settings = settings or get_settings()
    es = make_client(settings) if es is None else es
    search_service = SearchService(es, settings) if search_service is None else search_service
    services = Services(
        settings, search_service, IngestService(es, settings, enqueue), ReencodeJobs(es, settings)
    )
    configure_logging(settings.api.log_format)
    app = Flask(__name__, static_folder=None)
    app.url_map.merge_slashes = False  # `//x` is a 404, not a redirect to an absolute URL built from Host
    register_request_ids(app)
    app.config["MAX_CONTENT_LENGTH"] = settings.limits.max_body_bytes
    app.json.sort_keys = False
    app.extensions["mmsearch"] = services
    for blueprint in BLUEPRINTS:
        app.register_blueprint(blueprint)
    register_error_handlers(app)

    @app.before_request
    def _refuse_oversize_body() -> None:
        """Flask refuses a large body only once a route reads it, maybe after asking Elasticsearch."""
        if (request.content_length or 0) > settings.limits.max_body_bytes:
            raise RequestEntityTooLarge()

    security.install(app, settings)

    @app.before_request
    def _read_chunked_body() -> None:
        """A chunked body (no Content-Length) Flask would cut silently at the limit. Read once the caller
        passed the security checks and rate limits, so no anonymous caller makes the server buffer."""
        chunked = "chunked" in request.headers.get("Transfer-Encoding", "").lower()
        if request.content_length is None and chunked:
            _buffer_chunked_body(settings.limits.max_body_bytes)

    openapi.install(app)

    @app.after_request
    def _count(response):  # noqa: ANN001, ANN202
        REQUESTS.labels(
            endpoint=request.url_rule.rule if request.url_rule else "unmatched", status=response.status_code
        ).inc()
        return response

    return app


SPOOL_IN_MEMORY = 1 << 20  # a chunked body past this waits in a temporary file


def _buffer_chunked_body(limit: int) -> None:
    """Read a chunked body whole, before any route, and hand it on as the request's input: one byte past
    `limit` is a 413 and nothing of it is processed (werkzeug would stop reading at the limit, and the
    route would take the cut body for the whole one)."""
    source = request.environ["wsgi.input"]
    spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)  # noqa: SIM115 - the request's input from now on
    size = 0
    while chunk := source.read(min(1 << 16, limit + 1 - size)):
        size += len(chunk)
        if size > limit:
            spool.close()
            raise RequestEntityTooLarge()
        spool.write(chunk)
    spool.seek(0)
    request.environ["wsgi.input"] = spool  # closed when the request (and its environ) is dropped
