// livegate studio: the page around client.js. Picks camera, microphone and destinations,
// shows a preview, goes live, and shows how the broadcast is doing.
//
// For tests and kiosks:
//   ?destination=NAME   preselects a destination; several as ?destination=a,b or
//                       ?destination=a&destination=b (names the server does not offer are
//                       still listed and sent, so that the server's answer explains them)
//   ?profile=NAME       preselects an output profile (Quality), when the chosen destinations
//                       offer it
//   ?ingest=webcodecs|mediarecorder
//                       preselects the Encoder (default Auto: WebCodecs where it is low-latency,
//                       i.e. Chromium; MediaRecorder elsewhere)
//   ?source=camera|screen|pip
//                       preselects the Source: the camera (default), the screen (shared with
//                       getDisplayMedia), or the screen with the camera in a corner
//   &autostart=1        goes live as soon as the camera and the destination list are ready
//                       (and every chosen destination that needs the streamer's key has one,
//                       so never for those: keys are typed, never put in the address)
//   document.body.dataset.state  idle | ready | connecting | live | reconnecting | stopping |
//                       stopped | error (reconnecting: the network was lost while live and the
//                       broadcast is being resumed)
//   window.__livegate   live view of the broadcast (see `lg` below), with stop() and goLive();
//                       stream keys are never in it, nor stored, logged or put in the address

import { publish, pickMimeType, videoEncoderConfig, hasWebCodecs } from './client.js';

const $ = (id) => document.getElementById(id);
const el = {
  preview: $('preview'),
  stageEmpty: $('stage-empty'),
  stageText: $('stage-text'),
  onair: $('onair'),
  onairLabel: $('onair-label'),
  onairTime: $('onair-time'),
  badge: $('badge'),
  badgeText: $('badge-text'),
  camera: $('camera'),
  microphone: $('microphone'),
  destinations: $('destinations'),
  destinationList: $('destination-list'),
  destinationHelp: $('destination-help'),
  profileField: $('profile-field'),
  profile: $('profile'),
  profileHelp: $('profile-help'),
  ingest: $('ingest'),
  ingestHelp: $('ingest-help'),
  sourceField: $('source-field'),
  source: $('source'),
  sourceHelp: $('source-help'),
  status: $('status'),
  golive: $('golive'),
  stop: $('stop'),
  sessionId: $('session-id'),
  statTime: $('stat-time'),
  statSent: $('stat-sent'),
  statSentTotal: $('stat-sent-total'),
  statServer: $('stat-server'),
  statServerTotal: $('stat-server-total'),
  statVideo: $('stat-video'),
  statVideoDetail: $('stat-video-detail'),
  statRtt: $('stat-rtt'),
  statRttDetail: $('stat-rtt-detail'),
  statTarget: $('stat-target'),
  statTargetDetail: $('stat-target-detail'),
  statAudio: $('stat-audio'),
  statMime: $('stat-mime'),
  statIngest: $('stat-ingest'),
  statEncoder: $('stat-encoder'),
  destStates: $('dest-states'),
  receiver: $('receiver'),
  receiverStreams: $('receiver-streams'),
  watch: $('watch'),
  watchTitle: $('watch-title'),
  watchStop: $('watch-stop'),
  watchStopText: $('watch-stop-text'),
  watchVideo: $('watch-video'),
  watchStatus: $('watch-status'),
};

const params = new URLSearchParams(location.search);
const wantedDestinations = [...new Set(params.getAll('destination')
  .flatMap((v) => v.split(','))
  .map((v) => v.trim())
  .filter(Boolean))];
const autostart = params.get('autostart') === '1';
// The streamer's (or the address's) choice of profile. Kept while the chosen destinations do
// not offer it, so that it comes back when they do.
let wantedProfile = (params.get('profile') || '').trim();
// The address's choice of encoder ('auto' unless it names one).
const wantedIngest = ['webcodecs', 'mediarecorder'].includes(params.get('ingest')) ? params.get('ingest') : 'auto';

const lg = {
  state: 'idle',
  mimeType: pickMimeType(), // MediaRecorder's type, or with WebCodecs the codecs ("avc1.42e01f,opus")
  ingest: null, // 'webcodecs' | 'mediarecorder': in use, or planned for the next broadcast
  bytesSent: 0,
  chunksSent: 0,
  framesEncoded: 0, // WebCodecs: video frames encoded
  framesDropped: 0, // WebCodecs: video frames dropped (encoder or network too slow)
  encoderQueue: 0, // WebCodecs: frames waiting in the video encoder
  bufferedAmount: 0, // bytes waiting in the publish WebSocket
  videoBitrate: 0, // the video's current bitrate target (follows the server's `bitrate`)
  bitrates: [], // {t: Date.now(), bps} for each change of videoBitrate (the last 200)
  encodeDelay: null, // WebCodecs: ms from a frame read to its chunk out (median, last second)
  rtt: null, // ms, the `ping` round trip to the server
  reconnects: 0, // times the broadcast was resumed after a network loss
  restarts: 0, // MediaRecorder: times the recorder was restarted at a new bitrate
  keyframeRequests: 0, // the server's `keyframe` messages (a destination went live)
  drainingUntil: 0, // Date.now() by which the server, stopping, ends the broadcast (`draining`)
  ready: null, // the server's ready message
  lastStats: null, // the server's latest stats message
  lastError: null, // {code, message}
  destinations: {}, // name → {name, state, reason, bytes_out, bitrate_out}
  profile: '', // the output profile asked for ('' for as captured)
  source: 'camera', // 'camera' | 'screen' | 'pip': what the preview shows and a broadcast sends
  stop: () => stopLive(),
  goLive: () => goLive(),
};
window.__livegate = lg;

let stream = null;
let pub = null;
let destinations = null; // from GET /api/v1/destinations, once loaded
let profiles = []; // the output profiles from the same answer
let sending = []; // the destination names of the current (or last) broadcast
let sendingProfile = ''; // and its profile
let acquiring = 0; // generation counter, so a slow getUserMedia cannot win over a newer one
let autostarted = false;
let userStopped = false;
let backLiveAt = 0; // Date.now() when the broadcast came back after a network loss
let backLiveTimer = 0;
// What this browser can encode the current camera with: the VideoEncoder configuration (null
// when WebCodecs cannot) and the MediaRecorder type (null when it cannot).
const encoders = { webcodecs: null, mediarecorder: lg.mimeType, checked: false };

// ---------------------------------------------------------------- state and status

const BADGE = {
  idle: 'Starting', ready: 'Ready', connecting: 'Connecting', live: 'Live', reconnecting: 'Reconnecting',
  stopping: 'Stopping', stopped: 'Stopped', error: 'Error',
};

function setState(state) {
  lg.state = state;
  document.body.dataset.state = state;
  el.badgeText.textContent = BADGE[state] || state;
  // Over the preview: Live, or (still on the air for the destinations) Reconnecting.
  el.onair.hidden = state !== 'live' && state !== 'reconnecting';
  el.onairLabel.textContent = state === 'reconnecting' ? 'Reconnecting' : 'Live';
  updateControls();
}

function setStatus(text, tone = 'info') {
  if (el.status.textContent !== text) el.status.textContent = text;
  el.status.dataset.tone = tone;
}

function fail(code, message, shown = message) {
  lg.lastError = { code, message };
  setState('error');
  setStatus(shown, 'error');
}

function busy() {
  return lg.state === 'connecting' || lg.state === 'live' || lg.state === 'reconnecting' || lg.state === 'stopping';
}

// A broadcast Stop can end.
function stoppable() {
  return lg.state === 'connecting' || lg.state === 'live' || lg.state === 'reconnecting';
}

// When the focused button becomes disabled (Go live → live, Stop → stopped), focus moves to
// the button that makes sense next, so that keyboard and screen reader users keep their place.
let refocus = false;

function updateControls() {
  const focused = document.activeElement;
  const hadButton = focused === el.golive || focused === el.stop || focused === el.profile
    || (focused !== null && el.destinations.contains(focused));
  setDisabled();
  if (hadButton && !focused.matches(':disabled')) {
    refocus = false;
    return;
  }
  const lost = !document.activeElement || document.activeElement === document.body;
  if (hadButton || (refocus && lost)) {
    const next = !el.stop.disabled ? el.stop : !el.golive.disabled ? el.golive : null;
    if (next) next.focus();
    refocus = next === null;
  }
}

function setDisabled() {
  const live = busy();
  const haveDevices = stream !== null;
  el.camera.disabled = live || el.camera.options.length === 0 || !el.camera.options[0].value;
  el.microphone.disabled = live || el.microphone.options.length === 0 || !el.microphone.options[0].value;
  const boxes = destinationBoxes();
  const chosen = boxes.filter((b) => b.checked).length;
  el.destinations.disabled = live || boxes.length === 0;
  // The server takes at most MAX_DESTINATIONS: once that many are checked, the rest wait.
  for (const box of boxes) box.disabled = !box.checked && chosen >= MAX_DESTINATIONS;
  el.profile.disabled = live || planProfile().kind !== 'choose';
  el.ingest.disabled = live;
  el.source.disabled = live;
  if (lg.source === 'screen' || el.source.value === 'screen') el.camera.disabled = true; // no camera in use
  el.golive.disabled = live || !haveDevices || !planIngest().ingest || chosen === 0 || blocker() !== '';
  el.stop.disabled = !stoppable();
}

// What keeps the chosen destinations from going live ('' when nothing does).
function blocker() {
  if (!destinations) return '';
  const chosen = chosenDestinations();
  if (chosen.length === 0) return 'Choose at least one destination to go live';
  const plan = planProfile();
  if (plan.kind === 'conflict') {
    return `${andList(plan.forcedBy.map((d) => d.name))} need different qualities and can’t go live together — uncheck one`;
  }
  const missing = missingKeys();
  if (missing.length) return `Enter your stream key for ${andList(missing)} to go live`;
  return '';
}

function readyText() {
  const notice = sourceNotice ? `${sourceNotice}. ` : '';
  if (!destinations) return `${notice}${lg.source === 'camera' ? 'Camera' : 'Screen'} ready — loading the destinations…`;
  const blocked = blocker();
  if (blocked) return `${notice}${blocked}`;
  const profile = el.profileField.hidden ? '' : el.profile.value;
  return `${notice}Ready — press Go live to broadcast to ${chosenDestinations().join(', ')}${profile ? ` in ${profile}` : ''}`;
}

