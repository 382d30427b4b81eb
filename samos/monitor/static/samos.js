/* samos: shared helpers of the publish and overlay pages (plain browser JavaScript, no build step).
 *
 * samos.loadConfig()               -> the server's /config.json ({ws_url, auth_required, ...})
 * samos.subscribe(options)         -> websocket subscription that reconnects with backoff
 * samos.band(mos)                  -> quality band {key, label} of a MOS (1..5)
 * samos.sparkline(canvas, values)  -> draws recent scores (MOS 1..5) on a canvas
 * samos.fmt(x, digits)             -> number as text, an en dash for null
 */
"use strict";

const samos = (() => {
  const BANDS = [
    { min: 4.0, key: "good", label: "good" },
    { min: 3.0, key: "fair", label: "fair" },
    { min: 2.0, key: "poor", label: "poor" },
    { min: -Infinity, key: "bad", label: "bad" },
  ];
  const BAND_COLOURS = { good: "#2ecc71", fair: "#f1c40f", poor: "#e67e22", bad: "#e74c3c", none: "#95a5a6" };

  async function loadConfig() {
    const res = await fetch("/config.json", { cache: "no-store" });
    if (!res.ok) throw new Error(`/config.json: HTTP ${res.status}`);
    return res.json();
  }

  function band(mos) {
    if (mos === null || mos === undefined || !Number.isFinite(mos)) return { key: "none", label: "no score" };
    return BANDS.find((b) => mos >= b.min);
  }

  function fmt(x, digits = 2) {
    return x === null || x === undefined || !Number.isFinite(x) ? "\u2013" : x.toFixed(digits);
  }

  /* Subscribe to the monitor's websocket.
   * options: {wsUrl, streams (array of names, or null for all), token, onMessage(msg), onState(state, info)}
   * states: "connecting", "open", "reconnecting" (info: {delayMs, code}), "closed".
   * Reconnects after 0.5 s, 1 s, 2 s ... up to 10 s (with +-25 % jitter) until close() is called. */
  function subscribe({ wsUrl, streams = null, token = null, onMessage, onState = () => {} }) {
    let ws = null;
    let closed = false;
    let attempt = 0;
    let timer = null;

    function url() {
      const u = new URL(wsUrl, location.href);
      if (u.protocol === "http:") u.protocol = "ws:";
      if (u.protocol === "https:") u.protocol = "wss:";
      if (streams && streams.length) u.searchParams.set("streams", streams.join(","));
      if (token) u.searchParams.set("token", token);
      return u.toString();
    }

    function open() {
      timer = null;
      onState("connecting", { attempt });
      ws = new WebSocket(url());
      ws.onopen = () => {
        attempt = 0;
        onState("open", {});
      };
      ws.onmessage = (event) => {
        let msg;
        try {
          msg = JSON.parse(event.data);
        } catch (e) {
          return;
        }
        if (msg && typeof msg === "object") onMessage(msg);
      };
      ws.onclose = (event) => {
        ws = null;
        if (closed) return;
        const delayMs = Math.min(10000, 500 * 2 ** attempt) * (0.75 + 0.5 * Math.random());
        attempt += 1;
        onState("reconnecting", { delayMs, code: event.code });
        timer = setTimeout(open, delayMs);
      };
      ws.onerror = () => {}; /* onclose follows and schedules the retry */
    }

    open();
    return {
      close() {
        closed = true;
        if (timer) clearTimeout(timer);
        if (ws) ws.close(1000, "bye");
        onState("closed", {});
      },
    };
  }

  /* Recent scores (MOS 1..5, null for windows without a score) as a line on a canvas,
   * coloured by the band of the latest score; the dashed line marks MOS 3. */
  function sparkline(canvas, values, { lo = 1, hi = 5 } = {}) {
    const ratio = window.devicePixelRatio || 1;
    const w = canvas.clientWidth || canvas.width;
    const h = canvas.clientHeight || canvas.height;
    if (canvas.width !== Math.round(w * ratio)) canvas.width = Math.round(w * ratio);
    if (canvas.height !== Math.round(h * ratio)) canvas.height = Math.round(h * ratio);
    const ctx = canvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, w, h);
    const y = (v) => h - 2 - ((Math.min(hi, Math.max(lo, v)) - lo) / (hi - lo)) * (h - 4);
    ctx.strokeStyle = "rgba(255,255,255,0.35)";
    ctx.setLineDash([3, 3]);
    ctx.lineWidth = 1;
    ctx.beginPath();
    ctx.moveTo(0, y(3));
    ctx.lineTo(w, y(3));
    ctx.stroke();
    ctx.setLineDash([]);
    const n = values.length;
    if (n < 1) return;
    const last = [...values].reverse().find((v) => v !== null && Number.isFinite(v));
    ctx.strokeStyle = BAND_COLOURS[band(last).key];
    ctx.lineWidth = 2;
    ctx.beginPath();
    let pen = false;
    values.forEach((v, i) => {
      if (v === null || !Number.isFinite(v)) {
        pen = false;
        return;
      }
      const x = n === 1 ? w - 1 : (i / (n - 1)) * (w - 2) + 1;
      if (pen) ctx.lineTo(x, y(v));
      else ctx.moveTo(x, y(v));
      pen = true;
    });
    ctx.stroke();
  }

  return { loadConfig, subscribe, band, fmt, sparkline, BAND_COLOURS };
})();
