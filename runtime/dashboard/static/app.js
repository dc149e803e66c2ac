// plcrun dashboard page: polls the JSON API (docs/dashboard-api.md) and renders it.
// Everything the page shows is computed by the server; this file only fetches, draws and sends
// what the operator typed. Text from the server goes into the DOM as text, never as HTML.
"use strict";

const ui = {
  pollMs: 250,
  token: sessionStorage.getItem("plcrun-token") || "",
  watch: JSON.parse(localStorage.getItem("plcrun-watch") || "[]"),
  chartSeq: 0,
  chartRows: [],
  chartColumns: [],
  evOffset: 0,
  evLimit: 20,
  evInUse: 0,
  tick: 0,
  busy: false,
  doneTicks: [],
  watchTypes: {},
};

const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (key === "class") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

// ------------------------------------------------------------------ formatting
function fmtNs(value) {
  if (value === null || value === undefined) return "–";
  if (Math.abs(value) >= 1e6) return (value / 1e6).toFixed(2) + " ms";
  return Math.round(value / 1e3) + " µs";
}

function fmtValue(value) {
  if (value === null || value === undefined) return "–";
  if (typeof value === "number") {
    if (Number.isInteger(value)) return String(value);
    return Math.abs(value) >= 1000 ? value.toFixed(1) : value.toPrecision(6).replace(/\.?0+$/, "");
  }
  if (typeof value === "boolean") return value ? "TRUE" : "FALSE";
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}

function fmtAge(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  return seconds < 10 ? seconds.toFixed(2) + " s" : seconds.toFixed(0) + " s";
}

function fmtTime(epochSeconds) {
  return new Date(epochSeconds * 1000).toLocaleTimeString();
}

function qualityBadge(quality) {
  return el("span", { class: "q q-" + String(quality || "none").toLowerCase() }, quality || "–");
}

// ------------------------------------------------------------------ API
async function api(path, body) {
  const options = { headers: {} };
  if (body !== undefined) {
    options.method = "POST";
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
    if (ui.token) options.headers["Authorization"] = "Bearer " + ui.token;
  }
  const reply = await fetch(path, options);
  let data = null;
  try {
    data = await reply.json();
  } catch (error) {
    data = { error: "no JSON in the answer (" + reply.status + ")" };
  }
  return { ok: reply.ok, status: reply.status, body: data };
}

function showMessage(text, kind) {
  const box = $("message");
  box.textContent = text;
  box.className = kind || "info";
  box.hidden = false;
}

async function command(path, body, what) {
  const reply = await api(path, body);
  if (reply.ok) showMessage(what + ": queued, applied at the next scan", "ok");
  else showMessage(what + " refused (" + reply.status + "): " + reply.body.error, "error");
  return reply;
}

// ------------------------------------------------------------------ tasks and statistics
const SERIES = [
  ["execution_ns", "execution"],
  ["period_ns", "period"],
  ["wake_latency_ns", "wake latency"],
];

