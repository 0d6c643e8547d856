// Switchyard status page: reads /api/status every second and redraws.
// No framework, no external assets: the page works offline.
"use strict";

const SVG = "http://www.w3.org/2000/svg"; // a namespace name, never fetched
const REFRESH_MS = 1000;
const STEP_COLOURS = ["#2f6fb3", "#1f8a4c", "#8e44ad", "#c7a008", "#16a085", "#d35400", "#7f8c8d", "#2c3e50", "#e84393", "#00838f"];

// The URL is built from the origin: a page opened with user:password@ in
// its address would otherwise hand fetch() a URL with credentials, which
// it refuses.
const statusURL = new URL("api/status", window.location.origin + window.location.pathname).href;

function el(tag, attrs, ...children) {
  const e = tag.startsWith("svg:") ? document.createElementNS(SVG, tag.slice(4)) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v !== undefined && v !== null) e.setAttribute(k, v);
  }
  for (const c of children) e.append(c);
  return e;
}

function text(id, value) {
  document.getElementById(id).textContent = value;
}

function duration(ms) {
  if (ms < 1) return (ms * 1000).toFixed(0) + " µs";
  if (ms < 1000) return ms.toFixed(ms < 10 ? 1 : 0) + " ms";
  return (ms / 1000).toFixed(2) + " s";
}

function age(seconds) {
  const d = Math.floor(seconds / 86400), h = Math.floor(seconds % 86400 / 3600), m = Math.floor(seconds % 3600 / 60);
  if (d) return `${d}d ${h}h`;
  if (h) return `${h}h ${m}m`;
  return `${m}m ${seconds % 60}s`;
}

// How a backend is drawn: its role, or "lagging" for a replica that takes
// no reads because of lag or stopped replication.
function look(b) {
  if (b.role !== "replica") return b.role;
  const replicating = b.replication.includes("io=Yes") && b.replication.includes("sql=Yes");
  if (!replicating || b.lag_seconds === null || b.lag_seconds > 10) return "lagging";
  return "replica";
}

// Levels: the master first, then who replicates from it, and so on;
// servers with no known source go last. st is one cluster.
function levels(st) {
  const byName = new Map(st.backends.map(b => [b.name, b]));
  const placed = new Set();
  const rows = [];
  let row = st.backends.filter(b => b.name === st.master);
  while (row.length) {
    rows.push(row);
    row.forEach(b => placed.add(b.name));
    row = st.backends.filter(b => !placed.has(b.name) && b.source && row.some(p => p.name === b.source));
  }
  const rest = st.backends.filter(b => !placed.has(b.name));
  if (rest.length) rows.push(rest);
  return { rows, byName };
}

const NODE_W = 210, NODE_H = 96, GAP_X = 40, GAP_Y = 70;

// drawTopology draws every cluster, each in a figure of its own.
function drawTopology(st) {
  const many = st.clusters.length > 1;
  document.getElementById("topology").replaceChildren(...st.clusters.map(c => {
    const fig = el("figure", { class: "cluster", "data-cluster": c.name });
    if (many) fig.append(el("figcaption", {}, `cluster ${c.name} · master ${c.master || "(none)"} · epoch ${c.epoch}`));
    if (c.failover_blocked) fig.append(el("p", { class: "banner" }, `Failover blocked (${c.failover_blocked_kind}): ${c.failover_blocked}`));
    fig.append(clusterSVG(c));
    return fig;
  }));
}

