// web/app.js — the search page's behaviour: text search, query by uploaded/dropped image, zero-shot
// labelling of the upload, "more like this", like/dislike → recommendations; with a BLIP-2 model, ITM
// re-ranking of text queries (rerank=N). Talks only to the JSON API of search/server.cpp (docs/server.md,
// docs/search.md). No framework, no build step.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { file: null, liked: new Set(), disliked: new Set(), maxUpload: 20 << 20, itm: false };

function setStatus(text, isError) {
  const s = $("status");
  s.textContent = text;
  s.classList.toggle("error", !!isError);
}

async function api(path, options) {
  const res = await fetch(path, options);
  let body;
  try {
    body = await res.json();
  } catch (e) {
    throw new Error(`HTTP ${res.status}`);
  }
  if (!res.ok) throw new Error(body.error || `HTTP ${res.status}`);
  return body;
}

function params() {
  const p = new URLSearchParams();
  p.set("k", $("k").value || "12");
  if ($("min-score").value !== "") p.set("min_score", $("min-score").value);
  return p;
}

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

function render(results, what, took) {
  const grid = $("results");
  grid.replaceChildren();
  for (const r of results) {
    const card = el("div", "result");
    card.dataset.id = r.id;
    card.dataset.path = r.path;
    if (state.liked.has(r.id)) card.classList.add("liked");
    if (state.disliked.has(r.id)) card.classList.add("disliked");
    const img = el("img");
    img.src = r.thumb;
    img.alt = r.caption || r.label || r.path;
    img.loading = "lazy";
    card.append(img);
    const meta = el("div", "meta");
    if (r.itm !== undefined) {  // re-ranked by ITM: P(match) (null: not re-scored), then the ITC cosine
      meta.append(el("span", "score itm", r.itm === null ? "P(match) –" : `P(match) ${r.itm.toFixed(4)}`));
      meta.append(el("span", "itc", `itc ${r.itc.toFixed(4)}`));
    } else {
      meta.append(el("span", "score", r.score.toFixed(4)));
    }
    if (r.label) meta.append(el("span", "label", r.label));
    if (r.caption && r.caption !== r.label) meta.append(el("span", "caption muted", r.caption));
    const path = el("span", "path", r.path);
    path.title = r.path;
    meta.append(path);
    card.append(meta);
    const actions = el("div", "actions");
    const more = el("button", "more", "more like this");
    more.type = "button";
    more.addEventListener("click", () => moreLikeThis(r.id));
    const like = el("button", "like", "like");
    like.type = "button";
    like.title = "like (for recommendations)";
    like.addEventListener("click", () => prefer(r.id, true));
    const dislike = el("button", "dislike", "dislike");
    dislike.type = "button";
    dislike.title = "dislike (for recommendations)";
    dislike.addEventListener("click", () => prefer(r.id, false));
    const open = el("a", "small", "open");
    open.href = r.image;
    open.target = "_blank";
    open.rel = "noopener";
    actions.append(more, like, dislike, open);
    card.append(actions);
    grid.append(card);
  }
  setStatus(`${results.length} results for ${what}` + (took !== undefined ? ` (${took.toFixed(1)} ms)` : ""));
}

async function searchText(ev) {
  if (ev) ev.preventDefault();
  const q = $("q").value.trim();
  if (!q) return setStatus("type something to search for", true);
  const p = params();
  p.set("q", q);
  const rerank = state.itm && $("rerank-on").checked;
  if (rerank) p.set("rerank", $("rerank-n").value || "10");
  setStatus(rerank ? "searching and re-ranking with ITM…" : "searching…");
  try {
    const body = await api("/api/search?" + p.toString());
    render(body.results, `“${q}”` + (body.score === "itm" ? `, top ${body.rerank} re-ranked by ITM` : ""), body.took_ms);
  } catch (e) {
    setStatus(e.message, true);
  }
}

async function searchImage(file) {
  if (!file) return;
  if (file.size > state.maxUpload) return setStatus(`the file is larger than the upload limit (${state.maxUpload} bytes)`, true);
  state.file = file;
  const preview = $("preview");
  preview.src = URL.createObjectURL(file);
  preview.hidden = false;
  const form = new FormData();
  form.append("image", file, file.name || "upload");
  setStatus("searching by image…");
  try {
    const body = await api("/api/search_image?" + params().toString(), { method: "POST", body: form });
    render(body.results, `the image ${file.name || ""}`, body.took_ms);
  } catch (e) {
    setStatus(e.message, true);
  }
}

