// mmsearch search page. Everything from the API is inserted with textContent, except highlight
// fragments, which are rebuilt from text and <mark> elements only (see markedFragment).
"use strict";

const $ = (id) => document.getElementById(id);
const MODALITIES = ["text", "image", "audio", "document"];
const PAGE_SIZE = 10;
const KEY_STORE = "mmsearch.collection";
// The API key (when the API has keys): kept for this tab only, sent as a header, never put in a URL.
// Media elements cannot send headers, so images and audio use the signed URLs the API puts in hits.
const API_KEY_STORE = "mmsearch.apikey";

const state = {
  collection: "",
  params: null, // the last search's JSON parameters (without from/size)
  file: null, // File for query by example
  similar: null, // {id, title} when showing documents similar to one
  from: 0,
  size: PAGE_SIZE,
  busy: false,
};

// ---------------------------------------------------------------- API

class ApiError extends Error {
  constructor(status, type, message) {
    super(message);
    this.status = status;
    this.type = type;
  }
}

async function api(method, path, body) {
  const init = { method, headers: { Accept: "application/json" } };
  const key = sessionStorage.getItem(API_KEY_STORE);
  if (key) init.headers.Authorization = `Bearer ${key}`;
  if (body instanceof FormData) {
    init.body = body; // the browser sets the multipart boundary
  } else if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let resp;
  try {
    resp = await fetch(path, init);
  } catch (err) {
    throw new ApiError(0, "network", `cannot reach the API: ${err.message}`);
  }
  const text = await resp.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (resp.status === 401) $("auth").hidden = false;
  if (!resp.ok) {
    const e = data && data.error;
    if (e && typeof e === "object") {
      throw new ApiError(e.status || resp.status, e.type || "error", e.message || resp.statusText);
    }
    throw new ApiError(resp.status, "http", `${resp.statusText || "request failed"}: ${text.slice(0, 200)}`);
  }
  if (data === null) throw new ApiError(resp.status, "invalid_response", "the API did not answer with JSON");
  return data;
}

const enc = encodeURIComponent;
const collectionPath = (c) => `/v1/collections/${enc(c)}`;
const docPath = (c, id) => `${collectionPath(c)}/documents/${enc(id)}`;

// ---------------------------------------------------------------- small DOM helpers

function el(tag, attrs = {}, text) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

function fmt(x, digits = 4) {
  if (typeof x !== "number" || !Number.isFinite(x)) return "–";
  if (x !== 0 && Math.abs(x) < 10 ** -digits) return x.toExponential(2);
  return x.toFixed(digits);
}

function fmtTime(seconds) {
  if (typeof seconds !== "number" || !Number.isFinite(seconds)) return "";
  const m = Math.floor(seconds / 60);
  const s = Math.floor(seconds % 60);
  return `${m}:${String(s).padStart(2, "0")}`;
}

// A highlight fragment arrives HTML-escaped with <mark> tags. Parse it in an inert document and
// rebuild it from text nodes and <mark> text only, so no other markup can ever reach the page.
const parser = new DOMParser();
function markedFragment(html) {
  const frag = document.createDocumentFragment();
  const doc = parser.parseFromString(`<body>${String(html)}</body>`, "text/html");
  for (const node of doc.body.childNodes) {
    if (node.nodeType === Node.ELEMENT_NODE && node.tagName === "MARK") {
      frag.append(el("mark", {}, node.textContent));
    } else {
      frag.append(document.createTextNode(node.textContent));
    }
  }
  return frag;
}

// ---------------------------------------------------------------- status, errors

function showError(err) {
  const box = $("error");
  box.replaceChildren();
  if (!err) {
    box.hidden = true;
    return;
  }
  document.body.dataset.state = "error";
  const status = err.status ? `HTTP ${err.status}` : "Error";
  box.append(el("strong", {}, status), el("span", { class: "etype" }, err.type || ""), el("span", { "data-testid": "error-message" }, err.message));
  box.hidden = false;
}

function setStatus(text) {
  $("status").textContent = text || "";
}

// body[data-state]: "busy" while a request runs, then "ready" or "error" (tests wait on it).
function setBusy(busy) {
  state.busy = busy;
  document.body.classList.toggle("busy", busy);
  if (busy) document.body.dataset.state = "busy";
  $("results").setAttribute("aria-busy", String(busy));
  $("submit").disabled = busy;
}

// ---------------------------------------------------------------- collections

