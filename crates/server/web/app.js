// The page at / of `sift serve`: a client of the server's own HTTP API
// (same origin), in plain JavaScript with no framework and no build step,
// so that it runs on a machine that reaches nothing outside itself.
//
// Every API call goes through `api()`, which adds the key typed into the
// page and turns every failure (an error answer, a refused connection,
// a body that is not JSON) into an `ApiError` whose message is shown in
// words; nothing here leaves the page blank.
"use strict";

const $ = (sel) => document.querySelector(sel);

/** Build an element: `el("span", {class: "x"}, "text", child)`. Text is
 * always set as text, never parsed as HTML: documents are user input. */
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
  /** The sentence the page shows. */
  describe() {
    if (!this.status) return this.message;
    let hint = "";
    if (this.code === "unauthorized") hint = " Type the server's key into the API key field at the top.";
    return `The server answered ${this.status} ${this.code}: ${this.message}${hint}`;
  }
}

const KEY_STORE = "sift-api-key";

function token() {
  return $("#token").value.trim();
}

/** Call the API. `as`: "json" (default), "text" or "blob". */
async function api(method, path, body, as = "json") {
  const headers = {};
  if (token()) headers["Authorization"] = `Bearer ${token()}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    throw new ApiError(0, "unreachable", `The server cannot be reached (${e.message}). Is sift serve still running?`);
  }
  if (!response.ok) {
    let code = "error";
    let message = response.statusText || "no message";
    const text = await response.text().catch(() => "");
    try {
      const parsed = JSON.parse(text);
      if (parsed && parsed.error) {
        code = parsed.error.code || code;
        message = parsed.error.message || message;
      }
    } catch (_) {
      if (text.trim()) message = text.trim().slice(0, 500);
    }
    throw new ApiError(response.status, code, message);
  }
  if (as === "blob") return response.blob();
  const text = await response.text();
  if (as === "text") return text;
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new ApiError(response.status, "bad_answer", `${method} ${path} answered something that is not JSON: ${e.message}`);
  }
}

function describe(e) {
  return e instanceof ApiError ? e.describe() : `Something went wrong in the page: ${e && e.message ? e.message : e}`;
}

function showError(e) {
  const box = $("#error");
  box.textContent = describe(e);
  box.hidden = false;
}

function clearError() {
  const box = $("#error");
  box.hidden = true;
  box.textContent = "";
}

window.addEventListener("error", (ev) => showError(ev.error || ev.message));
window.addEventListener("unhandledrejection", (ev) => showError(ev.reason));

const fmt = (x, digits) => (x === null || x === undefined ? "—" : Number(x).toFixed(digits));
const signed = (x, digits) => (x === null || x === undefined ? "—" : (x >= 0 ? "+" : "") + Number(x).toFixed(digits));

// ------------------------------------------------------------------ stats

let defaults = null;

async function loadStats() {
  const s = await api("GET", "/stats");
  defaults = s.defaults;
  const rows = [
    ["documents", s.documents],
    ["chunks", s.chunks],
    ["HNSW points", s.vector_points],
    ["lexical index", `${(s.lexical_bytes / 1024).toFixed(0)} KiB`],
    ["embedding dimension", s.embedding_dim],
    ["bi-encoder", s.bi_encoder],
    ["cross-encoder", s.reranker || `none (${s.reranker_unavailable || "not configured"})`],
    ["search defaults", `depth ${s.defaults.depth}, k ${s.defaults.k}, ${s.defaults.rerank ? s.defaults.reranker : "no rerank"}, stage-1 weight ${s.defaults.stage1_weight ?? "the reranker's own"}`],
  ];
  const table = $("#stats");
  table.replaceChildren(...rows.map(([k, v]) => el("tr", { dataset: { stat: k } }, el("th", {}, k), el("td", {}, v))));
  const line = `${s.documents} documents, ${s.chunks} chunks · reranker: ${s.reranker || "none"}`;
  $("#server-line").textContent = line;
  $("#server-line").title = line;
  return s;
}

function applyDefaults(s) {
  $("#depth").value = s.defaults.depth;
  $("#k").value = s.defaults.k;
  $("#reranker").value = s.defaults.rerank ? s.defaults.reranker : "none";
  if (s.defaults.stage1_weight !== null) $("#stage1-weight").placeholder = `default ${s.defaults.stage1_weight}`;
}

// ------------------------------------------------------------------ search

let lastSearch = null;
let searchSeq = 0;

function readKnob(id) {
  const raw = $(id).value.trim();
  if (raw === "") return undefined;
  const n = Number(raw);
  // Sent as typed: the server's bounds and messages are the ones that count.
  return Number.isFinite(n) ? n : raw;
}

function searchRequests() {
  const query = $("#query").value;
  const depth = readKnob("#depth");
  const k = readKnob("#k");
  const reranker = $("#reranker").value;
  const weight = readKnob("#stage1-weight");
  const instruction = $("#instruction").value.trim();
  const recent = $("#prefer-recent").value.trim();
  // Stage 1 on its own: the whole fused candidate list, in its order.
  const stage1 = { query, rerank: false };
  if (depth !== undefined) {
    stage1.depth = depth;
    stage1.k = depth;
  } else if (defaults) {
    stage1.k = defaults.depth;
  }
  const final = { query };
  if (depth !== undefined) final.depth = depth;
  if (k !== undefined) final.k = k;
  if (reranker === "none") {
    final.rerank = false;
  } else {
    final.rerank = true;
    final.reranker = reranker;
    if (weight !== undefined) final.stage1_weight = weight;
  }
  if (instruction) final.instruction = instruction;
  // The CLI's --prefer-recent, as a rule of POST /search.
  if (recent) final.rescore = { rules: [{ kind: "decay", field: "date", origin: "newest", scale: recent, weight: 0.5 }] };
  return { stage1, final };
}

async function runSearch(requests) {
  clearError();
  const status = $("#search-status");
  status.textContent = "searching…";
  document.body.dataset.busy = "search";
  try {
    const [s1, fin] = await Promise.all([api("POST", "/search", requests.stage1), api("POST", "/search", requests.final)]);
    lastSearch = requests;
    renderResults(s1, fin, requests);
    status.textContent = `${fin.hits.length} hits of ${s1.hits.length} stage-1 candidates`;
  } catch (e) {
    status.textContent = "";
    $("#results").hidden = true;
    $("#timings").hidden = true;
    $("#notice").hidden = true;
    showError(e);
  } finally {
    delete document.body.dataset.busy;
    searchSeq += 1;
    document.body.dataset.searchSeq = String(searchSeq);
  }
}

/** The hit's stage-1 rank: the server's `scores.stage1_rank` (its place in
 * the fused list), else its place in the stage-1 column, by chunk id. */
function stage1RankOf(hit, stage1Ranks) {
  if (hit.scores && Number.isInteger(hit.scores.stage1_rank)) return hit.scores.stage1_rank;
  return stage1Ranks.get(hit.chunk_id);
}

/** "↑3", "↓2", "=" or "new", with a class for the colour. */
function movement(from, to) {
  if (from === undefined) return { text: "new", cls: "new", title: "not in the stage-1 list" };
  const d = from - to;
  if (d > 0) return { text: `↑${d}`, cls: "up", title: `stage-1 rank ${from} → final rank ${to}` };
  if (d < 0) return { text: `↓${-d}`, cls: "down", title: `stage-1 rank ${from} → final rank ${to}` };
  return { text: "=", cls: "same", title: `rank ${to} in both` };
}

/** The headings the hit's chunk sits under, "A › B", or null. */
function headingPath(hit) {
  return Array.isArray(hit.section) && hit.section.length ? hit.section.join(" › ") : null;
}

function provenance(s) {
  return el(
    "div",
    { class: "prov" },
    el("span", { class: "p prov-bm25", title: "BM25 rank and score" }, "BM25 ", s.bm25 ? `#${s.bm25.rank} · ${fmt(s.bm25.score, 2)}` : "—"),
    el("span", { class: "p prov-dense", title: "dense (HNSW) rank and cosine similarity" }, "dense ", s.dense ? `#${s.dense.rank} · ${fmt(s.dense.similarity, 3)}` : "—"),
    el("span", { class: "p prov-fused", title: "reciprocal-rank-fusion score" }, "RRF ", fmt(s.fused, 4)),
    s.rerank !== null && s.rerank !== undefined ? el("span", { class: "p prov-rerank", title: "stage-2 score: cross-encoder logit, LLM P(yes) or listwise 1/rank" }, "rerank ", signed(s.rerank, 3)) : null,
    s.blended !== null && s.blended !== undefined ? el("span", { class: "p prov-blended", title: "rank blend of stage 2 with stage 1" }, "blended ", fmt(s.blended, 4)) : null,
    s.rescore ? el("span", { class: "p prov-rescore", title: s.rescore.factors.map((f) => `${f.rule}: ${fmt(f.factor, 3)} (${f.value ?? "no value"})`).join("\n") },
      "rescored ", fmt(s.rescore.base, 3), s.rescore.factors.map((f) => ` ${s.rescore.combine === "sum" ? "+" : "×"} ${fmt(s.rescore.combine === "sum" ? f.factor - 1 : f.factor, 2)}`).join(""), " = ", fmt(s.rescore.score, 3)) : null,
  );
}

