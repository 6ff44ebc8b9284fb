"""Facets in the API, and the search page keeping its state, in a real headless Chromium against the real
stack (API, Elasticsearch, Redis, worker): a URL with a query opens its results; back and forward restore
searches; a facet narrows the search and the URL; a mail's attachments sit under the mail; a long PDF's
other passages open on demand, as does the score explanation; the keyboard moves between hits; at a
phone's width nothing scrolls sideways."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlparse

import pytest

from bench import media_fixtures as mf
from client.api import ApiClient, ApiClientError
from tests.conftest import OPENSEARCH
from tests.test_ingest_files import make_pdf
from tests.test_ui import SLOW, browser, expect, open_page, screenshot, settle  # noqa: F401

pytestmark = pytest.mark.integration

FACETS_SCREENSHOT_COPY = Path("/tmp/mmsearch-ui-facets.png")
# Four pages, each long enough that the whole text exceeds the text encoder's window: the PDF gets
# passages (one or more per page), and the hit names the page of each.
PDF_PAGES = [
    "Harbour lighthouses were first lit with wood fires on stone towers above the harbour mouth. " * 4,
    "The Fresnel lens gathers the lamp light into a narrow beam that sailors see far out at sea. " * 4,
    "Winter storms drove waves over the lantern gallery and the keepers logged every gale hour. " * 4,
    "Keepers trimmed wicks, wound the clockwork and polished the brass before each long night. " * 4,
]
TEXT_DOCS = [
    {"id": "reef", "title": "Coral reefs", "text": "Coral reefs bleach when sea temperatures rise."},
    {"id": "bread", "title": "Sourdough", "text": "Sourdough bread rises slowly thanks to wild yeast."},
    {"id": "lamp", "title": "Lamp oil", "text": "Lighthouse lamps burned whale oil, then paraffin."},
    {"id": "fog", "title": "Fog signals", "text": "A lighthouse sounds its foghorn when fog hides the lamp."},
]


@pytest.fixture(scope="module")
def site(api: ApiClient, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A collection with short texts, a four-page PDF and a mail with two attachments; the ids."""
    name = f"t-uis-{uuid.uuid4().hex[:8]}"
    folder = tmp_path_factory.mktemp("ui-state")
    api.create_collection(name, encoders=["text"])
    try:
        assert not api.add_documents(name, TEXT_DOCS, refresh=True)["errors"]
        (folder / "lighthouses.pdf").write_bytes(make_pdf(PDF_PAGES, "Lighthouse history", "Ada Keeper"))
        (folder / "inspection.eml").write_bytes(
            mf.make_eml(
                "Harbour lamp inspection",
                "The harbour lamp inspection went well; notes and the lens report are attached.",
                [
                    (
                        "notes.txt",
                        "text/plain",
                        b"Inspection notes: harbour lamp lens cleaned, wicks trimmed.",
                    ),
                    (
                        "lens.pdf",
                        "application/pdf",
                        make_pdf(["Harbour lamp lens report: no cracks"], "Lens", "Bo"),
                    ),
                ],
            )
        )
        files = api.add_files(name, [folder / "lighthouses.pdf", folder / "inspection.eml"], refresh=True)
        pdf, mail = (f["id"] for f in files["files"])
        api.wait_encoded(name, timeout=600)
        yield {"collection": name, "pdf": pdf, "mail": mail}
    finally:
        api.delete_collection(name)


