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
  query: "",
  mode: "hybrid",
  modalities: [...MODALITIES],
  filters: {}, // field -> value or range ({gte: "now-7d"}), as the API's `filters` takes them
  file: null, // File for query by example
  similar: null, // {id, title} when showing documents similar to one
  from: 0,
  size: PAGE_SIZE,
  all: false, // true: every hit, past the relevance cut-off (`cutoff: false`)
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
    const wanted = new URLSearchParams(location.search).get("collection") || localStorage.getItem(KEY_STORE);
    select.value = names.includes(wanted) ? wanted : names[0];
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

// ---------------------------------------------------------------- state in the URL
//
// Everything that makes a search (collection, query, mode, modalities, filters, page, "similar to")
// lives in the URL: ?q=&collection=&mode=&modalities=image,audio&f.<field>=<value>&r.<field>=gte:now-7d
// &page=2&like=<id>. Each search a person starts pushes an entry, so links can be shared, reloaded and
// opened in a new tab, and back/forward restore the search they point at. An uploaded example cannot
// live in a URL: searching by one leaves the URL alone.

function urlOf(s) {
  const qs = new URLSearchParams();
  if (s.collection) qs.set("collection", s.collection);
  if (s.similar) qs.set("like", s.similar.id);
  else if (s.query) qs.set("q", s.query);
  if (s.mode !== "hybrid") qs.set("mode", s.mode);
  if (s.modalities.length < MODALITIES.length) qs.set("modalities", s.modalities.join(","));
  for (const [field, value] of Object.entries(s.filters)) {
    if (value && typeof value === "object") {
      qs.set(`r.${field}`, Object.entries(value).map(([k, v]) => `${k}:${v}`).join(","));
    } else {
      qs.set(`f.${field}`, String(value));
    }
  }
  if (s.all) qs.set("all", "1");
  const pageNo = Math.floor(s.from / s.size) + 1;
  if (pageNo > 1) qs.set("page", String(pageNo));
  const text = qs.toString();
  return text ? `${location.pathname}?${text}` : location.pathname;
}

function readUrl(search) {
  const qs = new URLSearchParams(search);
  const modes = ["hybrid", "lexical", "vector"];
  const asked = (qs.get("modalities") || "").split(",").filter((m) => MODALITIES.includes(m));
  const filters = {};
  for (const [key, value] of qs) {
    if (key.startsWith("f.") && key.length > 2) filters[key.slice(2)] = value;
    if (key.startsWith("r.") && key.length > 2) {
      const range = {};
      for (const part of value.split(",")) {
        const at = part.indexOf(":");
        if (at > 0) range[part.slice(0, at)] = part.slice(at + 1);
      }
      if (Object.keys(range).length) filters[key.slice(2)] = range;
    }
  }
  const pageNo = Math.max(1, parseInt(qs.get("page") || "1", 10) || 1);
  const like = qs.get("like");
  return {
    collection: qs.get("collection") || "",
    query: (qs.get("q") || "").trim(),
    mode: modes.includes(qs.get("mode")) ? qs.get("mode") : "hybrid",
    modalities: asked.length ? asked : [...MODALITIES],
    filters,
    from: (pageNo - 1) * PAGE_SIZE,
    all: qs.get("all") === "1",
    similar: like ? { id: like, title: like } : null,
  };
}

// The form shows what the state holds (after a URL was opened, or back/forward).
function showState() {
  $("query").value = state.query;
  document.querySelector(`input[name="mode"][value="${state.mode}"]`).checked = true;
  for (const m of MODALITIES) {
    document.querySelector(`input[name="modality"][value="${m}"]`).checked = state.modalities.includes(m);
  }
  const select = $("collection");
  if (state.collection && [...select.options].some((o) => o.value === state.collection)) {
    select.value = state.collection;
  }
}

// Run the search the URL describes (page load, back, forward); nothing when it holds none.
async function runUrl() {
  Object.assign(state, readUrl(location.search));
  setExample(null);
  showState();
  if (!state.query && !state.similar) {
    clearResults();
    clearFacets();
    setStatus("");
    return;
  }
  if (state.collection && !$("collection").dataset.loaded) return; // collections failed to load
  if (state.collection && $("collection").value !== state.collection) {
    return showError(new ApiError(404, "not_found", `There is no collection “${state.collection}”.`));
  }
  state.collection = $("collection").value;
  await run();
}

