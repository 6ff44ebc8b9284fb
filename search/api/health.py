"""Liveness, readiness (Elasticsearch and Redis reachable; `down` names those that are not), metrics."""

from __future__ import annotations

import redis
from flask import Blueprint, Response, jsonify
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from search.api import services

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz():
    svc = services()
    checks = {}
    try:
        checks["elasticsearch"] = svc.search.engine_health()
    except Exception as exc:  # noqa: BLE001 - readiness reports, it does not raise
        checks["elasticsearch"] = f"down: {type(exc).__name__}"
    try:
        redis.Redis.from_url(
            svc.settings.broker.broker_url, socket_timeout=2, socket_connect_timeout=2
        ).ping()
        checks["redis"] = "ok"
    except Exception as exc:  # noqa: BLE001
        checks["redis"] = f"down: {type(exc).__name__}"
    down = [name for name, state in checks.items() if state not in ("green", "yellow", "ok")]
    return jsonify(ready=not down, down=down, checks=checks), 503 if down else 200


@bp.get("/metrics")
def metrics():
    return Response(generate_latest(), mimetype=CONTENT_TYPE_LATEST)