def test_facets_count_the_matches_and_each_names_the_filter_that_narrows_by_it(
    api: ApiClient, site: dict[str, str]
) -> None:
    name = site["collection"]
    out = api.search(name, "harbour lamp", facets=True, size=1, cutoff=False)
    facets = out["facets"]
    assert {"modality", "mime", "date"} <= set(facets)
    assert sum(b["count"] for b in facets["modality"]["buckets"]) == out["total"]
    assert facets["date"]["buckets"][0] == {
        "value": "past-day",
        "count": out["total"],
        "range": {"gte": "now-1d"},
    }
    mimes = {b["value"]: b["count"] for b in facets["mime"]["buckets"]}
    assert mimes["application/pdf"] == 2, mimes  # the PDF and the one attached to the mail
    if OPENSEARCH:  # flat_object cannot count one key: left out of `true`, refused when named
        assert "metadata.email_from" not in facets
    else:
        assert facets["metadata.email_from"]["buckets"] == [
            {"value": "Ann Smith <ann@example.com>", "count": 1}
        ]

    # A facet value's filter narrows the search to exactly that many matches.
    field = facets["mime"]["field"]
    narrowed = api.search(
        name, "harbour lamp", facets=["mime"], filters={field: "application/pdf"}, cutoff=False
    )
    assert narrowed["total"] == 2 and {h["source"]["source"]["mime"] for h in narrowed["hits"]} == {
        "application/pdf"
    }
    assert narrowed["facets"] == {
        "mime": {"field": field, "buckets": [{"value": "application/pdf", "count": 2}]}
    }
    older = api.search(
        name, "harbour lamp", mode="lexical", filters={"@timestamp": {"lt": "now-1y"}}, facets=True
    )
    assert older["total"] == 0 and all(not f["buckets"] for f in older["facets"].values())

    # Fields nobody chose are refused with a 400 that says why; so are internal ones.
    for bad in (["metadata.secret"], ["readers"], ["ingest.status"]):
        with pytest.raises(ApiClientError) as err:
            api.search(name, "harbour", facets=bad)
        assert err.value.status == 400 and ("facet" in str(err.value) or "count by" in str(err.value))


def search_url(origin: str, **params: str) -> str:
    return f"{origin}/?{urlencode(params)}"


def query_of(page) -> dict[str, list[str]]:  # noqa: ANN001
    return parse_qs(urlparse(page.url).query)


def test_the_url_holds_the_search_back_and_forward_restore_it(
    browser,  # noqa: ANN001, F811
    api_url: str,
    site: dict[str, str],
) -> None:
    origin = api_url.rstrip("/")
    context, page, foreign, errors = open_page(browser, origin)
    try:
        # A shared link: the page runs the search it names.
        page.goto(search_url(origin, q="sourdough yeast", collection=site["collection"], mode="lexical"))
        settle(page)
        hits = page.locator("#results > .hit")
        expect(hits.first).to_have_attribute("data-id", "bread", timeout=SLOW)
        expect(page.locator("#query")).to_have_value("sourdough yeast")
        expect(page.locator('[data-testid="mode-lexical"]')).to_be_checked()

        # A new search is a new history entry.
        page.fill("#query", "coral reefs")
        page.click("#submit")
        settle(page)
        expect(hits.first).to_have_attribute("data-id", "reef")
        assert query_of(page)["q"] == ["coral reefs"] and query_of(page)["mode"] == ["lexical"]

        page.go_back()
        expect(page.locator("#query")).to_have_value("sourdough yeast")
        expect(hits.first).to_have_attribute("data-id", "bread")
        page.go_forward()
        expect(page.locator("#query")).to_have_value("coral reefs")
        expect(hits.first).to_have_attribute("data-id", "reef")
        settle(page)
    finally:
        context.close()
    assert not foreign and not errors, (foreign, errors)


