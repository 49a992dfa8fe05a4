// dvms dashboard client: keeps the state the server streams (full frames, then deltas)
// and draws it on canvases at most once per animation frame. No dependencies.
"use strict";

// matplotlib's tab10 (as the report's Vivaldi map: same colour for the same site, up to
// 10 sites), then light shades
const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
  "#7f7f7f", "#bcbd22", "#17becf", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5"];
const HISTORY = 720;

const S = {
  hosts: new Map(), siteNames: [], sites: [], aggregated: false, coords: null, where: new Map(),
  partitions: [], migrating: [], recent: [], power: [], powerW: null, counters: {}, status: {},
  t: 0, frames: 0, hostsTotal: 0, vmsTotal: 0, dirtySites: new Set(), coordsDirty: true,
};
window.dvmsDashboard = S;

const $ = (id) => document.getElementById(id);
let ws = null;
let dragging = false;
let scheduled = false;

function send(cmd) {
  if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(cmd));
}

function connect() {
  const proto = location.protocol === "https:" ? "wss" : "ws";
  ws = new WebSocket(`${proto}://${location.host}/ws`);
  ws.onopen = () => { $("conn").textContent = "connected"; $("conn").className = "conn ok"; };
  ws.onclose = () => {
    $("conn").textContent = "disconnected — retrying"; $("conn").className = "conn bad";
    setTimeout(connect, 1000);
  };
  ws.onmessage = (ev) => {
    const msg = JSON.parse(ev.data);
    if (msg.kind === "error") toast(msg.message);
    else if (msg.kind === "frame") onFrame(msg);
  };
}

function toast(text) {
  const el = $("toast");
  el.textContent = text; el.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { el.hidden = true; }, 4000);
}

function onFrame(f) {
  if (f.full) { S.hosts.clear(); S.power = []; S.dirtySites = new Set(f.site_names); }
  const sitesChanged = f.site_names.join("\u0000") !== S.siteNames.join("\u0000");
  S.siteNames = f.site_names; S.sites = f.sites; S.aggregated = f.aggregated;
  if (sitesChanged) { buildSites(); f.site_names.forEach((s) => S.dirtySites.add(s)); }
  if (f.aggregated) S.hosts.clear();
  for (const row of f.hosts || []) {
    const old = S.hosts.get(row[0]);
    if (old && old[1] !== row[1]) S.dirtySites.add(S.siteNames[old[1]]);
    S.hosts.set(row[0], row);
    S.dirtySites.add(S.siteNames[row[1]]);
  }
  if (f.aggregated) f.site_names.forEach((s) => S.dirtySites.add(s));
  if (f.coords) {
    S.coords = f.coords;
    S.where = new Map(f.coords.nodes.map((n, i) => [n, f.coords.xy[i]]));
  }
  for (const p of f.power_history) S.power.push(p);
  if (S.power.length > HISTORY) S.power.splice(0, S.power.length - HISTORY);
  S.powerW = f.power_w; S.partitions = f.partitions; S.migrating = f.migrating;
  S.recent = f.recent; S.counters = f.counters; S.status = f.status; S.t = f.t;
  S.hostsTotal = f.hosts_total; S.vmsTotal = f.vms_total;
  S.frames += 1;
  document.body.dataset.frames = String(S.frames);
  if (!scheduled) { scheduled = true; requestAnimationFrame(render); }
}

// ----- header and counters ---------------------------------------------------------------

function renderHeader() {
  const st = S.status;
  const mode = $("mode");
  mode.textContent = st.mode + (st.finished ? " · finished" : st.playing ? "" : " · paused");
  if (st.warning) mode.textContent += " · " + st.warning;
  mode.className = "badge " + (st.finished ? "finished" : st.mode);
  $("play").textContent = st.playing ? "pause" : "play";
  const end = st.t_end;
  $("time").textContent = end != null ? `t = ${S.t.toFixed(1)} s / ${end.toFixed(0)} s`
    : `t = ${S.t.toFixed(1)} s`;
  $("time").dataset.t = String(S.t);
  const seek = $("seek");
  seek.disabled = !st.seekable;
  $("speed").disabled = !st.seekable;
  if (end != null) seek.max = String(end);
  if (!dragging) seek.value = String(S.t);
  const speed = $("speed");
  if (document.activeElement !== speed && st.speed != null) {
    const v = String(st.speed);
    if (![...speed.options].some((o) => o.value === v)) speed.add(new Option(`${v}×`, v));
    speed.value = v;
  }
}