function renderTasks(data) {
  const pill = $("scan-state");
  pill.textContent = data.scanning ? "scanning" : "not scanning";
  pill.className = "pill " + (data.scanning ? "ok" : "warn");
  const box = $("tasks");
  const cards = [];
  for (const task of data.tasks) {
    const sup = task.supervisor;
    const head = el(
      "div",
      { class: "task-head" },
      el("strong", {}, task.name),
      el("span", { class: "muted" }, " every " + task.interval_ns / 1e6 + " ms · priority " + task.priority +
        " · " + task.programs.join(", ")),
      el("span", { class: "pill state-" + sup.state, dataset: { field: "state" } }, sup.state),
    );
    if (sup.state === "faulted") {
      head.append(el("button", { type: "button", class: "restart", onclick: () =>
        command("/api/tasks/" + encodeURIComponent(task.name) + "/restart", {}, "restart " + task.name) }, "Restart"));
    }
    const counters = el(
      "div",
      { class: "counters" },
      counter("scans", task.scans),
      counter("overruns", task.overruns),
      counter("skipped periods", task.skipped_periods),
      counter("overruns in a row", sup.consecutive_overruns + " / " + (sup.overrun_limit || "off")),
      counter("watchdog limit", fmtNs(sup.time_limit_ns)),
      counter("faults", sup.faults),
      counter("GC pauses in scans", task.gc.in_scan),
    );
    const table = el("table", { class: "stats" }, el("thead", {}, el("tr", {},
      ...["", "last", "min", "mean", "max", "p99", "p99.9"].map((h) => el("th", {}, h)))));
    const body = el("tbody");
    for (const [key, label] of SERIES) {
      const s = task[key];
      body.append(el("tr", { dataset: { series: key } }, el("th", {}, label),
        ...["last", "min", "mean", "max", "p99", "p99_9"].map((k) => el("td", { class: k }, fmtNs(s[k])))));
    }
    table.append(body);
    const message = sup.message ? el("p", { class: "fault" }, sup.message) : null;
    const canvas = el("canvas", { class: "histogram", height: "130" });
    const card = el("div", { class: "task", id: "task-" + task.name }, head, message, counters, table, canvas);
    cards.push([card, canvas, task.histogram]);
  }
  box.replaceChildren(...cards.map((c) => c[0]));
  for (const [, canvas, histogram] of cards) drawHistogram(canvas, histogram);
}

function counter(label, value) {
  return el("span", { class: "counter", dataset: { counter: label } },
    el("span", { class: "muted" }, label + " "), el("b", {}, fmtValue(value)));
}

function edgeLabel(ns) {
  return ns >= 1e6 ? ns / 1e6 + "ms" : ns / 1e3 + "µs";
}

function drawHistogram(canvas, histogram) {
  const ctx = fitCanvas(canvas);
  const w = canvas.clientWidth, h = canvas.clientHeight;
  const edges = histogram.edges_ns;
  const labels = edges.map((e) => "<" + edgeLabel(e)).concat(["≥" + edgeLabel(edges[edges.length - 1])]);
  const series = [["wake_latency", "#2f7ed8"], ["execution", "#e4a11b"]];
  const peak = Math.max(1, ...series.flatMap(([k]) => histogram[k]));
  const left = 34, bottom = 28, top = 16;
  const slot = (w - left) / labels.length;
  ctx.font = "10px sans-serif";
  ctx.fillStyle = "#666";
  ctx.fillText("scans per bin (log scale) over the statistics window", left, 10);
  series.forEach(([key, color], s) => {
    ctx.fillStyle = color;
    histogram[key].forEach((count, i) => {
      if (!count) return;
      const bar = (Math.log10(count + 1) / Math.log10(peak + 1)) * (h - bottom - top);
      ctx.fillRect(left + i * slot + 2 + s * (slot - 4) / 2, h - bottom - bar, (slot - 4) / 2, bar);
    });
    ctx.fillText(key.replace("_", " "), w - 190 + s * 95, 10);
  });
  ctx.fillStyle = "#444";
  labels.forEach((label, i) => ctx.fillText(label, left + i * slot + 2, h - 10));
}

// ------------------------------------------------------------------ chart
function fitCanvas(canvas) {
  const ratio = window.devicePixelRatio || 1;
  const w = canvas.clientWidth, h = canvas.clientHeight;
  canvas.width = Math.max(1, Math.round(w * ratio));
  canvas.height = Math.max(1, Math.round(h * ratio));
  const ctx = canvas.getContext("2d");
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, w, h);
  return ctx;
}

const CHART_LINES = [
  { col: "grid_hz", label: "grid Hz", color: "#c0392b", axis: "hz" },
  { col: "site_w", label: "site kW", color: "#2f7ed8", axis: "kw" },
  { col: "ev_present_w", label: "EV actual kW", color: "#27ae60", axis: "kw" },
  { col: "ev_setpoint_w", label: "EV setpoint kW", color: "#8e44ad", axis: "kw", dash: [5, 4] },
];

function mergeChart(data) {
  ui.chartColumns = data.columns;
  if (data.last_seq < ui.chartSeq) ui.chartRows = []; // the server restarted
  ui.chartRows.push(...data.rows);
  ui.chartSeq = data.last_seq;
  const keep = Math.round(120 / data.period_s);
  if (ui.chartRows.length > keep) ui.chartRows.splice(0, ui.chartRows.length - keep);
  const missing = Object.values(data.missing || {});
  $("chart-missing").hidden = missing.length === 0;
  $("chart-missing").textContent = missing.join(" · ");
}

