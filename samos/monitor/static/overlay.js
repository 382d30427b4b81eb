/* The overlay: rolling MOS, diagnostics and a sparkline per stream, for an OBS browser source. */
"use strict";

(() => {
  const params = new URLSearchParams(location.search);
  const only = params.get("stream");
  const token = params.get("token");
  const HISTORY = Math.max(2, Math.min(600, parseInt(params.get("history") || "60", 10) || 60));
  const ENDED_LINGER_MS = 15000;
  const cards = new Map(); /* stream name -> {el, history, removeTimer} */
  const $ = (id) => document.getElementById(id);

  function card(stream) {
    let c = cards.get(stream);
    if (c) {
      if (c.removeTimer) clearTimeout(c.removeTimer);
      c.removeTimer = null;
      c.el.dataset.ended = "false";
      return c;
    }
    const el = $("stream-template").content.firstElementChild.cloneNode(true);
    el.dataset.stream = stream;
    el.querySelector(".name").textContent = stream;
    $("streams").appendChild(el);
    c = { el, history: [], removeTimer: null };
    cards.set(stream, c);
    return c;
  }

  /* Fill the diagnostics line with text nodes (never HTML): status, level, band, clipping, loss. */
  function showDiagnostics(el, msg) {
    const d = msg.diagnostics || {};
    const parts = [];
    if (msg.status !== "ok") parts.push([msg.status.replace("_", " "), ""]);
    if (d.level_db !== undefined) parts.push([`${samos.fmt(d.level_db, 0)} dBov`, ""]);
    if (d.band !== undefined) parts.push([String(d.band).toUpperCase(), ""]);
    if (d.clipping) parts.push([`clip ${samos.fmt(100 * d.clipping, 1)}%`, "clip"]);
    if (d.loss_ratio) parts.push([`loss ${samos.fmt(100 * d.loss_ratio, 0)}%`, "clip"]);
    el.replaceChildren();
    parts.forEach(([text, cls], i) => {
      if (i) el.append(" \u00b7 ");
      const span = document.createElement("span");
      span.textContent = text;
      if (cls) span.className = cls;
      el.append(span);
    });
  }

  function onScore(msg) {
    const c = card(msg.stream);
    const rolling = msg.rolling_mos;
    const b = samos.band(rolling);
    c.el.dataset.band = b.key;
    c.el.dataset.status = msg.status;
    c.el.dataset.mos = rolling === null ? "" : String(rolling);
    c.el.querySelector(".mos").textContent = samos.fmt(rolling);
    showDiagnostics(c.el.querySelector(".diag"), msg);
    c.history.push(rolling);
    if (c.history.length > HISTORY) c.history = c.history.slice(-HISTORY);
    samos.sparkline(c.el.querySelector("canvas"), c.history);
  }

  function onMessage(msg) {
    if (only && msg.stream !== only && msg.type !== "hello") return;
    switch (msg.type) {
      case "hello":
        (msg.streams || []).filter((s) => !only || s === only).forEach(card);
        break;
      case "stream_start":
        card(msg.stream);
        break;
      case "score":
        onScore(msg);
        break;
      case "alert": {
        // a stream can have a low_mos and a no_speech alert open at once: pulse while any is open
        const c = card(msg.stream);
        c.open = c.open || new Set();
        if (msg.event === "raise") c.open.add(msg.kind || "low_mos");
        else c.open.delete(msg.kind || "low_mos");
        c.el.dataset.alert = c.open.size ? "true" : "false";
        break;
      }
      case "stream_end": {
        const c = card(msg.stream);
        c.el.dataset.ended = "true";
        c.el.dataset.alert = "false";
        c.removeTimer = setTimeout(() => {
          c.el.remove();
          cards.delete(msg.stream);
        }, ENDED_LINGER_MS);
        break;
      }
      default:
        break;
    }
  }

  function onState(state, info) {
    const conn = $("conn");
    if (state === "open") conn.textContent = "";
    else if (state === "reconnecting") conn.textContent = `reconnecting in ${(info.delayMs / 1000).toFixed(1)} s\u2026`;
    else if (state === "connecting" && info.attempt === 0) conn.textContent = "connecting\u2026";
    document.body.dataset.ws = state;
  }

  async function main() {
    let cfg = null;
    for (let attempt = 0; !cfg; attempt += 1) {
      try {
        cfg = await samos.loadConfig();
      } catch (e) {
        onState("reconnecting", { delayMs: Math.min(10000, 500 * 2 ** attempt) });
        await new Promise((r) => setTimeout(r, Math.min(10000, 500 * 2 ** attempt)));
      }
    }
    if (!cfg.ws_url) {
      $("conn").textContent = "the monitor's websocket is off";
      return;
    }
    samos.subscribe({ wsUrl: cfg.ws_url, streams: only ? [only] : null, token, onMessage, onState });
  }

  main();
})();