function renderCounters() {
  for (const [k, v] of Object.entries(S.counters)) {
    const el = $(`c-${k}`);
    if (el) el.textContent = String(v);
  }
  $("c-power").textContent = S.powerW == null ? "–" : `${(S.powerW / 1000).toFixed(2)} kW`;
}

// ----- hosts by site ---------------------------------------------------------------------

function buildSites() {
  const root = $("hosts");
  root.textContent = "";
  S.siteNames.forEach((name, i) => {
    const div = document.createElement("div");
    div.className = "site"; div.dataset.site = name;
    div.innerHTML = `<h3><span class="dot" style="background:${PALETTE[i % PALETTE.length]}"></span>` +
      `<span class="name"></span><span class="stats"></span><span class="viol"></span></h3>`;
    div.querySelector(".name").textContent = name;
    const canvas = document.createElement("canvas");
    canvas.addEventListener("mousemove", (ev) => hover(canvas, ev));
    div.appendChild(canvas);
    root.appendChild(div);
  });
}

function loadColour(u) {
  const x = Math.max(0, Math.min(1.2, u)) / 1.2;
  const hue = 130 - 130 * x;
  return `hsl(${hue}, 65%, ${80 - 12 * x}%)`;
}

function sizeCanvas(canvas, height) {
  const dpr = window.devicePixelRatio || 1;
  const w = Math.max(50, canvas.clientWidth);
  canvas.style.height = `${height}px`;
  if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(height * dpr)) {
    canvas.width = Math.round(w * dpr); canvas.height = Math.round(height * dpr);
  }
  const ctx = canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  return [ctx, w, height];
}

let TILE = 30;
const GAP = 3;

function renderHosts() {
  const bySite = new Map(S.siteNames.map((s) => [s, []]));
  for (const row of S.hosts.values()) bySite.get(S.siteNames[row[1]])?.push(row);
  const root = $("hosts");
  root.dataset.hosts = String(S.hostsTotal);
  root.dataset.vms = String(S.vmsTotal);
  root.dataset.aggregated = String(S.aggregated);
  $("hosts-summary").textContent = `${S.hostsTotal} hosts · ${S.vmsTotal} VMs · ` +
    `${S.siteNames.length} sites` + (S.aggregated ? " · aggregated per site" : "");
  S.siteNames.forEach((name, i) => {
    const div = root.children[i];
    if (!div) return;
    const agg = S.sites[i];
    div.querySelector(".stats").textContent = `${agg.hosts} hosts · ${agg.vms} VMs · ` +
      `load ${agg.capacity ? Math.round(100 * agg.demand / agg.capacity) : 0}%`;
    div.querySelector(".viol").textContent = agg.violated ? `${agg.violated} in violation` : "";
    if (!S.dirtySites.has(name)) return;
    const canvas = div.querySelector("canvas");
    if (S.aggregated) drawHistogram(canvas, agg);
    else drawTiles(canvas, bySite.get(name).sort((a, b) => (a[0] < b[0] ? -1 : 1)));
  });
  S.dirtySites.clear();
}