function readyTone() {
  if (sourceNotice) return 'warn';
  if (!destinations || blocker() === '') return 'ok';
  return planProfile().kind === 'conflict' ? 'warn' : 'info';
}

// ---------------------------------------------------------------- camera and microphone

const VIDEO = { width: { ideal: 1280 }, height: { ideal: 720 }, frameRate: { ideal: 30 } };

// ---------------------------------------------------------------- source: camera or screen
//
// Camera: the camera and microphone as they come. Screen: the shared screen (getDisplayMedia)
// drawn onto a 1280×720 canvas (so the size stays put whatever is shared or resized), with the
// microphone. Screen with camera: the same, with the camera in the bottom-right corner. The
// sound is the microphone, mixed (Web Audio) with the tab's or system's sound when the browser
// shares it. Either way the result is one MediaStream, sent as a camera's would be.

const SOURCES = ['camera', 'screen', 'pip'];
const SOURCE_NAMES = { camera: 'the camera', screen: 'the screen', pip: 'the screen with the camera' };
const OUT_W = 1280;
const OUT_H = 720;
const OUT_FPS = 30;
const canShare = !!(navigator.mediaDevices && navigator.mediaDevices.getDisplayMedia);
const phone = window.matchMedia('(max-width: 700px), (pointer: coarse) and (hover: none)').matches;

// The capture behind `stream`: {camera, screen, compositor, audio} (each null when unused).
let raw = { camera: null, screen: null, compositor: null, audio: null };
// Said before the ready text (why the source is not the one asked for), until the next choice.
let sourceNotice = '';
// The notice says the camera stands in for a screen that could not be shared: it is also said
// while live, until the streamer chooses a source again.
let sourceFallback = false;

function renderSource() {
  for (const option of el.source.options) {
    if (option.value === 'camera') continue;
    option.disabled = !canShare;
    option.hidden = !canShare && phone;
    const base = option.value === 'screen' ? 'Screen' : 'Screen with camera (picture-in-picture)';
    option.textContent = canShare ? base : `${base} (not available in this browser)`;
  }
  // On a phone without screen sharing, Camera is the only choice: no need to show it.
  el.sourceField.hidden = !canShare && phone;
  const v = el.source.value;
  el.sourceHelp.textContent = v === 'screen'
    ? 'Your browser asks which screen, window or tab to share. The camera is not used; the microphone is, mixed with the shared sound when there is any.'
    : v === 'pip'
      ? 'The shared screen with your camera in the bottom-right corner, and the microphone mixed with the shared sound when there is any.'
      : '';
  el.preview.setAttribute('aria-label', v === 'camera' ? 'Camera preview' : v === 'screen' ? 'Screen preview' : 'Screen and camera preview');
}

const wantedSource = SOURCES.includes(params.get('source')) ? params.get('source') : 'camera';
el.source.value = wantedSource;
el.source.addEventListener('change', () => {
  sourceNotice = '';
  sourceFallback = false;
  renderSource();
  acquire();
});

// A <video> element (never shown) that plays `track`, for drawing on the canvas.
function playTrack(track) {
  const v = document.createElement('video');
  v.muted = true;
  v.playsInline = true;
  v.srcObject = new MediaStream([track]);
  v.play().catch(() => {});
  return v;
}

function roundedRect(ctx, x, y, w, h, r) {
  if (typeof ctx.roundRect === 'function') {
    ctx.roundRect(x, y, w, h, r);
    return;
  }
  ctx.moveTo(x + r, y);
  ctx.arcTo(x + w, y, x + w, y + h, r);
  ctx.arcTo(x + w, y + h, x, y + h, r);
  ctx.arcTo(x, y + h, x, y, r);
  ctx.arcTo(x, y, x + w, y, r);
  ctx.closePath();
}

// Draws the screen (and the camera) onto a 1280×720 canvas, OUT_FPS times a second.
function compose(screenTrack, cameraTrack) {
  const canvas = document.createElement('canvas');
  canvas.width = OUT_W;
  canvas.height = OUT_H;
  const ctx = canvas.getContext('2d', { alpha: false });
  const screen = playTrack(screenTrack);
  const camera = cameraTrack ? playTrack(cameraTrack) : null;
  const draw = () => {
    ctx.fillStyle = '#000';
    ctx.fillRect(0, 0, OUT_W, OUT_H);
    if (screen.videoWidth && screen.videoHeight) {
      // The whole screen, as large as it fits (black bars where its shape differs).
      const k = Math.min(OUT_W / screen.videoWidth, OUT_H / screen.videoHeight);
      const w = Math.round(screen.videoWidth * k);
      const h = Math.round(screen.videoHeight * k);
      ctx.drawImage(screen, Math.round((OUT_W - w) / 2), Math.round((OUT_H - h) / 2), w, h);
    }
    if (camera && camera.videoWidth && camera.videoHeight) {
      const w = Math.round(OUT_W * 0.25);
      const h = Math.round(w * camera.videoHeight / camera.videoWidth);
      const margin = 24;
      const x = OUT_W - w - margin;
      const y = OUT_H - h - margin;
      ctx.save();
      ctx.beginPath();
      roundedRect(ctx, x, y, w, h, 14);
      ctx.shadowColor = 'rgba(0, 0, 0, 0.45)';
      ctx.shadowBlur = 12;
      ctx.fillStyle = '#000';
      ctx.fill();
      ctx.shadowColor = 'transparent';
      ctx.clip();
      ctx.drawImage(camera, x, y, w, h);
      ctx.restore();
    }
  };
  draw();
  // A worker's clock: it keeps its pace while this tab is in the background.
  let worker = null;
  let timer = 0;
  try {
    worker = new Worker(new URL('./ticker.js', import.meta.url));
    worker.onmessage = draw;
    worker.postMessage({ fps: OUT_FPS });
  } catch {
    worker = null;
    timer = setInterval(draw, 1000 / OUT_FPS);
  }
  const track = canvas.captureStream(OUT_FPS).getVideoTracks()[0];
  return {
    track,
    stop() {
      if (worker) worker.terminate();
      clearInterval(timer);
      track.stop();
      for (const v of [screen, camera]) {
        if (!v) continue;
        v.pause();
        v.srcObject = null;
      }
    },
  };
}

// The microphone alone, or mixed with the shared screen's sound when there is some.
function mixAudio(micTrack, screenTrack) {
  if (!screenTrack) return { track: micTrack || null, ctx: null };
  const AC = window.AudioContext || window.webkitAudioContext;
  if (!AC) return { track: micTrack || screenTrack, ctx: null };
  const ctx = new AC({ sampleRate: 48000 });
  const out = ctx.createMediaStreamDestination();
  for (const t of [micTrack, screenTrack]) {
    if (t) ctx.createMediaStreamSource(new MediaStream([t])).connect(out);
  }
  // Without a click on the page first, the context may start suspended: it resumes at the
  // first click or key press.
  ctx.resume().catch(() => {});
  return { track: out.stream.getAudioTracks()[0] || micTrack || null, ctx };
}

for (const type of ['pointerdown', 'keydown']) {
  window.addEventListener(type, () => {
    const ctx = raw.audio;
    if (ctx && ctx.state === 'suspended') ctx.resume().catch(() => {});
  }, true);
}

function stopRaw(keepScreen = false) {
  if (raw.compositor) raw.compositor.stop();
  if (raw.audio) raw.audio.close().catch(() => {});
  if (raw.camera) raw.camera.getTracks().forEach((t) => t.stop());
  if (raw.screen && !keepScreen) raw.screen.getTracks().forEach((t) => t.stop());
  raw = { camera: null, screen: keepScreen ? raw.screen : null, compositor: null, audio: null };
}

function screenLive() {
  return raw.screen !== null && raw.screen.getVideoTracks().some((t) => t.readyState === 'live');
}

// Why the screen cannot be shared, in words.
function shareErrorText(err) {
  const name = err && err.name;
  if (!canShare) return 'This browser cannot share the screen';
  if (name === 'NotAllowedError' || name === 'PermissionDeniedError') return 'Screen sharing was refused or cancelled';
  if (name === 'NotFoundError') return 'There is no screen to share here';
  if (name === 'NotReadableError' || name === 'AbortError') return 'The screen could not be captured';
  return `The screen could not be shared${err && err.message ? ` (${err.message})` : ''}`;
}

// The shared screen was stopped from the browser's own "Stop sharing" button (or the shared
// window closed): end the broadcast, say why, and go back to the camera.
async function screenEnded(screen) {
  if (raw.screen !== screen) return;
  const wasLive = stoppable();
  sourceFallback = false;
  sourceNotice = wasLive
    ? 'Screen sharing was stopped from the browser, so the broadcast ended'
    : 'Screen sharing was stopped from the browser — back to the camera';
  if (wasLive && pub) {
    userStopped = true;
    setState('stopping');
    setStatus('Screen sharing stopped — ending the broadcast…', 'busy');
    await pub.stop();
    if (lg.state === 'stopping') setState('stopped');
  }
  if (busy()) return;
  if (lg.state === 'stopped' || lg.state === 'error') {
    setStatus(`${sourceNotice} — press Go live to start again`, 'warn');
  }
  el.source.value = 'camera';
  renderSource();
  acquire();
}