function axisRange(values, minSpan) {
  const finite = values.filter((v) => v !== null && Number.isFinite(v));
  if (!finite.length) return null;
  let lo = Math.min(...finite), hi = Math.max(...finite);
  if (hi - lo < minSpan) {
    const mid = (hi + lo) / 2;
    lo = mid - minSpan / 2;
    hi = mid + minSpan / 2;
  }
  const pad = (hi - lo) * 0.08;
  return [lo - pad, hi + pad];
}

function drawChart() {
  const canvas = $("chart");
  const ctx = fitCanvas(canvas);
  const w = canvas.clientWidth, h = canvas.clientHeight;
  const rows = ui.chartRows, cols = ui.chartColumns;
  const left = 56, right = 62, top = 12, bottom = 24;
  const legend = $("chart-legend");
  legend.replaceChildren(...CHART_LINES.map((line) => {
    const item = el("span", {}, "━ " + line.label);
    item.style.color = line.color; // CSSOM, not a style attribute: the page's CSP allows no inline styles
    return item;
  }));
  if (rows.length < 2) {
    ctx.fillStyle = "#888";
    ctx.fillText("waiting for samples…", left, h / 2);
    return;
  }
  const at = (name) => cols.indexOf(name);
  const t1 = rows[rows.length - 1][at("t_s")];
  const t0 = t1 - 60;
  const x = (t) => left + ((t - t0) / 60) * (w - left - right);
  const ranges = {
    hz: axisRange(rows.map((r) => r[at("grid_hz")]), 0.1),
    kw: axisRange(CHART_LINES.filter((l) => l.axis === "kw").flatMap((l) => rows.map((r) =>
      r[at(l.col)] === null ? null : r[at(l.col)] / 1000)), 1),
  };
  const y = (axis, v) => {
    const [lo, hi] = ranges[axis];
    return top + (1 - (v - lo) / (hi - lo)) * (h - top - bottom);
  };
  ctx.strokeStyle = "#e3e3e3";
  ctx.fillStyle = "#555";
  ctx.font = "11px sans-serif";
  for (let i = 0; i <= 4; i++) {
    const py = top + (i / 4) * (h - top - bottom);
    ctx.beginPath(); ctx.moveTo(left, py); ctx.lineTo(w - right, py); ctx.stroke();
    if (ranges.hz) {
      const v = ranges.hz[1] - (i / 4) * (ranges.hz[1] - ranges.hz[0]);
      ctx.fillText(v.toFixed(3), 4, py + 4);
    }
    if (ranges.kw) {
      const v = ranges.kw[1] - (i / 4) * (ranges.kw[1] - ranges.kw[0]);
      ctx.fillText(v.toFixed(1), w - right + 6, py + 4);
    }
  }
  ctx.fillText("Hz", 4, h - 6);
  ctx.fillText("kW", w - right + 6, h - 6);
  for (let s = 0; s < 60; s += 10) ctx.fillText("-" + (60 - s) + " s", x(t0 + s) - 12, h - 6);
  ctx.fillText("now", x(t1) - 24, h - 6);
  for (const line of CHART_LINES) {
    const c = at(line.col);
    if (!ranges[line.axis]) continue;
    ctx.strokeStyle = line.color;
    ctx.lineWidth = 1.6;
    ctx.setLineDash(line.dash || []);
    ctx.beginPath();
    let drawing = false;
    for (const row of rows) {
      if (row[at("t_s")] < t0 || row[c] === null) { drawing = false; continue; }
      const v = line.axis === "kw" ? row[c] / 1000 : row[c];
      if (drawing) ctx.lineTo(x(row[at("t_s")]), y(line.axis, v));
      else ctx.moveTo(x(row[at("t_s")]), y(line.axis, v));
      drawing = true;
    }
    ctx.stroke();
  }
  ctx.setLineDash([]);
}

