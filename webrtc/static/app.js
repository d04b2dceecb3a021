// live3dpe page: sends the camera to the server, shows the edited stream, steers it over a data channel.
// Sections: session (start, connect, reconnect, stop) · server messages · style feedback · stats ·
// controls and shortcuts · layout. Presets, slider limits and what the engine accepts come from the server.
"use strict";

const $ = (id) => document.getElementById(id);
const clamp = (v, lo, hi) => Math.min(hi, Math.max(lo, v));
const token = new URLSearchParams(location.search).get("token");
const authHeaders = token ? { Authorization: `Bearer ${token}` } : {};
const MODES = ["paste", "crop", "side-by-side", "grid"];
const ARROW_STEP = 5;                       // degrees per arrow key: page shortcuts and a focused slider alike
const RETRY_DELAYS_S = [1, 2, 4, 8, 15];    // reconnect backoff; the last delay repeats
const SILENCE_MS = 5000;                    // no stats for this long: the session is gone (server killed, network down)
const CONNECT_TIMEOUT_MS = 15000;           // an answered offer whose connection never comes up is retried
const DISCONNECT_GRACE_MS = 3000;           // an interrupted connection that does not recover is replaced
const NOTICE_MS = 10000;                    // a server error stays in the header this long
const CAMERA_MAX_BITRATE = 2500000;         // bits per second for the camera we send

// phase: idle | connecting | connected | reconnecting. settings: what the controls show; defaults: the
// server's, so that on connecting only the user's own choices are sent. engine: engine options the user
// changed. running: the style the server runs now ({label, preset}); accepted: the last style choice it took.
const state = {
  phase: "idle", pc: null, channel: null, camera: null, retryTimer: null, retries: 0, silenceTimer: null,
  presets: [], limits: null, settings: {}, defaults: {}, engine: {},
  running: { label: "none", preset: "none" }, accepted: {}, videoBytes: {},
  iceServers: [],                                          // STUN/TURN from the server (--ice-server)
};

// Test hook (read by the browser tests and the benchmark).
const hook = (window.live3dpe = {
  framesReceived: 0, rawFrames: 0, connected: false, phase: "idle", statsReceived: 0, lastStats: null, lastStyle: null,
  lastError: null, engine: null, engineOptions: null, video: null, node: null, sessionsLost: 0,
  grab: (which, size = 64) => grabPixels(which === "raw" ? $("raw") : $("edited"), size),
  cameraParameters: () => state.pc?.getSenders().find((s) => s.track?.kind === "video")?.getParameters(),
  set: (changes) => send(changes),
});

function countFrames(video, key) {
  const tick = () => { hook[key] += 1; video.requestVideoFrameCallback(tick); };
  video.requestVideoFrameCallback(tick);
}
countFrames($("edited"), "framesReceived");
countFrames($("raw"), "rawFrames");

function grabPixels(video, size) {
  if (!video.videoWidth) return null;
  const canvas = document.createElement("canvas");
  canvas.width = canvas.height = size;
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  ctx.drawImage(video, 0, 0, size, size);
  const rgba = ctx.getImageData(0, 0, size, size).data;
  const rgb = [];
  for (let i = 0; i < rgba.length; i += 4) rgb.push(rgba[i], rgba[i + 1], rgba[i + 2]);
  return { width: video.videoWidth, height: video.videoHeight, size, rgb };
}

// --- session ---------------------------------------------------------------------------------------

const PLACEHOLDER = { idle: "Press “Start camera”: your edited video appears here.", connecting: "Connecting…",
  reconnecting: "Reconnecting…", connected: "Waiting for the first edited frame…" };

function setPhase(phase, text, isError = false) {
  state.phase = hook.phase = phase;
  hook.connected = phase === "connected";
  $("status").textContent = text;
  $("status").dataset.phase = phase;
  $("status").classList.toggle("error", isError);
  $("start").disabled = phase !== "idle";
  $("stop").disabled = phase === "idle";
  $("placeholder").textContent = PLACEHOLDER[phase];
}

