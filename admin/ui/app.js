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

function fmtCount(v) {
  return Math.round(v || 0).toLocaleString("en-US");
}

// fmtBytes uses SI units, three significant digits.
function fmtBytes(v) {
  if (!isFinite(v) || v <= 0) return "0 B";
  const units = ["B", "kB", "MB", "GB", "TB", "PB"];
  let i = 0;
  while (v >= 1000 && i < units.length - 1) { v /= 1000; i++; }
  return (i === 0 ? String(Math.round(v)) : v.toPrecision(3)) + " " + units[i];
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
// The counters /api/stats has per server and per route, by code class.
const CODES = ["requests", "client_errors", "not_found", "too_many_requests", "errors", "rate_limited", "bytes_in", "bytes_out"];

function zero(bucketsLen) {
  const z = { counts: new Array(bucketsLen + 1).fill(0) };
  for (const c of CODES) z[c] = 0;
  return z;
}

function serverDelta(cur, old, bucketsLen) {
  const d = zero(bucketsLen);
  if (!cur) return d;
  old = old || { counts: [] };
  for (const c of CODES) d[c] = diff(cur[c], old[c]);
  d.counts = (cur.counts || []).map((c, i) => diff(c, old.counts[i]));
  return d;
}

function addDelta(sum, d) {
  for (const c of CODES) sum[c] += d[c];
  for (let i = 0; i < sum.counts.length; i++) sum.counts[i] += d.counts[i] || 0;
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

// stateOf names why a server does or does not take requests. An open
// circuit is the breaker's doing, not passive health's: it says so.
function stateOf(s) {
  if (s.drained) return ["st-drained", "drained"];
  if (!s.healthy) return ["st-down", "unhealthy"];
  if (s.circuit === "open") return ["st-down", "circuit open"];
  if (!s.usable) return ["st-ejected", "ejected"];
  return ["st-up", "healthy"];
}

const pending = new Set(); // servers with a drain or enable under way

function serverRow(u, s, d, win) {
  const { cur, secs } = win;
  const per = (n) => (secs > 0 ? n / secs : 0);
  const [cls, label] = stateOf(s);
  let reason = s.reason || "";
  if (label === "circuit open") reason = reason.replace(/^circuit open: /, "");
  if (label === "healthy" && reason === "initial") reason = "";
  const since = s.since ? fmtAge(s.since) : "";
  const chk = s.last_check;
  const check = chk
    ? `<span class="${chk.ok ? "" : "err-hi"}">${esc(chk.result)}</span><div class="sub">${fmtMs(chk.latency_ms)} · ${fmtAge(chk.at)}</div>`
    : '<span class="sub">no check yet</span>';
  const hi = (n) => (d.requests > 0 && n / d.requests >= 0.05 ? " err-hi" : "");
  const circuit = s.circuit || "–";
  const circuitSub = s.circuit && s.circuit !== "closed" && s.circuit_reason
    ? `<div class="sub why">${esc(s.circuit_reason)}</div>` : "";
  const k = key(u.name, s.name);
  const action = s.drained ? "enable" : "drain";
  const cur0 = cur.servers.get(k) || {};
  return `<tr class="server ${cls}" data-upstream="${esc(u.name)}" data-server="${esc(s.name)}">
    <td class="name"><span class="dot"></span><b>${esc(s.name)}</b>${s.backup ? '<span class="tag">backup</span>' : ""}
      <div class="sub">${esc(s.url)}</div></td>
    <td class="why"><span class="state">${label}</span>
      ${reason || since ? `<div class="sub reason">${esc(reason)}${reason && since ? " · " : ""}${since}</div>` : ""}</td>
    <td class="num">${s.weight}</td>
    <td class="num">${fmtCount(s.in_flight)}</td>
    <td class="num rps">${fmtRate(per(d.requests))}<div class="sub total">${fmtCount(s.requests)}</div></td>
    <td class="num c4xx${hi(d.client_errors)}">${fmtPct(d.client_errors, d.requests)}</td>
    <td class="num c5xx${hi(d.errors)}">${fmtPct(d.errors, d.requests)}</td>
    <td class="num">${fmtLatency(quantile(0.5, cur.buckets, d.counts))}<div class="sub">${fmtLatency(quantile(0.99, cur.buckets, d.counts))}</div></td>
    <td class="num">${fmtMs(s.latency_ewma_ms)}</td>
    <td class="num bytes" title="now ${fmtBytes(per(d.bytes_in))}/s in, ${fmtBytes(per(d.bytes_out))}/s out"><span class="bin">${fmtBytes(cur0.bytes_in)}</span><div class="sub bout">${fmtBytes(cur0.bytes_out)}</div></td>
    <td class="why">${check}</td>
    <td class="num">${fmtCount(s.ejections)}</td>
    <td class="why circuit${s.circuit && s.circuit !== "closed" ? " err-hi" : ""}">${esc(circuit.replace("_", "-"))}${circuitSub}</td>
    <td><button type="button" class="act" data-action="${action}"${pending.has(k) ? " disabled" : ""}>${action}</button></td>
  </tr>`;
}

function renderUpstreams(ups, win) {
  const { cur, old, secs } = win;
  const per = (n) => (secs > 0 ? n / secs : 0);
  const bl = cur.buckets.length;
  let totalInFlight = 0;
  const html = ups.map((u) => {
    // The proxy's own answers with no server (503: none available, 429)
    // count toward the upstream's totals.
    const sum = serverDelta(cur.servers.get(key(u.name, "")), old.servers.get(key(u.name, "")), bl);
    let up = 0;
    const rows = (u.servers || []).map((s) => {
      const k = key(u.name, s.name);
      const d = serverDelta(cur.servers.get(k), old.servers.get(k), bl);
      addDelta(sum, d);
      totalInFlight += s.in_flight || 0;
      if (s.usable) up++;
      return serverRow(u, s, d, win);
    }).join("");
    const n = (u.servers || []).length;
    return `<tr class="up-head" data-upstream="${esc(u.name)}"><th colspan="14">
        <h3>${esc(u.name)}</h3>
        <span class="meta">${esc(u.strategy)} · ${up}/${n} servers up</span>
        <span class="sum">
          <span><b>${fmtRate(per(sum.requests))}</b> req/s</span>
          <span><b>${fmtPct(sum.client_errors, sum.requests)}</b> 4xx</span>
          <span><b>${fmtPct(sum.errors, sum.requests)}</b> 5xx</span>
          <span>p99 <b>${fmtLatency(quantile(0.99, cur.buckets, sum.counts))}</b></span>
        </span></th></tr>
      ${rows || '<tr><td colspan="14" class="empty">no servers</td></tr>'}`;
  }).join("");
  $("upstreams").innerHTML = html || '<tr><td colspan="14" class="empty">No upstreams configured.</td></tr>';
  return totalInFlight;
}

function routeRow(name, r, win, cells) {
  const { cur, old, secs } = win;
  const per = (n) => (secs > 0 ? n / secs : 0);
  const d = serverDelta(cur.routes.get(name), old.routes.get(name), 0);
  return `<tr class="route" data-route="${esc(name)}">${cells}
    <td class="num rps">${fmtRate(per(d.requests))}</td>
    <td class="num c4xx">${fmtPct(d.client_errors, d.requests)}</td>
    <td class="num c5xx">${fmtPct(d.errors, d.requests)}</td>
    <td class="num nf">${fmtRate(per(d.not_found))}<div class="sub">${fmtCount((cur.routes.get(name) || {}).not_found)}</div></td>
    <td class="num lim">${fmtRate(per(d.too_many_requests))}<div class="sub">${fmtCount((cur.routes.get(name) || {}).too_many_requests)}</div></td>
  </tr>`;
}

function renderRoutes(win) {
  let rows = routes.map((r) => {
    const match = [r.host, r.path_prefix].filter(Boolean).map(esc).join(" ") || '<span class="sub">everything else</span>';
    const rl = r.rate_limit
      ? `${r.rate_limit.requests_per_second}/s, burst ${r.rate_limit.burst} <span class="sub">by ${esc(r.rate_limit.key)} · ${esc(r.rate_limit.store)}</span>`
      : '<span class="sub">none</span>';
    return routeRow(r.name, r, win, `<td class="why"><b>${esc(r.name)}</b></td><td class="why">${match}</td><td class="why">${esc(r.upstream)}</td>
      <td>${r.strip_prefix ? "yes" : "no"}</td><td class="why">${rl}</td>`);
  }).join("");
  // Requests no route matched (404 without a catch-all) have route "".
  if ((win.cur.routes.get("") || {}).requests > 0) {
    rows += routeRow("", null, win, '<td colspan="5" class="sub">no route matched</td>');
  }
  $("routes").innerHTML = rows || '<tr><td colspan="10" class="empty">No routes.</td></tr>';
}

function renderTotals(win, inFlight) {
  const { cur, old, secs } = win;
  const bl = cur.buckets.length;
  const all = zero(bl);
  let total = 0;
  for (const [k, s] of cur.servers) {
    total += s.requests;
    addDelta(all, serverDelta(s, old.servers.get(k), bl));
  }
  const per = (n) => (secs > 0 ? n / secs : 0);
  const rps = per(all.requests);
  const eps = per(all.errors);
  $("kpi-rps").textContent = fmtRate(rps);
  $("kpi-4xx").textContent = fmtPct(all.client_errors, all.requests);
  $("kpi-err").textContent = fmtPct(all.errors, all.requests);
  $("kpi-404").textContent = fmtRate(per(all.not_found));
  $("kpi-429").textContent = fmtRate(per(all.too_many_requests));
  $("kpi-p50").textContent = fmtLatency(quantile(0.5, cur.buckets, all.counts));
  $("kpi-p99").textContent = fmtLatency(quantile(0.99, cur.buckets, all.counts));
  $("kpi-inflight").textContent = fmtCount(inFlight);
  $("total-requests").textContent = fmtCount(total);
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
    $("ready-reason").textContent = res.ok ? "" : text.replace(/^not ready: /, "");
    $("ready-reason").hidden = res.ok;
  } catch (e) {
    pill.textContent = "offline";
    pill.className = "pill pill-bad";
    $("ready-reason").hidden = true;
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
    clearTimeout(pollTimer);
    pollTimer = setTimeout(poll, POLL_MS);
  }
}

let pollTimer = 0;

// --- drain and enable --------------------------------------------------------

// The admin token, when the API asks for one, is kept for this tab only.
const TOKEN_KEY = "proxy-admin-token";

function token() {
  try { return sessionStorage.getItem(TOKEN_KEY) || ""; } catch (e) { return ""; }
}

function setToken(t) {
  try {
    if (t) sessionStorage.setItem(TOKEN_KEY, t); else sessionStorage.removeItem(TOKEN_KEY);
  } catch (e) { /* storage off: ask each time */ }
  $("forget-token").hidden = !token();
}

function say(msg, bad) {
  $("action-text").textContent = msg;
  $("action").className = "action " + (bad ? "action-bad" : "action-ok");
  $("action").hidden = false;
}

// askToken shows the token form and resolves with what is typed, or null
// if the operator cancels.
let tokenAsked = null;
function askToken(why) {
  if (tokenAsked) tokenAsked(null);
  $("auth-why").textContent = why;
  $("auth").hidden = false;
  $("auth-token").value = "";
  $("auth-token").focus();
  return new Promise((resolve) => {
    tokenAsked = (t) => {
      tokenAsked = null;
      $("auth").hidden = true;
      resolve(t);
    };
  });
}

$("auth").addEventListener("submit", (e) => {
  e.preventDefault();
  if (tokenAsked) tokenAsked($("auth-token").value.trim());
});
$("auth-cancel").addEventListener("click", () => { if (tokenAsked) tokenAsked(null); });
$("forget-token").addEventListener("click", () => { setToken(""); say("Token forgotten."); });

function post(path) {
  const headers = {};
  const t = token();
  if (t) headers.Authorization = "Bearer " + t;
  return fetch(path, { method: "POST", headers, cache: "no-store" });
}

async function act(upstream, server, action) {
  const k = key(upstream, server);
  if (pending.has(k)) return;
  const what = `${action} ${upstream}/${server}`;
  const path = "api/upstreams/" + encodeURIComponent(upstream) + "/servers/" + encodeURIComponent(server) + "/" + action;
  pending.add(k);
  try {
    let res = await post(path);
    if (res.status === 401) {
      const t = await askToken(`The admin API needs its token to ${what}.`);
      if (!t) { say(`${what}: cancelled, no token given.`, true); return; }
      setToken(t);
      res = await post(path);
      if (res.status === 401) setToken("");
    }
    if (!res.ok) {
      const body = (await res.text()).trim();
      say(`${what} failed: HTTP ${res.status}${body ? ": " + body : ""}`, true);
      return;
    }
    say(`${upstream}/${server} ${action === "drain" ? "drained: it takes no new requests" : "enabled: back in rotation"}.`);
  } catch (e) {
    say(`${what} failed: ${e.message}`, true);
  } finally {
    pending.delete(k);
    poll();
  }
}

document.addEventListener("click", (e) => {
  const b = e.target.closest("button.act");
  if (!b) return;
  const row = b.closest("tr.server");
  act(row.dataset.upstream, row.dataset.server, b.dataset.action);
});

setToken(token());
poll();
