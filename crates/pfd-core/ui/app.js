// pfd-edge's page: a recording in, POST /diagnose, the answer drawn as text and SVG.
// No library and nothing from another origin (the Content-Security-Policy forbids it): the
// charts are a few SVG elements each, drawn here. Server text is only ever set as textContent.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const $ = (id) => document.getElementById(id);

// The request body's Content-Type, by file extension (the formats /diagnose reads).
const CONTENT_TYPES = {
  wav: "audio/wav", csv: "text/csv", txt: "text/csv", npy: "application/x-npy",
  json: "application/json", raw: "application/octet-stream", bin: "application/octet-stream",
  f32: "application/octet-stream", i16: "application/octet-stream",
};

// Okabe–Ito's colour-blind-safe palette (plus two), one colour per class; every chart also
// says the class in text, so colour is never the only cue.
const PALETTE = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9",
  "#D55E00", "#F0E442", "#000000", "#999999", "#882255", "#117733"];

// Which form field an API error message is about; the first rule that matches wins.
const ERROR_FIELDS = [
  ["file", /\brow \d+|\bsample \d+/],
  ["sample_rate", /sample_rate/],
  ["dtype", /\bdtype\b/],
  ["column", /\b(time_)?column\b/],
  ["channel", /\bchannel\b/],
  ["rpm", /\brpm\b/],
  ["bearing", /\bbearing\b|\bballs\b|_diameter_mm|contact_angle_deg/],
  ["model", /^model "/],
];
const FIELDS = ["file", "sample_rate", "dtype", "column", "channel", "rpm", "bearing", "model", "key"];

let bearings = []; // GET /bearings
let shown = null; // the diagnosis on screen, redrawn when the window changes width

function svg(parent, name, attrs, text) {
  const el = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
  if (text !== undefined) el.textContent = text;
  parent.appendChild(el);
  return el;
}

function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

function element(parent, name, text, cls) {
  const el = document.createElement(name);
  if (text !== undefined) el.textContent = text;
  if (cls) el.className = cls;
  parent.appendChild(el);
  return el;
}

const pct = (p) => `${(100 * p).toFixed(1)} %`;
const hz = (f) => (f >= 100 ? f.toFixed(1) : f.toFixed(2));

function headers(extra) {
  const h = Object.assign({}, extra);
  const key = $("key").value.trim();
  if (key) h["X-API-Key"] = key;
  return h;
}

async function api(method, path, body, extra) {
  const res = await fetch(path, { method, headers: headers(extra), body, cache: "no-store" });
  const text = await res.text();
  let json;
  try { json = JSON.parse(text); } catch (_) { json = { error: text || res.statusText }; }
  return { status: res.status, ok: res.ok, json };
}

// The message of an error body in either of the API's shapes: LSTM_PFD's {"error", "detail"}
// (or FastAPI's validation list in "detail") and Triton's {"error"}.
function message(json) {
  if (typeof json.error === "string") return json.error;
  if (Array.isArray(json.detail)) return json.detail.map((d) => d.msg || JSON.stringify(d)).join("; ");
  if (typeof json.detail === "string") return json.detail;
  return JSON.stringify(json);
}

function clearErrors() {
  for (const f of FIELDS) {
    $(`${f}-error`).textContent = "";
    $(f).removeAttribute("aria-invalid");
  }
}

function showError(status, json) {
  const text = message(json);
  let field = status === 401 ? "key" : "file";
  if (status !== 401) {
    const rule = ERROR_FIELDS.find(([, re]) => re.test(text));
    if (rule) field = rule[0];
  }
  $(`${field}-error`).textContent = text;
  $(field).setAttribute("aria-invalid", "true");
  $("status").textContent = `The server answered ${status}.`;
  $(field).focus();
}

async function loadBearings() {
  const r = await api("GET", "/bearings");
  if (!r.ok) return;
  bearings = r.json.bearings;
  const select = $("bearing");
  for (const b of bearings) {
    const o = element(select, "option", `${b.name} (${b.balls} balls)`);
    o.value = b.name;
  }
}

async function loadModels() {
  const select = $("model");
  const keep = select.value;
  while (select.options.length > 1) select.remove(1);
  const r = await api("POST", "/v2/repository/index", "{}", { "Content-Type": "application/json" });
  $("model-error").textContent = "";
  if (r.status === 401) {
    $("model-error").textContent = "Enter the API key to list the models.";
    return;
  }
  if (!r.ok) return;
  for (const m of r.json) {
    const o = element(select, "option", m.state === "READY" ? `${m.name} (v${m.version})` : `${m.name} — unavailable`);
    o.value = m.name;
    o.disabled = m.state !== "READY";
  }
  select.value = keep;
  if (select.value !== keep) select.value = "";
}

// The envelope spectrum's span: past the second harmonic of the highest defect line when a
// bearing is known, ten shaft orders with only the speed, else 500 Hz.
function spectrumSpan() {
  const f = Number($("rpm").value) / 60;
  const b = bearings.find((x) => x.name === $("bearing").value);
  if (f > 0 && b) return Math.ceil(2.3 * f * Math.max(b.orders.bpfi, b.orders.bpfo, 2 * b.orders.bsf, 3));
  if (f > 0) return Math.ceil(10 * f);
  return 500;
}

function fileChosen() {
  const file = $("file").files[0];
  if (!file) return;
  $("status").textContent = `${file.name}, ${(file.size / 1024).toFixed(0)} kB`;
  if (/\.i16$/i.test(file.name)) $("dtype").value = "i16";
}

async function submit(event) {
  event.preventDefault();
  clearErrors();
  const file = $("file").files[0];
  if (!file) {
    $("file-error").textContent = "Choose a recording first.";
    $("file").focus();
    return;
  }
  const ext = (file.name.split(".").pop() || "").toLowerCase();
  const type = CONTENT_TYPES[ext] || file.type || "application/octet-stream";
  const q = new URLSearchParams();
  for (const id of ["sample_rate", "dtype", "column", "channel", "rpm", "bearing", "model"]) {
    const v = $(id).value.trim();
    if (v) q.set(id, v);
  }
  q.set("spectrum_max_hz", String(spectrumSpan()));
  $("submit").disabled = true;
  $("status").textContent = `Diagnosing ${file.name}…`;
  try {
    const r = await api("POST", `/diagnose?${q}`, file, { "Content-Type": type });
    if (!r.ok) {
      showError(r.status, r.json);
      return;
    }
    render(r.json);
    $("status").textContent = `Diagnosed ${file.name} in ${r.json.timing_ms.total.toFixed(0)} ms.`;
  } catch (e) {
    $("file-error").textContent = `The request failed: ${e.message}`;
    $("status").textContent = "";
  } finally {
    $("submit").disabled = false;
  }
}

function render(d) {
  $("result").hidden = false;
  const v = clear($("verdict"));
  element(v, "p", d.diagnosis.class_name, "class-name").id = "diagnosis";
  const windows = d.windows.length;
  element(v, "p", `confidence ${pct(d.diagnosis.confidence)} · ${pct(d.diagnosis.agreement)} of ${windows} window${windows === 1 ? "" : "s"} agree`);
  const i = d.input;
  element(v, "p", `${i.duration_s.toFixed(1)} s of ${i.format.toUpperCase()} at ${i.sample_rate} Hz` +
    (i.sample_rate !== i.resampled_to ? `, resampled to ${i.resampled_to} Hz` : "") +
    ` · model ${d.model.name} v${d.model.version} on ${d.model.device}`, "hint");

  const u = clear($("unknown"));
  u.className = d.unknown.flag ? "unknown flagged" : "unknown";
  if (d.unknown.flag) {
    element(u, "p", "⚠ Unknown condition: this recording does not look like the conditions the model knows. Do not act on the diagnosis alone.", "strong");
    const ul = element(u, "ul");
    for (const r of d.unknown.reasons) element(ul, "li", r);
  } else if (d.unknown.calibrated) {
    element(u, "p", `✓ Within the calibrated conditions (score ${d.unknown.score.toFixed(2)}, threshold ${d.unknown.threshold.toFixed(2)}).`);
  } else {
    element(u, "p", "This model has no calibration for unknown conditions.");
  }
  const w = clear($("warnings"));
  for (const text of i.warnings) element(w, "li", text);

  shown = d;
  drawCharts(d);
  fillEvidence(d);
  $("raw").textContent = JSON.stringify(d, null, 2);
  $("verdict").scrollIntoView({ block: "start" });
}

// Charts are drawn at the width they are shown at (one SVG unit = one CSS pixel), so their
// text stays readable on a phone instead of shrinking with a fixed viewBox.
function widthOf(el) {
  return Math.round(Math.max(300, Math.min(1000, el.getBoundingClientRect().width || 600)));
}

function drawProbabilities(d) {
  const s = clear($("probabilities"));
  // Most likely first: the order a reader scans in.
  const entries = Object.entries(d.diagnosis.probabilities).sort((a, b) => b[1] - a[1]);
  const width = widthOf(s), row = 24, left = Math.min(190, Math.round(width * 0.45)), bar = width - left - 64;
  s.setAttribute("viewBox", `0 0 ${width} ${entries.length * row + 4}`);
  entries.forEach(([name, p], k) => {
    const y = k * row + 4;
    const chosen = name === d.diagnosis.class_name;
    svg(s, "text", { x: left - 8, y: y + 14, "text-anchor": "end", class: chosen ? "label chosen" : "label" }, name);
    svg(s, "rect", { x: left, y, width: bar, height: row - 8, class: "track" });
    svg(s, "rect", {
      x: left, y, width: Math.max(1, bar * p), height: row - 8,
      class: chosen ? "bar chosen" : "bar", "data-class": name, "data-probability": p,
    });
    svg(s, "text", { x: left + bar + 6, y: y + 14, class: "label" }, pct(p));
  });
}

function drawTimeline(d) {
  const s = clear($("timeline"));
  const width = widthOf(s), height = 120, left = 40, right = 12, top = 8, bottom = 28;
  const end = Math.max(d.input.covered_s, d.input.duration_s);
  const x = (t) => left + ((width - left - right) * t) / end;
  const h = height - top - bottom;
  s.setAttribute("viewBox", `0 0 ${width} ${height}`);
  const counts = new Map();
  // Windows overlap at the default hop: window k is drawn from its start to the next one's,
  // the last one to its end, so the bars tile the recording without hiding each other.
  d.windows.forEach((win, k) => {
    const next = k + 1 < d.windows.length ? d.windows[k + 1].start_s : win.start_s + d.input.window_s;
    const [x0, x1] = [x(win.start_s), x(next)];
    const bh = h * win.confidence;
    const colour = PALETTE[win.class % PALETTE.length];
    const r = svg(s, "rect", {
      x: x0, y: top + h - bh, width: Math.max(1, x1 - x0 - 1), height: bh, fill: colour,
      class: "window", "data-class": win.class, "data-confidence": win.confidence,
    });
    svg(r, "title", {}, `${win.start_s.toFixed(2)} s: ${win.class_name} (${pct(win.confidence)})`);
    // The class in words where the bar is wide enough: colour is never the only cue.
    if (x1 - x0 > 8 * win.class_name.length) {
      svg(s, "text", { x: x0 + 4, y: top + h - 6, class: "bar-label" }, win.class_name);
    }
    counts.set(win.class, [win.class_name, colour, (counts.get(win.class) || [0, 0, 0])[2] + 1]);
  });
  svg(s, "line", { x1: left, x2: width - right, y1: top + h, y2: top + h, class: "axis" });
  for (let t = 0; t <= end + 1e-9; t += tick(end)) {
    svg(s, "text", { x: x(t), y: height - 8, "text-anchor": "middle", class: "tick" }, `${+t.toFixed(2)} s`);
  }
  svg(s, "text", { x: 2, y: top + 10, class: "tick" }, "100 %");
  $("timeline-caption").textContent = `One bar per ${d.input.window_s} s window (a new one every ${d.input.hop_s} s): its height is the window's confidence, its colour its class.`;
  const legend = clear($("timeline-legend"));
  for (const [, [name, colour, n]] of [...counts].sort((a, b) => a[0] - b[0])) {
    const li = element(legend, "li");
    const swatch = svg(li, "svg", { width: 12, height: 12, "aria-hidden": "true" });
    svg(swatch, "rect", { width: 12, height: 12, fill: colour });
    element(li, "span", ` ${name}: ${n} window${n === 1 ? "" : "s"}`);
  }
}

function tick(span) {
  const raw = span / 6;
  const p = 10 ** Math.floor(Math.log10(raw));
  return [1, 2, 5, 10].map((m) => m * p).find((t) => t >= raw);
}

function drawSpectrum(d) {
  const s = clear($("spectrum"));
  const spec = d.evidence.envelope_spectrum;
  if (!spec) return;
  const maxHz = spec.max_hz;
  const width = widthOf(s), left = 44, right = 12, bottom = 30;
  const x = (f) => left + ((width - left - right) * f) / maxHz;
  // Marks: shaft harmonics (from the amplitude spectrum: where to look) and the bearing's
  // defect lines (measured in this envelope spectrum).
  const marks = [];
  if (d.evidence.shaft) for (const l of d.evidence.shaft.harmonics) marks.push(["shaft", l]);
  if (d.evidence.bearing) for (const l of d.evidence.bearing.lines) marks.push(["defect", l]);
  const visible = marks.filter(([, l]) => l.expected_hz <= maxHz).sort((a, b) => a[1].expected_hz - b[1].expected_hz);
  // Labels go in the first row where they do not run into the previous label.
  const rowEnds = [];
  const placed = visible.map(([family, l]) => {
    const text = `${l.name}${family === "defect" && l.present ? " ✓" : ""}`;
    const at = x(l.expected_hz) + 2;
    let row = rowEnds.findIndex((e) => e < at);
    if (row < 0) row = rowEnds.push(0) - 1;
    rowEnds[row] = at + 6.5 * text.length;
    return [family, l, text, row];
  });
  const top = 12 + 13 * Math.max(1, rowEnds.length);
  const height = top + 200 + bottom;
  s.setAttribute("viewBox", `0 0 ${width} ${height}`);
  const peak = Math.max(...spec.amplitude, 1e-12);
  const y = (a) => top + (height - top - bottom) * (1 - a / peak);
  // The scale, for readers (and the browser test) to map a mark back to its frequency.
  s.dataset.x0 = left;
  s.dataset.x1 = width - right;
  s.dataset.maxHz = maxHz;
  let path = "";
  spec.amplitude.forEach((a, k) => { path += `${k ? "L" : "M"}${x(k * spec.step_hz).toFixed(1)} ${y(a).toFixed(1)}`; });
  svg(s, "path", { d: path, class: "trace" });
  svg(s, "line", { x1: left, x2: width - right, y1: height - bottom, y2: height - bottom, class: "axis" });
  for (let f = 0; f <= maxHz + 1e-9; f += tick(maxHz)) {
    svg(s, "text", { x: x(f), y: height - 10, "text-anchor": "middle", class: "tick" }, `${+f.toFixed(1)}`);
  }
  svg(s, "text", { x: width - right, y: height - 10, "text-anchor": "end", class: "tick" }, "Hz");
  svg(s, "text", { x: left - 4, y: top + 4, "text-anchor": "end", class: "tick" }, hz(peak));
  for (const [family, l, text, row] of placed) {
    const mx = x(l.expected_hz);
    const present = family === "defect" && l.present;
    const g = svg(s, "g", { class: `marker ${family}${present ? " present" : ""}`, "data-line": l.name, "data-hz": l.expected_hz });
    svg(g, "line", { x1: mx, x2: mx, y1: 14 + 13 * row, y2: height - bottom });
    svg(g, "text", { x: mx + 2, y: 12 + 13 * row, class: "mark-label" }, text);
    svg(g, "title", {}, `${l.name}: expected ${hz(l.expected_hz)} Hz, peak at ${hz(l.frequency_hz)} Hz, ${l.prominence_db.toFixed(1)} dB${l.present ? " — present" : ""}`);
    if (present) svg(g, "circle", { cx: x(l.frequency_hz), cy: y(Math.min(l.amplitude, peak)), r: 4 });
  }
  $("spectrum-caption").textContent =
    `Envelope of the ${d.evidence.spectrum.envelope_band_hz.map((f) => f.toFixed(0)).join("–")} Hz band, ` +
    `0–${maxHz.toFixed(0)} Hz, linear amplitude. Dashed: the bearing's defect lines (solid, circled and ✓ where present: ≥ ${d.evidence.spectrum.present_threshold_db} dB over the local floor); dotted: shaft harmonics.` +
    (d.evidence.shaft ? "" : " Give the shaft speed (and a bearing) to mark the lines.");
}

function drawCharts(d) {
  drawProbabilities(d);
  drawTimeline(d);
  drawSpectrum(d);
}

function fillEvidence(d) {
  const ind = clear($("indicators").tBodies[0]);
  for (const [k, label] of [["rms", "RMS"], ["peak", "peak"], ["crest_factor", "crest factor"], ["kurtosis", "kurtosis"]]) {
    const tr = element(ind, "tr");
    element(tr, "th", label).scope = "row";
    element(tr, "td", d.evidence.indicators[k].toFixed(3));
  }
  const body = clear($("lines").tBodies[0]);
  const lines = [
    ...(d.evidence.shaft ? d.evidence.shaft.harmonics : []),
    ...(d.evidence.shaft && d.evidence.shaft.subsynchronous ? [d.evidence.shaft.subsynchronous] : []),
    ...(d.evidence.bearing ? d.evidence.bearing.lines : []),
  ];
  for (const l of lines) {
    const tr = element(body, "tr", undefined, l.present ? "present" : "");
    element(tr, "th", l.name).scope = "row";
    element(tr, "td", hz(l.expected_hz));
    element(tr, "td", hz(l.frequency_hz));
    element(tr, "td", l.prominence_db.toFixed(1));
    element(tr, "td", l.present ? "yes" : "no");
  }
  $("lines").hidden = lines.length === 0;
}

function setUpDrop() {
  const zone = $("drop");
  for (const name of ["dragenter", "dragover"]) {
    zone.addEventListener(name, (e) => { e.preventDefault(); zone.classList.add("over"); });
  }
  for (const name of ["dragleave", "drop"]) zone.addEventListener(name, () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    if (e.dataTransfer.files.length) {
      $("file").files = e.dataTransfer.files;
      fileChosen();
    }
  });
}

document.addEventListener("DOMContentLoaded", () => {
  $("form").addEventListener("submit", submit);
  $("file").addEventListener("change", fileChosen);
  $("key").addEventListener("change", loadModels);
  setUpDrop();
  let pending = 0;
  window.addEventListener("resize", () => {
    clearTimeout(pending);
    pending = setTimeout(() => shown && drawCharts(shown), 150);
  });
  loadBearings();
  loadModels();
});