async function start() {                                    // the Start button
  setPhase("connecting", "asking for the camera…");
  try {
    state.camera = await navigator.mediaDevices.getUserMedia({
      video: { width: { ideal: 640 }, height: { ideal: 480 } }, audio: $("audio").checked });
  } catch (err) {
    setPhase("idle", `camera unavailable: ${err.message}`, true);
    return;
  }
  $("raw").srcObject = state.camera;
  showInset();
  await attempt();
}

// One try at a session. A refusal worth retrying (server unreachable, full, session dropped) goes to
// reconnect(); any other refusal stops with its reason.
async function attempt() {
  setPhase("connecting", "connecting…");
  try {
    if (!state.limits) await loadServerInfo().catch(() => { throw refusal("cannot reach the server", true); });
    await connect();
    const pc = state.pc;
    setTimeout(() => { if (pc === state.pc && state.phase === "connecting") sessionLost("the connection did not come up"); },
      CONNECT_TIMEOUT_MS);
  } catch (err) {
    if (state.phase !== "connecting") return;               // stopped meanwhile
    if (err.retry) reconnect(err.message);
    else stop(err.message);
  }
}

async function connect() {
  closeSession();
  const pc = (state.pc = new RTCPeerConnection({ iceServers: state.iceServers }));
  const channel = (state.channel = pc.createDataChannel("control"));
  const current = (handler) => (...args) => { if (pc === state.pc) handler(...args); };
  channel.onopen = current(() => { sendChoices(); expectStats(pc); });
  channel.onmessage = current((event) => onMessage(JSON.parse(event.data), pc));
  channel.onclose = current(() => sessionLost("the server closed the session"));
  pc.onconnectionstatechange = current(() => {
    if (pc.connectionState === "connected") { state.retries = 0; setPhase("connected", "connected"); }
    if (pc.connectionState === "failed") sessionLost("connection failed");
    if (pc.connectionState === "disconnected") {          // a network blip may recover by itself
      $("status").textContent = "connection interrupted…";
      setTimeout(current(() => { if (pc.connectionState !== "connected") sessionLost("connection lost"); }),
        DISCONNECT_GRACE_MS);
    }
  });
  const edited = new MediaStream();
  $("edited").srcObject = edited;
  pc.ontrack = (event) => edited.addTrack(event.track);     // edited video (+ the microphone, in sync)
  for (const track of state.camera.getTracks()) {
    if (track.kind === "video") track.contentHint = "detail";   // keep its resolution, drop frames instead
    pc.addTrack(track, state.camera);
  }
  await pc.setLocalDescription(await pc.createOffer());
  await iceGatheringDone(pc);                               // the server does not trickle ICE
  const response = await fetch("/offer", {
    method: "POST", headers: { "Content-Type": "application/json", ...authHeaders },
    body: JSON.stringify({ sdp: pc.localDescription.sdp, type: pc.localDescription.type }),
  }).catch(() => { throw refusal("cannot reach the server", true); });
  const body = await response.json().catch(() => ({ error: `HTTP ${response.status}` }));
  if (!response.ok) {
    throw response.status === 503 ? refusal(`Server full: ${body.error}`, true)
      : refusal(`Cannot connect: ${body.error}`, false);
  }
  if (pc !== state.pc) return;
  await pc.setRemoteDescription(body);
  await keepCameraSharp(pc);
  hook.node = body.node || null;
  if (body.node) watchSession(body.session, pc);
}

function refusal(message, retry) {
  hook.lastError = message;
  return Object.assign(new Error(message), { retry });
}

function iceGatheringDone(pc) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const check = () => { if (pc.iceGatheringState === "complete") { pc.removeEventListener("icegatheringstatechange", check); resolve(); } };
    pc.addEventListener("icegatheringstatechange", check);
    setTimeout(resolve, 3000);                              // use what we have after 3 s
  });
}