async function moreLikeThis(id) {
  const p = params();
  p.set("id", id);
  setStatus("searching…");
  try {
    const body = await api("/api/search_image?" + p.toString());
    render(body.results, `images like #${id}`, body.took_ms);
  } catch (e) {
    setStatus(e.message, true);
  }
}

async function zeroShot(ev) {
  ev.preventDefault();
  const labels = $("labels").value.trim();
  if (!labels) return setStatus("give some labels, separated by commas", true);
  if (!state.file) return setStatus("upload or drop an image first", true);
  const form = new FormData();
  form.append("image", state.file, state.file.name || "upload");
  form.append("labels", labels);
  setStatus("labelling…");
  try {
    const body = await api("/api/zero_shot", { method: "POST", body: form });
    const box = $("zero-shot");
    box.replaceChildren();
    for (const l of body.labels) {
      const row = el("div", "bar");
      row.append(el("span", "", l.label));
      const track = el("div", "track");
      const fill = el("div", "fill");
      fill.style.width = (100 * l.prob).toFixed(1) + "%";
      track.append(fill);
      row.append(track, el("span", "", (100 * l.prob).toFixed(1) + "%"));
      box.append(row);
    }
    setStatus(`zero-shot: ${body.labels[0].label} (${(100 * body.labels[0].prob).toFixed(1)}%)`);
  } catch (e) {
    setStatus(e.message, true);
  }
}

function prefer(id, like) {
  const [add, other] = like ? [state.liked, state.disliked] : [state.disliked, state.liked];
  if (add.has(id)) add.delete(id);
  else add.add(id);
  other.delete(id);
  refreshPrefs();
}

function refreshPrefs() {
  for (const card of document.querySelectorAll(".result")) {
    const cid = Number(card.dataset.id);
    card.classList.toggle("liked", state.liked.has(cid));
    card.classList.toggle("disliked", state.disliked.has(cid));
  }
  const n = state.liked.size + state.disliked.size;
  $("prefs").hidden = n === 0;
  $("prefs-text").textContent = `${state.liked.size} liked, ${state.disliked.size} disliked`;
}

async function recommend() {
  const body = { liked: [...state.liked], disliked: [...state.disliked], k: Number($("k").value || 12) };
  const intent = $("intent").value.trim();
  if (intent) body.text = intent;
  setStatus("recommending…");
  try {
    const r = await api("/api/recommend", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
    render(r.results, "your preferences", r.took_ms);
  } catch (e) {
    setStatus(e.message, true);
  }
}

async function health() {
  try {
    const h = await api("/api/health");
    state.maxUpload = h.max_upload_bytes;
    state.itm = h.itm === true;  // a BLIP-2 model with its tokenizer: text queries can be re-ranked by ITM
    $("itm-ctl").hidden = !state.itm;
    if (state.itm) $("rerank-n").max = h.max_rerank;
    const family = h.family === "blip2" ? "BLIP-2, " : "";
    $("health").textContent = `${h.images} images · model ${h.model} (${family}${h.dim}-d) · ${h.index} index` +
      (h.text_queries ? "" : " · no tokenizer: image queries only");
  } catch (e) {
    $("health").textContent = "server unreachable: " + e.message;
  }
}

function setup() {
  $("search-form").addEventListener("submit", searchText);
  $("zs-form").addEventListener("submit", zeroShot);
  $("file").addEventListener("change", (e) => searchImage(e.target.files[0]));
  $("rec-btn").addEventListener("click", recommend);
  $("clear-prefs").addEventListener("click", () => {
    state.liked.clear();
    state.disliked.clear();
    refreshPrefs();
  });
  const drop = $("drop");
  for (const t of ["dragenter", "dragover"])
    drop.addEventListener(t, (e) => { e.preventDefault(); drop.classList.add("over"); });
  for (const t of ["dragleave", "drop"])
    drop.addEventListener(t, (e) => { e.preventDefault(); drop.classList.remove("over"); });
  drop.addEventListener("drop", (e) => {
    const f = e.dataTransfer && e.dataTransfer.files[0];
    if (f) searchImage(f);
  });
  health();
}

setup();
