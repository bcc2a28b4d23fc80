// The dashboard polls the admin API and draws what it gets. /api/stats has
// cumulative counters and histogram buckets only; rates and quantiles are
// computed here from the difference between two polls, as Prometheus's
// rate() and histogram_quantile() would, so the proxy keeps no windows.
"use strict";

const POLL_MS = 1000;
const WINDOW_MS = 5000; // rates and quantiles cover about this long
const ROUTES_EVERY = 5; // routes change only on reload: poll them less
const SPARK_POINTS = 120;

const history = []; // recent /api/stats answers, oldest first
const spark = []; // {rps, eps} per poll
let routes = [];
let polls = 0;

const $ = (id) => document.getElementById(id);

function esc(s) {
  return String(s ?? "").replace(/[&<>"']/g, (c) =>
    ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

async function getJSON(path) {
  const res = await fetch(path, { cache: "no-store" });
  if (!res.ok) throw new Error(path + ": HTTP " + res.status);
  return res.json();
}

// --- numbers ---------------------------------------------------------------

function fmtRate(v) {
  if (!isFinite(v) || v <= 0) return "0";
  if (v < 10) return v.toFixed(1);
  return Math.round(v).toLocaleString("en-US");
}

function fmtPct(part, total) {
  if (!(total > 0)) return "0.0%";
  return (100 * part / total).toFixed(1) + "%";
}

// fmtLatency takes seconds; null means no request in the window.
function fmtLatency(s) {
  if (s === null || !isFinite(s)) return "–";
  const ms = s * 1000;
  if (ms < 1) return ms.toFixed(2) + " ms";
  if (ms < 100) return ms.toFixed(1) + " ms";
  if (ms < 1000) return Math.round(ms) + " ms";
  return (ms / 1000).toFixed(2) + " s";
}

function fmtMs(ms) {
  return ms > 0 ? fmtLatency(ms / 1000) : "–";
}

function fmtAge(iso) {
  if (!iso) return "";
  const t = Date.parse(iso);
  if (!isFinite(t) || t <= 0) return "";
  const s = Math.max(0, Math.round((Date.now() - t) / 1000));
  if (s < 60) return s + "s ago";
  if (s < 3600) return Math.floor(s / 60) + "m ago";
  if (s < 86400) return Math.floor(s / 3600) + "h ago";
  return Math.floor(s / 86400) + "d ago";
}

// quantile estimates the q-quantile from cumulative bucket counts (the last
// one is +Inf) by linear interpolation inside the bucket, like
// histogram_quantile. It returns null when there were no requests.
function quantile(q, bounds, counts) {
  const total = counts[counts.length - 1] || 0;
  if (!(total > 0)) return null;
  const rank = q * total;
  let i = counts.findIndex((c) => c >= rank);
  if (i < 0) i = counts.length - 1;
  if (i >= bounds.length) return bounds[bounds.length - 1]; // in +Inf: the top bound is all we know
  const lo = i === 0 ? 0 : bounds[i - 1];
  const loCount = i === 0 ? 0 : counts[i - 1];
  const n = counts[i] - loCount;
  return n > 0 ? lo + (bounds[i] - lo) * (rank - loCount) / n : lo;
}

// --- deltas ----------------------------------------------------------------

const key = (upstream, server) => upstream + "\u0000" + server;

function index(st) {
  const m = new Map();
  for (const s of st.servers || []) m.set(key(s.upstream, s.server), s);
  const r = new Map();
  for (const x of st.routes || []) r.set(x.route, x);
  return { time: st.time_ms, buckets: st.buckets || [], servers: m, routes: r };
}

// diff is now - then for a counter; a drop means the proxy restarted, and
// then the whole current value is the increase.
function diff(now, then) {
  const d = (now || 0) - (then || 0);
  return d < 0 ? (now || 0) : d;
}

// serverDelta is a server's increase over the window. A series missing
// from the older answer did not exist yet: the proxy creates it on the
// server's first request, so all of it is new.
function serverDelta(cur, old, bucketsLen) {
  if (!cur) return { requests: 0, errors: 0, counts: new Array(bucketsLen + 1).fill(0) };
  old = old || { requests: 0, errors: 0, counts: [] };
  const counts = cur.counts.map((c, i) => diff(c, old.counts[i]));
  return { requests: diff(cur.requests, old.requests), errors: diff(cur.errors, old.errors), counts };
}

function addCounts(a, b) {
  for (let i = 0; i < a.length; i++) a[i] += b[i] || 0;
}

// timeWindow returns the newest stats and the oldest kept, which poll()
// keeps about WINDOW_MS older. With one answer so far both are the same
// and every rate is zero.
function timeWindow() {
  const cur = history[history.length - 1];
  const old = history[0];
  return { cur, old, secs: Math.max((cur.time - old.time) / 1000, 0) };
}

// --- rendering -------------------------------------------------------------

function stateOf(s) {
  if (s.drained) return ["st-drained", "drained"];
  if (!s.healthy) return ["st-down", "unhealthy"];
  if (!s.usable) return ["st-ejected", "ejected"];
  return ["st-up", "healthy"];
}

function renderUpstreams(ups, win) {
  const { cur, old, secs } = win;
  const per = (n) => (secs > 0 ? n / secs : 0);
  const bl = cur.buckets.length;
  let totalInFlight = 0;
  const html = ups.map((u) => {
    const sum = { requests: 0, errors: 0, counts: new Array(bl + 1).fill(0) };
    // The proxy's own answers with no server (503: none available) count
    // toward the upstream's totals.
    const none = serverDelta(cur.servers.get(key(u.name, "")), old.servers.get(key(u.name, "")), bl);
    sum.requests += none.requests; sum.errors += none.errors; addCounts(sum.counts, none.counts);
    let up = 0;
    const rows = (u.servers || []).map((s) => {
      const k = key(u.name, s.name);
      const d = serverDelta(cur.servers.get(k), old.servers.get(k), bl);
      sum.requests += d.requests; sum.errors += d.errors; addCounts(sum.counts, d.counts);
      totalInFlight += s.in_flight || 0;
      if (s.usable) up++;
      const [cls, label] = stateOf(s);
      const chk = s.last_check;
      const check = chk
        ? `<span class="${chk.ok ? "" : "err-hi"}">${esc(chk.result)}</span><div class="sub">${fmtMs(chk.latency_ms)} · ${fmtAge(chk.at)}</div>`
        : '<span class="sub">no check yet</span>';
      const errCls = d.requests > 0 && d.errors / d.requests >= 0.05 ? " err-hi" : "";
      return `<tr class="server ${cls}" data-upstream="${esc(u.name)}" data-server="${esc(s.name)}">
        <td><span class="dot"></span><b>${esc(s.name)}</b>${s.backup ? '<span class="tag">backup</span>' : ""}
          <div class="sub url" title="${esc(s.url)}">${esc(s.url)}</div></td>
        <td><span class="state">${label}</span>
          <div class="sub" title="${esc(s.reason)} ${esc(s.since)}">${esc(s.reason)}${s.since ? " · " + fmtAge(s.since) : ""}</div></td>
        <td class="num">${s.weight}</td>
        <td class="num">${s.in_flight}</td>
        <td class="num rps">${fmtRate(per(d.requests))}</td>
        <td class="num${errCls}">${fmtPct(d.errors, d.requests)}</td>
        <td class="num">${fmtLatency(quantile(0.5, cur.buckets, d.counts))}</td>
        <td class="num">${fmtLatency(quantile(0.99, cur.buckets, d.counts))}</td>
        <td class="num">${fmtMs(s.latency_ewma_ms)}</td>
        <td>${check}</td>
        <td class="num">${s.ejections}</td>
        <td class="${s.circuit && s.circuit !== "closed" ? "err-hi" : ""}" title="${esc(s.circuit_reason)}">${esc((s.circuit || "–").replace("_", "-"))}</td>
      </tr>`;
    }).join("");
    const n = (u.servers || []).length;
    return `<div class="card upstream" data-upstream="${esc(u.name)}">
      <div class="card-head">
        <h3>${esc(u.name)}</h3>
        <span class="meta">${esc(u.strategy)} · ${up}/${n} servers up</span>
        <span class="sum">
          <span><b>${fmtRate(per(sum.requests))}</b> req/s</span>
          <span><b>${fmtPct(sum.errors, sum.requests)}</b> errors</span>
          <span>p99 <b>${fmtLatency(quantile(0.99, cur.buckets, sum.counts))}</b></span>
        </span>
      </div>
      <table class="grid servers">
        <colgroup><col><col class="w-state"><col class="w-weight"><col class="w-inflight"><col class="w-rps"><col class="w-err">
          <col class="w-lat"><col class="w-lat"><col class="w-lat"><col class="w-check"><col class="w-lat"><col class="w-circuit"></colgroup>
        <thead><tr>
          <th>server</th><th>state</th><th class="num">weight</th><th class="num">in flight</th>
          <th class="num">req/s</th><th class="num">errors</th><th class="num">p50</th><th class="num">p99</th>
          <th class="num">ewma</th><th>last check</th><th class="num">ejections</th><th>circuit</th>
        </tr></thead>
        <tbody>${rows || '<tr><td colspan="12" class="empty">no servers</td></tr>'}</tbody>
      </table>
    </div>`;
  }).join("");
  $("upstreams").innerHTML = html || '<p class="empty">No upstreams configured.</p>';
  return totalInFlight;
}

function renderRoutes(win) {
  const { cur, old, secs } = win;
  const per = (n) => (secs > 0 ? n / secs : 0);
  const rows = routes.map((r) => {
    const c = cur.routes.get(r.name) || {};
    const o = old.routes.get(r.name) || {};
    const req = diff(c.requests, o.requests);
    const err = diff(c.errors, o.errors);
    const lim = diff(c.rate_limited, o.rate_limited);
    const match = [r.host, r.path_prefix].filter(Boolean).map(esc).join(" ") || '<span class="sub">everything else</span>';
    const rl = r.rate_limit
      ? `${r.rate_limit.requests_per_second}/s, burst ${r.rate_limit.burst} <span class="sub">by ${esc(r.rate_limit.key)} · ${esc(r.rate_limit.store)}</span>`
      : '<span class="sub">none</span>';
    return `<tr class="route" data-route="${esc(r.name)}">
      <td><b>${esc(r.name)}</b></td><td>${match}</td><td>${esc(r.upstream)}</td>
      <td>${r.strip_prefix ? "yes" : "no"}</td><td>${rl}</td>
      <td class="num">${fmtRate(per(req))}</td><td class="num">${fmtPct(err, req)}</td>
      <td class="num">${fmtRate(per(lim))}</td>
    </tr>`;
  }).join("");
  $("routes").innerHTML = rows || '<tr><td colspan="8" class="empty">No routes.</td></tr>';
}

function renderTotals(win, inFlight) {
  const { cur, old, secs } = win;
  const bl = cur.buckets.length;
  const all = { requests: 0, errors: 0, counts: new Array(bl + 1).fill(0) };
  let total = 0;
  for (const [k, s] of cur.servers) {
    total += s.requests;
    const d = serverDelta(s, old.servers.get(k), bl);
    all.requests += d.requests; all.errors += d.errors; addCounts(all.counts, d.counts);
  }
  const rps = secs > 0 ? all.requests / secs : 0;
  const eps = secs > 0 ? all.errors / secs : 0;
  $("kpi-rps").textContent = fmtRate(rps);
  $("kpi-err").textContent = fmtPct(all.errors, all.requests);
  $("kpi-p50").textContent = fmtLatency(quantile(0.5, cur.buckets, all.counts));
  $("kpi-p99").textContent = fmtLatency(quantile(0.99, cur.buckets, all.counts));
  $("kpi-inflight").textContent = String(inFlight);
  $("total-requests").textContent = Math.round(total).toLocaleString("en-US");
  $("window").textContent = secs.toFixed(0);
  spark.push({ rps, eps });
  if (spark.length > SPARK_POINTS) spark.shift();
  drawSpark();
}

function drawSpark() {
  const c = $("spark");
  const dpr = window.devicePixelRatio || 1;
  const w = c.clientWidth, h = c.clientHeight;
  if (c.width !== w * dpr) { c.width = w * dpr; c.height = h * dpr; }
  const g = c.getContext("2d");
  const css = getComputedStyle(document.documentElement);
  g.setTransform(dpr, 0, 0, dpr, 0, 0);
  g.clearRect(0, 0, w, h);
  g.fillStyle = css.getPropertyValue("--line").trim();
  g.fillRect(0, h - 1, w, 1); // baseline, so an idle chart is not blank
  const max = Math.max(1, ...spark.map((p) => p.rps));
  const line = (field, color) => {
    g.beginPath();
    spark.forEach((p, i) => {
      const x = w - (spark.length - 1 - i) * (w / (SPARK_POINTS - 1));
      const y = h - 2 - (p[field] / max) * (h - 4);
      i === 0 ? g.moveTo(x, y) : g.lineTo(x, y);
    });
    g.strokeStyle = color;
    g.lineWidth = 1.5;
    g.stroke();
  };
  line("rps", css.getPropertyValue("--accent").trim());
  line("eps", css.getPropertyValue("--bad").trim());
}

async function ready() {
  const pill = $("ready");
  try {
    const res = await fetch("readyz", { cache: "no-store" });
    const text = (await res.text()).trim();
    pill.textContent = res.ok ? "ready" : "not ready";
    pill.title = text;
    pill.className = "pill " + (res.ok ? "pill-ok" : "pill-bad");
  } catch (e) {
    pill.textContent = "offline";
    pill.className = "pill pill-bad";
  }
}

async function poll() {
  try {
    const needRoutes = polls % ROUTES_EVERY === 0;
    const [ups, st, rs] = await Promise.all([
      getJSON("api/upstreams"),
      getJSON("api/stats"),
      needRoutes ? getJSON("api/routes") : null,
      ready(),
    ]);
    if (rs) routes = rs.routes || [];
    history.push(index(st));
    while (history.length > 2 && history[history.length - 1].time - history[1].time > WINDOW_MS) history.shift();
    const win = timeWindow();
    const inFlight = renderUpstreams(ups.upstreams || [], win);
    renderRoutes(win);
    renderTotals(win, inFlight);
    $("banner").hidden = true;
    $("updated").textContent = "Updated " + new Date(st.time_ms).toLocaleTimeString();
    polls++;
  } catch (e) {
    const b = $("banner");
    b.textContent = "Cannot reach the admin API (" + e.message + "); showing the last data.";
    b.hidden = false;
  } finally {
    setTimeout(poll, POLL_MS);
  }
}

poll();