// The camera we send: a bitrate ceiling, and its resolution kept when bandwidth or CPU run short (Chromium
// would halve it otherwise, and the edited video, which has the input's size, with it).
async function keepCameraSharp(pc) {
  for (const sender of pc.getSenders()) {
    if (sender.track?.kind !== "video") continue;
    const params = sender.getParameters();
    params.degradationPreference = "maintain-resolution";
    for (const encoding of params.encodings || []) encoding.maxBitrate = CAMERA_MAX_BITRATE;
    await sender.setParameters(params).catch((err) => console.warn("camera sender parameters:", err.message));
  }
}

function sessionLost(reason) {
  if (state.phase === "connected" || state.phase === "connecting") reconnect(`disconnected: ${reason}`);
}

// Cluster mode (the answer names the node serving us): the front long-polls this session's state. When its
// node is lost, say so and reconnect: the cluster places the new session on a surviving node.
async function watchSession(id, pc) {
  while (pc === state.pc) {
    const response = await fetch(`/api/session/${encodeURIComponent(id)}?wait=25`, { headers: authHeaders })
      .catch(() => null);
    if (!response) { await new Promise((resolve) => setTimeout(resolve, 2000)); continue; }   // front unreachable
    if (!response.ok) return;
    const session = await response.json();
    if (session.state === "live") continue;
    if (session.state === "lost" && pc === state.pc && ["connected", "connecting"].includes(state.phase)) {
      hook.sessionsLost += 1;
      reconnect("session lost, reconnecting");
    }
    return;
  }
}

// The one way back after a session is lost or refused for now (server gone, restarting, full, network
// down): keep the camera, wait the next backoff delay while the header counts down, check that the server
// answers, then connect again. Stop cancels it.
function reconnect(reason) {
  closeSession();
  clearTimeout(state.retryTimer);
  let wait = RETRY_DELAYS_S[Math.min(state.retries, RETRY_DELAYS_S.length - 1)];
  state.retries += 1;
  const tick = async () => {
    if (state.phase !== "reconnecting") return;
    if (wait > 0) {
      setPhase("reconnecting", `${reason} — retrying in ${wait} s`, true);
      wait -= 1;
      state.retryTimer = setTimeout(tick, 1000);
      return;
    }
    setPhase("reconnecting", `${reason} — retrying now…`, true);
    const answers = await fetch("/api/health", { cache: "no-store" }).then((r) => r.ok, () => false);
    if (state.phase !== "reconnecting") return;
    if (answers) attempt();
    else reconnect(reason);
  };
  state.phase = "reconnecting";
  tick();
}

function closeSession() {                                   // this session's connection, not the camera
  const pc = state.pc;
  state.pc = state.channel = null;
  clearTimeout(state.silenceTimer);
  if (pc) pc.close();
  $("edited").srcObject = null;
  $("edited").classList.remove("live");
  $("placeholder").hidden = false;
  clearStats();
}

function stop(message) {                                    // the Stop button, a closed tab, a hard refusal
  clearTimeout(state.retryTimer);
  closeSession();
  if (state.camera) state.camera.getTracks().forEach((t) => t.stop());
  state.camera = $("raw").srcObject = null;
  state.retries = 0;
  showInset();
  setPhase("idle", message || "stopped", Boolean(message));
}

function expectStats(pc) {                                  // silence from the server means it is gone
  clearTimeout(state.silenceTimer);
  state.silenceTimer = setTimeout(() => { if (pc === state.pc) sessionLost("no word from the server"); }, SILENCE_MS);
}

function showNotice(text) {
  hook.lastError = text;
  $("notice").textContent = text;
  $("notice").hidden = false;
  clearTimeout(showNotice.timer);
  showNotice.timer = setTimeout(() => { $("notice").hidden = true; }, NOTICE_MS);
}

// --- server messages -------------------------------------------------------------------------------