// A search a person started: a new history entry, then the search.
async function navigate() {
  if (!state.file) history.pushState(null, "", urlOf(state));
  await run();
}

// ---------------------------------------------------------------- searching

function readForm() {
  state.mode = document.querySelector('input[name="mode"]:checked').value;
  state.modalities = MODALITIES.filter((m) => document.querySelector(`input[name="modality"][value="${m}"]`).checked);
  state.query = $("query").value.trim();
  state.all = false; // a new search starts at the cut-off again
}

function searchBody() {
  const body = { mode: state.mode, highlight: true, explain: true, facets: true };
  if (state.all) body.cutoff = false;
  if (state.query) body.query = state.query;
  if (state.modalities.length && state.modalities.length < MODALITIES.length) body.modalities = state.modalities;
  if (Object.keys(state.filters).length) body.filters = state.filters;
  return { ...body, from: state.from, size: state.size };
}

async function submitSearch(event) {
  if (event) event.preventDefault();
  readForm();
  const chosen = $("collection").value;
  if (!chosen) return showError(new ApiError(0, "no_collection", "Choose a collection first."));
  if (!state.modalities.length) return showError(new ApiError(0, "no_modality", "Choose at least one modality."));
  if (!state.query && !state.file) return showError(new ApiError(0, "empty_query", "Type a query or choose an image or audio example."));
  if (chosen !== state.collection) state.filters = {}; // another collection's values need not exist here
  state.collection = chosen;
  state.similar = null;
  state.from = 0;
  await navigate();
}

async function showSimilar(hit) {
  state.similar = { id: hit.id, title: (hit.source && hit.source.title) || hit.id };
  state.from = 0;
  await navigate();
}

// Narrow by a facet value, or widen again when it is the filter already in force.
async function toggleFilter(field, value) {
  const current = state.filters[field];
  const same = JSON.stringify(current) === JSON.stringify(value);
  const filters = { ...state.filters };
  if (same) delete filters[field];
  else filters[field] = value;
  state.filters = filters;
  state.from = 0;
  await navigate();
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
    } else if (state.file) {
      const form = new FormData();
      form.append("file", state.file, state.file.name);
      form.append("request", JSON.stringify(searchBody()));
      data = await api("POST", `${collectionPath(c)}/search`, form);
    } else {
      data = await api("POST", `${collectionPath(c)}/search`, searchBody());
    }
    render(data, c);
    document.body.dataset.state = "ready";
  } catch (err) {
    clearResults();
    clearFacets();
    setStatus("");
    showError(err);
    document.body.dataset.state = "error";
  } finally {
    setBusy(false);
  }
}

// ---------------------------------------------------------------- facets

const FACET_LABELS = {
  modality: "Type",
  mime: "File type",
  date: "Added",
  collection: "Collection",
  "metadata.author": "Author",
  "metadata.email_from": "From",
  "metadata.email_to": "To",
};
const DATE_LABELS = {
  "past-day": "past day",
  "past-week": "past week",
  "past-month": "past month",
  "past-year": "past year",
  older: "older",
};

function clearFacets() {
  $("facets").replaceChildren();
  $("facets").hidden = true;
}

// facets: {name: {field, buckets: [{value, count, range?}]}}; a value in force is pressed, and
// pressing it again widens the search ("Clear filters" drops them all).
function renderFacets(facets) {
  clearFacets();
  if (!facets || typeof facets !== "object") return;
  const box = $("facets");
  for (const [name, facet] of Object.entries(facets)) {
    const buckets = Array.isArray(facet.buckets) ? facet.buckets : [];
    if (!buckets.length || typeof facet.field !== "string") continue;
    const group = el("section", { class: "facet", "data-testid": "facet", "data-facet": name });
    group.append(el("h2", {}, FACET_LABELS[name] || name.replace(/^metadata\./, "")));
    const list = el("ul");
    for (const b of buckets) {
      const value = b.range && typeof b.range === "object" ? b.range : String(b.value);
      const label = name === "date" ? DATE_LABELS[b.value] || b.value : b.value;
      const pressed = JSON.stringify(state.filters[facet.field]) === JSON.stringify(value);
      const button = el("button", {
        type: "button",
        class: "facet-value",
        "data-testid": "facet-value",
        "data-value": String(b.value),
        "aria-pressed": String(pressed),
      });
      button.append(el("span", { class: "label" }, label), el("span", { class: "count" }, b.count));
      button.addEventListener("click", () => toggleFilter(facet.field, value));
      list.append(el("li", {}, undefined));
      list.lastChild.append(button);
    }
    group.append(list);
    box.append(group);
  }
  if (Object.keys(state.filters).length) {
    const clear = el("button", { type: "button", class: "link", "data-testid": "clear-filters" }, "Clear filters");
    clear.addEventListener("click", () => {
      state.filters = {};
      state.from = 0;
      navigate();
    });
    box.append(clear);
  }
  box.hidden = !box.childElementCount;
}