function hitItem(hit, extra) {
  const path = headingPath(hit);
  const text = el("p", { class: "text clamp", title: "click to show all of it" }, hit.text);
  text.addEventListener("click", () => text.classList.toggle("clamp"));
  return el(
    "li",
    { class: "hit", dataset: { chunkId: hit.chunk_id, docId: hit.doc_id, rank: String(hit.rank), ...extra.dataset } },
    el(
      "div",
      { class: "hit-head" },
      el("span", { class: "rank" }, `#${hit.rank}`),
      extra.badge,
      el("span", { class: "doc-id" }, hit.doc_id),
      el("span", { class: "offsets muted" }, `chars ${hit.char_start}–${hit.char_end} · chunk ${hit.ordinal}`),
    ),
    el("div", { class: "hit-title" }, hit.title || "(untitled)", path ? el("span", { class: "section" }, ` › ${path}`) : null),
    text,
    provenance(hit.scores || {}),
  );
}

function renderResults(s1, fin, requests) {
  const stage1Ranks = new Map(s1.hits.map((h) => [h.chunk_id, h.rank]));
  const finalRanks = new Map(fin.hits.map((h) => [h.chunk_id, h.rank]));

  $("#stage1-list").replaceChildren(
    ...s1.hits.map((h) => {
      const to = finalRanks.get(h.chunk_id);
      const badge = to === undefined ? null : el("span", { class: "badge kept", title: `final rank ${to}` }, `→ #${to}`);
      return hitItem(h, { badge, dataset: { final: to === undefined ? "" : String(to) } });
    }),
  );
  $("#final-list").replaceChildren(
    ...fin.hits.map((h) => {
      const from = stage1RankOf(h, stage1Ranks);
      const m = movement(from, h.rank);
      const badge = el("span", { class: `move ${m.cls}`, title: m.title }, m.text);
      return hitItem(h, { badge, dataset: { stage1Rank: from === undefined ? "" : String(from), moved: m.text } });
    }),
  );
  $("#final-by").textContent = fin.reranked_by ? `reranked by ${fin.reranked_by}` : requests.final.rerank ? "not reranked" : "stage-1 order (no reranker asked for)";
  const notice = $("#notice");
  notice.hidden = !fin.notice;
  notice.textContent = fin.notice || "";
  renderTimings(fin.timings);
  $("#results").hidden = false;
}

