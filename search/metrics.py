"""Prometheus metrics of the API process."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

REQUESTS = Counter("mmsearch_http_requests_total", "HTTP requests", ["endpoint", "status"])
SEARCH_LATENCY = Histogram(
    "mmsearch_search_seconds",
    "Search latency inside the API",
    ["mode"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
