/* The publish page: microphone -> WebRTC -> POST /offer (or, with ?whip=1, WHIP: POST /whip with the
   SDP, DELETE on stop); then the websocket shows this stream's score. */
"use strict";

(() => {
  const params = new URLSearchParams(location.search);
  const $ = (id) => document.getElementById(id);
  const HISTORY = 60;
  const ICE_GATHER_TIMEOUT_MS = 3000;
  let pc = null;
  let media = null;
  let sub = null;
  let whipSession = null; /* { url, headers } of the WHIP resource to DELETE on stop */
  let history = [];

  function setState(state, text) {
    document.body.dataset.state = state;
    $("state").textContent = text;
  }

  function waitForIce(conn) {
    if (conn.iceGatheringState === "complete") return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        conn.removeEventListener("icegatheringstatechange", check);
        resolve();
      };
      const check = () => conn.iceGatheringState === "complete" && done();
      conn.addEventListener("icegatheringstatechange", check);
      setTimeout(done, ICE_GATHER_TIMEOUT_MS); /* send what was gathered so far */
    });
  }

  function showScore(msg) {
    const rolling = msg.rolling_mos;
    const score = $("score");
    score.textContent = samos.fmt(rolling);
    score.dataset.band = samos.band(rolling).key;
    score.dataset.mos = rolling === null ? "" : String(rolling);
    $("window-status").textContent = msg.status;
    $("window-mos").textContent = msg.mos === null ? "\u2013" : `${samos.fmt(msg.mos)} \u00b1 ${samos.fmt(msg.mos_std)}`;
    const d = msg.diagnostics || {};
    const parts = [];
    if (d.level_db !== undefined) parts.push(`level ${samos.fmt(d.level_db, 1)} dBov`);
    if (d.band !== undefined) parts.push(`band ${d.band}`);
    if (d.clipping !== undefined) parts.push(`clipping ${samos.fmt(100 * d.clipping, 2)} %`);
    if (d.loss_ratio) parts.push(`lost audio ${samos.fmt(100 * d.loss_ratio, 1)} % of the window`);
    $("diagnostics").textContent = parts.join(" \u00b7 ") || "\u2013";
    history.push(rolling);
    if (history.length > HISTORY) history = history.slice(-HISTORY);
    samos.sparkline($("spark"), history);
    const what = msg.status === "ok" ? "scoring" : `no score: ${msg.status.replace("_", " ")}`;
    setState("live", `Live \u2013 ${what}.`);
  }

  function onMessage(stream, msg) {
    if (msg.stream !== stream) return;
    if (msg.type === "score") showScore(msg);
    else if (msg.type === "stream_start") setState("live", "Live \u2013 waiting for the first window\u2026");
    else if (msg.type === "alert")
      setState("live", `${msg.event === "raise" ? "Alert" : "Cleared"}: ${msg.message || msg.kind}.`);
    else if (msg.type === "stream_end") setState("ended", `The monitor ended the stream (${msg.reason}).`);
  }

  async function start() {
    $("start").disabled = true;
    setState("starting", "Opening the microphone\u2026");
    try {
      const cfg = await samos.loadConfig();
      const token = params.get("token") || $("token").value || null;
      if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia)
        throw new Error("this page has no microphone access: open it over https:// or on localhost");
      media = await navigator.mediaDevices.getUserMedia({
        audio: { echoCancellation: false, noiseSuppression: false, autoGainControl: false },
        video: false,
      });
      pc = new RTCPeerConnection();
      media.getAudioTracks().forEach((track) => pc.addTrack(track, media));
      pc.addEventListener("connectionstatechange", () => {
        if (["failed", "closed"].includes(pc.connectionState)) setState("error", `Connection ${pc.connectionState}.`);
      });
      setState("starting", "Connecting to the monitor\u2026");
      await pc.setLocalDescription(await pc.createOffer());
      await waitForIce(pc);
      const wanted = $("name").value.trim();
      const answer = params.get("whip") === "1" ? await whip(token, wanted) : await offer(token, wanted);
      await pc.setRemoteDescription({ sdp: answer.sdp, type: answer.type });
      const stream = answer.name;
      $("stream-name").textContent = stream;
      document.body.dataset.stream = stream;
      setState("live", "Live \u2013 waiting for the first window\u2026");
      $("stop").disabled = false;
      if (!cfg.ws_url) {
        setState("live", "Live (the monitor's websocket is off: no scores here).");
        return;
      }
      sub = samos.subscribe({
        wsUrl: cfg.ws_url,
        streams: [stream],
        token,
        onMessage: (msg) => onMessage(stream, msg),
        onState: (state, info) => {
          if (state === "reconnecting")
            setState("live", `Score feed lost (code ${info.code}); retrying in ${(info.delayMs / 1000).toFixed(1)} s\u2026`);
        },
      });
    } catch (e) {
      stop(false);
      setState("error", `Error: ${e.message || e}`);
    }
  }

  /* POST /offer (JSON): the monitor's own signalling. */
  async function offer(token, wanted) {
    const headers = { "Content-Type": "application/json" };
    if (token) headers.Authorization = `Bearer ${token}`;
    const res = await fetch("/offer", {
      method: "POST",
      headers,
      body: JSON.stringify({ sdp: pc.localDescription.sdp, type: pc.localDescription.type, name: wanted || undefined }),
    });
    const answer = await res.json().catch(() => ({}));
    if (!res.ok) throw new Error(answer.error || `HTTP ${res.status} ${res.statusText}`);
    return answer;
  }

  /* WHIP (RFC 9725): the offer as application/sdp, 201 with the answer and the session's Location. */
  async function whip(token, wanted) {
    const auth = token ? { Authorization: `Bearer ${token}` } : {};
    const url = "/whip" + (wanted ? `?name=${encodeURIComponent(wanted)}` : "");
    const res = await fetch(url, {
      method: "POST",
      headers: { "Content-Type": "application/sdp", ...auth },
      body: pc.localDescription.sdp,
    });
    if (res.status !== 201) {
      const err = await res.json().catch(() => ({}));
      throw new Error(err.error || `HTTP ${res.status} ${res.statusText}`);
    }
    whipSession = { url: new URL(res.headers.get("Location"), location.href).href, headers: auth };
    return { sdp: await res.text(), type: "answer", name: res.headers.get("X-Samos-Stream") || wanted || "whip" };
  }

  function stop(announce = true) {
    if (whipSession) fetch(whipSession.url, { method: "DELETE", headers: whipSession.headers, keepalive: true }).catch(() => {});
    whipSession = null;
    if (sub) sub.close();
    if (pc) pc.close();
    if (media) media.getTracks().forEach((t) => t.stop());
    sub = pc = media = null;
    $("start").disabled = false;
    $("stop").disabled = true;
    if (announce) setState("idle", "Stopped.");
  }

  $("start").addEventListener("click", start);
  $("stop").addEventListener("click", () => stop());
  if (params.get("name")) $("name").value = params.get("name");
  samos
    .loadConfig()
    .then((cfg) => {
      if (cfg.auth_required && !params.get("token")) $("token-field").hidden = false;
    })
    .catch(() => {});
  if (params.get("autostart") === "1") start();
})();