async function acquire() {
  if (busy()) return;
  const generation = ++acquiring;
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    fail('insecure_context', 'camera access needs a secure page',
      'This page cannot use the camera here — open it over HTTPS (or on localhost)');
    showStage('Camera unavailable');
    return;
  }
  let source = el.source.value;
  const video = { ...VIDEO };
  if (el.camera.value) video.deviceId = { exact: el.camera.value };
  const audio = el.microphone.value ? { deviceId: { exact: el.microphone.value } } : true;

  // Some cameras cannot be opened twice: let go of the old stream first. A screen already
  // shared is kept (changing the camera or microphone does not ask for the screen again).
  const switching = stream !== null;
  const keepScreen = source !== 'camera' && screenLive();
  releaseStream(keepScreen);
  showStage(source === 'camera' ? 'Waiting for the camera…' : 'Waiting for the screen…');
  if (switching) {
    setState('idle');
    setStatus(source === 'camera' ? 'Opening the camera and microphone…' : 'Opening the screen and microphone…', 'busy');
  } else if (source !== 'camera') {
    setStatus('Asking which screen to share…', 'busy');
  }

  // The screen first: the browser asks while the click that chose it still counts.
  let screen = keepScreen ? raw.screen : null;
  if (source !== 'camera' && !screen) {
    try {
      if (!canShare) throw new Error('getDisplayMedia is not available');
      screen = await navigator.mediaDevices.getDisplayMedia({ video: { frameRate: OUT_FPS }, audio: true });
    } catch (err) {
      if (generation !== acquiring) return;
      sourceNotice = `${shareErrorText(err)} — using the camera instead`;
      sourceFallback = true;
      setStatus(`${sourceNotice}…`, 'warn');
      source = 'camera';
      el.source.value = 'camera';
      renderSource();
    }
    if (generation !== acquiring) {
      if (screen) screen.getTracks().forEach((t) => t.stop());
      return;
    }
  }
  if (source === 'camera' && raw.screen) {
    raw.screen.getTracks().forEach((t) => t.stop());
    raw.screen = null;
  }

  let next;
  try {
    next = await navigator.mediaDevices.getUserMedia(source === 'screen' ? { audio } : { video, audio });
  } catch (err) {
    if (generation !== acquiring) return;
    if (screen) screen.getTracks().forEach((t) => t.stop());
    raw.screen = null;
    cameraError(err);
    return;
  }
  if (generation !== acquiring) {
    next.getTracks().forEach((t) => t.stop());
    if (screen && !keepScreen) screen.getTracks().forEach((t) => t.stop());
    return;
  }
  raw.camera = next;
  if (source === 'camera') {
    stream = next;
  } else {
    raw.screen = screen;
    raw.compositor = compose(screen.getVideoTracks()[0], source === 'pip' ? next.getVideoTracks()[0] : null);
    const mix = mixAudio(next.getAudioTracks()[0], screen.getAudioTracks()[0]);
    raw.audio = mix.ctx;
    stream = new MediaStream([raw.compositor.track, ...(mix.track ? [mix.track] : [])]);
    if (!keepScreen) {
      const shared = screen;
      shared.getVideoTracks()[0].addEventListener('ended', () => screenEnded(shared));
    }
  }
  const current = stream;
  lg.source = source;
  el.preview.srcObject = stream;
  el.stageEmpty.hidden = true;
  for (const track of next.getTracks()) {
    track.addEventListener('ended', () => {
      if (stream === current && !busy()) {
        fail('device_lost', 'the camera or microphone was disconnected',
          'The camera or microphone was disconnected — plug it back in or choose another one');
        showStage('Camera disconnected');
      }
    });
  }
  await listDevices();
  await checkEncoders(current);
  if (generation !== acquiring) return;
  if (!encoders.webcodecs && !encoders.mediarecorder) {
    fail('no_supported_type', 'this browser cannot record H.264 or VP8 video with MediaRecorder',
      'Your browser cannot encode H.264 or VP8 video (neither WebCodecs nor MediaRecorder)');
    return;
  }
  if (!busy() && !destinationsFailed) {
    setState('ready');
    setStatus(readyText(), readyTone());
  }
  maybeAutostart();
}

function releaseStream(keepScreen = false) {
  stopRaw(keepScreen);
  if (!stream) return;
  stream.getTracks().forEach((t) => t.stop());
  stream = null;
  el.preview.srcObject = null;
  updateControls();
}

function showStage(text) {
  el.stageText.textContent = text;
  el.stageEmpty.hidden = false;
}

function cameraError(err) {
  const name = err && err.name;
  if (name === 'NotAllowedError' || name === 'SecurityError' || name === 'PermissionDeniedError') {
    fail('permission_denied', 'camera permission was refused',
      "Camera permission was refused — allow camera and microphone in the browser's site settings and reload");
    showStage('No permission for the camera');
  } else if (name === 'NotFoundError' || name === 'DevicesNotFoundError' || name === 'OverconstrainedError') {
    fail('no_device', 'no camera or microphone found', 'No camera or microphone found');
    showStage('No camera found');
  } else if (name === 'NotReadableError' || name === 'TrackStartError' || name === 'AbortError') {
    fail('device_busy', 'the camera or microphone could not be started',
      'The camera or microphone could not be started — close other apps that use it and try again');
    showStage('Camera busy');
  } else {
    const message = `the camera or microphone could not be opened${err && err.message ? `: ${err.message}` : ''}`;
    fail('device_error', message, capitalize(message));
    showStage('Camera unavailable');
  }
  listDevices();
}

async function listDevices() {
  let devices = [];
  try {
    devices = await navigator.mediaDevices.enumerateDevices();
  } catch {
    return;
  }
  const current = (kind) => {
    const track = raw.camera && (kind === 'videoinput' ? raw.camera.getVideoTracks() : raw.camera.getAudioTracks())[0];
    return track ? track.getSettings().deviceId || '' : '';
  };
  fillDeviceSelect(el.camera, devices.filter((d) => d.kind === 'videoinput'), current('videoinput'), 'Camera');
  fillDeviceSelect(el.microphone, devices.filter((d) => d.kind === 'audioinput'), current('audioinput'), 'Microphone');
  updateControls();
}

function fillDeviceSelect(select, devices, selected, noun) {
  const usable = devices.filter((d) => d.deviceId);
  const keep = selected || select.value;
  select.replaceChildren();
  if (usable.length === 0) {
    select.append(new Option(stream ? `Default ${noun.toLowerCase()}` : 'Not available', ''));
    return;
  }
  usable.forEach((d, i) => {
    select.append(new Option(d.label || `${noun} ${i + 1}`, d.deviceId));
  });
  if (keep && usable.some((d) => d.deviceId === keep)) select.value = keep;
}

el.camera.addEventListener('change', () => acquire());
el.microphone.addEventListener('change', () => acquire());
if (navigator.mediaDevices) {
  navigator.mediaDevices.addEventListener('devicechange', () => { if (stream) listDevices(); });
}

// ---------------------------------------------------------------- encoder
//
// Auto: WebCodecs (H.264 straight from VideoEncoder, a frame per message: the lowest delay)
// where the browser has it for this camera, which in practice is Chromium; MediaRecorder
// elsewhere (Firefox has no MediaStreamTrackProcessor, and its WebCodecs H.264 lags 1–1.6 s).

// What the camera in use can be encoded with; run on every new camera.
async function checkEncoders(forStream) {
  let config = null;
  try {
    config = await videoEncoderConfig(forStream.getVideoTracks()[0]);
  } catch {
    config = null;
  }
  if (forStream !== stream) return; // a newer camera is being checked
  encoders.webcodecs = config;
  encoders.checked = true;
  renderIngest();
}

// {ingest, mimeType} for the Encoder chosen: what the next broadcast will use (ingest null when
// the choice is not possible here).
function planIngest() {
  const choice = el.ingest.value;
  const audio = stream ? stream.getAudioTracks().length > 0 : true;
  const wc = encoders.webcodecs
    ? { ingest: 'webcodecs', mimeType: audio ? `${encoders.webcodecs.codec},opus` : encoders.webcodecs.codec } : null;
  const mr = encoders.mediarecorder ? { ingest: 'mediarecorder', mimeType: encoders.mediarecorder } : null;
  if (!encoders.checked) {
    // The camera is not open yet: what Auto will most likely pick.
    return choice === 'mediarecorder' ? (mr || { ingest: null, mimeType: null })
      : { ingest: null, mimeType: lg.mimeType };
  }
  if (choice === 'webcodecs') return wc || { ingest: null, mimeType: null };
  if (choice === 'mediarecorder') return mr || { ingest: null, mimeType: null };
  return wc || mr || { ingest: null, mimeType: null };
}

function ingestName(ingest) {
  return ingest === 'webcodecs' ? 'WebCodecs' : ingest === 'mediarecorder' ? 'MediaRecorder' : 'Recording as';
}

function renderIngest() {
  const wcOption = el.ingest.querySelector('option[value="webcodecs"]');
  const mrOption = el.ingest.querySelector('option[value="mediarecorder"]');
  const wcKnownMissing = encoders.checked && !encoders.webcodecs;
  wcOption.disabled = wcKnownMissing;
  wcOption.textContent = wcKnownMissing ? 'WebCodecs (not available in this browser)' : 'WebCodecs (low latency)';
  mrOption.disabled = !encoders.mediarecorder;
  mrOption.textContent = encoders.mediarecorder ? 'MediaRecorder' : 'MediaRecorder (not available in this browser)';
  if (el.ingest.selectedOptions[0] && el.ingest.selectedOptions[0].disabled) el.ingest.value = 'auto';

  let hint = '';
  let tone = '';
  const plan = planIngest();
  if (!encoders.checked) {
    hint = '';
  } else if (el.ingest.value === 'auto') {
    hint = plan.ingest === 'webcodecs'
      ? `Uses WebCodecs here: ${codecLabel(encoders.webcodecs.codec)}, sent frame by frame for the lowest delay.`
      : hasWebCodecs()
        ? 'Uses MediaRecorder here: this browser cannot encode the camera’s video with WebCodecs.'
        : 'Uses MediaRecorder here: this browser’s WebCodecs is not suited to live video.';
  } else if (el.ingest.value === 'webcodecs') {
    hint = `${codecLabel(encoders.webcodecs.codec)}, sent frame by frame; the server passes it through untouched.`;
  } else {
    hint = 'Records in ¼-second pieces: simplest, with a little more delay.';
  }
  if (wantedIngest === 'webcodecs' && wcKnownMissing) {
    hint = hasWebCodecs()
      ? 'WebCodecs was asked for, but this browser cannot encode this camera’s video with it: MediaRecorder is used instead.'
      : 'WebCodecs was asked for, but this browser cannot send live video with it: MediaRecorder is used instead.';
    tone = 'warn';
  }
  el.ingestHelp.textContent = hint;
  if (tone) el.ingestHelp.dataset.tone = tone;
  else delete el.ingestHelp.dataset.tone;
  if (!busy() && lg.state !== 'error') {
    // What will be sent, shown until a broadcast starts.
    lg.ingest = plan.ingest;
    if (plan.mimeType) lg.mimeType = plan.mimeType;
    el.statIngest.textContent = ingestName(plan.ingest);
    el.statMime.textContent = lg.mimeType || '—';
  }
}

