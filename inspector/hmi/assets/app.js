// The station web page (inspector/hmi): read-only. Live data arrive as Server-Sent Events
// ("part" at most max_fps a second, with its image inline; "stats" once a second); an image
// is shown together with its own overlay, so they always match.
"use strict";

const $ = (id) => document.getElementById(id);
const SVG = "http://www.w3.org/2000/svg";

// ------------------------------------------------------------------ overlays
// The image and its overlay live in one SVG whose viewBox is the frame in pixels, so the
// shapes (frame pixels) line up with the image whatever size the page gives it.
function showFrame(svg, image, group, src, shapes, width, height) {
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  image.setAttribute("width", width);
  image.setAttribute("height", height);
  image.setAttribute("href", src);
  drawShapes(group, shapes);
}

function drawShapes(group, shapes) {
  group.replaceChildren();
  for (const s of shapes) {
    const g = document.createElementNS(SVG, "g");
    g.setAttribute("class", `shape ${s.role}`);
    let el, ax, ay;
    if (s.points) {  // ROI and excluded zones: label inside, at the top left
      el = document.createElementNS(SVG, "polygon");
      el.setAttribute("points", s.points.map((p) => p.join(",")).join(" "));
      ax = Math.min(...s.points.map((p) => p[0])) + 6;
      ay = Math.min(...s.points.map((p) => p[1])) + 26;
    } else {  // findings: label above the box; ground truth: below it
      const [x1, y1, x2, y2] = s.box;
      el = document.createElementNS(SVG, "rect");
      el.setAttribute("x", x1); el.setAttribute("y", y1);
      el.setAttribute("width", Math.max(1, x2 - x1)); el.setAttribute("height", Math.max(1, y2 - y1));
      el.dataset.box = s.box.join(",");
      ax = x1;
      ay = s.role === "truth" ? y2 + 24 : Math.max(22, y1 - 6);
    }
    el.setAttribute("class", s.role);
    const label = document.createElementNS(SVG, "text");
    label.setAttribute("class", s.role);
    label.setAttribute("x", ax);
    label.setAttribute("y", ay);
    label.textContent = s.role === "truth" ? `truth: ${s.label}` : s.label;
    g.append(el, label);
    group.append(g);
  }
}

// ------------------------------------------------------------------ live part
let pendingSeq = 0;
let paused = null;  // while paused: the latest message not shown yet (or {} for none)

function togglePause() {
  const resume = paused;
  paused = paused ? null : {};
  $("pause").textContent = paused ? "resume" : "pause";
  $("pause").classList.toggle("active", Boolean(paused));
  if (resume && resume.seq) showPart(resume);
}

function showPart(msg) {
  if (paused) { paused = msg; return; }
  pendingSeq = msg.seq;
  if (!msg.image) { applyPart(msg, null); return; }
  const img = new Image();
  img.onload = () => { if (msg.seq === pendingSeq) applyPart(msg, img); };
  img.onerror = () => { if (msg.seq === pendingSeq) applyPart(msg, null); };
  img.src = msg.image.src;
}

function applyPart(msg, img) {
  const p = msg.part;
  if (img) {
    showFrame($("live-svg"), $("live-img"), $("live-overlay"), img.src, msg.shapes, msg.image.width, msg.image.height);
    $("live-noimage").classList.add("hidden");
  } else {
    $("live-img").removeAttribute("href");
    $("live-overlay").replaceChildren();
    $("live-noimage").textContent = "no image for this part";
    $("live-noimage").classList.remove("hidden");
  }
  const v = $("verdict");
  v.textContent = p.verdict;
  v.className = `verdict ${p.verdict === "OK" ? "ok" : "ng"}`;
  $("reason").textContent = p.reason;
  $("part-id").textContent = p.part_id;
  $("trigger-seq").textContent = p.trigger_seq;
  $("part-recipe").textContent = `${p.recipe_id}${msg.recipe ? " · " + msg.recipe : ""}`;
  $("cycle-ms").textContent = `${p.cycle_ms.toFixed(1)} ms`;
  $("stages").tBodies[0].replaceChildren(...Object.entries(p.stages_ms).map(([k, ms]) => row(k, `${ms.toFixed(2)} ms`)));
  $("findings").replaceChildren(...p.findings.map((f) => {
    const li = document.createElement("li");
    li.textContent = `${f.class} ${f.confidence.toFixed(2)} · ${Math.round(f.area_px)} px²${f.model ? " · " + f.model : ""}`;
    return li;
  }));
  if (!p.findings.length) $("findings").append(Object.assign(document.createElement("li"), { textContent: "none" }));
  $("detail-text").textContent = p.detail || "";
}