function drawTiles(canvas, rows) {
  TILE = S.hostsTotal <= 64 ? 44 : S.hostsTotal <= 400 ? 32 : 24;
  const width = Math.max(50, canvas.clientWidth);
  const cols = Math.max(1, Math.floor((width + GAP) / (TILE + GAP)));
  const lines = Math.max(1, Math.ceil(rows.length / cols));
  const [ctx] = sizeCanvas(canvas, lines * (TILE + GAP));
  ctx.clearRect(0, 0, width, lines * (TILE + GAP));
  canvas._rows = rows; canvas._cols = cols;
  rows.forEach((row, k) => {
    const [, , demand, capacity, violated, alive, , vms] = row;
    const x = (k % cols) * (TILE + GAP), y = Math.floor(k / cols) * (TILE + GAP);
    ctx.fillStyle = alive ? loadColour(capacity > 0 ? demand / capacity : 0) : "#ced4da";
    ctx.fillRect(x, y, TILE, TILE);
    if (alive && vms.length) {
      const inner = TILE - 4, bw = Math.max(1, Math.floor(inner / vms.length));
      ctx.fillStyle = "rgba(0,0,0,0.45)";
      vms.forEach((load, j) => {
        const h = Math.max(1, Math.round((inner - 2) * Math.min(1, load / 100)));
        const bx = x + 2 + j * bw;
        if (bx + bw <= x + TILE - 1) ctx.fillRect(bx, y + TILE - 2 - h, Math.max(1, bw - 1), h);
      });
    }
    if (!alive) {
      ctx.strokeStyle = "#495057"; ctx.lineWidth = 1.5; ctx.beginPath();
      ctx.moveTo(x + 5, y + 5); ctx.lineTo(x + TILE - 5, y + TILE - 5);
      ctx.moveTo(x + TILE - 5, y + 5); ctx.lineTo(x + 5, y + TILE - 5); ctx.stroke();
    }
    if (violated) {
      ctx.strokeStyle = "#e03131"; ctx.lineWidth = 3; ctx.strokeRect(x + 1.5, y + 1.5, TILE - 3, TILE - 3);
    }
  });
}

function drawHistogram(canvas, agg) {
  const [ctx, w, h] = sizeCanvas(canvas, 70);
  ctx.clearRect(0, 0, w, h);
  canvas._rows = null;
  const max = Math.max(1, ...agg.hist);
  const bw = w / agg.hist.length;
  agg.hist.forEach((n, i) => {
    const bh = (h - 14) * n / max;
    ctx.fillStyle = loadColour((i + 0.5) / 10);
    ctx.fillRect(i * bw + 1, h - 12 - bh, bw - 2, bh);
  });
  ctx.fillStyle = "#6b7280"; ctx.font = "10px DejaVu Sans, sans-serif";
  ctx.fillText("hosts by CPU load: 0% … 100%", 2, h - 1);
}

function hover(canvas, ev) {
  if (!canvas._rows) { canvas.title = ""; return; }
  const r = canvas.getBoundingClientRect();
  const col = Math.floor((ev.clientX - r.left) / (TILE + GAP));
  const line = Math.floor((ev.clientY - r.top) / (TILE + GAP));
  const row = col < canvas._cols ? canvas._rows[line * canvas._cols + col] : null;
  canvas.title = row ? `${row[0]}: CPU ${row[2]} / ${row[3]} · ${row[7].length} VMs · ` +
    `${row[6]} W${row[4] ? " · VIOLATION" : ""}${row[5] ? "" : " · crashed"}` : "";
}

// ----- Vivaldi map -----------------------------------------------------------------------