// "avc1.42e01f" → "H.264 Constrained Baseline 3.1"
function codecLabel(codec) {
  const m = /^avc1\.([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})$/i.exec(codec || '');
  if (!m) return codec || 'H.264';
  const profile = { '42': 'Constrained Baseline', '4d': 'Main', '64': 'High' }[m[1].toLowerCase()] || 'H.264';
  const level = parseInt(m[3], 16) / 10;
  return `H.264 ${profile} ${level}`;
}

el.ingest.value = wantedIngest;
el.ingest.addEventListener('change', () => {
  renderIngest();
  updateControls();
  if (lg.state === 'ready' || lg.state === 'stopped') setStatus(readyText(), readyTone());
});

// ---------------------------------------------------------------- destinations

const MAX_DESTINATIONS = 8; // per broadcast, docs/protocol.md

let destinationsFailed = false;

function destinationBoxes() {
  return [...el.destinationList.querySelectorAll('input[name="destination"]')];
}

function chosenDestinations() {
  return destinationBoxes().filter((b) => b.checked).map((b) => b.value);
}

// What the server said about a destination, or null for a name it does not offer.
function destinationInfo(name) {
  return (destinations || []).find((d) => d.name === name) || null;
}

// ---------------------------------------------------------------- stream keys
//
// Destinations marked key_from_client take the streamer's own key. It lives only in its
// password field: it is sent in `start` and is never stored, logged, put in the address or
// in window.__livegate.

const keyInputs = new Map(); // destination name → its key <input>

function missingKeys() {
  return chosenDestinations().filter((name) => {
    const input = keyInputs.get(name);
    return input && input.value.trim() === '';
  });
}

function chosenKeys() {
  const keys = {};
  for (const name of chosenDestinations()) {
    const input = keyInputs.get(name);
    if (input && input.value.trim()) keys[name] = input.value.trim();
  }
  return keys;
}

// The key field under a destination's card, shown while the destination is checked.
function keyPanel(name, id) {
  // A form of its own (browsers expect a password field in one), which never submits:
  // method "dialog" goes nowhere, and submitting is cancelled anyway. Enter goes live.
  const panel = document.createElement('form');
  panel.className = 'key-panel';
  panel.id = `${id}-keybox`;
  panel.hidden = true;
  panel.method = 'dialog';
  panel.noValidate = true;
  panel.setAttribute('autocomplete', 'off');
  panel.addEventListener('submit', (ev) => ev.preventDefault());
  const label = document.createElement('label');
  label.className = 'key-label';
  label.htmlFor = `${id}-key`;
  label.textContent = `Stream key for ${name}`;
  const row = document.createElement('div');
  row.className = 'key-row';
  const input = document.createElement('input');
  input.type = 'password';
  input.id = `${id}-key`;
  input.className = 'key-input';
  input.autocomplete = 'off';
  input.setAttribute('spellcheck', 'false');
  input.setAttribute('autocapitalize', 'off');
  input.setAttribute('autocorrect', 'off');
  input.setAttribute('aria-describedby', `${id}-key-hint`);
  input.setAttribute('aria-required', 'true');
  // Password managers: this is not the streamer's password for this site.
  input.setAttribute('data-lpignore', 'true');
  input.setAttribute('data-1p-ignore', '');
  input.setAttribute('data-bwignore', '');
  const toggle = document.createElement('button');
  toggle.type = 'button';
  toggle.className = 'key-toggle';
  toggle.setAttribute('aria-pressed', 'false');
  toggle.setAttribute('aria-controls', input.id);
  toggle.setAttribute('aria-label', `Show stream key for ${name}`);
  toggle.innerHTML = '<svg viewBox="0 0 24 24" aria-hidden="true" focusable="false">'
    + '<path class="eye" d="M2.5 12s3.5-6.5 9.5-6.5S21.5 12 21.5 12 18 18.5 12 18.5 2.5 12 2.5 12z"></path>'
    + '<circle class="eye" cx="12" cy="12" r="3"></circle>'
    + '<path class="slash" d="M4 4l16 16"></path></svg><span>Show</span>';
  toggle.addEventListener('click', () => showKey(input, toggle, input.type === 'password'));
  input.addEventListener('input', () => input.removeAttribute('aria-invalid'));
  input.addEventListener('keydown', (ev) => {
    if (ev.key === 'Enter' && !ev.isComposing && !el.golive.disabled) {
      ev.preventDefault();
      goLive();
    }
  });
  row.append(input, toggle);
  const hint = document.createElement('p');
  hint.className = 'help key-hint';
  hint.id = `${id}-key-hint`;
  hint.textContent = `Your key from ${name}'s dashboard; it is sent only to this server and never stored`;
  panel.append(label, row, hint);
  keyInputs.set(name, input);
  return panel;
}

function showKey(input, toggle, show) {
  input.type = show ? 'text' : 'password';
  toggle.setAttribute('aria-pressed', String(show));
}

// Keys are hidden again when a broadcast starts: the page may well be on screen.
function hideKeys() {
  for (const input of keyInputs.values()) {
    const toggle = input.parentElement.querySelector('.key-toggle');
    if (toggle) showKey(input, toggle, false);
  }
}

function syncKeyPanels() {
  for (const box of destinationBoxes()) {
    const panel = document.getElementById(`${box.id}-keybox`);
    if (!panel) continue;
    panel.hidden = !box.checked;
    box.closest('.choice').toggleAttribute('data-expanded', box.checked);
  }
}

// After missing_key or bad_key: put the streamer in the key field the server complained about.
function focusKey(message) {
  const named = sending.filter((name) => keyInputs.has(name) && chosenDestinations().includes(name));
  const name = named.find((n) => String(message).includes(`"${n}"`)) || named[0];
  const input = name && keyInputs.get(name);
  if (!input) return;
  input.setAttribute('aria-invalid', 'true');
  input.focus();
  input.select();
}

// ---------------------------------------------------------------- output profile
//
// One profile for the whole broadcast (the server encodes once). Offered: the profiles every
// chosen destination lists. A destination without a list takes the video as it comes; one with
// a forced `profile` makes the whole broadcast use it.

const AS_CAPTURED = 'As captured (no server re-encode)';

function planProfile() {
  const chosen = chosenDestinations().map(destinationInfo).filter(Boolean);
  const forcedBy = chosen.filter((d) => typeof d.profile === 'string' && d.profile);
  const forced = [...new Set(forcedBy.map((d) => d.profile))];
  if (forced.length > 1) return { kind: 'conflict', forcedBy, forced, options: [] };
  if (forced.length === 1) return { kind: 'forced', forcedBy, chosen, forced, options: forced };
  if (chosen.length === 0) return { kind: 'none', options: [] };
  const plain = chosen.filter((d) => !Array.isArray(d.profiles) || d.profiles.length === 0);
  if (plain.length) return { kind: 'captured', plain, options: [] };
  let offered = profiles.map((p) => p.name);
  for (const d of chosen) offered = offered.filter((n) => d.profiles.includes(n));
  if (offered.length === 0) return { kind: 'disjoint', chosen, options: [] };
  return { kind: 'choose', chosen, options: offered };
}

let profileOptionsShown = '';

function renderProfile() {
  if (profiles.length === 0 || !(destinations || []).some((d) => d.profile || (Array.isArray(d.profiles) && d.profiles.length))) {
    // No destination of this server can be re-encoded to a profile: nothing to choose.
    el.profileField.hidden = true;
    el.profile.value = '';
    return;
  }
  el.profileField.hidden = false;
  const plan = planProfile();
  const options = [];
  if (plan.kind === 'conflict') options.push(['', `Can’t combine ${andList(plan.forced)}`]);
  else if (plan.kind !== 'forced') options.push(['', AS_CAPTURED]);
  for (const name of plan.options) options.push([name, profileLabel(name)]);
  const shown = JSON.stringify(options);
  if (shown !== profileOptionsShown) {
    profileOptionsShown = shown;
    el.profile.replaceChildren(...options.map(([value, text]) => new Option(text, value)));
  }
  let value = '';
  if (plan.kind === 'forced') value = plan.forced[0];
  else if (plan.kind === 'choose' && plan.options.includes(wantedProfile)) value = wantedProfile;
  el.profile.value = value;

  let hint = '';
  let tone = '';
  switch (plan.kind) {
    case 'none':
      hint = 'Depends on the destinations you choose.';
      break;
    case 'captured':
      hint = `${andList(plan.plain.map((d) => d.name))} ${plan.plain.length > 1 ? 'take' : 'takes'} the video as it comes, so the broadcast goes as captured.`;
      break;
    case 'forced': {
      const who = plan.forcedBy.map((d) => d.name);
      hint = `${andList(who)} always ${who.length > 1 ? 'receive' : 'receives'} ${plan.forced[0]}`;
      hint += plan.chosen.length > who.length ? `, so the whole broadcast is sent in ${plan.forced[0]}.` : '.';
      break;
    }
    case 'conflict':
      hint = `${andList(plan.forcedBy.map((d) => `${d.name} always receives ${d.profile}`))}: they can’t be combined in one broadcast.`;
      tone = 'warn';
      break;
    case 'disjoint':
      hint = `${andList(plan.chosen.map((d) => d.name))} have no quality in common, so the broadcast goes as captured.`;
      break;
    default:
      hint = 'Choosing a quality makes the server re-encode the video.';
  }
  if (wantedProfile && value !== wantedProfile && plan.kind !== 'none' && plan.kind !== 'conflict') {
    if (!profiles.some((p) => p.name === wantedProfile)) {
      hint += ` “${wantedProfile}” is not a quality this server offers.`;
    } else if (plan.kind === 'choose' || plan.kind === 'disjoint') {
      const lacking = plan.chosen.filter((d) => !d.profiles.includes(wantedProfile)).map((d) => d.name);
      hint += ` ${wantedProfile} is not offered for ${andList(lacking)}.`;
    } else if (plan.kind === 'captured') {
      hint += ` ${wantedProfile} is not offered for ${andList(plan.plain.map((d) => d.name))}.`;
    }
  }
  el.profileHelp.textContent = hint;
  if (tone) el.profileHelp.dataset.tone = tone;
  else delete el.profileHelp.dataset.tone;
}

