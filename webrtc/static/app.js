// live3dpe page: sends the camera to the server, shows the edited stream, steers it over a data channel.
"use strict";

const $ = (id) => document.getElementById(id);
const token = new URLSearchParams(location.search).get("token");
const authHeaders = token ? { Authorization: `Bearer ${token}` } : {};
const MODES = ["paste", "crop", "side-by-side", "grid"];
// settings: what the controls show; defaults: the server's settings, so that on connecting only the
// user's own choices are sent (a style the server was started with is never echoed back to it).
// engine: the engine options the user changed (sent as one "engine" object, again on reconnecting).
const state = { pc: null, channel: null, camera: null, presets: [], settings: {}, defaults: {}, engine: {} };

// Test hook (read by the browser test): frame counts from requestVideoFrameCallback, pixel grabs.
const hook = (window.live3dpe = {
  framesReceived: 0, rawFrames: 0, connected: false, lastStats: null, lastStyle: null, lastError: null,
  engine: null, engineOptions: null,
  grab: (which, size = 64) => grabPixels(which === "raw" ? $("raw") : $("edited"), size),
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

function setStatus(text, isError = false) {
  $("status").textContent = text;
  $("status").classList.toggle("error", isError);
}

function send(changes) {
  if ("style" in changes) delete state.settings.prompt;     // the latest style choice wins
  if ("prompt" in changes) delete state.settings.style;
  Object.assign(state.settings, changes);
  if (state.channel && state.channel.readyState === "open") {
    state.channel.send(JSON.stringify({ type: "set", ...changes }));
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

async function start() {
  $("start").disabled = true;
  setStatus("asking for the camera…");
  try {
    state.camera = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 }, audio: true })
      .catch(() => navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 } }));
  } catch (err) {
    setStatus(`camera unavailable: ${err.message}`, true);
    $("start").disabled = false;
    return;
  }
  $("raw").srcObject = state.camera;
  const pc = (state.pc = new RTCPeerConnection());
  state.channel = pc.createDataChannel("control");
  state.channel.onmessage = (event) => onMessage(JSON.parse(event.data));
  state.channel.onopen = sendChoices;
  const edited = new MediaStream();
  $("edited").srcObject = edited;
  pc.ontrack = (event) => edited.addTrack(event.track);   // edited video + our own audio, in sync
  pc.onconnectionstatechange = () => {
    hook.connected = pc.connectionState === "connected";
    if (pc.connectionState === "connected") setStatus("connected");
    if (["failed", "disconnected"].includes(pc.connectionState)) setStatus(`connection ${pc.connectionState}`, true);
  };
  for (const track of state.camera.getTracks()) pc.addTrack(track, state.camera);
  await pc.setLocalDescription(await pc.createOffer());
  await iceGatheringDone(pc);                               // the server does not trickle ICE
  setStatus("connecting…");
  const response = await fetch("/offer", {
    method: "POST", headers: { "Content-Type": "application/json", ...authHeaders },
    body: JSON.stringify({ sdp: pc.localDescription.sdp, type: pc.localDescription.type }),
  });
  const body = await response.json().catch(() => ({ error: `HTTP ${response.status}` }));
  if (!response.ok) {
    const reason = response.status === 503 ? `Server full: ${body.error}` : `Cannot connect: ${body.error}`;
    hook.lastError = reason;
    setStatus(reason, true);
    stop();
    return;
  }
  await pc.setRemoteDescription(body);
  $("stop").disabled = false;
}

function iceGatheringDone(pc) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const check = () => { if (pc.iceGatheringState === "complete") { pc.removeEventListener("icegatheringstatechange", check); resolve(); } };
    pc.addEventListener("icegatheringstatechange", check);
    setTimeout(resolve, 3000);                              // use what we have after 3 s
  });
}

function stop() {
  if (state.pc) state.pc.close();
  if (state.camera) state.camera.getTracks().forEach((t) => t.stop());
  state.pc = state.channel = state.camera = null;
  hook.connected = false;
  $("start").disabled = false;
  $("stop").disabled = true;
}

function onMessage(message) {
  if (message.type === "hello") {
    $("stats").textContent = `engine ${message.engine} on ${message.device}`;
    hook.engine = message.engine;
    if (message.engine !== "3dpe") delete state.engine.triplane_ema;   // a 3dpe-only option
    showEngineOptions(message.engine_options || {});
  } else if (message.type === "engine_options") {
    showEngineOptions(message.options);
  } else if (message.type === "stats") {
    hook.lastStats = message;
    const lat = message.latency_ms;
    $("stats").textContent =
      `${message.health} · in ${message.fps_in} fps · out ${message.fps_out} fps · latency p50 ${lat.p50} ms, ` +
      `p95 ${lat.p95} ms · drops ${message.graph.drops ?? 0} (+${message.skipped_input} skipped) · ` +
      `${message.engine} on ${message.device}` + stageLine(message.graph.stages || {});
    showStyle(message.style);
  } else if (message.type === "style") {
    showStyle(message);
  } else if (message.type === "error") {
    hook.lastError = message.message;
    setStatus(message.message, true);
  }
}

function stageLine(stages) {
  const parts = Object.entries(stages).filter(([, s]) => s.kind === "stage")
    .map(([name, s]) => `${name} ${s.p50_ms.toFixed(1)} ms`);
  return parts.length ? `\n${parts.join(" · ")}` : "";
}