async function loadCollections() {
  const select = $("collection");
  try {
    const data = await api("GET", "/v1/collections");
    const names = Array.isArray(data.collections) ? data.collections : [];
    select.replaceChildren();
    if (!names.length) {
      select.append(el("option", { value: "" }, "no collections"));
      return;
    }
    for (const name of names) select.append(el("option", { value: name }, name));
    const remembered = localStorage.getItem(KEY_STORE);
    select.value = names.includes(remembered) ? remembered : names[0];
    state.collection = select.value;
    select.dataset.loaded = "true";
  } catch (err) {
    select.replaceChildren(el("option", { value: "" }, "unavailable"));
    showError(err);
  }
}

// ---------------------------------------------------------------- query by example

function setExample(file) {
  state.file = file || null;
  const box = $("example");
  const preview = $("example-preview");
  if (preview.src) URL.revokeObjectURL(preview.src);
  preview.removeAttribute("src");
  preview.hidden = true;
  if (!file) {
    box.hidden = true;
    $("image-file").value = "";
    $("audio-file").value = "";
    return;
  }
  const kind = file.type.startsWith("audio/") ? "audio" : "image";
  $("example-name").textContent = `Query by ${kind} example: ${file.name}`;
  if (kind === "image") {
    preview.src = URL.createObjectURL(file);
    preview.hidden = false;
  }
  box.hidden = false;
}

// ---------------------------------------------------------------- searching

function formParams() {
  const mode = document.querySelector('input[name="mode"]:checked').value;
  const checked = MODALITIES.filter((m) => document.querySelector(`input[name="modality"][value="${m}"]`).checked);
  const params = { mode, highlight: true, explain: true };
  const query = $("query").value.trim();
  if (query) params.query = query;
  if (checked.length && checked.length < MODALITIES.length) params.modalities = checked;
  return { params, checked };
}

async function submitSearch(event) {
  if (event) event.preventDefault();
  const { params, checked } = formParams();
  state.collection = $("collection").value;
  if (!state.collection) return showError(new ApiError(0, "no_collection", "Choose a collection first."));
  if (!checked.length) return showError(new ApiError(0, "no_modality", "Choose at least one modality."));
  if (!params.query && !state.file) return showError(new ApiError(0, "empty_query", "Type a query or choose an image or audio example."));
  state.params = params;
  state.similar = null;
  state.from = 0;
  await run();
}

async function showSimilar(hit) {
  state.similar = { id: hit.id, title: (hit.source && hit.source.title) || hit.id };
  state.from = 0;
  await run();
}

async function run() {
  if (state.busy) return;
  showError(null);
  setBusy(true);
  setStatus("Searching…");
  const c = state.collection;
  $("context").hidden = !state.similar;
  if (state.similar) $("context-text").textContent = `Documents similar to “${state.similar.title}”`;
  try {
    let data;
    if (state.similar) {
      const qs = new URLSearchParams({ from: state.from, size: state.size });
      data = await api("GET", `${docPath(c, state.similar.id)}/similar?${qs}`);
    } else {
      const body = { ...state.params, from: state.from, size: state.size };
      if (state.file) {
        const form = new FormData();
        form.append("file", state.file, state.file.name);
        form.append("request", JSON.stringify(body));
        data = await api("POST", `${collectionPath(c)}/search`, form);
      } else {
        data = await api("POST", `${collectionPath(c)}/search`, body);
      }
    }
    render(data, c);
    document.body.dataset.state = "ready";
  } catch (err) {
    clearResults();
    setStatus("");
    showError(err);
    document.body.dataset.state = "error";
  } finally {
    setBusy(false);
  }
}

// ---------------------------------------------------------------- rendering

function clearResults() {
  $("results").replaceChildren();
  $("empty").hidden = true;
  $("pager").hidden = true;
}

// Search and /similar answer alike: {mode, from, size, total, took_ms, hits}.
function render(data, collection) {
  clearResults();
  const { hits, total, from } = data;
  const took = `${data.took_ms} ms`;

  if (!hits.length) {
    $("empty").hidden = false;
    setStatus(`No results · ${took}`);
    return;
  }
  setStatus(`${total} result${total === 1 ? "" : "s"} · ${took} · ${data.mode}`);
  const list = $("results");
  for (const hit of hits) list.append(renderHit(hit, collection));

  $("pager").hidden = from === 0 && from + hits.length >= total;
  $("prev").disabled = from === 0;
  $("next").disabled = from + hits.length >= total;
  $("page-info").textContent = `${from + 1}–${from + hits.length} of ${total}`;
}