function onMessage(message, pc) {
  if (message.type === "hello") {
    hook.engine = message.engine;
    if (message.engine !== "3dpe") delete state.engine.triplane_ema;   // a 3dpe-only option
    applyLimits(message.camera_limits);
    showEngine(message);
    onStyle(message.style);
  } else if (message.type === "engine_options") {
    showEngineOptions(message.options);
  } else if (message.type === "stats") {
    expectStats(pc);
    showStats(message);
  } else if (message.type === "style") {
    onStyle(message);
  } else if (message.type === "error") {
    showNotice(message.message);
  } else if (message.type === "bye") {
    sessionLost(message.reason);
  }
}

function send(changes) {
  for (const axis of ["yaw", "pitch"]) {                    // the page keeps to the server's range, as the server does
    if (axis in changes && state.limits) changes[axis] = clamp(changes[axis], -state.limits[axis], state.limits[axis]);
  }
  if ("style" in changes) delete state.settings.prompt;     // the latest style choice wins
  if ("prompt" in changes) delete state.settings.style;
  Object.assign(state.settings, changes);
  if (state.channel && state.channel.readyState === "open") {
    state.channel.send(JSON.stringify({ type: "set", ...changes }));
  } else if ("style" in changes) {
    showStyle("pending", changes.style);
  }
}

function sendChoices() {                                    // on (re)connecting: what differs from the server's
  const choices = Object.entries(state.settings).filter(([key, value]) => value !== state.defaults[key]);
  if (choices.length) send(Object.fromEntries(choices));
  if (Object.keys(state.engine).length) sendEngine({});
}

function sendEngine(options) {                              // engine options: per peer, applied live
  Object.assign(state.engine, options);
  if (state.channel && state.channel.readyState === "open") {
    state.channel.send(JSON.stringify({ type: "set", engine: state.engine }));
  }
}

function showEngine(hello) {
  const textOk = hello.takes_text !== false;               // 3dpe: image prompts only
  $("style-text").disabled = !textOk;
  $("style-text").placeholder = textOk ? "e.g. gold, van gogh, anime" : `the ${hello.engine} engine takes image prompts only`;
  document.querySelectorAll("#presets button").forEach((b) => { b.disabled = !textOk && b.dataset.style !== "none"; });
  showEngineOptions(hello.engine_options || {});
}

function showEngineOptions(options) {                       // a control only for the options this engine has
  hook.engineOptions = options;
  $("smoothing").checked = options.smoothing ?? true;
  $("smoothing").disabled = !("smoothing" in options);
  $("ema-row").hidden = !("triplane_ema" in options);
  if ("triplane_ema" in options) {
    $("triplane-ema").value = options.triplane_ema;
    $("triplane-ema-value").textContent = Number(options.triplane_ema).toFixed(2);
  }
}

// --- style feedback: one place, saying what runs now and what became of the latest request ---------

function onStyle(message) {
  hook.lastStyle = message;
  state.running = { label: message.label, preset: message.preset };
  const choice = state.settings.prompt ? "uploaded image" : state.settings.style;
  if (message.status === "ready") {
    state.accepted = pickStyle(state.settings);
  } else if (message.status === "error" && message.style === choice) {
    delete state.settings.style;                            // a refused choice is not sent again on reconnecting
    delete state.settings.prompt;
    Object.assign(state.settings, state.accepted);
  }
  showStyle(message.status, message.style, message.message);
}

function pickStyle(settings) {
  return "prompt" in settings ? { prompt: settings.prompt } : { style: settings.style };
}

function showStyle(status, asked, message) {
  const box = $("style-status");
  const running = state.running.label;
  box.classList.toggle("error", status === "error");
  if (status === "pending") box.textContent = `“${asked}” is applied once the camera starts.`;
  else if (status === "error") box.textContent = `“${asked}” was not applied: ${message}. Still running: ${running}.`;
  else if (status === "loading") box.textContent = `Loading “${asked}”… the stream keeps “${running}” meanwhile.`;
  else if (state.running.preset === "none") {
    const keys = presetKeys();
    box.textContent = `No style: pick one above${keys ? ` (keys ${keys})` : ""}, describe one, or upload a picture.`;
  } else box.textContent = `Style: ${running}`;
  document.querySelectorAll("#presets button").forEach((b) => {
    b.setAttribute("aria-pressed", String(b.dataset.style === state.running.preset));
  });
}