// "720p — 1280×720, 30 fps, 3 Mbit/s"
function profileLabel(name) {
  const p = profiles.find((q) => q.name === name);
  if (!p) return name;
  const parts = [];
  if (p.width && p.height) parts.push(`${p.width}×${p.height}`);
  if (p.fps) parts.push(`${p.fps} fps`);
  if (p.video_bitrate) parts.push(mbps(p.video_bitrate));
  return parts.length ? `${name} — ${parts.join(', ')}` : name;
}

function profileSize(name) {
  const p = profiles.find((q) => q.name === name);
  return p && p.width && p.height ? `${p.width}×${p.height}` : '';
}

el.profile.addEventListener('change', () => {
  wantedProfile = el.profile.value;
  renderProfile();
  updateControls();
  if (lg.state === 'ready' || lg.state === 'stopped') setStatus(readyText(), readyTone());
});

async function loadDestinations() {
  let list;
  try {
    const res = await fetch('/api/v1/destinations', { headers: { Accept: 'application/json' } });
    if (!res.ok) throw new Error(`the server answered ${res.status}`);
    const body = await res.json();
    list = Array.isArray(body.destinations) ? body.destinations : [];
    profiles = Array.isArray(body.profiles)
      ? body.profiles.filter((p) => p && typeof p.name === 'string' && p.name) : [];
  } catch (err) {
    destinationsFailed = true;
    el.destinationHelp.textContent = 'The list of destinations could not be loaded.';
    fail('destinations_unavailable', `could not load the destinations: ${err.message}`,
      'Could not load the list of destinations from the server — check that livegate is running and reload');
    return;
  }
  destinations = list;
  if (list.length === 0 && wantedDestinations.length === 0) {
    destinationsFailed = true;
    el.destinationHelp.textContent = 'None configured on this server.';
    fail('no_destinations', 'this server has no destinations configured',
      'This server has no destinations configured — ask its operator to add one');
    return;
  }
  renderChoices(list);
  renderProfile();
  el.destinationHelp.textContent = list.length > 1
    ? `Choose one or more${list.length > MAX_DESTINATIONS ? ` (up to ${MAX_DESTINATIONS})` : ''} — the broadcast goes to each of them at once.`
    : '';
  updateControls();
  if (lg.state === 'ready') setStatus(readyText(), readyTone());
  maybeAutostart();
}

// One checkbox per destination; the URL's names are checked, or the only one there is.
function renderChoices(list) {
  const items = list.map((d) => ({
    name: d.name,
    note: d.builtin ? 'built-in' : '',
    description: d.description || '',
    keyFromClient: d.key_from_client === true,
  }));
  for (const name of wantedDestinations) {
    if (!list.some((d) => d.name === name)) {
      // Kept so that the server's own answer explains the problem.
      items.push({ name, note: 'not offered by this server', description: 'Not in this server’s list.', unknown: true });
    }
  }
  const checked = new Set(wantedDestinations.length ? wantedDestinations : list.length === 1 ? [list[0].name] : []);
  keyInputs.clear();
  el.destinationList.replaceChildren(...items.flatMap((item, i) => {
    const card = choice(item, i, checked.has(item.name));
    return item.keyFromClient ? [card, keyPanel(item.name, `destination-${i}`)] : [card];
  }));
  syncKeyPanels();
}

function choice(item, i, checked) {
  const id = `destination-${i}`;
  const label = document.createElement('label');
  label.className = 'choice';
  if (item.unknown) label.dataset.unknown = '';
  const box = document.createElement('input');
  box.type = 'checkbox';
  box.name = 'destination';
  box.value = item.name;
  box.id = id;
  box.checked = checked;
  // The label holds the description too; name the box by its name alone and let the
  // description be read as its description.
  box.setAttribute('aria-labelledby', `${id}-name`);
  const text = document.createElement('span');
  text.className = 'choice-text';
  const name = document.createElement('span');
  name.className = 'choice-name';
  name.id = `${id}-name`;
  name.append(item.name);
  if (item.note) {
    const note = document.createElement('span');
    note.className = 'choice-note';
    note.textContent = `(${item.note})`;
    name.append(' ', note);
  }
  text.append(name);
  if (item.description) {
    const desc = document.createElement('span');
    desc.className = 'choice-desc';
    desc.id = `${id}-desc`;
    desc.textContent = item.description;
    box.setAttribute('aria-describedby', desc.id);
    text.append(desc);
  }
  label.append(box, text);
  return label;
}

el.destinationList.addEventListener('change', (ev) => {
  if (ev.target.name !== 'destination') return;
  syncKeyPanels();
  renderProfile();
  updateControls();
  if (lg.state === 'ready' || lg.state === 'stopped') setStatus(readyText(), readyTone());
});

// Typing a key: Go live becomes possible once every chosen destination has one.
el.destinationList.addEventListener('input', (ev) => {
  if (!ev.target.classList.contains('key-input')) return;
  updateControls();
  if (lg.state === 'ready' || lg.state === 'stopped') setStatus(readyText(), readyTone());
});

function maybeAutostart() {
  if (!autostart || autostarted) return;
  if (!stream || !destinations || chosenDestinations().length === 0 || lg.state !== 'ready') return;
  if (blocker() !== '') return; // a key to type, or destinations that cannot go together
  autostarted = true;
  goLive();
}

// ---------------------------------------------------------------- publish token
//
// A server with tokens (docs/security.md) needs one in `start`. A web app can hand it over in
// the address's fragment (#token=…, which browsers never send to a server), read once here
// and taken out of the address; or the streamer types it after a refusal. Like stream keys,
// it lives only in its field and is never stored, logged or put in window.__livegate.

const tokenInput = $('token');
const tokenField = $('token-field');
{
  const fragment = new URLSearchParams(location.hash.slice(1));
  const given = fragment.get('token');
  if (given) {
    tokenInput.value = given.trim();
    fragment.delete('token');
    const rest = fragment.toString();
    history.replaceState(null, '', location.pathname + location.search + (rest ? `#${rest}` : ''));
  }
  tokenField.addEventListener('submit', (ev) => ev.preventDefault());
  tokenInput.addEventListener('input', () => tokenInput.removeAttribute('aria-invalid'));
  tokenInput.addEventListener('keydown', (ev) => {
    if (ev.key === 'Enter' && !ev.isComposing && !el.golive.disabled) {
      ev.preventDefault();
      goLive();
    }
  });
}

// ---------------------------------------------------------------- going live

function goLive() {
  const chosen = chosenDestinations();
  const plan = planIngest();
  if (busy() || !stream || !plan.ingest || chosen.length === 0 || blocker() !== '') return;
  sending = chosen;
  sendingProfile = !el.profileField.hidden ? el.profile.value : '';
  backLiveAt = 0;
  Object.assign(lg, {
    bytesSent: 0, chunksSent: 0, ready: null, lastStats: null, lastError: null, destinations: {}, profile: sendingProfile,
    ingest: plan.ingest, mimeType: plan.mimeType, framesEncoded: 0, framesDropped: 0, encoderQueue: 0, videoBitrate: 0,
    bitrates: [], encodeDelay: null, rtt: null, reconnects: 0, restarts: 0, bufferedAmount: 0, keyframeRequests: 0,
  });
  hideKeys();
  if (!sourceFallback) sourceNotice = '';
  userStopped = false;
  setState('connecting');
  setStatus('Connecting…', 'busy');
  resetHealth();

  const p = publish(stream, {
    destinations: chosen, ingest: el.ingest.value, mimeType: encoders.mediarecorder || undefined,
    profile: sendingProfile, keys: chosenKeys(), token: tokenInput.value.trim() || undefined,
  });
  pub = p;
  const mine = (fn) => (ev) => { if (pub === p) fn(ev); };

  // The client's own choice (Auto decides there, with the camera's size).
  p.addEventListener('ingest', mine(() => {
    lg.ingest = p.ingest;
    lg.mimeType = p.mimeType;
    lg.videoBitrate = p.videoBitrate;
    el.statIngest.textContent = ingestName(p.ingest);
    el.statMime.textContent = p.mimeType || '—';
  }));
  p.addEventListener('ready', mine((ev) => {
    lg.ready = ev.detail;
    lg.destinations = { ...p.destinations };
    renderFormat(ev.detail);
    renderDestinations();
  }));
  p.addEventListener('sent', mine(() => {
    lg.bytesSent = p.bytesSent;
    lg.chunksSent = p.chunksSent;
  }));
  p.addEventListener('bitrate', mine(() => {
    lg.videoBitrate = p.videoBitrate;
    lg.restarts = p.restarts;
    lg.bitrates.push({ t: Date.now(), bps: p.videoBitrate });
    if (lg.bitrates.length > 200) lg.bitrates.splice(0, lg.bitrates.length - 200);
    renderEncoder();
    renderLatency();
  }));
  p.addEventListener('keyframe', mine(() => {
    lg.keyframeRequests = p.keyframeRequests;
  }));
  p.addEventListener('draining', mine(() => {
    // The server is restarting: say so, counting down, while the broadcast goes on.
    lg.drainingUntil = p.drainingUntil;
    const show = () => { if (pub === p && lg.state === 'live') setStatus(liveText(), liveTone()); };
    show();
    const timer = setInterval(() => (pub === p && busy() ? show() : clearInterval(timer)), 1000);
  }));
  p.addEventListener('rtt', mine(() => {
    lg.rtt = p.rtt;
    renderLatency();
  }));
  p.addEventListener('resumed', mine(() => {
    lg.ready = p.ready;
    lg.reconnects = p.reconnects;
    renderEncoder();
  }));
  p.addEventListener('stats', mine((ev) => {
    lg.lastStats = ev.detail;
    lg.destinations = { ...p.destinations };
    renderHealth();
    renderDestinations();
  }));
  p.addEventListener('destination', mine(() => {
    lg.destinations = { ...p.destinations };
    renderDestinations();
    if (lg.state === 'live') setStatus(liveText(), liveTone());
  }));
  p.addEventListener('state', mine((ev) => {
    const { state } = ev.detail;
    copyCounters();
    if (state === 'live') {
      setState('live');
      if (ev.detail.previous === 'reconnecting') {
        // Said for a few seconds (destination news that follows keeps it), then the usual text.
        backLiveAt = Date.now();
        clearTimeout(backLiveTimer);
        backLiveTimer = setTimeout(() => { if (pub === p && lg.state === 'live') setStatus(liveText(), liveTone()); }, BACK_LIVE_MS + 100);
      }
      setStatus(liveText(), liveTone());
    } else if (state === 'reconnecting') {
      // The server keeps the broadcast going for a moment: the client takes it back over.
      setState('reconnecting');
      setStatus('Network lost — reconnecting…', 'busy');
      renderHealth();
    } else if (state === 'stopping') {
      setState('stopping');
      setStatus('Stopping…', 'busy');
    } else if (state === 'ended') {
      setState('stopped');
      setStatus(userStopped ? 'Stopped — press Go live to start again'
        : 'The server ended the broadcast — press Go live to start again', userStopped ? 'ok' : 'info');
      renderHealth();
      renderDestinations();
    }
  }));
  p.addEventListener('error', mine((ev) => {
    const d = ev.detail || {};
    const code = d.code || 'error';
    const message = d.message || 'the broadcast failed';
    copyCounters();
    lg.destinations = { ...p.destinations };
    fail(code, message, errorText(d));
    renderHealth();
    renderDestinations();
    if (code === 'unauthorized' || code === 'destination_not_allowed') {
      // The server wants a (different) token: show its field and go there.
      tokenField.hidden = false;
      tokenInput.setAttribute('aria-invalid', 'true');
      tokenInput.focus();
    } else if (code === 'missing_key' || code === 'bad_key') focusKey(message);
    else if (code === 'destination_failed') {
      // A key the destination refused: back to that key's field.
      const refused = failedDestinations().find((f) => keyInputs.has(f.name) && /stream key/i.test(f.reason || ''));
      if (refused) focusKey(`"${refused.name}"`);
    }
    else if ((code === 'profile_not_allowed' || code === 'unknown_profile') && !el.profile.disabled) el.profile.focus();
  }));
}