// ---------------------------------------------------------------- rendering

function clearResults() {
  $("results").replaceChildren();
  $("empty").hidden = true;
  $("pager").hidden = true;
}

// Search and /similar answer alike: {mode, from, size, total, took_ms, hits(, facets)}.
function render(data, collection) {
  clearResults();
  const { hits, total, from } = data;
  const took = `${data.took_ms} ms`;
  renderFacets(data.facets);

  if (!hits.length) {
    $("empty").hidden = false;
    setStatus(`No results · ${took}`);
    offerAll(data.cutoff);
    return;
  }
  setStatus(`${total} result${total === 1 ? "" : "s"} · ${took} · ${data.mode}`);
  offerAll(data.cutoff);
  const list = $("results");
  for (const group of groupHits(hits)) {
    const node = renderHit(group.head, collection);
    if (group.children.length) {
      const sub = el("ol", { class: "attachments", "data-testid": "attachments", "aria-label": "Attachments" });
      for (const child of group.children) sub.append(renderHit(child, collection));
      node.querySelector(".body").append(sub);
    }
    list.append(node);
  }

  $("pager").hidden = from === 0 && from + hits.length >= total;
  $("prev").disabled = from === 0;
  $("next").disabled = from + hits.length >= total;
  $("page-info").textContent = `${from + 1}–${from + hits.length} of ${total}`;
}

// Hits below the relevance cut-off are one click away (and the click is in the URL: `all=1`).
function offerAll(cutoff) {
  if (!cutoff || !cutoff.applied || !(cutoff.cut > 0)) return;
  const more = el("button", { type: "button", class: "link", "data-testid": "show-all" });
  more.textContent = `${cutoff.cut} more below the relevance cut-off: show all`;
  more.addEventListener("click", () => {
    state.all = true;
    state.from = 0;
    navigate();
  });
  $("status").append(" · ", more);
}

const parentOf = (hit) => {
  const meta = (hit.source && hit.source.metadata) || {};
  return typeof meta.parent_id === "string" ? meta.parent_id : null;
};

// A mail and its attachments are one result: the group stands where its best-ranked member does, the
// mail on top, its attachments under it in attachment order. An attachment whose mail is not on this
// page stands alone (and says whose attachment it is).
function groupHits(hits) {
  const ids = new Set(hits.map((h) => h.id));
  const byId = new Map(hits.map((h) => [h.id, h]));
  const groups = new Map();
  for (const hit of hits) {
    const parent = parentOf(hit);
    const key = parent && ids.has(parent) ? parent : hit.id;
    if (!groups.has(key)) groups.set(key, { head: byId.get(key), children: [] });
    if (key !== hit.id) groups.get(key).children.push(hit);
  }
  const number = (h) => Number(((h.source || {}).metadata || {}).attachment_number) || 0;
  for (const g of groups.values()) g.children.sort((a, b) => number(a) - number(b));
  return [...groups.values()];
}

// The original file's URL (signed when the API has keys); null for documents sent as JSON text.
function contentUrl(hit, collection) {
  if (hit.urls && hit.urls.content) return hit.urls.content;
  const file = (hit.source && hit.source.source) || {};
  return file.sha256 ? `${docPath(collection, hit.id)}/content` : null;
}