function showStyle(style) {
  hook.lastStyle = style;
  const box = $("style-status");
  box.classList.toggle("error", style.status === "error");
  box.textContent = style.status === "error" ? `“${style.style}”: ${style.message}`
    : style.status === "loading" ? `loading “${style.style}”… (the stream keeps its current style)`
    : `style: ${style.style}`;
  $("style-badge").hidden = style.status !== "loading";
  $("style-badge").textContent = `loading ${style.style}…`;
  document.querySelectorAll("#presets button").forEach((b) => b.classList.toggle("active", b.dataset.style === style.style));
}

async function loadPresets() {
  const response = await fetch("/api/presets");
  const body = await response.json();
  state.presets = body.presets;
  state.settings = { style: body.settings.style, yaw: body.settings.yaw, pitch: body.settings.pitch,
    zoom: body.settings.zoom, look_at_lens: body.settings.look_at_lens, mode: body.settings.mode,
    enabled: body.settings.enabled, on_face_lost: body.settings.on_face_lost };
  state.defaults = { ...state.settings };
  const box = $("presets");
  ["none", ...body.presets].forEach((name, i) => {
    const button = document.createElement("button");
    button.textContent = i === 0 ? "none (N)" : `${name} (${i})`;
    button.dataset.style = name;
    button.onclick = () => send({ style: name });
    box.appendChild(button);
  });
  syncControls();
}

function syncControls() {
  const s = state.settings;
  $("yaw").value = s.yaw; $("yaw-value").textContent = `${s.yaw}°`;
  $("pitch").value = s.pitch; $("pitch-value").textContent = `${s.pitch}°`;
  $("zoom").value = s.zoom; $("zoom-value").textContent = `${Number(s.zoom).toFixed(2)}×`;
  $("look-at-lens").checked = s.look_at_lens;
  $("mode").value = s.mode;
  $("enabled").checked = s.enabled;
  $("on-face-lost").value = s.on_face_lost;
}

function change(changes) { send(changes); syncControls(); }

async function uploadPrompt(file) {
  if (!file) return;
  $("style-status").textContent = "uploading image prompt…";
  const form = new FormData();
  form.append("image", file);
  try {
    const response = await fetch("/prompt", { method: "POST", headers: authHeaders, body: form });
    const body = await response.json().catch(() => ({ error: `HTTP ${response.status}` }));
    if (!response.ok) { showStyle({ status: "error", style: file.name, message: body.error }); return; }
    send({ prompt: body.id });
  } catch (err) {                                           // server unreachable
    showStyle({ status: "error", style: file.name, message: err.message });
  }
}

const clamp = (v, lo, hi) => Math.min(hi, Math.max(lo, v));
const KEYS = {
  ArrowLeft: () => change({ yaw: clamp(state.settings.yaw - 5, -45, 45) }),
  ArrowRight: () => change({ yaw: clamp(state.settings.yaw + 5, -45, 45) }),
  ArrowUp: () => change({ pitch: clamp(state.settings.pitch + 5, -30, 30) }),
  ArrowDown: () => change({ pitch: clamp(state.settings.pitch - 5, -30, 30) }),
  "0": () => change({ yaw: 0, pitch: 0, zoom: 1 }),
  l: () => change({ look_at_lens: !state.settings.look_at_lens }),
  n: () => change({ style: "none" }),
  " ": () => change({ enabled: !state.settings.enabled }),
  m: () => change({ mode: MODES[(MODES.indexOf(state.settings.mode) + 1) % MODES.length] }),
};

document.addEventListener("keydown", (event) => {
  if (event.target.matches("input, textarea, select") || event.ctrlKey || event.metaKey || event.altKey) return;
  const key = event.key.length === 1 ? event.key.toLowerCase() : event.key;
  const preset = /^[1-9]$/.test(key) ? state.presets[Number(key) - 1] : undefined;
  const action = preset ? () => change({ style: preset }) : KEYS[key];
  if (!action) return;
  event.preventDefault();
  action();
});

$("start").onclick = () => start().catch((err) => { setStatus(`error: ${err.message}`, true); stop(); });
$("stop").onclick = stop;
window.addEventListener("pagehide", stop);                 // tell the server now, not after an ICE timeout
$("text-form").onsubmit = (event) => { event.preventDefault(); const t = $("style-text").value.trim(); if (t) send({ style: t }); };
$("prompt-file").onchange = (event) => uploadPrompt(event.target.files[0]);
$("yaw").oninput = (event) => change({ yaw: Number(event.target.value) });
$("pitch").oninput = (event) => change({ pitch: Number(event.target.value) });
$("zoom").oninput = (event) => change({ zoom: Number(event.target.value) });
$("look-at-lens").onchange = (event) => change({ look_at_lens: event.target.checked });
$("mode").onchange = (event) => change({ mode: event.target.value });
$("enabled").onchange = (event) => change({ enabled: event.target.checked });
$("on-face-lost").onchange = (event) => change({ on_face_lost: event.target.value });
$("smoothing").onchange = (event) => sendEngine({ smoothing: event.target.checked });
$("triplane-ema").oninput = (event) => {
  $("triplane-ema-value").textContent = Number(event.target.value).toFixed(2);
  sendEngine({ triplane_ema: Number(event.target.value) });
};
loadPresets().catch((err) => setStatus(`cannot load presets: ${err.message}`, true));
