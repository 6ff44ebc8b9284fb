"""Flask application factory: settings, one Elasticsearch client, blueprints, JSON errors."""

from __future__ import annotations

import hmac
import logging
from dataclasses import dataclass

from elasticsearch import Elasticsearch
from flask import Flask, request

from core.config import Settings, get_settings
from core.es import make_client
from search.api import collections, documents, files, health, jobs, profiles, ui
from search.api import search as search_api
from search.errors import ApiProblem, register_error_handlers
from search.metrics import REQUESTS
from search.service import SearchService


@dataclass
class Services:
    settings: Settings
    es: Elasticsearch
    search: SearchService


def create_app(settings: Settings | None = None) -> Flask:
    settings = settings or get_settings()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = Flask(__name__, static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.json.sort_keys = False
    es = make_client(settings)
    app.extensions["mmsearch"] = Services(settings, es, SearchService(es, settings))

    for blueprint in (
        health.bp,
        ui.bp,
        collections.bp,
        documents.bp,
        files.bp,
        search_api.bp,
        profiles.bp,
        jobs.bp,
    ):
        app.register_blueprint(blueprint)
    register_error_handlers(app)

    @app.before_request
    def _authenticate() -> None:
        if settings.api_keys and request.path.startswith("/v1/"):
            token = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
            if not any(hmac.compare_digest(token, key) for key in settings.api_keys):
                raise ApiProblem(401, "missing or invalid API key (Authorization: Bearer <key>)")

    @app.after_request
    def _count(response):  # noqa: ANN001, ANN202
        REQUESTS.labels(
            endpoint=request.url_rule.rule if request.url_rule else "unmatched", status=response.status_code
        ).inc()
        return response

    return app