// clusterSVG draws one cluster's servers and replication arrows.
function clusterSVG(st) {
  const { rows } = levels(st);
  const widest = Math.max(1, ...rows.map(r => r.length));
  const width = widest * NODE_W + (widest + 1) * GAP_X;
  const height = rows.length * NODE_H + (rows.length + 1) * GAP_Y - GAP_Y / 2;
  const svg = el("svg:svg", { width, height, viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": "replication topology" });
  svg.append(el("svg:defs", {},
    el("svg:marker", { id: "arrow", viewBox: "0 0 10 10", refX: "10", refY: "5", markerWidth: "8", markerHeight: "8", orient: "auto-start-reverse" },
      el("svg:path", { d: "M 0 0 L 10 5 L 0 10 z", fill: "#2f6fb3" })),
    el("svg:marker", { id: "arrow-broken", viewBox: "0 0 10 10", refX: "10", refY: "5", markerWidth: "8", markerHeight: "8", orient: "auto-start-reverse" },
      el("svg:path", { d: "M 0 0 L 10 5 L 0 10 z", fill: "#c0392b" }))));
  const pos = new Map();
  rows.forEach((row, i) => {
    const rowWidth = row.length * NODE_W + (row.length - 1) * GAP_X;
    const x0 = (width - rowWidth) / 2;
    row.forEach((b, j) => pos.set(b.name, { x: x0 + j * (NODE_W + GAP_X), y: GAP_Y / 2 + i * (NODE_H + GAP_Y) }));
  });
  // Replication arrows, from source to replica.
  for (const b of st.backends) {
    if (!b.source || !pos.has(b.source)) continue;
    const from = pos.get(b.source), to = pos.get(b.name);
    const x1 = from.x + NODE_W / 2, y1 = from.y + NODE_H, x2 = to.x + NODE_W / 2, y2 = to.y;
    const broken = !(b.replication.includes("io=Yes") && b.replication.includes("sql=Yes"));
    svg.append(el("svg:path", {
      class: "edge" + (broken ? " broken" : ""), "data-from": b.source, "data-to": b.name,
      d: `M ${x1} ${y1} C ${x1} ${y1 + GAP_Y / 2}, ${x2} ${y2 - GAP_Y / 2}, ${x2} ${y2 - 2}`,
      "marker-end": broken ? "url(#arrow-broken)" : "url(#arrow)",
    }));
    const label = b.lag_seconds === null ? b.replication : `lag ${b.lag_seconds}s`;
    svg.append(el("svg:text", { class: "edge-label", x: (x1 + x2) / 2 + 6, y: (y1 + y2) / 2 + 4 }, label));
  }
  for (const b of st.backends) {
    const p = pos.get(b.name);
    const g = el("svg:g", { class: "node " + look(b), "data-name": b.name, "data-role": b.role, transform: `translate(${p.x},${p.y})` });
    g.append(el("svg:rect", { width: NODE_W, height: NODE_H, rx: 8 }));
    g.append(el("svg:title", {}, `${b.name} (${b.address})\n${b.state}\n${b.last_error || ""}`));
    g.append(el("svg:text", { class: "title", x: 12, y: 22 }, b.name));
    const marks = [];
    if (b.diverged) marks.push("DIVERGED");
    if (b.offline) marks.push("OFFLINE");
    if (!b.up) marks.push("DOWN");
    if (b.role === "master" && st.holding_writes) marks.push("HOLDING");
    g.append(el("svg:text", { class: "mark" + (marks.length ? " bad" : ""), x: NODE_W - 12, y: 22, "text-anchor": "end" }, marks.join(" ") || b.role));
    g.append(el("svg:text", { x: 12, y: 42 }, b.address));
    const lag = b.lag_seconds === null ? "" : ` · lag ${b.lag_seconds}s`;
    g.append(el("svg:text", { x: 12, y: 60 }, `${b.read_only ? "read-only" : "writable"}${lag}`));
    g.append(el("svg:text", { x: 12, y: 78 }, `pool ${b.pool_open - b.pool_idle} busy / ${b.pool_idle} idle` + (b.pool_waiting ? ` / ${b.pool_waiting} waiting` : "")
      + (b.apply_backlog ? ` · backlog ${b.apply_backlog}` : "")));
    svg.append(g);
  }
  return svg;
}

function drawTimeline(st) {
  const box = document.getElementById("timeline");
  const many = st.clusters.length > 1;
  const changes = st.clusters.flatMap(c => c.failovers || []).sort((a, b) => new Date(b.started) - new Date(a.started));
  if (!changes.length) {
    box.replaceChildren(el("p", { class: "empty" }, "none yet"));
    return;
  }
  box.replaceChildren(...changes.slice(0, 20).map(f => {
    const total = Math.max(f.steps.reduce((s, x) => s + x.duration_ms, 0), 0.001);
    const bar = el("div", { class: "steps" }, ...f.steps.map((s, i) => {
      const d = el("div", { class: s.error ? "failed" : "", title: `${s.name}: ${duration(s.duration_ms)}${s.error ? " — " + s.error : ""}` });
      d.style.flexGrow = String(Math.max(s.duration_ms / total, 0.004));
      d.style.background = STEP_COLOURS[i % STEP_COLOURS.length];
      return d;
    }));
    const list = el("div", { class: "steplist" }, ...f.steps.map((s, i) => {
      const dot = el("i");
      dot.style.background = STEP_COLOURS[i % STEP_COLOURS.length];
      return el("span", {}, dot, `${s.name} ${duration(s.duration_ms)}`);
    }));
    const tx = `transactions: ${f.transactions_drained} drained, ${f.transactions_replayed} replayed, ${f.transactions_aborted} aborted`;
    return el("div", { class: "change" + (f.succeeded ? "" : " failed"), "data-kind": f.kind, "data-new-master": f.new_master || "", "data-cluster": f.cluster },
      el("div", { class: "head" },
        el("span", { class: "kind" }, many ? `${f.cluster}: ${f.kind}` : f.kind),
        el("span", {}, `${f.old_master} → ${f.new_master || "(none)"}`),
        el("span", {}, duration(f.duration_ms)),
        el("span", { class: f.succeeded ? "" : "err" }, f.succeeded ? `epoch ${f.epoch}` : "failed: " + f.error),
        el("span", { class: "when" }, new Date(f.started).toLocaleString()),
        el("span", { class: "why" }, f.reason)),
      bar, list, el("div", { class: "steplist" }, tx));
  }));
}

function rows(id, items, cells) {
  document.querySelector(`#${id} tbody`).replaceChildren(...items.map(x =>
    el("tr", {}, ...cells(x).map(c => typeof c === "number" ? el("td", { class: "num" }, String(c)) : el("td", {}, c ?? "")))));
}

function draw(st) {
  const clusters = st.clusters || [];
  const each = f => clusters.map(c => clusters.length > 1 ? `${c.name}: ${f(c)}` : String(f(c))).join(", ");
  text("master", each(c => c.master || "(none)"));
  text("epoch", each(c => c.epoch));
  text("writes", each(c => c.holding_writes ? "held" : "flowing"));
  text("coordination", each(c => c.coordination));
  const blocked = clusters.filter(c => c.failover_blocked);
  const banner = document.getElementById("banner");
  banner.hidden = blocked.length === 0;
  banner.textContent = blocked.map(c => `Cluster ${c.name}: the master is down and no failover will replace it (${c.failover_blocked_kind}): ${c.failover_blocked}`).join(" · ");
  text("session-count", st.sessions.length);
  text("version", st.version);
  text("uptime", age(st.uptime_seconds));
  drawTopology(st);
  drawTimeline(st);
  rows("pools", clusters.flatMap(c => c.backends), b => [b.cluster, b.name, b.role, b.pool_open, b.pool_open - b.pool_idle, b.pool_idle,
    b.pool_waiting, b.queries_routed, b.weight, b.apply_backlog]);
  const counters = Object.entries(st.counters || {}).sort(([a], [b]) => a.localeCompare(b));
  rows("counters", counters, ([k, v]) => [k, v]);
  const members = st.members || [];
  document.getElementById("members-section").hidden = new Set(members.map(m => m.id)).size < 2;
  rows("members", members, m => [m.id, m.addr, m.cluster, m.leader ? "yes" : "", m.master, m.epoch, m.updated]);
  rows("sessions", st.sessions.slice(0, 200), s => [s.id, s.user, s.client, s.cluster, s.db, s.in_transaction ? "open" : "",
    s.backend, duration(s.age_ms), s.backend_threads, s.held_because, s.last_statement_digest]);
}

async function refresh() {
  const updated = document.getElementById("updated");
  try {
    const resp = await fetch(statusURL, { cache: "no-store", credentials: "same-origin" });
    if (!resp.ok) throw new Error(`HTTP ${resp.status}`);
    draw(await resp.json());
    updated.textContent = "updated " + new Date().toLocaleTimeString();
    updated.classList.remove("stale");
  } catch (err) {
    updated.textContent = `cannot reach the proxy (${err.message}); retrying`;
    updated.classList.add("stale");
  }
  setTimeout(refresh, REFRESH_MS);
}

refresh();