async function stopLive() {
  if (!pub || !stoppable()) return;
  userStopped = true;
  setState('stopping');
  setStatus('Stopping…', 'busy');
  await pub.stop();
  if (lg.state === 'stopping') {
    setState('stopped');
    setStatus('Stopped — press Go live to start again', 'ok');
  }
}

const BACK_LIVE_MS = 8000;

// "Live on a, b — c lost the connection, reconnecting… — d failed: reason"
function liveText() {
  const names = pub && pub.ready && Array.isArray(pub.ready.destinations) ? pub.ready.destinations : sending;
  const stateOf = (name) => (lg.destinations[name] || {}).state;
  const failed = names.filter((n) => stateOf(n) === 'failed');
  const reconnecting = names.filter((n) => stateOf(n) === 'reconnecting');
  const live = names.filter((n) => !failed.includes(n) && !reconnecting.includes(n));
  let text = live.length ? `Live on ${live.join(', ')}` : 'No destination is receiving the broadcast';
  if (Date.now() - backLiveAt < BACK_LIVE_MS) text = `Back live after a network loss — ${text}`;
  for (const n of reconnecting) text += ` — ${n} lost the connection, reconnecting…`;
  for (const n of failed) {
    const reason = lg.destinations[n].reason;
    text += ` — ${n} failed${reason ? `: ${reason}` : ''}`;
  }
  if (pub && pub.drainingUntil) {
    const s = Math.max(0, Math.ceil((pub.drainingUntil - Date.now()) / 1000));
    text = `The server is restarting: your broadcast will end in ${s} s — ${text}`;
  }
  return sourceFallback && sourceNotice ? `${text} (${sourceNotice.replace(/ — using the camera instead$/, '')}: sending the camera instead)` : text;
}

function liveTone() {
  if (pub && pub.drainingUntil) return 'warn';
  return Object.values(lg.destinations).some((d) => d.state === 'failed' || d.state === 'reconnecting') ? 'warn' : 'live';
}

// The destinations that failed, with the server's reason.
function failedDestinations() {
  return Object.values(lg.destinations).filter((d) => d.state === 'failed');
}

function errorText(d) {
  if (d.type === 'error') {
    if (d.code === 'destination_failed') {
      // Name each destination with its reason ("twitch failed: the destination refused the
      // stream (check the stream key)") rather than the server's last reason alone.
      const failed = failedDestinations().filter((f) => f.reason);
      if (failed.length) {
        return `${failed.map((f) => `${f.name} failed: ${f.reason}`).join('; ')} — the broadcast ended. Press Go live to try again`;
      }
    }
    return capitalize(d.message || 'The server ended the broadcast'); // the server's words
  }
  switch (d.code) {
    case 'connection_lost':
      return 'Network lost — the connection to the server did not come back in time, so the broadcast ended. Check your network and press Go live to start again';
    case 'no_destination':
      return 'No destination was chosen — choose at least one, then press Go live';
    case 'connection_failed':
      return 'Could not connect to the server — check that livegate is running and reachable';
    case 'network_too_slow':
      return 'The network is too slow for this video — the broadcast was stopped';
    case 'no_supported_type':
      return 'Your browser cannot record H.264 or VP8 video with MediaRecorder';
    case 'webcodecs_unavailable':
      return 'Your browser cannot encode this camera’s video with WebCodecs — choose Auto or MediaRecorder as the Encoder';
    case 'encoder_error':
      return `${capitalize(d.message || 'the browser’s encoder failed')} — press Go live to try again, or choose MediaRecorder as the Encoder`;
    default:
      return capitalize(d.message || 'The broadcast failed');
  }
}

el.golive.addEventListener('click', () => goLive());
el.stop.addEventListener('click', () => stopLive());

window.addEventListener('pagehide', () => {
  if (pub) pub.close();
});

// ---------------------------------------------------------------- live health

function resetHealth() {
  el.sessionId.textContent = '';
  el.statTime.textContent = '00:00';
  el.onairTime.textContent = '00:00';
  el.statSent.textContent = '—';
  el.statSentTotal.textContent = '';
  el.statServer.textContent = '—';
  el.statServerTotal.textContent = '';
  el.statVideo.textContent = '—';
  el.statVideoDetail.textContent = '';
  el.statRtt.textContent = '—';
  el.statRttDetail.textContent = '';
  el.statTarget.textContent = '—';
  el.statTargetDetail.textContent = '';
  el.statAudio.textContent = '';
  el.statIngest.textContent = ingestName(lg.ingest);
  el.statMime.textContent = lg.mimeType || '—';
  el.statEncoder.hidden = true;
  el.statEncoder.textContent = '';
  el.destStates.replaceChildren(emptyItem('Connecting…'));
}

function renderFormat(ready) {
  el.sessionId.textContent = ready.session ? `Session ${ready.session}` : '';
  const [video, audio] = codecNames(lg.mimeType);
  const webcodecs = lg.ingest === 'webcodecs';
  if (ready.video === 'transcode' && sendingProfile) {
    // Resized to the chosen profile (even H.264 is then encoded again).
    el.statVideo.textContent = 'Re-encoded';
    const size = profileSize(sendingProfile);
    el.statVideoDetail.textContent = `to ${sendingProfile}${size ? ` · ${size}` : ''}`;
  } else {
    el.statVideo.textContent = ready.video === 'passthrough' ? 'Passthrough' : ready.video === 'transcode' ? 'Transcode' : '—';
    el.statVideoDetail.textContent = ready.video === 'passthrough' ? `${webcodecs ? 'WebCodecs ' : ''}${video}, untouched`
      : video === 'H.264' ? 'H.264, encoded again' : `${video} → H.264`;
  }
  el.statAudio.textContent = `· audio ${ready.audio === 'transcode' ? `${audio} → AAC` : audio}`;
  el.statIngest.textContent = ingestName(lg.ingest);
  el.statMime.textContent = lg.mimeType || '—';
  renderEncoder();
}

// "video/x-matroska;codecs=avc1,opus" or (WebCodecs) "avc1.42e01f,opus" → ['H.264', 'Opus']
function codecNames(mime) {
  const codecs = /codecs=([^;]+)/i.exec(mime || '');
  const text = codecs ? codecs[1] : /^[a-z0-9.,]+$/i.test(mime || '') ? mime : '';
  const names = { avc1: 'H.264', h264: 'H.264', vp8: 'VP8', vp9: 'VP9', av1: 'AV1', opus: 'Opus' };
  const list = text ? text.split(',').map((c) => {
    const name = c.trim().toLowerCase();
    return names[name] || names[name.split('.')[0]] || c.trim();
  }) : [];
  return [list[0] || 'video', list[1] || 'audio'];
}

// WebCodecs: "1,234 frames encoded · 0 dropped · encoder queue 0 · 0 reconnects";
// MediaRecorder: "0 recorder restarts · 0 reconnects".
function renderEncoder() {
  if (!pub || !lg.ready) {
    el.statEncoder.hidden = true;
    return;
  }
  const parts = lg.ingest === 'webcodecs' ? [
    `${num(lg.framesEncoded)} frames encoded`,
    `${num(lg.framesDropped)} dropped`,
    `encoder queue ${num(lg.encoderQueue)}`,
  ] : [plural(lg.restarts, 'recorder restart')];
  parts.push(plural(lg.reconnects, 'reconnect'));
  if (el.statEncoder.textContent !== parts.join(' · ')) {
    // Each figure stays on one line; the line breaks between them.
    el.statEncoder.replaceChildren(...parts.flatMap((part, i) => {
      const span = document.createElement('span');
      span.textContent = part;
      return i ? [' · ', span] : [span];
    }));
  }
  el.statEncoder.hidden = false;
}

// Round trip (and with WebCodecs the encoder's own delay), and the video's bitrate target.
function renderLatency() {
  if (!pub) return;
  el.statRtt.textContent = typeof lg.rtt === 'number' ? `${ms(lg.rtt)} ms` : '—';
  el.statRttDetail.textContent = typeof lg.encodeDelay === 'number' ? `encoder ${ms(lg.encodeDelay)} ms` : '';
  if (lg.videoBitrate && lg.ready) {
    showRate(el.statTarget, lg.videoBitrate);
    const max = pub.maxVideoBitrate;
    el.statTargetDetail.textContent = max && lg.videoBitrate < max ? `lowered from ${kbps(max)}` : 'full quality';
  }
}

