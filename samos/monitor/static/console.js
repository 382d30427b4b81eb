/* samos console: every stream as a tile, worst rolling MOS first; a click opens its timeline.
 *
 * On load: GET /api/streams (state, recent rolling MOS, alert, summary of each stream), then the
 * websocket (all streams) keeps it live. A timeline loads GET /api/streams/NAME/history and then
 * follows the websocket too. Everything a stream sends (names, diagnostics) is written as text
 * (textContent), never as HTML. Plain browser JavaScript, no build step, no CDN.
 */
"use strict";

(() => {
  const params = new URLSearchParams(location.search);
  const token = params.get("token");
  const SORT_EVERY_MS = 1000;
  const SPARK_POINTS = 120;
  const TABLE_ROWS = 60;

  const grid = document.getElementById("grid");
  const template = document.getElementById("tile-template");
  const counts = document.getElementById("counts");
  const conn = document.getElementById("conn");
  const filter = document.getElementById("filter");
  const empty = document.getElementById("empty");
  const timeline = document.getElementById("timeline");

  const streams = new Map(); /* name -> {state, tile, spark: [rolling MOS], messages (timeline only)} */
  let threshold = 2.5;
  let clockOffset = 0; /* server wall time - browser wall time, seconds */
  let openName = null;
  let openMessages = [];
  let redrawPending = false;

  function authHeaders() {
    return token ? { Authorization: `Bearer ${token}` } : {};
  }

  async function getJson(url) {
    const res = await fetch(url, { headers: authHeaders(), cache: "no-store" });
    if (!res.ok) {
      let reason = `HTTP ${res.status}`;
      try {
        reason = (await res.json()).error || reason;
      } catch (e) {
        /* not JSON */
      }
      throw new Error(`${url}: ${reason}`);
    }
    return res.json();
  }

  const now = () => Date.now() / 1000 + clockOffset;

  function duration(seconds) {
    if (!Number.isFinite(seconds) || seconds < 0) return "";
    const s = Math.floor(seconds);
    const h = Math.floor(s / 3600);
    const m = Math.floor((s % 3600) / 60);
    const ss = String(s % 60).padStart(2, "0");
    return h ? `${h}:${String(m).padStart(2, "0")}:${ss}` : `${m}:${ss}`;
  }

  /* The problems a window's diagnostics show, as short texts (mirrors samos.monitor.summary). */
  function problems(status, d) {
    const out = [];
    if (!d) return out;
    if ((d.clipping || 0) >= 1e-3) out.push(`clipping ${(100 * d.clipping).toFixed(1)}%`);
    if (d.band === "nb") out.push("narrowband");
    if (status === "silence" || d.silence) out.push("dead air");
    if (status === "no_speech") out.push("no speech");
    if (Number.isFinite(d.loss_ratio) && d.loss_ratio > 0) out.push(`loss ${(100 * d.loss_ratio).toFixed(0)}%`);
    else if ((d.dropped_seconds || 0) > 0) out.push(`lost ${samos.fmt(d.dropped_seconds, 2)} s`);
    return out;
  }

  const ALERT_LABELS = { low_mos: "ALERT", no_speech: "NO SPEECH" };
  const alertOpen = (st) => Object.keys(st.alerts || {}).length > 0;

  function ensure(name) {
    let s = streams.get(name);
    if (s) return s;
    const tile = template.content.firstElementChild.cloneNode(true);
    tile.dataset.name = name;
    tile.querySelector(".name").textContent = name;
    tile.querySelector(".name").title = name;
    tile.addEventListener("click", () => openTimeline(name));
    tile.addEventListener("keydown", (e) => {
      if (e.key === "Enter") openTimeline(name);
    });
    s = { state: { name, alerts: {}, ended: null }, tile, spark: [] };
    streams.set(name, s);
    grid.appendChild(tile);
    applyFilter(s);
    return s;
  }

  function render(s) {
    const st = s.state;
    const tile = s.tile;
    const b = samos.band(st.rolling_mos);
    tile.dataset.band = b.key;
    tile.dataset.rolling = st.rolling_mos ?? "";
    tile.dataset.alert = alertOpen(st) ? "true" : "false";
    tile.dataset.ended = st.ended ? "true" : "false";
    tile.querySelector(".mos").textContent = samos.fmt(st.rolling_mos);
    const state = tile.querySelector(".state");
    state.textContent = "";
    Object.entries(st.alerts || {}).forEach(([kind, a]) => {
      const el = document.createElement("span");
      el.className = "alert";
      el.title = a.message || "";
      el.textContent = `${ALERT_LABELS[kind] || kind.toUpperCase()} ${duration(now() - a.since)}`;
      state.appendChild(el);
      state.appendChild(document.createTextNode(" \u00b7 "));
    });
    const parts = [];
    if (st.ended) parts.push(`ended (${st.end_reason || "ended"})`);
    else parts.push(st.status || "waiting");
    parts.push(b.label);
    if (Number.isFinite(st.t_end)) parts.push(duration(st.t_end));
    if (st.kind) parts.push(st.kind);
    state.appendChild(document.createTextNode(parts.join(" \u00b7 ")));
    const d = st.diagnostics;
    const diag = tile.querySelector(".diag");
    diag.textContent = "";
    if (st.ended && st.summary && st.summary.mos) {
      const m = st.summary.mos;
      diag.textContent = `call: mean ${samos.fmt(m.mean)} \u00b7 p10 ${samos.fmt(m.p10)} \u00b7 ` +
        `below ${samos.fmt(st.summary.threshold, 1)} for ${duration(st.summary.seconds_below_threshold)}`;
    } else if (d) {
      diag.appendChild(document.createTextNode(
        `${d.band || "?"} \u00b7 ${samos.fmt(d.active_level_db, 0)} dBov` +
        (Number.isFinite(st.mos_std) ? ` \u00b7 \u00b1${samos.fmt(st.mos_std)}` : "")));
      const p = problems(st.status, d);
      if (p.length) {
        const bad = document.createElement("span");
        bad.className = "bad";
        bad.textContent = ` \u00b7 ${p.join(" \u00b7 ")}`;
        diag.appendChild(bad);
      }
    }
    samos.sparkline(tile.querySelector("canvas.spark"), s.spark);
  }

  /* Worst first: live streams with an open alert, then by rolling MOS (lowest first, no score
   * last); ended streams at the end, newest end first. */
  function sortKey(s) {
    const st = s.state;
    const ended = st.ended ? 1 : 0;
    const alert = alertOpen(st) ? 0 : 1;
    const mos = Number.isFinite(st.rolling_mos) ? st.rolling_mos : 99;
    return [ended, ended ? -st.ended : alert, ended ? 0 : mos, st.name];
  }

  function compare(a, b) {
    const ka = sortKey(a);
    const kb = sortKey(b);
    for (let i = 0; i < ka.length; i++) {
      if (ka[i] < kb[i]) return -1;
      if (ka[i] > kb[i]) return 1;
    }
    return 0;
  }

  function resort() {
    const ordered = [...streams.values()].sort(compare);
    const current = [...grid.children];
    if (ordered.some((s, i) => current[i] !== s.tile)) ordered.forEach((s) => grid.appendChild(s.tile));
    const live = ordered.filter((s) => !s.state.ended);
    const alerts = live.filter((s) => alertOpen(s.state)).length;
    counts.textContent = `${live.length} live \u00b7 ${alerts} in alert \u00b7 ${ordered.length - live.length} ended`;
    empty.hidden = ordered.length > 0;
    ordered.forEach((s) => {
      if (alertOpen(s.state)) render(s); /* the alerts' running time */
    });
  }

  function applyFilter(s) {
    const q = filter.value.trim().toLowerCase();
    s.tile.hidden = q !== "" && !s.state.name.toLowerCase().includes(q);
  }

  function onMessage(msg) {
    const name = msg.stream;
    if (msg.type === "hello") {
      (msg.streams || []).forEach((n) => ensure(n));
      return;
    }
    if (typeof name !== "string") return;
    const s = ensure(name);
    const st = s.state;
    if (msg.type === "stream_start") {
      /* The websocket repeats stream_start to every new subscriber: only a stream that had ended
       * (a new call under the same name) starts afresh. */
      if (st.ended) {
        Object.assign(st, { ended: null, end_reason: null, summary: null, rolling_mos: null, status: null });
        st.alerts = {};
        s.spark = [];
      }
      Object.assign(st, { kind: msg.kind, rate: msg.rate });
    } else if (msg.type === "score") {
      Object.assign(st, {
        window: msg.window, t_end: msg.t_end, status: msg.status, mos: msg.mos, mos_std: msg.mos_std,
        rolling_mos: msg.rolling_mos, rolling_std: msg.rolling_std, diagnostics: msg.diagnostics,
      });
      s.spark.push(msg.rolling_mos);
      if (s.spark.length > SPARK_POINTS) s.spark.shift();
    } else if (msg.type === "alert") {
      st.alerts = st.alerts || {};
      if (msg.event === "raise") st.alerts[msg.kind || "low_mos"] = { since: msg.time, since_t: msg.t, message: msg.message };
      else delete st.alerts[msg.kind || "low_mos"];
    } else if (msg.type === "stream_summary") {
      st.summary = msg;
    } else if (msg.type === "stream_end") {
      st.ended = msg.time;
      st.end_reason = msg.reason;
      st.alerts = {};
    }
    render(s);
    if (name === openName && (msg.type === "score" || msg.type === "alert")) {
      openMessages.push(msg);
      scheduleRedraw();
    }
    if (name === openName && (msg.type === "stream_summary" || msg.type === "stream_end")) scheduleRedraw();
  }

  /* ------------------------------------------------------------------------------ timeline */
  async function openTimeline(name) {
    openName = name;
    openMessages = [];
    timeline.hidden = false;
    document.getElementById("tl-name").textContent = name;
    const url = new URL(location.href);
    url.searchParams.set("stream", name);
    history.replaceState(null, "", url);
    try {
      const body = await getJson(`/api/streams/${encodeURIComponent(name)}/history`);
      if (openName !== name) return;
      const live = openMessages;
      const last = body.messages.length ? body.messages[body.messages.length - 1].seq : -1;
      openMessages = body.messages.concat(live.filter((m) => m.seq > last));
    } catch (e) {
      document.getElementById("tl-state").textContent = String(e.message || e);
    }
    timeline.dataset.loaded = "true";
    scheduleRedraw();
  }

  function closeTimeline() {
    openName = null;
    openMessages = [];
    timeline.hidden = true;
    timeline.dataset.loaded = "false";
    const url = new URL(location.href);
    url.searchParams.delete("stream");
    history.replaceState(null, "", url);
  }

  function scheduleRedraw() {
    if (redrawPending) return;
    redrawPending = true;
    requestAnimationFrame(() => {
      redrawPending = false;
      drawTimeline();
    });
  }

  function setupCanvas(canvas) {
    const ratio = window.devicePixelRatio || 1;
    const w = canvas.clientWidth || canvas.width;
    const h = canvas.clientHeight || canvas.height;
    canvas.width = Math.round(w * ratio);
    canvas.height = Math.round(h * ratio);
    const ctx = canvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, w, h);
    return { ctx, w, h };
  }

  function drawTimeline() {
    if (openName === null) return;
    const s = streams.get(openName);
    const st = s ? s.state : {};
    const scores = openMessages.filter((m) => m.type === "score");
    const alerts = openMessages.filter((m) => m.type === "alert");
    timeline.dataset.windows = String(scores.length);
    const b = samos.band(st.rolling_mos);
    document.getElementById("tl-state").textContent =
      `${st.ended ? "ended" : "live"} \u00b7 rolling MOS ${samos.fmt(st.rolling_mos)} (${b.label}) \u00b7 ` +
      `${scores.length} windows \u00b7 ${alerts.filter((a) => a.event === "raise").length} alerts`;
    const sum = st.summary;
    document.getElementById("summary").textContent = sum && sum.mos
      ? `Call summary: ${duration(sum.duration_seconds)}, mean MOS ${samos.fmt(sum.mos.mean)} ` +
        `(p10 ${samos.fmt(sum.mos.p10)}, p90 ${samos.fmt(sum.mos.p90)}), below ${samos.fmt(sum.threshold, 1)} for ` +
        `${duration(sum.seconds_below_threshold)}` +
        (sum.worst ? `, worst ${sum.worst_seconds} s: ${samos.fmt(sum.worst.mos)} at ${duration(sum.worst.t_start)}` : "")
      : "";

    const t0 = scores.length ? Math.min(scores[0].t_start, alerts.length ? alerts[0].t : Infinity) : 0;
    const t1 = scores.length ? Math.max(scores[scores.length - 1].t_end, t0 + 1) : 1;
    const { ctx, w, h } = setupCanvas(document.getElementById("chart"));
    const pad = { l: 34, r: 8, t: 8, b: 22 };
    const x = (t) => pad.l + ((t - t0) / (t1 - t0)) * (w - pad.l - pad.r);
    const y = (v) => pad.t + (1 - (Math.min(5, Math.max(1, v)) - 1) / 4) * (h - pad.t - pad.b);
    /* axes and grid */
    ctx.fillStyle = "#93a0b0";
    ctx.font = "11px system-ui, sans-serif";
    ctx.strokeStyle = "rgba(255,255,255,0.08)";
    for (let v = 1; v <= 5; v++) {
      ctx.beginPath();
      ctx.moveTo(pad.l, y(v));
      ctx.lineTo(w - pad.r, y(v));
      ctx.stroke();
      ctx.fillText(String(v), 8, y(v) + 4);
    }
    const step = Math.max(1, Math.ceil((t1 - t0) / 10 / 10) * 10);
    for (let t = Math.ceil(t0 / step) * step; t <= t1; t += step) ctx.fillText(duration(t), x(t) - 12, h - 6);
    /* alert spans, per kind */
    const SPAN = { low_mos: "rgba(231,76,60,0.18)", no_speech: "rgba(155,89,182,0.22)" };
    const open = {};
    const span = (kind, from, to) => {
      ctx.fillStyle = SPAN[kind] || SPAN.low_mos;
      ctx.fillRect(x(from), pad.t, x(to) - x(from), h - pad.t - pad.b);
    };
    alerts.forEach((a) => {
      const kind = a.kind || "low_mos";
      if (a.event === "raise") open[kind] = a.t;
      else if (kind in open) {
        span(kind, open[kind], a.t);
        delete open[kind];
      }
    });
    Object.entries(open).forEach(([kind, t]) => span(kind, t, t1));
    /* threshold */
    ctx.strokeStyle = "rgba(231,76,60,0.8)";
    ctx.setLineDash([4, 4]);
    ctx.beginPath();
    ctx.moveTo(pad.l, y(threshold));
    ctx.lineTo(w - pad.r, y(threshold));
    ctx.stroke();
    ctx.setLineDash([]);
    /* std band of the window MOS */
    const scored = scores.filter((m) => m.status === "ok" && Number.isFinite(m.mos));
    if (scored.length > 1) {
      ctx.fillStyle = "rgba(52,152,219,0.22)";
      ctx.beginPath();
      scored.forEach((m, i) => (i ? ctx.lineTo : ctx.moveTo).call(ctx, x(m.t_end), y(m.mos + (m.mos_std || 0))));
      [...scored].reverse().forEach((m) => ctx.lineTo(x(m.t_end), y(m.mos - (m.mos_std || 0))));
      ctx.closePath();
      ctx.fill();
    }
    scored.forEach((m) => {
      ctx.fillStyle = samos.BAND_COLOURS[samos.band(m.mos).key];
      ctx.beginPath();
      ctx.arc(x(m.t_end), y(m.mos), 2.2, 0, 2 * Math.PI);
      ctx.fill();
    });
    /* rolling MOS */
    ctx.strokeStyle = "#e8ecf1";
    ctx.lineWidth = 1.5;
    ctx.beginPath();
    let pen = false;
    scores.forEach((m) => {
      if (!Number.isFinite(m.rolling_mos)) {
        pen = false;
        return;
      }
      (pen ? ctx.lineTo : ctx.moveTo).call(ctx, x(m.t_end), y(m.rolling_mos));
      pen = true;
    });
    ctx.stroke();
    ctx.lineWidth = 1;
    /* windows without a score */
    ctx.fillStyle = "#95a5a6";
    scores.filter((m) => m.status !== "ok").forEach((m) => ctx.fillRect(x(m.t_end) - 1, h - pad.b - 6, 2, 6));

    /* levels and clipping */
    const lv = setupCanvas(document.getElementById("levels"));
    const ly = (db) => 6 + (1 - (Math.min(0, Math.max(-70, db)) + 70) / 70) * (lv.h - 12);
    lv.ctx.fillStyle = "#93a0b0";
    lv.ctx.font = "11px system-ui, sans-serif";
    [-60, -40, -20].forEach((db) => lv.ctx.fillText(String(db), 4, ly(db) + 4));
    lv.ctx.strokeStyle = "#3498db";
    lv.ctx.beginPath();
    pen = false;
    scores.forEach((m) => {
      const d = m.diagnostics || {};
      const db = Number.isFinite(d.active_level_db) ? d.active_level_db : d.level_db;
      if (!Number.isFinite(db)) {
        pen = false;
        return;
      }
      (pen ? lv.ctx.lineTo : lv.ctx.moveTo).call(lv.ctx, x(m.t_end), ly(db));
      pen = true;
    });
    lv.ctx.stroke();
    lv.ctx.fillStyle = "#e74c3c";
    scores.forEach((m) => {
      const d = m.diagnostics || {};
      if ((d.clipping || 0) >= 1e-3) lv.ctx.fillRect(x(m.t_end) - 1, 2, 2, lv.h - 4);
    });

    /* the last windows as a table, newest first */
    const tbody = document.querySelector("#tl-table tbody");
    tbody.textContent = "";
    scores.slice(-TABLE_ROWS).reverse().forEach((m) => {
      const d = m.diagnostics || {};
      const row = document.createElement("tr");
      [duration(m.t_end), m.status, samos.fmt(m.mos), samos.fmt(m.rolling_mos), samos.fmt(d.active_level_db, 1),
        d.band || "", samos.fmt(d.clipping, 4),
        Number.isFinite(d.loss_ratio) ? `${(100 * d.loss_ratio).toFixed(1)}%` : samos.fmt(d.dropped_seconds, 2)].forEach((text) => {
        const cell = document.createElement("td");
        cell.textContent = text;
        row.appendChild(cell);
      });
      tbody.appendChild(row);
    });
  }

  /* ------------------------------------------------------------------------------ start */
  async function main() {
    filter.addEventListener("input", () => streams.forEach(applyFilter));
    document.getElementById("close").addEventListener("click", closeTimeline);
    document.addEventListener("keydown", (e) => {
      if (e.key === "Escape") closeTimeline();
    });
    const cfg = await samos.loadConfig();
    threshold = cfg.alert_threshold ?? threshold;
    try {
      const body = await getJson("/api/streams");
      clockOffset = body.time - Date.now() / 1000;
      threshold = body.threshold ?? threshold;
      body.streams.forEach((st) => {
        const s = ensure(st.name);
        s.state = st;
        s.spark = (st.recent || []).slice(-SPARK_POINTS);
        render(s);
      });
    } catch (e) {
      conn.textContent = String(e.message || e);
    }
    resort();
    setInterval(resort, SORT_EVERY_MS);
    if (params.get("stream")) openTimeline(params.get("stream"));
    if (!cfg.ws_url) {
      conn.textContent = "the monitor runs no websocket: no live updates";
      return;
    }
    samos.subscribe({
      wsUrl: cfg.ws_url,
      token,
      onMessage,
      onState: (state) => {
        conn.dataset.state = state;
        conn.textContent = state === "open" ? "live" : state;
      },
    });
    document.body.dataset.ready = "true";
  }

  main().catch((e) => {
    conn.textContent = `error: ${e.message || e}`;
  });
})();
