// SkinMap atlas page: no framework, no CDN; every value from the server is set as text.
"use strict";

const state = { query: null, uid: null, map: null, options: null, seq: 0, queryUrl: null };
const PALETTE = ["#0173b2", "#de8f05", "#029e73", "#d55e00", "#cc78bc", "#ca9161", "#fbafe4", "#949494", "#ece133", "#56b4e9"];
const $ = (id) => document.getElementById(id);

function setStatus(text, isError) {
  const el = $("status");
  el.textContent = text;
  el.classList.toggle("error", Boolean(isError));
}

function filterParams() {
  const params = new URLSearchParams();
  for (const select of document.querySelectorAll("#filters select")) {
    if (select.value) params.append(select.dataset.column, select.value);
  }
  const k = parseInt($("k").value, 10);
  if (k > 0) params.set("k", String(k));
  params.set("flagged", $("show-flagged").checked ? "1" : "0");
  return params;
}

async function getJSON(url, init) {
  const response = await fetch(url, init);
  let body = null;
  try { body = await response.json(); } catch (e) { body = null; }
  if (!response.ok) throw new Error((body && body.error) || ("HTTP " + response.status));
  return body;
}

function fillFilters(options) {
  for (const [column, values] of Object.entries(options.filters)) {
    const select = $("filter-" + column);
    if (!select) continue;
    for (const [value, count] of values) {
      const opt = document.createElement("option");
      opt.value = value;
      opt.textContent = value + " (" + count + ")";
      select.appendChild(opt);
    }
  }
  showBanner(options);
  $("n-flagged").textContent = "(" + options.n_flagged + ")";
  $("show-flagged").checked = !options.exclude_flagged;
  if (options.n_flagged === 0) $("show-flagged").disabled = true;
  $("k").value = options.k_default;
  $("k").max = options.k_max;
  if (!options.can_upload) {
    $("file").disabled = true;
    $("file").title = "no embedding model on this server; use a catalog id";
  }
}

function showBanner(options) {
  const banner = $("banner");
  const profile = options.profile || "unknown";
  const synthetic = Boolean(options.synthetic);
  banner.dataset.synthetic = String(synthetic);
  banner.dataset.profile = profile;
  let text = "Atlas profile: " + profile + " · " + options.n_cases + " cases · " +
    (options.index.kind === "ivf" ? "approximate (IVF) search" : "exact search") + ". ";
  text += synthetic
    ? "SYNTHETIC atlas: its images and labels are generated for testing; results say nothing about real patients."
    : "Real datasets: a research tool, not a diagnostic device.";
  banner.textContent = text;
}

function showQuery(src, caption) {
  $("query-img").src = src;
  $("query-caption").textContent = caption;
  $("query-figure").hidden = false;
  $("query-empty").hidden = true;
}

function ordinal(p) {
  const n = Number(p), whole = Math.round(n);
  if (Math.abs(n - whole) > 1e-9) return n + "th";
  const tens = whole % 100, ones = whole % 10;
  const suffix = (tens >= 11 && tens <= 13) ? "th" : ones === 1 ? "st" : ones === 2 ? "nd" : ones === 3 ? "rd" : "th";
  return whole + suffix;
}

function showOod(result) {
  const box = $("ood"), ood = result.ood;
  box.replaceChildren();
  box.hidden = !ood.out_of_distribution;
  if (!ood.out_of_distribution) return;
  const head = document.createElement("strong");
  head.textContent = "Unlike anything in the atlas.";
  const body = document.createElement("span");
  body.textContent = "The nearest case has similarity " + ood.nearest_similarity.toFixed(3) +
    ", below " + ood.threshold.toFixed(3) + ", the " + ordinal(ood.percentile) + " percentile of how similar atlas images are " +
    "to their own nearest case. The cases below are the least unlike it, not matches.";
  box.append(head, body);
}

function mapScale(canvas, map) {
  const xs = map.x, ys = map.y, pad = 12;
  const minX = Math.min(...xs), maxX = Math.max(...xs), minY = Math.min(...ys), maxY = Math.max(...ys);
  const sx = (canvas.width - 2 * pad) / ((maxX - minX) || 1), sy = (canvas.height - 2 * pad) / ((maxY - minY) || 1);
  return (x, y) => [pad + (x - minX) * sx, canvas.height - pad - (y - minY) * sy];
}

function drawMap(result) {
  const canvas = $("map"), ctx = canvas.getContext("2d"), map = state.map;
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  if (!map || map.x.length === 0) { ctx.fillText("no 2-D map in this run", 10, 20); return; }
  const toPx = mapScale(canvas, map);
  ctx.globalAlpha = 0.35;
  for (let i = 0; i < map.x.length; i++) {
    const [px, py] = toPx(map.x[i], map.y[i]);
    ctx.fillStyle = PALETTE[map.group[i] % PALETTE.length];
    ctx.fillRect(px - 1, py - 1, 2.5, 2.5);
  }
  ctx.globalAlpha = 1;
  if (!result) return;
  ctx.strokeStyle = "#000";
  for (const item of result.results) {
    if (item.x === null || item.y === null) continue;
    const [px, py] = toPx(item.x, item.y);
    ctx.beginPath(); ctx.arc(px, py, 4, 0, 2 * Math.PI); ctx.stroke();
  }
  const q = result.query;
  if (q.x !== null && q.y !== null) {
    const [px, py] = toPx(q.x, q.y);
    ctx.strokeStyle = "#d00"; ctx.lineWidth = 3;
    ctx.beginPath(); ctx.moveTo(px - 8, py - 8); ctx.lineTo(px + 8, py + 8);
    ctx.moveTo(px + 8, py - 8); ctx.lineTo(px - 8, py + 8); ctx.stroke();
    ctx.lineWidth = 1;
  }
}