// The client's counters, copied into window.__livegate.
function copyCounters() {
  if (!pub) return;
  lg.bytesSent = pub.bytesSent;
  lg.chunksSent = pub.chunksSent;
  lg.framesEncoded = pub.framesEncoded;
  lg.framesDropped = pub.framesDropped;
  lg.encoderQueue = pub.encoderQueue;
  lg.bufferedAmount = pub.bufferedAmount;
  lg.videoBitrate = pub.videoBitrate;
  lg.encodeDelay = pub.encodeDelay;
  lg.rtt = pub.rtt;
  lg.reconnects = pub.reconnects;
  lg.restarts = pub.restarts;
  lg.keyframeRequests = pub.keyframeRequests;
}

function renderHealth() {
  if (!pub) return;
  // Reconnecting: still on the air (the server keeps the broadcast), but nothing is sent.
  const running = lg.state === 'live' || lg.state === 'stopping' || lg.state === 'reconnecting';
  if (pub.liveSince) {
    const t = clock((running ? Date.now() : pub.endedAt || Date.now()) - pub.liveSince);
    el.statTime.textContent = t;
    el.onairTime.textContent = t;
  }
  if (running && lg.state !== 'reconnecting') {
    showRate(el.statSent, pub.bitrate);
  } else if (lg.state !== 'connecting') {
    el.statSent.textContent = '—';
  }
  el.statSentTotal.textContent = pub.bytesSent ? `${bytes(pub.bytesSent)} sent` : '';
  renderEncoder();
  renderLatency();
  const s = lg.lastStats;
  if (s) {
    if (running && lg.state !== 'reconnecting') showRate(el.statServer, s.bitrate_in);
    else el.statServer.textContent = '—';
    el.statServerTotal.textContent = `${bytes(s.bytes_in)} received`;
  }
}

const STATE_WORDS = { connecting: 'Connecting', live: 'Live', reconnecting: 'Reconnecting', failed: 'Failed', ended: 'Ended' };

function renderDestinations() {
  const list = Object.values(lg.destinations);
  if (list.length === 0) {
    el.destStates.replaceChildren(emptyItem(busy() ? 'Connecting…' : 'Not live.'));
    return;
  }
  const items = list.map((d) => {
    const li = document.createElement('li');
    li.className = 'dest';
    const name = document.createElement('span');
    name.className = 'dest-name';
    name.textContent = d.name;
    const state = document.createElement('span');
    state.className = 'chip';
    // Once the broadcast is over, every destination that did not fail has ended.
    const shown = !busy() && d.state !== 'failed' ? 'ended' : d.state;
    state.dataset.state = shown;
    li.dataset.state = shown;
    state.textContent = STATE_WORDS[shown] || shown;
    const rate = document.createElement('span');
    rate.className = 'dest-rate';
    rate.textContent = shown === 'live' && typeof d.bitrate_out === 'number' ? kbps(d.bitrate_out) : '';
    li.append(name, state, rate);
    // The server's share of the latency for it: frame in at livegate → written to it.
    if ((shown === 'live' || shown === 'reconnecting') && typeof d.delay_ms === 'number') {
      const detail = document.createElement('span');
      detail.className = 'dest-detail';
      let text = `server delay ${num(d.delay_ms)} ms`;
      if (typeof d.delay_max_ms === 'number') text += ` (max ${num(d.delay_max_ms)} ms)`;
      if (typeof d.queued_ms === 'number' && d.queued_ms > 0) text += ` · ${num(d.queued_ms)} ms queued`;
      detail.textContent = text;
      li.append(detail);
    }
    if (d.reason && (shown === 'failed' || shown === 'reconnecting')) {
      const reason = document.createElement('span');
      reason.className = 'dest-reason';
      reason.textContent = d.reason;
      li.append(reason);
    }
    return li;
  });
  el.destStates.replaceChildren(...items);
}

function emptyItem(text) {
  const li = document.createElement('li');
  li.className = 'empty';
  li.textContent = text;
  return li;
}

setInterval(() => {
  if (!pub) return;
  if (lg.state === 'live' || lg.state === 'reconnecting' || lg.state === 'stopping') {
    copyCounters();
    renderHealth();
  }
}, 500);

// ---------------------------------------------------------------- built-in receiver

async function pollReceiver() {
  let body;
  try {
    const res = await fetch('/api/v1/receiver', { headers: { Accept: 'application/json' }, cache: 'no-store' });
    if (res.status === 404) {
      el.receiver.hidden = true; // this server has no built-in receiver
      return;
    }
    if (!res.ok) throw new Error(String(res.status));
    body = await res.json();
  } catch {
    streamCards.clear();
    el.receiverStreams.replaceChildren(paragraph('The receiver is not reachable right now.', 'empty'));
    setTimeout(pollReceiver, 2000);
    return;
  }
  el.receiver.hidden = false;
  renderReceiver(Array.isArray(body.streams) ? body.streams : []);
  setTimeout(pollReceiver, 2000);
}

// One card per stream, kept from one poll to the next (so that a focused Watch back button
// keeps its focus), keyed by path and start time.
const streamCards = new Map(); // key → {card, chip, dl, button, stream}

function renderReceiver(streams) {
  if (streams.length === 0) {
    streamCards.clear();
    el.receiverStreams.replaceChildren(paragraph('Nothing received yet.', 'empty'));
    return;
  }
  const keys = new Set();
  const cards = streams.map((s) => {
    const key = `${s.path}\n${s.started_at}`;
    keys.add(key);
    let c = streamCards.get(key);
    if (!c) {
      c = streamCard(s);
      streamCards.set(key, c);
    }
    c.stream = s;
    fillStreamCard(c, s);
    return c.card;
  });
  for (const key of [...streamCards.keys()]) if (!keys.has(key)) streamCards.delete(key);
  const shown = [...el.receiverStreams.children];
  if (shown.length !== cards.length || cards.some((c, i) => shown[i] !== c)) {
    el.receiverStreams.replaceChildren(...cards);
  }
  updateWatchButtons();
}

function streamCard(s) {
  const card = document.createElement('article');
  card.className = 'stream';
  const head = document.createElement('div');
  head.className = 'stream-head';
  const title = document.createElement('h3');
  title.className = 'stream-path';
  title.textContent = s.path;
  const chip = document.createElement('span');
  chip.className = 'chip';
  const button = document.createElement('button');
  button.type = 'button';
  button.className = 'btn btn-secondary btn-small watch-button';
  button.setAttribute('aria-controls', 'watch');
  button.dataset.path = s.path;
  button.addEventListener('click', () => startWatch(s.path, button));
  head.append(title, chip, button);
  const dl = document.createElement('dl');
  dl.className = 'facts';
  card.append(head, dl);
  return { card, chip, dl, button, stream: s };
}

function fillStreamCard(c, s) {
  c.chip.dataset.state = s.active ? 'live' : 'ended';
  c.chip.textContent = s.active ? 'Receiving' : 'Ended';
  const dl = document.createElement('dl');
  const durationMs = Math.max(0, (s.last_pts_ms || 0) - (s.first_pts_ms || 0));
  const seconds = durationMs / 1000;
  const v = s.video;
  const a = s.audio;
  if (v) {
    addFact(dl, 'Video', [codecName(v.codec), v.width && v.height ? `${v.width}×${v.height}` : ''].filter(Boolean).join(' · '));
    addFact(dl, 'Profile', [v.profile, v.level].filter(Boolean).join(' ') || '—');
    addFact(dl, 'Frame rate', v.fps > 0 ? `${+v.fps.toFixed(2)} fps` : '—');
    addFact(dl, 'Frames', num(v.frames));
    addFact(dl, 'Key frames', v.key_frames > 1 && seconds > 0
      ? `every ${(seconds / (v.key_frames - 1)).toFixed(1)} s` : num(v.key_frames));
  } else {
    addFact(dl, 'Video', 'none');
  }
  addFact(dl, 'Audio', a ? [codecName(a.codec), a.sample_rate ? `${+(a.sample_rate / 1000).toFixed(1)} kHz` : '', channels(a.channels)]
    .filter(Boolean).join(' · ') : 'none');
  addFact(dl, 'Bit rate', s.active && typeof s.bitrate === 'number' ? kbps(s.bitrate) : '—');
  // First audio minus first video timestamp: + when the sound starts after the picture.
  addFact(dl, 'A/V offset', typeof s.av_offset_ms === 'number' ? signedMs(s.av_offset_ms) : '—',
    'First audio timestamp minus first video timestamp');
  // How much later than its timestamps the media arrives, against its best moment.
  addFact(dl, 'Arrival delay', s.active && typeof s.delay_ms === 'number' ? `${num(s.delay_ms)} ms` : '—',
    'How much later than its timestamps the media arrives now, compared with the earliest it arrived');
  addFact(dl, 'Duration', clock(durationMs));
  addFact(dl, 'Received', bytes(s.bytes));
  c.dl.replaceChildren(...dl.children);
}

// "+12 ms", "−40 ms", "0 ms"
function signedMs(ms) {
  if (ms === 0) return '0 ms';
  return `${ms > 0 ? '+' : '−'}${num(Math.abs(ms))} ms`;
}

// ---------------------------------------------------------------- watch-back
//
// What the receiver got, played in the page as an RTMP viewer would see it: the server sends
// fragmented MP4 over a WebSocket (GET /api/v1/watch?path=…): a JSON {type: 'init', mime},
// the init segment, then a fragment about every 200 ms; the page appends them to a
// SourceBuffer (Media Source Extensions) in order.

const WATCH_KEEP_S = 30; // seconds of media kept behind the playhead
const WATCH_MAX_LAG_S = 1.5; // further behind the newest media than this, jump to it
const WATCH_EDGE_S = 0.3; // where a jump lands, before the newest media
const WATCH_MAX_QUEUE = 150; // fragments (about 30 s) waiting to be appended before giving up

// window.__livegate.watch: state is off | connecting | playing | ended | error
lg.watch = { state: 'off', path: '', message: '' };
let watching = null; // the current watch: {path, ws, ms, sb, queue, timer, ended, button}

function watchable(s) {
  return s.active && ((s.video && s.video.codec === 'H264') || (s.audio && s.audio.codec === 'AAC'));
}

function updateWatchButtons() {
  const busyWatching = lg.watch.state === 'connecting' || lg.watch.state === 'playing';
  for (const c of streamCards.values()) {
    const mine = busyWatching && watching && watching.path === c.stream.path && c.stream.active;
    c.button.hidden = !watchable(c.stream);
    c.button.disabled = mine;
    const text = mine ? 'Watching' : 'Watch back';
    if (c.button.textContent !== text) c.button.textContent = text;
    c.button.setAttribute('aria-label', `${text} ${c.stream.path}`);
  }
}

