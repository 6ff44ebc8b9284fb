"""The search page in a real headless Chromium (Debian's), driven by Playwright for Python.

Only the system browser is used (`executable_path`), never one that `playwright install` would download,
and every request the page makes must stay on the API's origin. `test_search_page` runs against the
real stack; `test_page_renders_every_modality` needs only the browser: the page is served by the UI
blueprint through Flask's test client and the API's answers are canned, so it checks rendering
(image, audio, document hits, transcripts, linear-fusion breakdowns) and the requests the page sends.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import shutil
import time
import uuid
import wave
from pathlib import Path

import pytest
import requests

from client.api import ApiClient
from tests.test_api_text import DOCS as TEXT_DOCS

sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (no browser download)")
expect = sync_api.expect

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SLOW = 180_000  # ms: the first query loads the text encoder into the API process
SCREENSHOT_COPY = Path("/tmp/mmsearch-ui.png")  # text results with score breakdowns
EXAMPLE_SCREENSHOT_COPY = Path("/tmp/mmsearch-ui-example.png")  # after the image upload

XSS_TITLE = '<img src=x onerror="window.__xss=1">Lighthouse & <b>storm</b>'
DOCS = [
    *TEXT_DOCS[:3],
    {
        "id": "xss",
        "title": XSS_TITLE,
        "text": "The lighthouse keeper wrote <script>window.__xss=2</script> in the log during the storm.",
    },
] + [
    {
        "id": f"log-{i:02d}",
        "title": f"Lighthouse log {i}",
        "text": f"Entry {i}: the lighthouse keeper trimmed the lamp and watched ships pass in the fog.",
    }
    for i in range(12)
]


def png_bytes() -> bytes:
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (96, 96), (30, 90, 200))
    ImageDraw.Draw(image).ellipse((20, 20, 76, 76), fill=(250, 200, 40))
    buf = io.BytesIO()
    image.save(buf, "PNG")
    return buf.getvalue()


def settle(page, expected: str = "ready") -> None:  # noqa: ANN001
    """Wait for the request an action started: body[data-state] goes busy -> ready | error."""
    expect(page.locator("body")).to_have_attribute("data-state", re.compile("^(ready|error)$"), timeout=SLOW)
    expect(page.locator("body")).to_have_attribute("data-state", expected)


def screenshot(page, path: Path, copy: Path) -> None:  # noqa: ANN001
    page.screenshot(path=str(path), full_page=True)
    with contextlib.suppress(OSError):  # the copy is for people to look at, not for the test
        shutil.copyfile(path, copy)


@pytest.fixture
def ui_collection(api: ApiClient, tmp_path: Path) -> str:
    """Text documents and one image (pHash: a real image encoder that needs no downloaded weights)."""
    name = f"t-ui-{uuid.uuid4().hex[:8]}"
    api.create_collection(name, encoders=["text", "phash"])
    try:
        out = api.add_documents(name, DOCS, refresh=True)
        assert out["indexed"] == len(DOCS) and not out["errors"]
        (tmp_path / "sun.png").write_bytes(png_bytes())
        assert api.add_files(name, [tmp_path / "sun.png"], refresh=True)["files"][0]["status"] == "pending"
        api.wait_encoded(name, timeout=600)
        yield name
    finally:
        api.delete_collection(name)


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        message = f"no Chromium at {CHROMIUM}: apt-get install chromium"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


def open_page(browser, origin: str, handle=None):  # noqa: ANN001, ANN201
    """A page whose requests may only go to `origin` (or to `handle(route)`, which answers them)."""
    foreign: list[str] = []
    errors: list[str] = []
    context = browser.new_context(viewport={"width": 1100, "height": 1300})

    def gate(route) -> None:  # noqa: ANN001
        url = route.request.url
        if url == origin or url.startswith(origin + "/"):
            handle(route) if handle else route.continue_()
        else:
            foreign.append(url)
            route.abort()

    context.route("**/*", gate)
    page = context.new_page()
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.set_default_timeout(30_000)
    return context, page, foreign, errors


@pytest.fixture
def page(browser, api_url: str):  # noqa: ANN001
    context, page, foreign, errors = open_page(browser, api_url.rstrip("/"))
    yield page
    context.close()
    assert not foreign, f"the page tried to fetch from elsewhere: {foreign}"
    assert not errors, f"uncaught JavaScript errors: {errors}"


@pytest.mark.integration
def test_search_page(page, api_url: str, ui_collection: str, tmp_path: Path) -> None:
    origin = api_url.rstrip("/")
    page.goto(origin + "/")
    expect(page.locator("#collection")).to_have_attribute("data-loaded", "true")
    page.select_option("#collection", ui_collection)
    expect(page.locator("#collection")).to_have_value(ui_collection)

    # A text query: results with a badge, a highlighted snippet and a score breakdown.
    page.fill("#query", "coral reefs sea temperature")
    page.click("#submit")
    settle(page)
    hits = page.locator('[data-testid="hit"]')
    expect(hits.first).to_be_visible()
    expect(page.locator("#error")).to_be_hidden()
    first = hits.first
    expect(first.locator('[data-testid="title"]')).to_have_text("Coral reefs")
    expect(first.locator('[data-testid="badge"]')).to_have_text("text")
    expect(first.locator('[data-testid="snippet"] mark').first).to_be_visible()
    breakdown = first.locator('[data-testid="breakdown"]')
    expect(breakdown).to_be_hidden()  # the explanation opens on demand
    first.locator('[data-testid="explain"] summary').click()
    expect(breakdown).to_be_visible()
    rows = breakdown.locator('[data-testid="component"]')
    names = rows.evaluate_all("rows => rows.map(r => r.dataset.name)")
    assert "lexical" in names and any(n.startswith("vector") for n in names), names
    expect(breakdown.locator(".fused")).to_have_text(re.compile(r"\d"))
    expect(page.locator("#status")).to_contain_text("result")
    screenshot(page, tmp_path / "search.png", SCREENSHOT_COPY)

    # Titles and snippets from documents are text, never markup.
    page.fill("#query", "lighthouse storm")
    page.check('[data-testid="mode-lexical"]', force=True)
    page.click("#submit")
    settle(page)
    xss = page.locator('[data-testid="hit"][data-id="xss"]')
    expect(xss).to_be_visible()
    title = xss.locator('[data-testid="title"]')
    assert title.locator("img, b").count() == 0
    assert title.text_content() == XSS_TITLE
    assert xss.locator('[data-testid="snippet"] script').count() == 0
    expect(xss.locator('[data-testid="snippet"]')).to_contain_text("<script>")
    assert page.evaluate("() => window.__xss") is None

    # Pagination over every hit (past the relevance cut-off, if it cut any): 13 lighthouse documents.
    show_all = page.locator('[data-testid="show-all"]')
    if show_all.count():
        show_all.click()
        settle(page)
        assert "all=1" in page.url
    expect(page.locator("#page-info")).to_have_text(re.compile(r"^1–10 of 13$"))
    page.click("#next")
    settle(page)
    expect(page.locator("#page-info")).to_have_text(re.compile(r"^11–13 of 13$"))
    expect(page.locator("#next")).to_be_disabled()
    page.click("#prev")
    settle(page)
    expect(page.locator("#page-info")).to_have_text(re.compile(r"^1–10 "))

    # "Similar" on a hit lists documents like it, in the same shape.
    page.locator('[data-testid="hit"]').first.locator('[data-testid="similar"]').click()
    settle(page)
    expect(page.locator("#context")).to_be_visible()
    expect(page.locator('[data-testid="hit"], #empty:not([hidden])').first).to_be_visible()
    page.click("#context-clear")
    settle(page)
    expect(page.locator("#context")).to_be_hidden()

    # Query by example: upload the PNG. pHash finds the stored copy of it, shown with its thumbnail.
    image = png_bytes()
    page.fill("#query", "")
    page.check('[data-testid="mode-hybrid"]', force=True)
    page.set_input_files(
        "#image-file", files=[{"name": "sun.png", "mimeType": "image/png", "buffer": image}]
    )  # choosing a file searches with it at once
    expect(page.locator("#example")).to_be_visible()
    settle(page)
    error = page.locator("#error")
    expect(error).to_be_hidden()
    match = page.locator(f'[data-testid="hit"][data-id="{hashlib.sha256(image).hexdigest()}"]')
    expect(match).to_be_visible()
    expect(match.locator('[data-testid="badge"]')).to_have_text("image")
    expect(match.locator('[data-testid="thumbnail"]')).to_be_visible()
    names = match.locator('[data-testid="component"]').evaluate_all("rows => rows.map(r => r.dataset.name)")
    assert "vector:phash" in names, names
    screenshot(page, tmp_path / "search-example.png", EXAMPLE_SCREENSHOT_COPY)

    # An audio clip: this collection has no audio encoder, and the page shows the API's own 4xx message.
    direct = requests.post(
        f"{origin}/v1/collections/{ui_collection}/search",
        files={"file": ("beep.wav", wav_bytes(), "audio/wav")},
        data={"request": json.dumps({"mode": "hybrid"})},
        timeout=120,
    )
    assert direct.status_code == 400, direct.text
    page.set_input_files(
        "#audio-file", files=[{"name": "beep.wav", "mimeType": "audio/wav", "buffer": wav_bytes()}]
    )
    settle(page, "error")
    expect(error).to_be_visible()
    expect(error).to_contain_text("HTTP 400")
    expect(page.locator('[data-testid="error-message"]')).to_have_text(direct.json()["error"]["message"])
    expect(page.locator('[data-testid="hit"]')).to_have_count(0)

    # Removing the example and searching by text again clears the error.
    page.click("#example-clear")
    page.fill("#query", "sourdough yeast")
    page.click("#submit")
    settle(page)
    expect(page.locator('[data-testid="hit"]').first).to_have_attribute("data-id", "cooking")
    expect(error).to_be_hidden()


# ---------------------------------------------------------------- canned API, browser only

FAKE = "http://mmsearch.test"
MODALITY_SCREENSHOT_COPY = Path("/tmp/mmsearch-ui-modalities.png")


def wav_bytes(seconds: float = 0.5, rate: int = 8000) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(b"\0\0" * int(seconds * rate))
    return buf.getvalue()


def linear_explanation(score: float, lexical: tuple | None, vector: tuple | None) -> dict:
    components = {}
    for name, part in (("lexical", lexical), ("vector:clip", vector)):
        if part:
            rank, raw, norm = part
            components[name] = {"rank": rank, "score": raw, "normalized": norm, "contribution": norm / 2}
    return {"fused": {"score": score, "method": "linear"}, "components": components}


def canned_hits(start: int) -> list[dict]:
    hits = [
        {
            "id": "harbour.jpg",
            "score": 0.91,
            "source": {
                "title": "Harbour at dusk",
                "content": "HARBOUR MASTER office hours",
                "modality": "image",
                "metadata": {"camera": "x100"},
                "source": {"filename": "harbour.jpg", "mime": "image/jpeg"},
                "ingest": {"status": "encoded"},
            },
            "highlight": {"content": ["<mark>HARBOUR</mark> MASTER &lt;b&gt;office&lt;/b&gt; hours"]},
            "explanation": linear_explanation(0.91, (1, 7.5, 1.0), (2, 0.31, 0.82)),
        },
        {
            "id": "gulls.wav",
            "score": 0.55,
            "source": {
                "title": "Gulls in the harbour",
                "content": "gulls calling over the harbour and a foghorn",
                "modality": "audio",
                "metadata": {},
                "source": {"filename": "gulls.wav", "mime": "audio/wav"},
                "segments": [
                    {"text": "gulls calling over the harbour", "start": 0.0, "end": 2.5},
                    {"text": "and a foghorn", "start": 62.0, "end": 64.0},
                ],
                "ingest": {"status": "encoded"},
            },
            "explanation": linear_explanation(0.55, None, (1, 0.35, 1.0)),
        },
        {
            "id": "tides.pdf",
            "score": 0.4,
            "source": {
                "title": "Tide tables",
                "content": "High water at the harbour entrance",
                "modality": "document",
                "metadata": {},
                "source": {"filename": "tides.pdf", "mime": "application/pdf"},
                "ingest": {"status": "encoded"},
            },
            "explanation": linear_explanation(0.4, (2, 5.1, 0.4), None),
        },
        {
            "id": "notes/1",
            "score": 0.2,
            "source": {
                "title": "<i>Notes</i>",
                "content": "Harbour notes, not encoded yet",
                "modality": "text",
                "metadata": {},
                "source": {},
                "ingest": {"status": "pending"},
            },
            "explanation": linear_explanation(0.2, (3, 2.0, 0.0), None),
        },
    ]
    for i, hit in enumerate(hits):
        hit["rank"] = start + i + 1
    return hits


@pytest.mark.slow
def test_page_renders_every_modality(browser, tmp_path: Path) -> None:  # noqa: ANN001
    from flask import Flask

    from search.api import ui

    app = Flask(__name__)
    app.register_blueprint(ui.bp)
    static = app.test_client()
    thumbnail = png_bytes()
    requests_seen: list[dict] = []
    paths_seen: list[str] = []

    def handle(route) -> None:  # noqa: ANN001
        req = route.request
        path = req.url[len(FAKE) :].split("?")[0]
        paths_seen.append(path)
        if path == "/" or path.startswith("/ui/"):
            resp = static.get(path)
            route.fulfill(status=resp.status_code, headers=dict(resp.headers), body=resp.data)
        elif path == "/v1/collections":
            route.fulfill(json={"collections": ["harbour", "other"]})
        elif path == "/v1/collections/harbour/search":
            body = req.post_data_buffer or b""
            content_type = req.headers.get("content-type", "")
            requests_seen.append({"content_type": content_type, "body": body})
            if content_type.startswith("multipart/form-data"):
                route.fulfill(
                    status=400,
                    json={"error": {"status": 400, "type": "bad_request", "message": "no <image> encoder"}},
                )
                return
            params = json.loads(body)
            start = params.get("from", 0)
            hits = canned_hits(start)
            route.fulfill(
                json={
                    "collection": "harbour",
                    "mode": params["mode"],
                    "from": start,
                    "size": 4,
                    "total": 14,
                    "took_ms": 3.2,
                    "hits": hits,
                }
            )
        elif path == "/v1/collections/harbour/documents/harbour.jpg/thumbnail":
            route.fulfill(body=thumbnail, content_type="image/png")
        elif path == "/v1/collections/harbour/documents/gulls.wav/content":
            route.fulfill(body=wav_bytes(), content_type="audio/wav")
        else:
            error = {"status": 404, "type": "not_found", "message": "not found"}
            route.fulfill(status=404, json={"error": error})

    context, page, foreign, errors = open_page(browser, FAKE, handle)
    try:
        response = page.goto(FAKE + "/")
        assert "default-src 'self'" in response.headers["content-security-policy"]
        expect(page.locator("#collection")).to_have_attribute("data-loaded", "true")
        expect(page.locator("#collection option")).to_have_count(2)
        page.select_option("#collection", "harbour")
        page.fill("#query", "harbour")
        page.check('[data-testid="mode-vector"]', force=True)
        page.uncheck('[data-testid="modality-text"]')
        page.click("#submit")
        settle(page)

        sent = json.loads(requests_seen[-1]["body"])
        assert sent == {
            "mode": "vector",
            "highlight": True,
            "explain": True,
            "facets": True,
            "query": "harbour",
            "modalities": ["image", "audio", "document"],
            "from": 0,
            "size": 10,
        }

        hits = page.locator('[data-testid="hit"]')
        expect(hits).to_have_count(4)
        expect(hits.locator('[data-testid="badge"]')).to_have_text(["image", "audio", "document", "text"])

        image = hits.nth(0)
        img = image.locator('[data-testid="thumbnail"]')
        expect(img).to_have_attribute("src", "/v1/collections/harbour/documents/harbour.jpg/thumbnail")
        for _ in range(100):  # (wait_for_function would need eval, which the page's CSP forbids)
            if img.evaluate("img => img.complete && img.naturalWidth > 0"):
                break
            time.sleep(0.1)
        else:
            pytest.fail("the thumbnail did not load")
        expect(image.locator('[data-testid="snippet"] mark')).to_have_text("HARBOUR")
        expect(image.locator('[data-testid="snippet"]')).to_have_text(
            "Text in image (OCR): HARBOUR MASTER <b>office</b> hours"
        )
        assert image.locator('[data-testid="snippet"] b').count() == 0
        rows = image.locator('[data-testid="component"]')
        expect(rows).to_have_count(2)
        expect(rows.nth(1)).to_contain_text("vector:clip")
        expect(rows.nth(1)).to_contain_text("0.8200")  # normalised score shown for linear fusion
        expect(image.locator(".breakdown .method")).to_have_text("linear")
        expect(image.locator(".breakdown .fused")).to_have_text("0.9100")

        audio = hits.nth(1)
        player = audio.locator('[data-testid="player"]')
        expect(player).to_have_attribute("src", "/v1/collections/harbour/documents/gulls.wav/content")
        assert audio.locator("audio[controls]").count() == 1
        audio.locator('[data-testid="segments"] summary').click()
        expect(audio.locator('[data-testid="segments"] li')).to_have_count(2)
        expect(audio.locator('[data-testid="segments"] li').nth(1)).to_contain_text("1:02")

        document = hits.nth(2)  # the API has thumbnails for images only: no media column, no request
        expect(document.locator(".media")).to_have_count(0)
        assert not [p for p in paths_seen if p.endswith("/thumbnail") and "harbour.jpg" not in p]
        expect(document.locator('[data-testid="snippet"]')).to_contain_text("Extracted text:")

        text = hits.nth(3)
        expect(text.locator('[data-testid="title"]')).to_have_text("<i>Notes</i>")
        expect(text.locator('[data-testid="meta"] .ingest')).to_have_text("pending")
        expect(page.locator("#page-info")).to_have_text("1–4 of 14")

        screenshot(page, tmp_path / "modalities.png", MODALITY_SCREENSHOT_COPY)

        page.click("#next")
        settle(page)
        assert json.loads(requests_seen[-1]["body"])["from"] == 10
        expect(page.locator("#page-info")).to_have_text("11–14 of 14")
        expect(page.locator("#next")).to_be_disabled()

        # Query by example goes out as multipart: a `file` part and a `request` part with the JSON.
        page.set_input_files(
            "#image-file", files=[{"name": "sun.png", "mimeType": "image/png", "buffer": thumbnail}]
        )
        settle(page, "error")
        seen = requests_seen[-1]
        assert seen["content_type"].startswith("multipart/form-data; boundary=")
        assert b'name="file"; filename="sun.png"' in seen["body"] and thumbnail in seen["body"]
        part = seen["body"].split(b'name="request"', 1)[1].split(b"\r\n\r\n", 1)[1].split(b"\r\n--", 1)[0]
        assert json.loads(part)["from"] == 0 and json.loads(part)["mode"] == "vector"
        expect(page.locator('[data-testid="error-message"]')).to_have_text("no <image> encoder")
        expect(page.locator("#error")).to_contain_text("HTTP 400")
        expect(hits).to_have_count(0)

        # Similar: GET on the document, same rendering.
        page.click("#example-clear")
        page.click("#submit")
        settle(page)
        hits.nth(3).locator('[data-testid="similar"]').click()
        settle(page, "error")  # the canned API has no /similar: a 404, shown as such
        expect(page.locator("#context")).to_contain_text("Documents similar to “<i>Notes</i>”")
        expect(page.locator("#error")).to_contain_text("HTTP 404")
    finally:
        context.close()
    assert not foreign, f"the page tried to fetch from elsewhere: {foreign}"
    assert not errors, f"uncaught JavaScript errors: {errors}"