// ------------------------------------------------------------------ EV sessions
// How the car talks to the charger (EV_SESSION codes, stdlib/ev_session.st); 0 = not said.
const EV_PROTOCOLS = { 1: "DIN 70121", 2: "15118-2", 20: "15118-20" };
const EV_MODES = { 1: "AC", 2: "DC", 3: "AC BPT", 4: "DC BPT" };
const EV_CONTROL = { 1: "scheduled", 2: "dynamic" };
const EV_AUTH = { 1: "EIM", 2: "PnC" };
function evLink(r) {
  const parts = [EV_PROTOCOLS[r.protocol], EV_MODES[r.energy_mode], EV_CONTROL[r.control_mode], EV_AUTH[r.auth_mode]];
  return parts.filter((p) => p).join(" ") || "–";
}

function renderEvs(data) {
  const table = $("ev-table");
  if (!data.available) {
    $("ev-missing").hidden = false;
    $("ev-missing").textContent = data.missing;
    table.hidden = true;
    return;
  }
  ui.evInUse = data.in_use;
  const last = Math.min(data.in_use, data.offset + data.rows.length);
  $("ev-range").textContent = data.in_use ? (data.offset + 1) + "–" + last + " of " + data.in_use : "none in use";
  const s = data.summary || {};
  $("ev-summary").textContent = data.path + (s.connected === undefined ? "" :
    " · " + s.connected + " connected · setpoint " + fmtValue(s.setpoint_w / 1000) + " kW · actual " +
    fmtValue(s.present_w / 1000) + " kW");
  const rows = data.rows.map((r) => el("tr", { dataset: { slot: r.index } },
    el("td", {}, r.index),
    el("td", {}, fmtValue(r.connected)),
    ...["soc_pct", "target_soc_pct", "min_soc_pct", "p_setpoint_w", "p_present_w", "p_charge_max_w",
      "p_discharge_max_w"].map((k) => el("td", { class: "num " + k }, fmtValue(r[k]))),
    el("td", { class: "small link" }, evLink(r)),
    el("td", {}, qualityBadge(r.quality)),
    el("td", { class: "num" }, fmtAge(r.soc_age_s)),
  ));
  table.tBodies[0].replaceChildren(...rows);
}

// ------------------------------------------------------------------ I/O, alarms, journal
function renderIo(data) {
  const rows = data.drivers.map((d) => el("tr", {},
    el("td", {}, d.name),
    el("td", {}, d.kind),
    el("td", {}, el("span", { class: "pill " + (d.connected ? "ok" : "bad") }, d.connected ? "connected" : "down")),
    el("td", {}, Object.entries(d.points_by_quality || {}).map(([q, n]) => q + " " + n).join(", ") || "–"),
    el("td", { class: "small" }, d.detail + " " + Object.entries(d.counters || {}).map(([k, v]) => k + "=" + v).join(" ")),
  ));
  $("drivers").tBodies[0].replaceChildren(...rows);
  const inputs = data.inputs;
  $("inputs-summary").textContent = inputs.total + " bound inputs: " +
    Object.entries(inputs.by_quality).map(([q, n]) => q + " " + n).join(", ");
  $("inputs-bad").replaceChildren(...inputs.not_good.map((i) =>
    el("li", {}, qualityBadge(i.quality), " " + i.path + " = " + fmtValue(i.value) + " (" + i.driver + ")")));
}

function renderAlarms(data) {
  const item = (a) => el("li", { class: "sev-" + a.severity + (a.active ? "" : " cleared") },
    el("b", {}, a.key), " " + a.message + " ", el("span", { class: "muted" }, fmtTime(a.time)));
  const active = data.active.map(item);
  $("alarms-active").replaceChildren(...(active.length ? active : [el("li", { class: "muted" }, "no active alarms")]));
  $("alarms-history").replaceChildren(...data.history.map(item));
}

function renderJournal(data) {
  $("forces").replaceChildren(...Object.entries(data.forces).map(([path, value]) =>
    el("li", { class: "forced" }, "forced " + path + " = " + fmtValue(value))));
  $("journal").replaceChildren(...data.entries.slice(0, 15).map((e) =>
    el("li", { class: e.result === "ok" ? "" : "bad" }, fmtTime(e.time) + " " + e.source + " " + e.action + " " +
      e.path + (e.action === "release" ? "" : " = " + fmtValue(e.value)) + (e.result === "ok" ? "" : " — " + e.result))));
}