function setWatch(state, message = '', tone = 'info') {
  lg.watch = { state, path: watching ? watching.path : lg.watch.path, message };
  if (el.watchStatus.textContent !== message) el.watchStatus.textContent = message;
  el.watchStatus.dataset.tone = tone;
  el.watchStopText.textContent = state === 'connecting' || state === 'playing' ? 'Stop watching' : 'Close';
  updateWatchButtons();
}

function startWatch(path, button) {
  endWatch();
  const w = { path, ws: null, ms: null, sb: null, queue: [], timer: 0, ended: false, button, playing: false };
  watching = w;
  el.watch.hidden = false;
  el.watchTitle.textContent = `Watching back ${path}`;
  if (!('MediaSource' in window)) {
    setWatch('error', 'This browser cannot play the stream back here (it has no Media Source Extensions)', 'error');
    return;
  }
  setWatch('connecting', 'Connecting to the receiver…', 'busy');
  // Focus follows to the panel's button: the Watch back button is disabled while watching.
  if (document.activeElement === button) el.watchStop.focus();
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  const ws = new WebSocket(`${scheme}//${location.host}/api/v1/watch?path=${encodeURIComponent(path)}`);
  ws.binaryType = 'arraybuffer';
  w.ws = ws;
  ws.addEventListener('message', (ev) => {
    if (watching !== w) return;
    if (typeof ev.data === 'string') {
      watchInit(w, ev.data);
      return;
    }
    w.queue.push(ev.data);
    if (w.queue.length > WATCH_MAX_QUEUE) {
      failWatch(w, 'The page fell too far behind the stream — press Watch back to start again');
      return;
    }
    pump(w);
  });
  ws.addEventListener('close', (ev) => {
    if (watching !== w) return;
    w.ws = null;
    watchClosed(w, ev);
  });
  w.timer = setInterval(() => keepLive(w), 500);
}

function watchInit(w, text) {
  let msg;
  try {
    msg = JSON.parse(text);
  } catch {
    msg = null;
  }
  if (!msg || msg.type !== 'init' || typeof msg.mime !== 'string') {
    failWatch(w, 'The server sent something this page does not understand');
    return;
  }
  if (!MediaSource.isTypeSupported(msg.mime)) {
    failWatch(w, `This browser cannot play this stream back (${msg.mime})`);
    return;
  }
  const ms = new MediaSource();
  w.ms = ms;
  ms.addEventListener('sourceopen', () => {
    if (watching !== w) return;
    URL.revokeObjectURL(el.watchVideo.src);
    try {
      w.sb = ms.addSourceBuffer(msg.mime);
      w.sb.mode = 'segments'; // the fragments carry their own times
    } catch (err) {
      failWatch(w, `This browser cannot play this stream back (${err.message || err.name})`);
      return;
    }
    w.sb.addEventListener('updateend', () => pump(w));
    setWatch('connecting', 'Starting the picture…', 'busy');
    pump(w);
  }, { once: true });
  el.watchVideo.src = URL.createObjectURL(ms);
}

// Appends the next fragment once the SourceBuffer is idle; trims old media first.
function pump(w) {
  if (watching !== w || !w.sb || w.sb.updating) return;
  const v = el.watchVideo;
  const b = w.sb.buffered;
  if (b.length && v.currentTime - b.start(0) > WATCH_KEEP_S + 5) {
    w.sb.remove(b.start(0), v.currentTime - WATCH_KEEP_S); // updateend pumps again
    return;
  }
  const next = w.queue.shift();
  if (!next) {
    if (w.ended && w.ms.readyState === 'open') w.ms.endOfStream();
    keepLive(w);
    return;
  }
  try {
    w.sb.appendBuffer(next);
  } catch (err) {
    if (err.name === 'QuotaExceededError' && b.length && v.currentTime - b.start(0) > 2) {
      w.queue.unshift(next);
      w.sb.remove(b.start(0), v.currentTime - 1);
      return;
    }
    failWatch(w, `The browser could not take the stream (${err.message || err.name})`);
  }
}

// Keeps the playhead near the newest media: at the start, after a gap, and whenever playback
// has fallen more than WATCH_MAX_LAG_S behind (a stall, a background tab).
function keepLive(w) {
  if (watching !== w || !w.sb) return;
  const v = el.watchVideo;
  const b = w.sb.buffered;
  if (!b.length) return;
  const end = b.end(b.length - 1);
  let inside = false;
  for (let i = 0; i < b.length; i++) {
    if (v.currentTime >= b.start(i) && v.currentTime < b.end(i)) inside = true;
  }
  if (!inside || (!v.paused && end - v.currentTime > WATCH_MAX_LAG_S)) {
    v.currentTime = Math.max(b.start(b.length - 1), end - WATCH_EDGE_S);
  }
  if (!w.playing) {
    w.playing = true;
    v.play().catch(() => {}); // muted: allowed; the controls are there otherwise
    setWatch('playing', `Playing ${w.path} as the receiver gets it`, 'ok');
  }
}

function watchClosed(w, ev) {
  if (ev.code === 1000) {
    // Play what is still queued, then stop.
    w.ended = true;
    pump(w);
    stopTimer(w);
    setWatch('ended', 'The stream ended', 'info');
    return;
  }
  let message = ev.reason ? capitalize(ev.reason) : '';
  if (!message) {
    message = ev.code === 1001 ? 'livegate is shutting down'
      : lg.watch.state === 'connecting' && !w.sb ? 'Could not connect to the receiver — the stream may have ended'
        : 'The connection to the server was lost';
  }
  failWatch(w, message);
}

function failWatch(w, message) {
  if (watching !== w) return;
  if (w.ws) {
    w.ws.close(1000);
    w.ws = null;
  }
  stopTimer(w);
  setWatch('error', message, 'error');
}

function stopTimer(w) {
  clearInterval(w.timer);
  w.timer = 0;
}

// Ends the current watch, if any, and lets go of its media.
function endWatch() {
  const w = watching;
  if (!w) return;
  watching = null;
  stopTimer(w);
  if (w.ws) w.ws.close(1000);
  const v = el.watchVideo;
  v.pause();
  v.removeAttribute('src');
  v.load();
}

function stopWatching() {
  const w = watching;
  const inPanel = el.watch.contains(document.activeElement);
  endWatch();
  el.watch.hidden = true;
  setWatch('off');
  if (inPanel && w && w.button && w.button.isConnected && !w.button.hidden) w.button.focus();
}

el.watchStop.addEventListener('click', () => stopWatching());
el.watchVideo.addEventListener('error', () => {
  if (watching && el.watchVideo.error) {
    failWatch(watching, `The browser could not play the stream (${el.watchVideo.error.message || `error ${el.watchVideo.error.code}`})`);
  }
});
el.watchVideo.addEventListener('play', () => { if (watching) keepLive(watching); });
window.addEventListener('pagehide', () => endWatch());

function addFact(dl, term, value, description = '') {
  const div = document.createElement('div');
  const dt = document.createElement('dt');
  dt.textContent = term;
  if (description) dt.title = description;
  const dd = document.createElement('dd');
  dd.textContent = value;
  div.append(dt, dd);
  dl.append(div);
}

function paragraph(text, className) {
  const p = document.createElement('p');
  p.className = className;
  p.textContent = text;
  return p;
}

// ---------------------------------------------------------------- formatting

function clock(ms) {
  const total = Math.max(0, Math.floor(ms / 1000));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  const mmss = `${String(m).padStart(2, '0')}:${String(s).padStart(2, '0')}`;
  return h ? `${h}:${mmss}` : mmss;
}

// A bit rate as a big number and a small unit; its text reads "2,480 kbit/s".
function showRate(target, bitsPerSecond) {
  const text = kbps(bitsPerSecond);
  const [value, unit] = text.split(' ');
  if (!unit) {
    target.textContent = text;
    return;
  }
  const small = document.createElement('span');
  small.className = 'unit';
  small.textContent = ` ${unit}`;
  target.replaceChildren(value, small);
}

function kbps(bitsPerSecond) {
  if (typeof bitsPerSecond !== 'number' || !isFinite(bitsPerSecond)) return '—';
  return `${num(Math.round(bitsPerSecond / 1000))} kbit/s`;
}

function bytes(n) {
  if (typeof n !== 'number' || !isFinite(n)) return '—';
  if (n < 1000) return `${n} B`;
  if (n < 1e6) return `${(n / 1e3).toFixed(0)} kB`;
  if (n < 1e9) return `${(n / 1e6).toFixed(1)} MB`;
  return `${(n / 1e9).toFixed(2)} GB`;
}

// 3000000 → "3 Mbit/s", 1200000 → "1.2 Mbit/s", 800000 → "800 kbit/s"
function mbps(bitsPerSecond) {
  if (bitsPerSecond < 1e6) return `${Math.round(bitsPerSecond / 1000)} kbit/s`;
  return `${+(bitsPerSecond / 1e6).toFixed(1)} Mbit/s`;
}

// "a", "a and b", "a, b and c"
function andList(items) {
  return items.length > 1 ? `${items.slice(0, -1).join(', ')} and ${items.at(-1)}` : items.join('');
}

function num(n) {
  return Number(n || 0).toLocaleString('en-US');
}

// 23.46 → "23.5", 142.3 → "142"
function ms(n) {
  return n < 100 ? (Math.round(n * 10) / 10).toLocaleString('en-US') : num(Math.round(n));
}

// "0 reconnects", "1 reconnect", "2 reconnects"
function plural(n, word) {
  return `${num(n)} ${word}${n === 1 ? '' : 's'}`;
}

function codecName(c) {
  return { H264: 'H.264', AAC: 'AAC', OPUS: 'Opus' }[String(c).toUpperCase()] || c;
}

function channels(n) {
  return n === 1 ? 'mono' : n === 2 ? 'stereo' : n ? `${n} channels` : '';
}

function capitalize(s) {
  return s ? s[0].toUpperCase() + s.slice(1) : s;
}

// ---------------------------------------------------------------- start

setState('idle');
renderSource();
renderIngest();
el.statMime.textContent = lg.mimeType || '—';
loadDestinations();
acquire();
pollReceiver();