function renderVivaldi() {
  const canvas = $("vivaldi");
  const w = Math.max(100, canvas.clientWidth), h = Math.round(w * 0.85);
  const [ctx] = sizeCanvas(canvas, h);
  ctx.clearRect(0, 0, w, h);
  const c = S.coords;
  canvas.dataset.points = String(c ? c.nodes.length : 0);
  canvas.dataset.partitions = String(S.partitions.length);
  canvas.dataset.migrations = String(S.migrating.length);
  if (!c || !c.nodes.length) {
    ctx.fillStyle = "#6b7280"; ctx.font = "13px DejaVu Sans, sans-serif";
    ctx.fillText("no Vivaldi coordinates yet", 12, 24);
    $("vivaldi-summary").textContent = "";
    return;
  }
  let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
  for (const [x, y] of c.xy) { x0 = Math.min(x0, x); x1 = Math.max(x1, x); y0 = Math.min(y0, y); y1 = Math.max(y1, y); }
  const span = Math.max(x1 - x0, y1 - y0, 1e-9), pad = 18;
  const scale = Math.min((w - 2 * pad) / Math.max(x1 - x0, span * 0.05), (h - 2 * pad) / Math.max(y1 - y0, span * 0.05));
  const cx = (x0 + x1) / 2, cy = (y0 + y1) / 2;
  const P = (n) => { const p = S.where.get(n); return p ? [w / 2 + (p[0] - cx) * scale, h / 2 - (p[1] - cy) * scale] : null; };
  ctx.lineWidth = 1;
  for (const [, leader, members] of S.partitions) {
    const a = P(leader);
    ctx.strokeStyle = "rgba(112,72,232,0.75)";
    for (const m of members) {
      const b = P(m);
      if (!a || !b || m === leader) continue;
      ctx.beginPath(); ctx.moveTo(a[0], a[1]); ctx.lineTo(b[0], b[1]); ctx.stroke();
    }
  }
  for (const [age, src, dst, inter] of S.recent) {
    const a = P(src), b = P(dst);
    if (!a || !b) continue;
    ctx.strokeStyle = inter ? `rgba(201,42,42,${0.5 * (1 - age / 30)})` : `rgba(43,138,62,${0.5 * (1 - age / 30)})`;
    ctx.beginPath(); ctx.moveTo(a[0], a[1]); ctx.lineTo(b[0], b[1]); ctx.stroke();
  }
  const siteIndex = new Map(S.siteNames.map((s, i) => [s, i]));
  c.nodes.forEach((n, i) => {
    const p = P(n);
    const k = siteIndex.get(c.sites[i]);
    ctx.fillStyle = k === undefined ? "#868e96" : PALETTE[k % PALETTE.length];
    ctx.beginPath(); ctx.arc(p[0], p[1], 3.2, 0, 2 * Math.PI); ctx.fill();
  });
  ctx.lineWidth = 2;
  for (const [, leader, members] of S.partitions) {
    for (const m of members) {
      const p = P(m);
      if (!p) continue;
      ctx.strokeStyle = m === leader ? "#5f3dc4" : "rgba(112,72,232,0.8)";
      ctx.beginPath(); ctx.arc(p[0], p[1], m === leader ? 7 : 5.5, 0, 2 * Math.PI); ctx.stroke();
    }
  }
  for (const [, src, dst, inter] of S.migrating) arrow(ctx, P(src), P(dst), inter ? "#c92a2a" : "#2b8a3e");
  $("vivaldi-summary").textContent = `${c.nodes.length} nodes · ${S.partitions.length} partitions · ` +
    `${S.migrating.length} migrations in flight`;
  $("site-legend").innerHTML = S.siteNames.map((s, i) =>
    `<span class="dot" style="background:${PALETTE[i % PALETTE.length]}"></span>${escapeHtml(s)}`).join(" ");
}

function arrow(ctx, a, b, colour) {
  if (!a || !b) return;
  const ang = Math.atan2(b[1] - a[1], b[0] - a[0]);
  ctx.strokeStyle = colour; ctx.fillStyle = colour; ctx.lineWidth = 2;
  ctx.beginPath(); ctx.moveTo(a[0], a[1]); ctx.lineTo(b[0], b[1]); ctx.stroke();
  ctx.beginPath(); ctx.moveTo(b[0], b[1]);
  ctx.lineTo(b[0] - 9 * Math.cos(ang - 0.4), b[1] - 9 * Math.sin(ang - 0.4));
  ctx.lineTo(b[0] - 9 * Math.cos(ang + 0.4), b[1] - 9 * Math.sin(ang + 0.4));
  ctx.closePath(); ctx.fill();
}