async function uploadPrompt(file) {
  if (!file) return;
  showStyle("loading", file.name);
  const form = new FormData();
  form.append("image", file);
  try {
    const response = await fetch("/prompt", { method: "POST", headers: authHeaders, body: form });
    const body = await response.json().catch(() => ({ error: `HTTP ${response.status}` }));
    if (!response.ok) { showStyle("error", file.name, body.error); return; }
    send({ prompt: body.id });
  } catch (err) {                                           // server unreachable
    showStyle("error", file.name, `cannot reach the server (${err.message})`);
  }
}

// --- stats: short by default, the detail folded -----------------------------------------------------

const HEALTH_NOTES = {
  "degraded input": (m) => `Few camera frames reach the server (${m.fps_in} fps): low light, a busy camera or a slow uplink.`,
  "degraded inference": (m) => `The server edits ${m.fps_out} of ${m.fps_in} frames a second: it is busy, so frames are skipped to stay live.`,
  offline: () => "No camera frames have reached the server for over 3 s.",
};

function showStats(m) {
  hook.lastStats = m;
  hook.statsReceived += 1;
  const summary = $("stats-summary");
  summary.dataset.health = m.health;
  summary.textContent = `${m.health} · ${m.fps_out} fps · latency ${m.latency_ms.p50 ?? "–"} ms`;
  const note = HEALTH_NOTES[m.health];
  $("health-note").hidden = !note;
  $("health-note").textContent = note ? note(m) : "";
  const lines = [
    `in ${m.fps_in} fps · out ${m.fps_out} fps · latency p50 ${m.latency_ms.p50} ms, p95 ${m.latency_ms.p95} ms`,
    `drops ${m.graph.drops ?? 0} (+${m.skipped_input} skipped)` + (m.engine ? ` · ${m.engine} on ${m.device}` : ""),
    stageLine(m.graph.stages || {}),
  ];
  readVideoStats(state.pc).catch(() => ({})).then((video) => {
    if (hook.lastStats !== m) return;
    hook.video = video;
    const server = m.video || {};
    if (video.camera) lines.push(`camera → server: ${size(video.camera)} ${video.camera.codec ?? ""} ${kbps(video.camera.kbps)}` +
      (video.camera.limitation && video.camera.limitation !== "none" ? ` (limited by ${video.camera.limitation})` : ""));
    if (video.edited) lines.push(`server → page: ${size(video.edited)} ${video.edited.codec ?? ""} ${kbps(video.edited.kbps)}` +
      (server.output ? ` (sent ${server.output.join("×")} at ${kbps(server.sent_kbps)})` : ""));
    $("stats-detail").textContent = lines.filter(Boolean).join("\n");
  });
}

const size = (v) => (v.width ? `${v.width}×${v.height}` : "–");
const kbps = (value) => (value == null ? "– kbps" : `${value} kbps`);

function stageLine(stages) {
  return Object.entries(stages).filter(([, s]) => s.kind === "stage")
    .map(([name, s]) => `${name} ${s.p50_ms.toFixed(1)} ms`).join(" · ");
}