function renderHit(hit, collection) {
  const node = $("hit-template").content.firstElementChild.cloneNode(true);
  const src = hit.source || {};
  const modality = MODALITIES.includes(src.modality) ? src.modality : "text";
  node.dataset.id = hit.id;
  node.dataset.modality = modality;
  if (parentOf(hit)) node.dataset.parent = parentOf(hit);

  const badge = node.querySelector(".badge");
  badge.textContent = modality;
  badge.classList.add(`badge-${modality}`);
  renderTitle(node.querySelector(".title"), hit, contentUrl(hit, collection));
  node.querySelector(".score").textContent = `#${hit.rank ?? ""} · ${fmt(hit.score)}`;

  const player = renderMedia(node, hit, collection, modality);
  renderSnippet(node.querySelector(".snippet"), hit, modality);
  renderPassages(node, hit, contentUrl(hit, collection), player);
  renderMeta(node.querySelector(".meta"), hit);
  renderSegments(node.querySelector(".segments"), src.segments, player);
  renderBreakdown(node.querySelector(".explain"), hit.explanation);

  node.querySelector(".similar").addEventListener("click", () => showSimilar(hit));
  return node;
}

function renderTitle(title, hit, link) {
  const src = hit.source || {};
  const file = src.source || {};
  const target = link ? el("a", { href: link, target: "_blank", rel: "noopener", class: "open" }) : title;
  const hlTitle = hit.highlight && Array.isArray(hit.highlight.title) && hit.highlight.title[0];
  if (hlTitle) target.append(markedFragment(hlTitle));
  else target.textContent = src.title || file.filename || hit.id;
  if (link) title.append(target);
}

// Media: a thumbnail for images (the API makes them for images only), a player for audio.
function renderMedia(node, hit, collection, modality) {
  const src = hit.source || {};
  const file = src.source || {};
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
  if (modality !== "audio") return null;
  const audioSrc = (hit.urls && hit.urls.content) || `${docPath(collection, hit.id)}/content`;
  const player = el("audio", { controls: "", preload: "none", src: audioSrc, "data-testid": "player" });
  node.querySelector(".body").insertBefore(player, node.querySelector(".snippet"));
  return player;
}

// Snippet: highlighted fragments, else the start of the content (transcript / OCR text).
function renderSnippet(snippet, hit, modality) {
  const src = hit.source || {};
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
    return;
  }
  if (modality !== "text") {
    const label = { image: "Text in image (OCR)", audio: "Transcript", document: "Extracted text" }[modality];
    snippet.prepend(el("span", { class: "label" }, `${label}: `));
  }
}

// A long document's matching passages: the best one shown, the others a click away, each saying where
// it is ("p. 12", "1:32") and linking to that page or time.
function renderPassages(node, hit, content, player) {
  const passages = Array.isArray(hit.passages) ? hit.passages : [];
  if (!passages.length) return;
  const item = (p) => {
    const li = el("li", { "data-testid": "passage" });
    li.append(passageWhere(p, content, player), " ");
    const marked = Array.isArray(p.highlight) && p.highlight[0];
    const text = String(p.text || "");
    if (marked) li.append(markedFragment(marked));
    else li.append(el("span", {}, text.slice(0, 240) + (text.length > 240 ? "…" : "")));
    return li;
  };
  const box = el("div", { class: "passages", "data-testid": "passages" });
  box.append(el("ul", {}, undefined));
  box.firstChild.append(item(passages[0]));
  if (passages.length > 1) {
    const more = el("details", { class: "more-passages", "data-testid": "more-passages" });
    const n = passages.length - 1;
    more.append(el("summary", {}, `${n} more matching passage${n === 1 ? "" : "s"}`), el("ul"));
    for (const p of passages.slice(1)) more.lastChild.append(item(p));
    box.append(more);
  }
  node.querySelector(".body").insertBefore(box, node.querySelector(".meta"));
}

// Meta: file name, MIME type, encoding status (pending or failed) until encoded, whose attachment.
function renderMeta(meta, hit) {
  const src = hit.source || {};
  const file = src.source || {};
  const parts = [];
  if (file.filename) parts.push(file.filename);
  if (file.mime) parts.push(file.mime);
  parts.push(`id ${hit.id}`);
  if (parentOf(hit)) parts.push(`attachment of ${parentOf(hit)}`);
  meta.textContent = parts.join(" · ");
  const status = src.ingest && src.ingest.status;
  if (status === "pending" || status === "failed") {
    meta.append(" ", el("span", { class: `ingest ingest-${status}` }, status));
  }
}