function escapeHtml(s) {
  return s.replace(/[&<>"']/g, (ch) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[ch]);
}

// ----- power -----------------------------------------------------------------------------

function renderPower() {
  const hist = $("power-history");
  const [ctx, w, h] = sizeCanvas(hist, 150);
  ctx.clearRect(0, 0, w, h);
  hist.dataset.samples = String(S.power.length);
  ctx.font = "10px DejaVu Sans, sans-serif"; ctx.fillStyle = "#6b7280";
  if (S.power.length) {
    const t0 = S.power[0][0], t1 = Math.max(S.power[S.power.length - 1][0], t0 + 1);
    const wmax = Math.max(...S.power.map((p) => p[1])) * 1.1 || 1;
    const L = 42, B = 16;
    ctx.strokeStyle = "#d9dde3"; ctx.beginPath(); ctx.moveTo(L, 4); ctx.lineTo(L, h - B); ctx.lineTo(w - 4, h - B); ctx.stroke();
    ctx.fillText(`${(wmax / 1000).toFixed(1)} kW`, 2, 12); ctx.fillText("0", L - 10, h - B);
    ctx.fillText(`${t0.toFixed(0)} s`, L, h - 3); ctx.fillText(`${t1.toFixed(0)} s`, w - 40, h - 3);
    ctx.strokeStyle = "#1c7ed6"; ctx.lineWidth = 1.5; ctx.beginPath();
    S.power.forEach(([t, watts], i) => {
      const x = L + (w - L - 4) * (t - t0) / (t1 - t0), y = (h - B) - (h - B - 4) * watts / wmax;
      if (i) ctx.lineTo(x, y); else ctx.moveTo(x, y);
    });
    ctx.stroke();
  } else {
    ctx.fillText("no power samples yet", 8, 20);
  }
  $("power-summary").textContent = S.powerW == null ? "" : `total ${(S.powerW / 1000).toFixed(2)} kW`;
  const nodes = $("power-nodes");
  const [c2, w2, h2] = sizeCanvas(nodes, 90);
  c2.clearRect(0, 0, w2, h2);
  const bars = S.aggregated
    ? S.sites.map((s, i) => [s.name, s.power_w, i])
    : [...S.hosts.values()].sort((a, b) => (a[1] - b[1]) || (a[0] < b[0] ? -1 : 1)).map((r) => [r[0], r[6], r[1]]);
  nodes.dataset.bars = String(bars.length);
  if (!bars.length) return;
  const pmax = Math.max(1, ...bars.map((b) => b[1]));
  const bw = (w2 - 2) / bars.length;
  bars.forEach(([, watts, site], i) => {
    const bh = (h2 - 14) * watts / pmax;
    c2.fillStyle = PALETTE[site % PALETTE.length];
    c2.fillRect(1 + i * bw, h2 - 12 - bh, Math.max(1, bw - (bw > 3 ? 1 : 0)), bh);
  });
  c2.fillStyle = "#6b7280"; c2.font = "10px DejaVu Sans, sans-serif";
  c2.fillText(S.aggregated ? `power per site (max ${Math.round(pmax)} W)` : `power per node (max ${Math.round(pmax)} W)`, 2, h2 - 1);
}

// ----- main loop -------------------------------------------------------------------------

function render() {
  scheduled = false;
  const started = performance.now();
  renderHeader();
  renderCounters();
  renderHosts();
  renderVivaldi();
  renderPower();
  const ms = performance.now() - started;
  S.renderMs = ms;
  S.renderMaxMs = Math.max(S.renderMaxMs || 0, ms);
  document.body.dataset.renderMs = ms.toFixed(1);
}

$("play").addEventListener("click", () => send({ cmd: S.status.playing ? "pause" : "play" }));
$("seek").addEventListener("input", () => { dragging = true; $("time").textContent = `seek to ${Number($("seek").value).toFixed(1)} s`; });
$("seek").addEventListener("change", () => { dragging = false; send({ cmd: "seek", t: Number($("seek").value) }); });
$("speed").addEventListener("change", () => send({ cmd: "speed", value: Number($("speed").value) }));
window.addEventListener("resize", () => { S.siteNames.forEach((s) => S.dirtySites.add(s)); if (!scheduled) { scheduled = true; requestAnimationFrame(render); } });
connect();