const STAGES = ["tokenize", "bm25", "embed", "hnsw", "fuse", "fetch", "rerank"];

function renderTimings(t) {
  const sum = STAGES.reduce((acc, s) => acc + (t[s] || 0), 0) || 1;
  $("#timings-bar").replaceChildren(
    ...STAGES.filter((s) => t[s] > 0).map((s) =>
      el("span", { class: `seg stage-${s}`, style: `width: ${((100 * t[s]) / sum).toFixed(2)}%`, title: `${s} ${fmt(t[s], 1)} ms`, dataset: { stage: s, ms: String(t[s]) } }),
    ),
  );
  $("#timings-legend").replaceChildren(
    ...STAGES.map((s) => el("span", { class: "key", dataset: { stage: s } }, el("i", { class: `swatch stage-${s}` }), `${s} ${fmt(t[s], 1)} ms`)),
  );
  $("#timings-total").textContent = `total ${fmt(t.total, 1)} ms · queued ${fmt(t.queue, 1)} ms`;
  $("#timings").hidden = false;
}

// ------------------------------------------------------------------ documents

function say(message) {
  $("#doc-result").textContent = message;
}

/** A .txt/.md file as one document: the first `# heading` is its title. */
function textDocument(name, content, id, title) {
  let text = content;
  let heading = "";
  const m = content.match(/^\s*#\s+(.+?)\s*(?:\r?\n|$)/);
  if (m) {
    heading = m[1];
    text = content.slice(m[0].length);
  }
  return { id: id || name, title: title || heading, text };
}

/** A JSONL corpus (BEIR's `_id`, `title`, `text`, `metadata`) as documents;
 * a bad line is an error naming its number, before anything is sent. */
function jsonlDocuments(content) {
  const docs = [];
  content.split(/\r?\n/).forEach((line, i) => {
    if (!line.trim()) return;
    let o;
    try {
      o = JSON.parse(line);
    } catch (e) {
      throw new ApiError(0, "bad_file", `line ${i + 1} of the file is not JSON: ${e.message}`);
    }
    if (!o || typeof o !== "object" || Array.isArray(o)) throw new ApiError(0, "bad_file", `line ${i + 1} of the file is not a JSON object`);
    const id = o._id ?? o.id;
    if (id === undefined || id === null || String(id).trim() === "") throw new ApiError(0, "bad_file", `line ${i + 1} of the file has no "_id" (or "id")`);
    const doc = { id: String(id), title: o.title ?? "", text: o.text ?? "" };
    if (o.metadata && typeof o.metadata === "object") doc.metadata = o.metadata;
    docs.push(doc);
  });
  if (!docs.length) throw new ApiError(0, "bad_file", "the file holds no documents");
  return docs;
}

async function documentsToAdd() {
  const file = $("#doc-file").files[0];
  const id = $("#doc-id").value.trim();
  const title = $("#doc-title").value.trim();
  if (file) {
    const content = await file.text();
    if (/\.jsonl?$/i.test(file.name)) return jsonlDocuments(content);
    return [textDocument(file.name, content, id, title)];
  }
  // Sent as typed: an empty id or text is the server's to refuse, in its words.
  return [{ id, title, text: $("#doc-text").value }];
}

async function afterWrite(message) {
  say(message);
  await loadStats().catch(showError);
  if (lastSearch) await runSearch(lastSearch);
}

async function addDocuments(ev) {
  ev.preventDefault();
  clearError();
  try {
    const documents = await documentsToAdd();
    say(`adding ${documents.length} document(s)…`);
    const r = await api("POST", "/documents", { documents });
    $("#doc-file").value = "";
    await afterWrite(
      `Committed: ${r.documents_written} written (${r.chunks_written} chunks), ${r.documents_unchanged} unchanged, ${r.documents_empty} empty. ` +
        (lastSearch ? "The search below was run again." : ""),
    );
  } catch (e) {
    say("");
    showError(e);
  }
}

async function deleteDocument(ev) {
  ev.preventDefault();
  clearError();
  const id = $("#delete-id").value.trim();
  try {
    if (!id) throw new ApiError(0, "no_id", "Type the id of the document to delete.");
    // Ids may hold `/`; each segment is encoded, the slashes kept.
    const r = await api("DELETE", "/documents/" + id.split("/").map(encodeURIComponent).join("/"));
    await afterWrite(`Deleted ${r.id}. ` + (lastSearch ? "The search below was run again." : ""));
  } catch (e) {
    say("");
    showError(e);
  }
}

// ------------------------------------------------------------------ eval

const STAGE_LABELS = { bm25: "BM25", dense: "dense", hybrid: "hybrid", rerank: "hybrid + rerank" };
let plotUrl = null;

async function loadEval() {
  const empty = $("#eval-empty");
  let listing;
  try {
    listing = await api("GET", "/eval/runs");
  } catch (e) {
    // No eval folder is a normal state, said in the section, not an alarm.
    if (e instanceof ApiError && (e.code === "eval_dir_not_set" || e.code === "eval_dir_missing")) {
      empty.textContent = e.message;
      return;
    }
    throw e;
  }
  if (!listing.runs.length) {
    empty.textContent = `No sift eval runs in ${listing.dir} yet: run \`sift eval … --out ${listing.dir}/NAME\`.`;
    return;
  }
  empty.textContent = `Runs in ${listing.dir}:`;
  const select = $("#eval-runs");
  select.replaceChildren(
    ...listing.runs.map((r) =>
      el("option", { value: r.name }, `${r.name === "." ? listing.dir : r.name}${r.dataset ? ` (${r.dataset}, ${r.split}, ${r.queries} queries)` : ""}${r.error ? " — unreadable" : ""}`),
    ),
  );
  $("#eval-pick").hidden = false;
  select.onchange = () => showRun(listing.runs.find((r) => r.name === select.value)).catch(showError);
  await showRun(listing.runs[0]);
}

function evalFile(run, file, as) {
  return api("GET", `/eval/file?run=${encodeURIComponent(run.name)}&file=${encodeURIComponent(file)}`, undefined, as);
}

async function showRun(run) {
  const out = $("#eval-report");
  out.replaceChildren();
  if (run.error) {
    out.append(el("p", { class: "error" }, run.error));
    return;
  }
  const r = await evalFile(run, "report.json");
  const metrics = r.metrics || [];
  const head = el("tr", {}, el("th", {}, "stage"), metrics.map((m) => el("th", {}, m)), el("th", {}, "mean ms"), el("th", {}, "p50 ms"), el("th", {}, "p95 ms"));
  const rows = (r.stages || []).map((s) => {
    const label = s.name === "hybrid" ? `hybrid (RRF k=${r.rrf_k})` : STAGE_LABELS[s.name] || s.name;
    const plus = s.name === "rerank" ? "+" : "";
    const l = s.latency || {};
    return el(
      "tr",
      { dataset: { stage: s.name } },
      el("th", {}, label),
      metrics.map((m) => el("td", {}, fmt(s.metrics[m], 4))),
      [l.mean_ms, l.p50_ms, l.p95_ms].map((v) => el("td", {}, v === undefined ? "—" : plus + fmt(v, 1))),
    );
  });
  out.append(
    el("h3", {}, `${r.dataset} — ${r.split} split, ${r.queries} queries; ${r.index.documents} documents in ${r.index.chunks} chunks; depth ${r.depth}, k ${r.k}`),
    r.reranker ? el("p", { class: "muted" }, `reranker: ${r.reranker}`) : el("p", { class: "muted" }, r.no_reranker ? `no reranker: ${r.no_reranker}` : ""),
    el("table", { id: "eval-table", class: "grid" }, el("thead", {}, head), el("tbody", {}, rows)),
  );
  const diagnosis = (r.diagnosis && r.diagnosis.summary) || [];
  if (diagnosis.length) out.append(el("ul", { class: "diagnosis" }, diagnosis.map((line) => el("li", {}, line))));

  const sweep = r.sweeps && r.sweeps.depth;
  if (sweep && sweep.flattening) {
    const f = sweep.flattening;
    out.append(
      el(
        "p",
        { id: "eval-recommended", class: "recommended" },
        f.depth === null || f.depth === undefined ? "No recommended depth: the sweep had no points." : `Recommended depth: ${f.depth}`,
        el("span", { class: "muted" }, ` — ${f.rule || `the smallest depth within ${f.tolerance} of the best ${f.metric}`}`),
      ),
    );
    const points = sweep.points || [];
    if (points.length) {
      const reranked = points.some((p) => p.rerank_recall_at_k !== null && p.rerank_recall_at_k !== undefined);
      out.append(
        el(
          "table",
          { id: "eval-sweep", class: "grid" },
          el("thead", {}, el("tr", {}, el("th", {}, "depth"), el("th", {}, `hybrid R@${sweep.k}`), el("th", {}, "R@depth (ceiling)"), reranked ? [el("th", {}, `rerank R@${sweep.k}`), el("th", {}, "rerank ms")] : null)),
          el(
            "tbody",
            {},
            points.map((p) =>
              el(
                "tr",
                { class: p.depth === f.depth ? "chosen" : null },
                el("td", {}, p.depth),
                el("td", {}, fmt(p.hybrid_recall_at_k, 4)),
                el("td", {}, fmt(p.hybrid_recall_at_depth, 4)),
                reranked ? [el("td", {}, fmt(p.rerank_recall_at_k, 4)), el("td", {}, p.rerank_latency ? fmt(p.rerank_latency.mean_ms, 1) : "—")] : null,
              ),
            ),
          ),
        ),
      );
    }
  } else {
    out.append(el("p", { class: "muted" }, "This run has no depth sweep (sift eval --sweep-depth 10,20,50 adds one)."));
  }
  const plotFile = run.files.includes("sweep.svg") ? "sweep.svg" : run.files.includes("sweep.png") ? "sweep.png" : null;
  if (plotFile) {
    // Fetched with the key, then shown from memory: an <img src> could not carry it.
    const blob = await evalFile(run, plotFile, "blob");
    if (plotUrl) URL.revokeObjectURL(plotUrl);
    plotUrl = URL.createObjectURL(blob);
    out.append(el("figure", {}, el("img", { id: "eval-plot", src: plotUrl, alt: "depth sweep: recall against depth" }), el("figcaption", { class: "muted" }, `depth sweep (${plotFile})`)));
  }
  if (run.files.includes("report.md")) {
    const md = await evalFile(run, "report.md", "text");
    out.append(el("details", {}, el("summary", {}, "report.md"), el("pre", {}, md)));
  }
}

// ------------------------------------------------------------------ start

async function start() {
  clearError();
  try {
    applyDefaults(await loadStats());
  } catch (e) {
    $("#server-line").textContent = "not connected";
    showError(e);
    return;
  }
  await loadEval().catch(showError);
  document.body.dataset.ready = "true";
}

document.addEventListener("DOMContentLoaded", () => {
  $("#token").value = sessionStorage.getItem(KEY_STORE) || "";
  $("#token").addEventListener("change", () => {
    sessionStorage.setItem(KEY_STORE, token());
    start();
  });
  $("#search-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    runSearch(searchRequests());
  });
  $("#add-form").addEventListener("submit", addDocuments);
  $("#delete-form").addEventListener("submit", deleteDocument);
  $("#refresh-stats").addEventListener("click", () => {
    clearError();
    loadStats().catch(showError);
  });
  start();
});