function row(label, value, cls) {
  const tr = document.createElement("tr");
  if (cls) tr.className = cls;
  const a = document.createElement("td"); a.textContent = label;
  const b = document.createElement("td"); b.textContent = value;
  tr.append(a, b);
  return tr;
}

// ------------------------------------------------------------------ stats
function setPill(id, text, good) {
  const el = $(id);
  el.textContent = text;
  el.className = `pill ${good === true ? "good" : good === false ? "bad" : ""}`;
}

function counts(table, c) {
  const rows = [row("parts", c.total), row("OK", c.ok, "ok"), row("NG", c.ng, "ng")];
  for (const [reason, n] of Object.entries(c.ng_by_reason)) if (reason !== "ok") rows.push(row(`  NG ${reason}`, n, "ng"));
  table.tBodies[0].replaceChildren(...rows);
}

function showStats(s) {
  $("line-name").textContent = `inspector · ${s.line}`;
  const st = s.status;
  setPill("st-state", st.state, st.state === "ready" ? true : st.state === "fault" ? false : undefined);
  setPill("st-recipe", `${st.recipe.id} · ${st.recipe.name}`);
  setPill("st-plc", st.plc, st.plc === "up" ? true : st.plc === "down" ? false : undefined);
  setPill("st-camera", st.camera, st.camera === "up" ? true : st.camera === "down" ? false : undefined);
  setPill("st-gpu", st.gpu, st.gpu === "ok" ? true : st.gpu.startsWith("failing") ? false : undefined);
  $("st-fps").textContent = `${st.parts_per_s.toFixed(1)} parts/s · ${st.deadline_misses} late`;
  $("uptime").textContent = `(${Math.round(s.uptime_s)} s)`;
  $("history").tBodies[0].replaceChildren(...s.recent.map((r) => {
    const tr = document.createElement("tr");
    tr.className = r.verdict === "OK" ? "ok" : "ng";
    for (const text of [r.part_id, r.verdict, r.verdict === "OK" ? "" : r.reason, `${r.cycle_ms} ms`]) {
      tr.append(Object.assign(document.createElement("td"), { textContent: text }));
    }
    return tr;
  }));
  counts($("counters-start"), s.since_start);
  counts($("counters-hour"), s.last_hour);
  drawChart(s.chart);
}

function drawChart(c) {
  const cv = $("chart");
  const w = (cv.width = cv.clientWidth * devicePixelRatio);
  const h = (cv.height = 150 * devicePixelRatio);
  const g = cv.getContext("2d");
  g.clearRect(0, 0, w, h);
  $("chart-n").textContent = c.cycle_ms.length;
  $("budget").textContent = c.budget_ms;
  const top = Math.max(c.budget_ms * 1.25, ...c.cycle_ms) || 1;
  const y = (ms) => h - (ms / top) * (h - 4);
  const n = Math.max(c.cycle_ms.length, 1);
  const bw = w / n;
  c.cycle_ms.forEach((ms, i) => {
    g.fillStyle = ms > c.budget_ms ? "#f0a23b" : c.ok[i] ? "#2fb463" : "#e5484d";
    g.fillRect(i * bw, y(ms), Math.max(1, bw - 1), h - y(ms));
  });
  g.strokeStyle = "#e6e8eb"; g.setLineDash([6, 4]); g.lineWidth = devicePixelRatio;
  g.beginPath(); g.moveTo(0, y(c.budget_ms)); g.lineTo(w, y(c.budget_ms)); g.stroke();
  g.setLineDash([]); g.fillStyle = "#e6e8eb"; g.font = `${11 * devicePixelRatio}px system-ui`;
  g.fillText(`budget ${c.budget_ms} ms`, 4, y(c.budget_ms) - 4);
}