// The negotiated video both ways, from the browser's own counters: size, codec, bitrate, and what limits
// the camera's quality (bandwidth, cpu) if anything.
async function readVideoStats(pc) {
  if (!pc) return {};
  const report = await pc.getStats();
  const codecs = {}, video = {};
  report.forEach((s) => { if (s.type === "codec") codecs[s.id] = s.mimeType.split("/")[1]; });
  report.forEach((s) => {
    if (s.kind !== "video" || !["outbound-rtp", "inbound-rtp"].includes(s.type)) return;
    const key = s.type === "outbound-rtp" ? "camera" : "edited";
    const bytes = s.type === "outbound-rtp" ? s.bytesSent : s.bytesReceived;
    const previous = state.videoBytes[key];
    state.videoBytes[key] = { bytes, at: s.timestamp };
    video[key] = {
      width: s.frameWidth, height: s.frameHeight, codec: codecs[s.codecId], limitation: s.qualityLimitationReason,
      kbps: previous && s.timestamp > previous.at ? Math.round((bytes - previous.bytes) * 8 / (s.timestamp - previous.at)) : null,
    };
  });
  return video;
}

function clearStats() {
  hook.lastStats = hook.video = null;
  state.videoBytes = {};
  $("stats-summary").textContent = "not connected";
  delete $("stats-summary").dataset.health;
  $("health-note").hidden = true;
  $("stats-detail").textContent = "";
}

// --- controls and shortcuts ---------------------------------------------------------------------------

async function loadServerInfo() {
  const response = await fetch("/api/presets", { headers: authHeaders });
  const body = await response.json();
  const s = body.settings;
  state.iceServers = body.ice_servers || [];
  state.settings = { style: s.style, yaw: s.yaw, pitch: s.pitch, zoom: s.zoom, look_at_lens: s.look_at_lens,
    mode: s.mode, enabled: s.enabled, on_face_lost: s.on_face_lost, faces: s.faces };
  state.defaults = { ...state.settings };
  state.accepted = { style: s.style };
  state.running = { label: s.style, preset: s.style === "none" || body.presets.includes(s.style) ? s.style : null };
  showPresets(body.presets);
  applyLimits(body.camera_limits);
  showStyle("ready");
}

function showPresets(presets) {
  state.presets = presets;
  const box = $("presets");
  box.replaceChildren();
  ["none", ...presets].forEach((name, i) => {
    const button = document.createElement("button");
    button.type = "button";
    button.dataset.style = name;
    button.setAttribute("aria-pressed", "false");
    button.append(`${name} `);
    const key = document.createElement("kbd");
    key.textContent = i === 0 ? "N" : i <= 9 ? String(i) : "";
    if (key.textContent) button.append(key);
    button.onclick = () => send({ style: name });
    box.appendChild(button);
  });
  const keys = presetKeys().split("–").map((k) => `<kbd>${k}</kbd>`).join("–");
  $("preset-keys").innerHTML = presets.length ? `${keys} presets, in the order shown` : "no presets on this server";
}

function presetKeys() {                                     // "1–8": the digit keys that pick a preset
  const last = Math.min(9, state.presets.length);
  return last > 1 ? `1–${last}` : last ? "1" : "";
}

function applyLimits(limits) {                              // the server's virtual-camera range
  state.limits = limits;
  for (const axis of ["yaw", "pitch"]) {
    const limit = limits[axis];
    Object.assign($(axis), { min: -limit, max: limit, disabled: false });
    $(`${axis}-range`).textContent = `(±${limit}°)`;
    state.settings[axis] = clamp(state.settings[axis], -limit, limit);
  }
  syncControls();
}

function syncControls() {
  const s = state.settings;
  $("yaw").value = s.yaw; $("yaw-value").textContent = `${s.yaw}°`;
  $("pitch").value = s.pitch; $("pitch-value").textContent = `${s.pitch}°`;
  $("zoom").value = s.zoom; $("zoom-value").textContent = `${Number(s.zoom).toFixed(2)}×`;
  $("look-at-lens").checked = s.look_at_lens;
  $("all-faces").checked = s.faces === "all";
  $("mode").value = s.mode;
  $("enabled").checked = s.enabled;
  $("on-face-lost").value = s.on_face_lost;
  $("videos").dataset.mode = s.mode;
}

function change(changes) { send(changes); syncControls(); }


function step(axis, delta) {
  if (!state.limits) return;
  const limit = state.limits[axis];
  change({ [axis]: clamp(state.settings[axis] + delta, -limit, limit) });
}