// ------------------------------------------------------------------ variable tree and watch
function treeItem(v, asChild) {
  const li = el("li", { dataset: { path: v.path } });
  const expandable = v.children > 0;
  const toggle = el("button", { type: "button", class: "expand", title: "expand" }, expandable ? "▸" : "·");
  if (!expandable) toggle.disabled = true;
  toggle.addEventListener("click", () => toggleNode(li, v, toggle));
  li.append(toggle, el("span", { class: "name" }, asChild ? v.name : v.path), " ",
    el("span", { class: "muted" }, v.type + (v.children ? " (" + v.children + ")" : "")));
  if ("value" in v) li.append(" = ", el("span", { class: "value" }, fmtValue(v.value)));
  if (v.element_matches) li.append(el("span", { class: "muted small" }, " elements: " + v.element_matches.join(", ")));
  if (v.kind === "elementary" || v.kind === "enum") {
    li.append(" ", el("button", { type: "button", class: "watch", onclick: () => addWatch(v.path) }, "watch"));
  }
  return li;
}

async function toggleNode(li, v, toggle) {
  const open = li.querySelector(":scope > ul");
  if (open) { open.remove(); toggle.textContent = "▸"; return; }
  toggle.textContent = "▾";
  const list = el("ul");
  li.append(list);
  await loadChildren(list, v.path, 0);
}

async function loadChildren(list, path, offset) {
  const reply = await api("/api/variables?prefix=" + encodeURIComponent(path) + "&offset=" + offset + "&limit=100");
  if (!reply.ok) { showMessage(reply.body.error, "error"); return; }
  list.append(...reply.body.variables.map((v) => treeItem(v, true)));
  const shown = offset + reply.body.variables.length;
  if (shown < reply.body.total) {
    const more = el("li", {}, el("button", { type: "button", class: "more" },
      "more (" + (reply.body.total - shown) + " left)"));
    more.firstChild.addEventListener("click", () => { more.remove(); loadChildren(list, path, shown); });
    list.append(more);
  }
}

let searchTimer = null;
async function runSearch() {
  const q = $("search").value.trim();
  const reply = await api(q ? "/api/variables?q=" + encodeURIComponent(q) + "&limit=100" : "/api/variables");
  if (!reply.ok) { showMessage(reply.body.error, "error"); return; }
  $("tree").replaceChildren(...reply.body.variables.map((v) => treeItem(v, false)));
}

function saveWatch() {
  localStorage.setItem("plcrun-watch", JSON.stringify(ui.watch));
}

function addWatch(path) {
  if (!ui.watch.includes(path)) ui.watch.push(path);
  saveWatch();
  renderWatchRows();
}

function renderWatchRows() {
  const body = $("watch").tBodies[0];
  const existing = new Map([...body.rows].map((row) => [row.dataset.path, row]));
  const rows = ui.watch.map((path) => existing.get(path) || watchRow(path));
  body.replaceChildren(...rows);
}

function watchRow(path) {
  const input = el("input", { class: "value-input", size: "10", placeholder: "value" });
  const send = (endpoint, what) => command(endpoint, { path, value: input.value }, what + " " + path);
  return el("tr", { dataset: { path } },
    el("td", { class: "path" }, path),
    el("td", { class: "type muted" }, ""),
    el("td", { class: "value num" }, "…"),
    el("td", { class: "quality" }, ""),
    el("td", {}, input),
    el("td", { class: "actions" },
      el("button", { type: "button", class: "write", onclick: () => send("/api/write", "write") }, "Write"),
      el("button", { type: "button", class: "force", onclick: () => send("/api/force", "force") }, "Force"),
      el("button", { type: "button", class: "release", onclick: () =>
        command("/api/release", { path }, "release " + path) }, "Release"),
      el("button", { type: "button", class: "unwatch", title: "stop watching", onclick: () => {
        ui.watch = ui.watch.filter((p) => p !== path); saveWatch(); renderWatchRows();
      } }, "×")));
}