function renderHit(hit, collection) {
  const node = $("hit-template").content.firstElementChild.cloneNode(true);
  const src = hit.source || {};
  const modality = MODALITIES.includes(src.modality) ? src.modality : "text";
  const file = src.source || {};
  node.dataset.id = hit.id;
  node.dataset.modality = modality;

  const badge = node.querySelector(".badge");
  badge.textContent = modality;
  badge.classList.add(`badge-${modality}`);

  const title = node.querySelector(".title");
  const hlTitle = hit.highlight && Array.isArray(hit.highlight.title) && hit.highlight.title[0];
  if (hlTitle) title.append(markedFragment(hlTitle));
  else title.textContent = src.title || file.filename || hit.id;
  node.querySelector(".score").textContent = `#${hit.rank ?? ""} · ${fmt(hit.score)}`;

  // Media: a thumbnail for images (the API makes them for images only), a player for audio.
  const media = node.querySelector(".media");
  if (modality === "image") {
    const img = el("img", {
      src: (hit.urls && hit.urls.thumbnail) || `${docPath(collection, hit.id)}/thumbnail`,
      alt: src.title || file.filename || "",
      loading: "lazy",
      "data-testid": "thumbnail",
    });
    img.addEventListener("error", () => media.replaceChildren(el("span", { class: "nothumb" }, "no preview")));
    media.append(img);
  } else {
    media.remove();
  }
  let player = null;
  if (modality === "audio") {
    const audioSrc = (hit.urls && hit.urls.content) || `${docPath(collection, hit.id)}/content`;
    player = el("audio", { controls: "", preload: "none", src: audioSrc, "data-testid": "player" });
    node.querySelector(".body").insertBefore(player, node.querySelector(".snippet"));
  }

  // Snippet: highlighted fragments, else the start of the content (transcript / OCR text).
  const snippet = node.querySelector(".snippet");
  const fragments = hit.highlight && Array.isArray(hit.highlight.content) ? hit.highlight.content : [];
  if (fragments.length) {
    fragments.forEach((f, i) => {
      if (i) snippet.append(el("span", { class: "sep" }, " … "));
      snippet.append(markedFragment(f));
    });
  } else if (src.content) {
    const text = String(src.content);
    snippet.textContent = text.length > 320 ? `${text.slice(0, 320)}…` : text;
  } else {
    snippet.remove();
  }
  if ((fragments.length || src.content) && modality !== "text") {
    const label = { image: "Text in image (OCR)", audio: "Transcript", document: "Extracted text" }[modality];
    snippet.prepend(el("span", { class: "label" }, `${label}: `));
  }

  // A long document's best passages: where they are ("p. 12", "01:32") linking to that page or time.
  const passages = Array.isArray(hit.passages) ? hit.passages : [];
  if (passages.length) {
    const list = el("ul", { class: "passages", "data-testid": "passages" });
    for (const p of passages) {
      const li = el("li", { "data-testid": "passage" });
      li.append(passageWhere(p, (hit.urls && hit.urls.content) || `${docPath(collection, hit.id)}/content`, player), " ");
      const marked = Array.isArray(p.highlight) && p.highlight[0];
      if (marked) li.append(markedFragment(marked));
      else li.append(el("span", {}, String(p.text || "").slice(0, 240) + (String(p.text || "").length > 240 ? "…" : "")));
      list.append(li);
    }
    node.querySelector(".body").insertBefore(list, node.querySelector(".meta"));
  }

  // Meta: file name, MIME type, encoding status (pending or failed) until encoded.
  const meta = node.querySelector(".meta");
  const parts = [];
  if (file.filename) parts.push(file.filename);
  if (file.mime) parts.push(file.mime);
  parts.push(`id ${hit.id}`);
  meta.textContent = parts.join(" · ");
  const status = src.ingest && src.ingest.status;
  if (status === "pending" || status === "failed") {
    meta.append(" ", el("span", { class: `ingest ingest-${status}` }, status));
  }

  // Transcript segments, with timestamps that seek the player.
  const segments = Array.isArray(src.segments) ? src.segments : [];
  if (segments.length) {
    const details = node.querySelector(".segments");
    details.hidden = false;
    details.querySelector("summary").textContent = `Transcript (${segments.length} segment${segments.length === 1 ? "" : "s"})`;
    const ol = details.querySelector("ol");
    for (const seg of segments) {
      const li = el("li");
      const stamp = el("button", { type: "button", class: "stamp" }, fmtTime(seg.start));
      if (player) {
        stamp.addEventListener("click", () => {
          player.currentTime = seg.start;
          player.play().catch(() => {});
        });
      } else {
        stamp.disabled = true;
      }
      li.append(stamp, el("span", {}, seg.text || ""));
      ol.append(li);
    }
  } else {
    node.querySelector(".segments").remove();
  }

  renderBreakdown(node.querySelector(".breakdown"), hit.explanation);

  node.querySelector(".similar").addEventListener("click", () => showSimilar(hit));
  return node;
}

