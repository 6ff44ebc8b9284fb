"""The search page's URL state, facets and grouping against canned API answers (browser only, seconds):
what a URL says is what the page sends, facet values come back pressed, a click rewrites the URL, an
attachment that outranks its mail still sits under it, and long values do not widen a phone's screen.
The same behaviour against the real stack: tests/test_ui_state.py."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlencode, urlparse

import pytest

from tests.test_ui import FAKE, browser, canned_hits, expect, open_page, settle  # noqa: F401

LONG_MIME = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
FACETS = {
    "modality": {
        "field": "modality",
        "buckets": [{"value": "text", "count": 3}, {"value": "image", "count": 1}],
    },
    "mime": {"field": "source.mime", "buckets": [{"value": LONG_MIME, "count": 2}]},
    "date": {
        "field": "@timestamp",
        "buckets": [{"value": "past-week", "count": 4, "range": {"gte": "now-7d"}}],
    },
}


def mail_hits() -> list[dict]:
    """An attachment ranked above its mail, then the canned hits of every modality."""
    meta = {"parent_id": "mail", "attachment_number": 1}
    attachment = {"id": "mail.1", "score": 2.0, "source": {"title": "notes.txt", "metadata": meta}}
    mail = {"id": "mail", "score": 1.5, "source": {"title": "Inspection", "metadata": {}}}
    hits = [attachment, mail, *canned_hits(2)]
    return [{**hit, "rank": i + 1} for i, hit in enumerate(hits)]


@pytest.mark.slow
def test_the_url_drives_the_request_and_facets_rewrite_the_url(browser) -> None:  # noqa: ANN001, F811
    from flask import Flask

    from search.api import ui

    app = Flask(__name__)
    app.register_blueprint(ui.bp)
    static = app.test_client()
    sent: list[dict] = []

    def handle(route) -> None:  # noqa: ANN001
        path = route.request.url[len(FAKE) :].split("?")[0]
        if path == "/" or path.startswith("/ui/"):
            resp = static.get(path)
            route.fulfill(status=resp.status_code, headers=dict(resp.headers), body=resp.data)
        elif path == "/v1/collections":
            route.fulfill(json={"collections": ["first", "harbour"]})
        elif not path.endswith("/search"):
            route.fulfill(status=404, json={"error": {"status": 404, "type": "not_found", "message": path}})
        else:
            sent.append(json.loads(route.request.post_data_buffer or b"{}"))
            answer = {"mode": "hybrid", "from": 0, "size": 10, "total": 6, "took_ms": 1.0}
            cut = {"applied": False} if sent[-1].get("cutoff") is False else {"applied": True, "cut": 3}
            route.fulfill(json={**answer, "hits": mail_hits(), "facets": FACETS, "cutoff": cut})

    context, page, foreign, errors = open_page(browser, FAKE, handle)
    try:
        params = {
            "q": "harbour",
            "collection": "harbour",
            "f.source.mime": LONG_MIME,
            "r.@timestamp": "gte:now-7d",
        }
        page.set_viewport_size({"width": 390, "height": 800})
        page.goto(f"{FAKE}/?{urlencode({**params, 'page': '2'})}")
        settle(page)
        assert sent[-1].get("filters") == {"source.mime": LONG_MIME, "@timestamp": {"gte": "now-7d"}}
        assert sent[-1]["from"] == 10 and sent[-1]["facets"] is True and sent[-1]["query"] == "harbour"
        expect(page.locator("#collection")).to_have_value("harbour")

        values = page.locator('[data-testid="facet-value"]')
        expect(values.filter(has_text=LONG_MIME)).to_have_attribute("aria-pressed", "true")
        expect(values.filter(has_text="past week")).to_have_attribute("aria-pressed", "true")
        width = page.evaluate("() => document.documentElement.scrollWidth")
        assert width <= 390, width

        # The attachment outranks its mail: the group stands first, the mail on top.
        first = page.locator("#results > .hit").first
        expect(first).to_have_attribute("data-id", "mail")
        expect(first.locator('[data-testid="attachments"] > .hit')).to_have_attribute("data-id", "mail.1")

        values.filter(has_text="image").click()  # narrows: added to the filters and the URL, page 1
        settle(page)
        assert sent[-1]["filters"]["modality"] == "image" and sent[-1]["from"] == 0
        query = parse_qs(urlparse(page.url).query)
        assert query["f.modality"] == ["image"] and "page" not in query
        values.filter(has_text="past week").click()  # pressed again: widens
        settle(page)
        assert "@timestamp" not in sent[-1]["filters"]
        assert "r.@timestamp" not in parse_qs(urlparse(page.url).query)

        # Hits below the relevance cut-off are one click away, and the click is in the URL.
        assert all("cutoff" not in body for body in sent)
        page.locator('[data-testid="show-all"]').click()
        settle(page)
        assert sent[-1]["cutoff"] is False and parse_qs(urlparse(page.url).query)["all"] == ["1"]
        expect(page.locator('[data-testid="show-all"]')).to_have_count(0)
    finally:
        context.close()
    assert not foreign and not errors, (foreign, errors)