function metaLine(item) {
  const parts = [];
  if (item.dataset) parts.push(item.dataset);
  if (item.body_site) parts.push(item.body_site);
  if (item.fst !== null && item.fst !== undefined) parts.push("FST " + item.fst);
  if (item.age !== null && item.age !== undefined) parts.push(Math.round(item.age) + " y");
  if (item.sex) parts.push(item.sex);
  if (item.modality) parts.push(item.modality);
  return parts.join(" · ");
}

function badge(text, cls) {
  const span = document.createElement("span");
  span.className = "badge " + cls; span.textContent = text;
  return span;
}

function showResults(result) {
  const list = $("results");
  list.replaceChildren();
  showOod(result);
  for (const item of result.results) {
    const li = document.createElement("li");
    li.dataset.uid = item.uid;
    li.dataset.row = String(item.row);
    if (item.flags.length) li.classList.add("flagged");
    const img = document.createElement("img");
    img.src = item.thumb; img.alt = item.diagnosis || "case"; img.loading = "lazy";
    img.addEventListener("error", () => { img.removeAttribute("src"); });
    const dx = document.createElement("div"); dx.className = "dx"; dx.textContent = item.diagnosis || "(no diagnosis)";
    const code = document.createElement("div"); code.className = "icd";
    code.textContent = "ICD-10 " + (item.icd10_code || "unmapped");
    const ds = document.createElement("div"); ds.className = "dataset";
    if (item.dataset_url) {
      const a = document.createElement("a");
      a.href = item.dataset_url; a.textContent = item.dataset; a.target = "_blank"; a.rel = "noopener noreferrer";
      a.title = "the dataset's page";
      ds.append("Dataset: ", a);
    } else {
      ds.textContent = "Dataset: " + (item.dataset || "?") + " (no public page)";
    }
    const meta = document.createElement("div"); meta.className = "meta"; meta.textContent = metaLine(item);
    const sim = document.createElement("div"); sim.className = "sim";
    sim.textContent = "#" + item.rank + " · similarity " + item.similarity.toFixed(3);
    const badges = document.createElement("div");
    if (item.copies > 1) badges.append(badge("×" + item.copies + " near-duplicates", "copies"));
    for (const reason of item.flags) badges.append(badge("flagged: " + reason, "flag"));
    const id = document.createElement("div"); id.className = "meta"; id.textContent = item.uid;
    li.append(img, dx, code, ds, sim, badges, meta, id);
    list.appendChild(li);
  }
  list.dataset.count = String(result.results.length);
  $("count").textContent = "(" + result.results.length + ")";
  drawMap(result);
  setStatus(result.results.length ? "Showing " + result.results.length + " nearest cases." : "No case passes these filters.");
}

async function runQuery() {
  const params = filterParams();
  if (state.query) params.set("query", state.query);
  else if (state.uid) params.set("uid", state.uid);
  else return;
  setStatus("Searching…");
  const mine = ++state.seq;  // only the latest request may update the page
  try {
    const result = await getJSON("/api/neighbours?" + params.toString());
    if (mine !== state.seq) return;
    if (result.query.kind === "catalog") showQuery(result.query.thumb, "Catalog case " + result.query.uid +
      " (its own lesion, patient and near-duplicates are not shown)");
    showResults(result);
  } catch (err) { if (mine === state.seq) setStatus(err.message, true); }
}

async function upload(file) {
  if (!file) return;
  if (state.options && file.size > state.options.max_upload_bytes) {
    setStatus("File too large (limit " + Math.round(state.options.max_upload_bytes / 1048576) + " MiB).", true);
    return;
  }
  setStatus("Embedding the image…");
  const mine = ++state.seq;
  if (state.queryUrl) URL.revokeObjectURL(state.queryUrl);
  state.queryUrl = URL.createObjectURL(file);
  showQuery(state.queryUrl, "Your upload (" + Math.round(file.size / 1024) + " KiB): compared on this machine");
  try {
    const result = await getJSON("/api/upload?" + filterParams().toString(), {
      method: "POST", headers: { "Content-Type": "application/octet-stream" }, body: file,
    });
    if (mine !== state.seq) return;
    state.query = result.query.query_id; state.uid = null;
    showResults(result);
  } catch (err) { if (mine === state.seq) setStatus(err.message, true); }
}

async function init() {
  $("file").addEventListener("change", (e) => upload(e.target.files[0]));
  $("uid-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const uid = $("uid").value.trim();
    if (uid) { state.uid = uid; state.query = null; runQuery(); }
  });
  for (const select of document.querySelectorAll("#filters select")) select.addEventListener("change", runQuery);
  $("k").addEventListener("change", runQuery);
  $("show-flagged").addEventListener("change", runQuery);
  try {
    state.options = await getJSON("/api/options");
    fillFilters(state.options);
    state.map = await getJSON("/api/map");
    drawMap(null);
    setStatus("Ready: " + state.options.n_cases + " cases in the atlas.");
  } catch (err) { setStatus("Could not load the atlas: " + err.message, true); }
}

document.addEventListener("DOMContentLoaded", init);