// "p. 12" links to the original at that page (PDF viewers read #page=N); "01:32" seeks the player.
// `content`: the original's URL (signed when the API has keys).
function passageWhere(p, content, player) {
  if (Number.isInteger(p.page)) {
    const label = Number.isInteger(p.page_end) && p.page_end !== p.page ? `pp. ${p.page}–${p.page_end}` : `p. ${p.page}`;
    return el("a", { class: "where", href: `${content}#page=${p.page}`, target: "_blank", rel: "noopener" }, label);
  }
  if (typeof p.time_start === "number") {
    const stamp = el("button", { type: "button", class: "stamp where" }, fmtTime(p.time_start));
    if (player) {
      stamp.addEventListener("click", () => {
        player.currentTime = p.time_start;
        player.play().catch(() => {});
      });
    } else {
      stamp.disabled = true;
    }
    return stamp;
  }
  return el("span", { class: "where" }, `chars ${p.start}–${p.end}`);
}

function renderBreakdown(table, explanation) {
  if (!explanation || typeof explanation !== "object") {
    table.remove();
    return;
  }
  // components: {name: {rank, score, contribution, normalized (linear fusion only)}}
  const entries = Object.entries(explanation.components || {});
  const fused = explanation.fused || {};
  const total = entries.reduce((s, [, c]) => s + (typeof c.contribution === "number" ? Math.max(c.contribution, 0) : 0), 0);
  const body = table.querySelector("tbody");
  // RRF has no normalised scores: drop that column unless some component has one.
  const normalized = entries.some(([, c]) => typeof c.normalized === "number");
  if (!normalized) {
    table.querySelector("thead th:nth-child(4)").remove();
    table.querySelector("tfoot .method").colSpan = 2;
  }
  for (const [name, c] of entries) {
    const tr = el("tr", { "data-testid": "component", "data-name": name });
    tr.append(
      el("th", { scope: "row" }, name),
      el("td", { class: "num" }, c.rank ?? "–"),
      el("td", { class: "num" }, fmt(c.score)),
    );
    if (normalized) tr.append(el("td", { class: "num" }, fmt(c.normalized)));
    const td = el("td", { class: "num contrib" });
    const share = total > 0 && typeof c.contribution === "number" ? Math.max(c.contribution, 0) / total : 0;
    const track = el("span", { class: "track", title: `${Math.round(share * 100)}% of the fused score` });
    const bar = el("span", { class: "bar" });
    bar.style.width = `${Math.round(share * 100)}%`;
    track.append(bar);
    td.append(track, el("span", {}, fmt(c.contribution)));
    tr.append(td);
    body.append(tr);
  }
  table.querySelector(".method").textContent = fused.method && fused.method !== "none" ? fused.method : "single list";
  table.querySelector(".fused").textContent = fmt(fused.score);
  table.hidden = false;
}

// ---------------------------------------------------------------- wiring

function page(delta) {
  state.from = Math.max(0, state.from + delta * state.size);
  run().then(() => window.scrollTo({ top: 0 }));
}

document.addEventListener("DOMContentLoaded", () => {
  $("search-form").addEventListener("submit", submitSearch);
  $("collection").addEventListener("change", (e) => {
    state.collection = e.target.value;
    localStorage.setItem(KEY_STORE, e.target.value);
  });
  // Choosing an example searches with it straight away (with the query text, if any).
  for (const [id, other] of [["image-file", "audio-file"], ["audio-file", "image-file"]]) {
    $(id).addEventListener("change", (e) => {
      const file = e.target.files[0];
      $(other).value = "";
      setExample(file);
      if (file) submitSearch();
    });
  }
  $("example-clear").addEventListener("click", () => setExample(null));
  $("context-clear").addEventListener("click", () => {
    state.similar = null;
    state.from = 0;
    $("context").hidden = true;
    if (state.params) run();
    else clearResults();
  });
  $("auth").addEventListener("submit", (e) => {
    e.preventDefault();
    const key = $("api-key").value.trim();
    if (key) sessionStorage.setItem(API_KEY_STORE, key);
    else sessionStorage.removeItem(API_KEY_STORE);
    $("api-key").value = "";
    $("auth").hidden = true;
    showError(null);
    loadCollections();
  });
  $("prev").addEventListener("click", () => page(-1));
  $("next").addEventListener("click", () => page(1));
  loadCollections();
});