// ------------------------------------------------------------------ live stream
function connect() {
  const es = new EventSource("/events");
  es.addEventListener("open", () => setPill("conn", "live", true));
  es.addEventListener("error", () => setPill("conn", "reconnecting", false));
  es.addEventListener("part", (e) => showPart(JSON.parse(e.data)));
  es.addEventListener("stats", (e) => showStats(JSON.parse(e.data)));
}

// ------------------------------------------------------------------ gallery
function isoOf(input) { return input.value ? new Date(input.value).toISOString() : ""; }

function fillSelect(sel, values) {
  const keep = sel.value;
  sel.replaceChildren(new Option("all", ""), ...values.map((v) => new Option(v, v)));
  sel.value = values.includes(keep) ? keep : "";
}

async function loadGallery() {
  const q = new URLSearchParams({ limit: "120" });
  if ($("f-reason").value) q.set("reason", $("f-reason").value);
  if ($("f-class").value) q.set("class", $("f-class").value);
  if (isoOf($("f-since"))) q.set("since", isoOf($("f-since")));
  if (isoOf($("f-until"))) q.set("until", isoOf($("f-until")));
  const resp = await fetch(`/api/gallery?${q}`);
  if (!resp.ok) { $("gallery-count").textContent = (await resp.text()).trim(); return; }
  const data = await resp.json();
  fillSelect($("f-reason"), data.reasons);
  fillSelect($("f-class"), data.classes);
  $("gallery-count").textContent = `${data.matched} archived NG part(s)${data.matched > data.entries.length ? `, newest ${data.entries.length} shown` : ""}`;
  $("gallery-list").replaceChildren(...data.entries.map((e) => {
    const card = document.createElement("div");
    card.className = "entry";
    card.dataset.name = e.name;
    const img = Object.assign(document.createElement("img"), { src: `/thumb/${e.name}.jpg`, loading: "lazy", alt: e.name });
    const meta = document.createElement("div");
    meta.className = "meta";
    const conf = e.max_confidence == null ? "" : ` · ${e.max_confidence.toFixed(2)}`;
    meta.innerText = `${e.time.replace("T", " ")}\npart ${e.part_id} · seq ${e.trigger_seq ?? "?"}\n`;
    const tag = Object.assign(document.createElement("span"), { className: "reason-tag", textContent: e.reason });
    meta.append(tag, ` ${e.classes.join(", ")}${conf}`);
    card.append(img, meta);
    card.addEventListener("click", () => openEntry(e.name));
    return card;
  }));
}

async function openEntry(name) {
  const resp = await fetch(`/api/archive/${encodeURIComponent(name)}`);
  if (!resp.ok) return;
  const d = await resp.json();
  $("detail-title").textContent = `part ${d.summary.part_id} · ${d.summary.reason} · ${d.summary.time}` +
    (d.config_in_force ? "" : " · judged under another config");
  $("dl-image").href = `${d.files.image}?download=1`;
  $("dl-sidecar").href = `${d.files.sidecar}?download=1`;
  $("dl-annotated").href = d.files.annotated;
  $("detail-sidecar").textContent = JSON.stringify(d.sidecar, null, 2);
  const img = new Image();
  img.onload = () => {
    showFrame($("detail-svg"), $("detail-img"), $("detail-overlay"), img.src, d.shapes,
      d.width || img.naturalWidth, d.height || img.naturalHeight);
    $("detail").classList.remove("hidden");
  };
  img.src = d.files.image;
}

// ------------------------------------------------------------------ wiring
function showView(view) {
  for (const t of document.querySelectorAll(".tab")) t.classList.toggle("active", t.dataset.view === view);
  $("view-live").classList.toggle("hidden", view !== "live");
  $("view-gallery").classList.toggle("hidden", view !== "gallery");
  if (view === "gallery") loadGallery();
}

document.addEventListener("DOMContentLoaded", () => {
  for (const t of document.querySelectorAll(".tab")) t.addEventListener("click", () => showView(t.dataset.view));
  $("filters").addEventListener("submit", (e) => { e.preventDefault(); loadGallery(); });
  $("detail-close").addEventListener("click", () => $("detail").classList.add("hidden"));
  $("pause").addEventListener("click", togglePause);
  document.addEventListener("keydown", (e) => { if (e.key === "Escape") $("detail").classList.add("hidden"); });
  connect();
});