// Transcript segments, with timestamps that seek the player.
function renderSegments(details, segments, player) {
  if (!Array.isArray(segments) || !segments.length) {
    details.remove();
    return;
  }
  details.hidden = false;
  details.querySelector("summary").textContent = `Transcript (${segments.length} segment${segments.length === 1 ? "" : "s"})`;
  const ol = details.querySelector("ol");
  for (const seg of segments) {
    const li = el("li");
    li.append(seekButton(seg.start, player), el("span", {}, seg.text || ""));
    ol.append(li);
  }
}

function seekButton(seconds, player, extra = "") {
  const stamp = el("button", { type: "button", class: `stamp${extra}` }, fmtTime(seconds));
  if (player) {
    stamp.addEventListener("click", () => {
      player.currentTime = seconds;
      player.play().catch(() => {});
    });
  } else {
    stamp.disabled = true;
  }
  return stamp;
}

// "p. 12" links to the original at that page (PDF viewers read #page=N); "01:32" seeks the player.
// `content`: the original's URL (signed when the API has keys), null when there is none.
function passageWhere(p, content, player) {
  if (Number.isInteger(p.page)) {
    const label = Number.isInteger(p.page_end) && p.page_end !== p.page ? `pp. ${p.page}–${p.page_end}` : `p. ${p.page}`;
    if (!content) return el("span", { class: "where" }, label);
    return el("a", { class: "where", href: `${content}#page=${p.page}`, target: "_blank", rel: "noopener" }, label);
  }
  if (typeof p.time_start === "number") return seekButton(p.time_start, player, " where");
  return el("span", { class: "where" }, `chars ${p.start}–${p.end}`);
}

// The score breakdown opens on demand (a <details> under each hit).
function renderBreakdown(details, explanation) {
  if (!explanation || typeof explanation !== "object") {
    details.remove();
    return;
  }
  const table = details.querySelector(".breakdown");
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
  details.hidden = false;
}

// ---------------------------------------------------------------- keyboard
//
// "/" focuses the search box; j/k or the arrow keys move between hits (attachments included); Enter on
// a hit opens its original (or, for text sent as JSON, its score breakdown).

const typing = (target) => target instanceof HTMLElement && (target.isContentEditable || /^(INPUT|SELECT|TEXTAREA)$/.test(target.tagName));

function moveFocus(step) {
  const hits = [...document.querySelectorAll("#results .hit")];
  if (!hits.length) return;
  const at = hits.indexOf(document.activeElement);
  const next = at < 0 ? (step > 0 ? 0 : hits.length - 1) : Math.min(hits.length - 1, Math.max(0, at + step));
  hits[next].focus();
  hits[next].scrollIntoView({ block: "nearest" });
}

function onKey(event) {
  if (event.ctrlKey || event.metaKey || event.altKey || typing(event.target)) return;
  const onHit = event.target instanceof HTMLElement && event.target.classList.contains("hit");
  if (event.key === "/") {
    event.preventDefault();
    $("query").focus();
    $("query").select();
  } else if (event.key === "j" || (event.key === "ArrowDown" && (onHit || event.target === document.body))) {
    event.preventDefault();
    moveFocus(1);
  } else if (event.key === "k" || (event.key === "ArrowUp" && (onHit || event.target === document.body))) {
    event.preventDefault();
    moveFocus(-1);
  } else if (event.key === "Enter" && onHit) {
    event.preventDefault();
    const open = event.target.querySelector(":scope > .body .title a.open");
    const explain = event.target.querySelector(":scope > .body > .explain");
    if (open) open.click();
    else if (explain) explain.open = !explain.open;
  }
}

// ---------------------------------------------------------------- wiring

function page(delta) {
  state.from = Math.max(0, state.from + delta * state.size);
  navigate().then(() => window.scrollTo({ top: 0 }));
}

document.addEventListener("DOMContentLoaded", () => {
  $("search-form").addEventListener("submit", submitSearch);
  $("collection").addEventListener("change", (e) => {
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
    if (state.query) navigate();
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
    loadCollections().then(runUrl);
  });
  $("prev").addEventListener("click", () => page(-1));
  $("next").addEventListener("click", () => page(1));
  document.addEventListener("keydown", onKey);
  window.addEventListener("popstate", runUrl);
  loadCollections().then(runUrl);
});