function renderWatch(data) {
  for (const row of $("watch").tBodies[0].rows) {
    const v = data.values[row.dataset.path];
    if (!v) continue;
    if (v.error) {
      row.querySelector(".value").textContent = v.error;
      row.classList.add("bad");
      continue;
    }
    row.classList.remove("bad");
    row.querySelector(".type").textContent = v.type;
    row.querySelector(".value").textContent = fmtValue(v.value);
    row.classList.toggle("forced", v.forced);
    row.querySelector(".quality").replaceChildren(v.quality ? qualityBadge(v.quality) : "",
      v.forced ? el("span", { class: "pill forced" }, "forced") : "");
  }
}

// ------------------------------------------------------------------ polling
async function poll() {
  if (ui.busy) return;
  ui.busy = true;
  try {
    const slow = ui.tick % 4 === 0;
    ui.tick += 1;
    const watchQuery = ui.watch.map((p) => "path=" + encodeURIComponent(p)).join("&");
    const requests = [
      api("/api/tasks").then((r) => r.ok && renderTasks(r.body)),
      api("/api/chart?since=" + ui.chartSeq).then((r) => { if (r.ok) { mergeChart(r.body); drawChart(); } }),
      api("/api/evs?offset=" + ui.evOffset + "&limit=" + ui.evLimit).then((r) => r.ok && renderEvs(r.body)),
    ];
    if (ui.watch.length) requests.push(api("/api/values?" + watchQuery).then((r) => r.ok && renderWatch(r.body)));
    if (slow) {
      requests.push(api("/api/io").then((r) => r.ok && renderIo(r.body)));
      requests.push(api("/api/alarms").then((r) => r.ok && renderAlarms(r.body)));
      requests.push(api("/api/journal").then((r) => r.ok && renderJournal(r.body)));
    }
    await Promise.all(requests);
    const now = performance.now();
    ui.doneTicks.push(now);
    ui.doneTicks = ui.doneTicks.filter((t) => now - t < 3000);
    const ticks = ui.doneTicks;
    if (ticks.length > 2) {
      const rate = ((ticks.length - 1) * 1000) / (ticks[ticks.length - 1] - ticks[0]);
      $("refresh").textContent = rate.toFixed(1) + " updates/s";
    }
  } catch (error) {
    const pill = $("scan-state");
    pill.textContent = "no connection";
    pill.className = "pill bad";
  } finally {
    ui.busy = false;
  }
}

function showToken() {
  $("token-state").textContent = ui.token ? "set" : "none";
}

async function start() {
  const info = await api("/api/info");
  if (info.ok) {
    ui.pollMs = info.body.poll_ms;
    $("program").textContent = info.body.program + (info.body.virtual_time ? " (virtual time)" : "");
    $("mode").textContent = info.body.writes_enabled ? "" : "read-only (started without a token)";
    const parameters = Object.entries(info.body.parameters || {});
    $("parameters").replaceChildren(...(parameters.length ? parameters.map(([path, value]) =>
      el("li", { dataset: { path } }, path + " = " + fmtValue(value))) : [el("li", { class: "muted" }, "none")]));
  }
  $("token").value = ui.token;
  showToken();
  $("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    ui.token = $("token").value.trim();
    sessionStorage.setItem("plcrun-token", ui.token);
    showToken();
  });
  $("stats-reset").addEventListener("click", () => command("/api/stats/reset", {}, "reset statistics"));
  $("ev-prev").addEventListener("click", () => { ui.evOffset = Math.max(0, ui.evOffset - ui.evLimit); });
  $("ev-next").addEventListener("click", () => {
    if (ui.evOffset + ui.evLimit < ui.evInUse) ui.evOffset += ui.evLimit;
  });
  $("search").addEventListener("input", () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(runSearch, 200);
  });
  $("message").addEventListener("click", () => { $("message").hidden = true; });
  renderWatchRows();
  runSearch();
  poll();
  setInterval(poll, ui.pollMs);
  window.addEventListener("resize", drawChart);
}

start();