def test_facets_narrow_groups_passages_explanations_and_keys(
    browser,  # noqa: ANN001, F811
    api_url: str,
    site: dict[str, str],
    tmp_path: Path,
) -> None:
    origin = api_url.rstrip("/")
    context, page, foreign, errors = open_page(browser, origin)
    mail, pdf = site["mail"], site["pdf"]
    try:
        page.goto(search_url(origin, q="harbour lamp lens", collection=site["collection"], all="1"))
        settle(page)
        hits = page.locator("#results > .hit")
        expect(hits.first).to_be_visible(timeout=SLOW)

        # The mail's attachments are under the mail, not hits of their own.
        group = page.locator(f'#results > .hit[data-id="{mail}"]')
        expect(group).to_have_count(1)
        attached = group.locator('[data-testid="attachments"] > .hit')
        expect(attached).to_have_count(2)
        expect(attached.nth(0)).to_have_attribute("data-id", f"{mail}.1")
        expect(attached.nth(1)).to_have_attribute("data-id", f"{mail}.2")
        expect(page.locator(f'#results > .hit[data-id^="{mail}."]')).to_have_count(0)

        # The long PDF shows its best passage with its page; the others open on demand.
        doc = page.locator(f'#results > .hit[data-id="{pdf}"]')
        expect(doc.locator('[data-testid="passage"]').first).to_contain_text(re.compile(r"^pp?\. \d"))
        more = doc.locator('[data-testid="more-passages"]')
        if not OPENSEARCH:  # (OpenSearch's nested kNN answered with this PDF's best passage only)
            expect(more.locator('[data-testid="passage"]').first).to_be_hidden()
            more.locator("summary").click()
            expect(more.locator('[data-testid="passage"]').first).to_be_visible()
            expect(more.locator('[data-testid="passage"] .where').first).to_have_text(
                re.compile(r"^pp?\. \d")
            )

        # The score breakdown is closed until asked for.
        breakdown = doc.locator('[data-testid="breakdown"]')
        expect(breakdown).to_be_hidden()
        doc.locator('[data-testid="explain"] summary').click()
        expect(breakdown).to_be_visible()
        screenshot(page, tmp_path / "facets.png", FACETS_SCREENSHOT_COPY)

        # Keyboard: j/k move between hits, "/" goes back to the search box.
        page.locator("body").click(position={"x": 2, "y": 2})
        page.keyboard.press("j")
        expect(hits.first).to_be_focused()
        page.keyboard.press("j")
        expect(page.locator(".hit:focus")).to_have_count(1)
        page.keyboard.press("k")
        expect(hits.first).to_be_focused()
        page.keyboard.press("/")
        expect(page.locator("#query")).to_be_focused()

        # A facet value narrows the search and is in the URL; pressing it again widens it.
        total = re.match(r"\d+ results", page.locator("#status").text_content() or "")
        assert total and total.group(0) != "2 results", total
        pdfs = page.locator('[data-facet="mime"] [data-testid="facet-value"][data-value="application/pdf"]')
        expect(pdfs).to_contain_text("2")
        pdfs.click()
        settle(page)
        assert query_of(page)["f.source.mime"] == ["application/pdf"]
        expect(page.locator("#status")).to_contain_text("2 results")
        expect(hits).to_have_count(2)  # the PDF and the attached one, which stands alone now
        expect(page.locator(f'#results > .hit[data-id="{mail}.2"]')).to_contain_text(f"attachment of {mail}")
        expect(pdfs).to_have_attribute("aria-pressed", "true")
        page.go_back()
        expect(page.locator("#status")).to_contain_text(total.group(0))
        expect(pdfs).to_have_attribute("aria-pressed", "false")
        assert "f.source.mime" not in query_of(page)
    finally:
        context.close()
    assert not foreign and not errors, (foreign, errors)


def test_at_a_phones_width_nothing_scrolls_sideways(
    browser,  # noqa: ANN001, F811
    api_url: str,
    site: dict[str, str],
    tmp_path: Path,
) -> None:
    origin = api_url.rstrip("/")
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    try:
        page = context.new_page()
        page.goto(search_url(origin, q="harbour lamp lens", collection=site["collection"], all="1"))
        settle(page)
        expect(page.locator("#results > .hit").first).to_be_visible(timeout=SLOW)
        page.locator('#results > .hit [data-testid="explain"] summary').first.click()
        width = page.evaluate(
            "() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]"
        )
        assert width[0] <= width[1] == 390, width
        screenshot(page, tmp_path / "phone.png", Path("/tmp/mmsearch-ui-phone.png"))
    finally:
        context.close()