const KEYS = {
  ArrowLeft: () => step("yaw", -ARROW_STEP),
  ArrowRight: () => step("yaw", ARROW_STEP),
  ArrowUp: () => step("pitch", ARROW_STEP),
  ArrowDown: () => step("pitch", -ARROW_STEP),
  "0": () => change({ yaw: 0, pitch: 0, zoom: 1 }),
  l: () => change({ look_at_lens: !state.settings.look_at_lens }),
  n: () => send({ style: "none" }),
  " ": () => change({ enabled: !state.settings.enabled }),
  m: () => change({ mode: MODES[(MODES.indexOf(state.settings.mode) + 1) % MODES.length] }),
  c: () => { $("show-raw").checked = !$("show-raw").checked; showInset(); },
};

document.addEventListener("keydown", (event) => {
  const target = event.target;
  if (event.ctrlKey || event.metaKey || event.altKey || target.matches("input, textarea, select")) return;
  if ((event.key === " " || event.key === "Enter") && target.matches("button, summary, a")) return;  // activation
  const key = event.key.length === 1 ? event.key.toLowerCase() : event.key;
  const preset = /^[1-9]$/.test(key) ? state.presets[Number(key) - 1] : undefined;
  const action = preset ? () => send({ style: preset }) : KEYS[key];
  if (!action) return;
  event.preventDefault();
  action();
});

for (const axis of ["yaw", "pitch"]) {                      // a focused slider steps as the page's arrows do
  $(axis).addEventListener("keydown", (event) => {
    const delta = { ArrowRight: 1, ArrowUp: 1, ArrowLeft: -1, ArrowDown: -1 }[event.key];
    if (!delta || event.ctrlKey || event.metaKey || event.altKey) return;
    event.preventDefault();
    step(axis, delta * ARROW_STEP);
  });
  $(axis).oninput = (event) => change({ [axis]: Number(event.target.value) });
}
document.querySelectorAll(".arrow-step").forEach((span) => { span.textContent = ARROW_STEP; });

// --- layout -------------------------------------------------------------------------------------------

function showInset() {                                      // the camera preview, only while there is one
  $("raw").hidden = !(state.camera && $("show-raw").checked);
}

$("edited").addEventListener("loadeddata", () => {
  $("edited").classList.add("live");
  $("placeholder").hidden = true;
});

// --- wiring -------------------------------------------------------------------------------------------

$("start").onclick = () => start().catch((err) => stop(`error: ${err.message}`));
$("stop").onclick = () => stop();
window.addEventListener("pagehide", () => stop());          // tell the server now, not after an ICE timeout
$("text-form").onsubmit = (event) => {
  event.preventDefault();
  const text = $("style-text").value.trim();
  if (text) send({ style: text });
};
$("prompt-file").onchange = (event) => uploadPrompt(event.target.files[0]);
$("zoom").oninput = (event) => change({ zoom: Number(event.target.value) });
$("look-at-lens").onchange = (event) => change({ look_at_lens: event.target.checked });
$("all-faces").onchange = (event) => change({ faces: event.target.checked ? "all" : "one" });
$("mode").onchange = (event) => change({ mode: event.target.value });
$("enabled").onchange = (event) => change({ enabled: event.target.checked });
$("on-face-lost").onchange = (event) => change({ on_face_lost: event.target.value });
$("show-raw").onchange = showInset;
$("audio").onchange = () => {                               // the microphone is asked for only when wanted
  if (state.phase !== "idle") { stop(); start().catch((err) => stop(`error: ${err.message}`)); }
};
$("smoothing").onchange = (event) => sendEngine({ smoothing: event.target.checked });
$("triplane-ema").oninput = (event) => {
  $("triplane-ema-value").textContent = Number(event.target.value).toFixed(2);
  sendEngine({ triplane_ema: Number(event.target.value) });
};
loadServerInfo().catch((err) => setPhase("idle", `cannot reach the server: ${err.message}`, true));
