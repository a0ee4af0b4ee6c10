// livegate publish client, protocol version 1 (docs/protocol.md).
//
// An ES module with no dependencies. It can be used without the studio page:
//
//   import { publish, pickMimeType } from '/client.js';
//   const stream = await navigator.mediaDevices.getUserMedia({ video: true, audio: true });
//   const pub = publish(stream, { destinations: ['local', 'youtube'] }); // or { destination: 'local' }
//   // optional: an output profile from GET /api/v1/destinations, and the streamer's own keys
//   // for destinations marked key_from_client (sent once in `start`, then forgotten):
//   //   publish(stream, { destinations: ['twitch'], profile: '720p', keys: { twitch: key } })
//   // how the browser encodes: 'auto' (default: WebCodecs where it is low-latency, i.e.
//   // Chromium; MediaRecorder elsewhere), 'webcodecs' or 'mediarecorder'
//   //   publish(stream, { destination: 'local', ingest: 'mediarecorder' })
//   pub.addEventListener('state', () => console.log(pub.state));
//   pub.addEventListener('error', (e) => console.log(e.detail.code, e.detail.message));
//   // also: 'ready', 'stats', 'destination', 'sent', 'ingest', 'bitrate' (the video's target
//   // changed), 'rtt' (a `pong` came back), 'resumed' (back live after a network loss),
//   // 'keyframe' (the server asked for one: pub.keyframeRequests counts them), 'draining'
//   // (the server is stopping and ends the broadcast in e.detail.deadline_ms: pub.drainingUntil)
//   // pub.ingest ('webcodecs' | 'mediarecorder', once chosen: the 'ingest' event),
//   // pub.videoBitrate (the video's current target), pub.rtt (the `ping` round trip, ms),
//   // pub.reconnects, pub.restarts, and with WebCodecs pub.framesEncoded, pub.framesDropped,
//   // pub.encoderQueue, pub.encodeDelay
//   ...
//   await pub.stop();
//
// States: 'connecting' → 'live' → 'stopping' → 'ended', or 'error' from any of them.
// 'live' means the server answered `ready` and the first chunk of media has been sent.
// 'live' ⇄ 'reconnecting': the socket was lost without a close code; new sockets `resume` the
// broadcast for as long as the server keeps it (`ready.resume_ms`), then it is 'live' again.

export const PROTOCOL_VERSION = 1;

// In order of preference: H.264 is passed through by the server untouched; VP8/VP9 are
// re-encoded. Matroska first because Chromium writes H.264 into it without quirks.
export const MIME_TYPES = Object.freeze([
  'video/x-matroska;codecs=avc1,opus',
  'video/webm;codecs=h264,opus',
  'video/webm;codecs=vp8,opus',
  'video/webm;codecs=vp9,opus',
]);

// Above this many bytes queued in the WebSocket, the network cannot keep up with the
// recorder; we end the broadcast rather than let memory grow without bound.
const MAX_BUFFERED_BYTES = 8 * 1024 * 1024;

// WebCodecs: above this many bytes queued in the WebSocket, video frames are dropped (the
// encoder then starts again from a key frame once the queue has drained).
const SOFT_BUFFERED_BYTES = 2 * 1024 * 1024;
// WebCodecs: more frames than this waiting in the VideoEncoder, and new ones are dropped.
const MAX_ENCODE_QUEUE = 2;
// WebCodecs: a key frame at least this often (µs), so the stream can be joined and cut quickly.
const KEY_INTERVAL_US = 1_000_000;
// The lowest video bitrate a server `bitrate` message can ask for.
const MIN_VIDEO_BPS = 150_000;
// MediaRecorder cannot change its bitrate: it is stopped and a new one started behind a
// `restart`, at most this often (ms since the last start) going down, and going up.
const RESTART_DOWN_MS = 5000;
const RESTART_UP_MS = 15_000;
// MediaRecorder: below this many bytes queued in the WebSocket the network is calm; calm for
// RESTART_UP_MS lifts a step-down the queue itself caused by one step.
const CALM_BUFFERED_BYTES = 256 * 1024;
// A `ping` this often while live; at most this many unanswered ones are remembered.
const PING_INTERVAL_MS = 2000;
const MAX_PINGS = 4;
// Resume after a network loss: the wait before each new socket doubles from RESUME_FIRST_MS
// up to RESUME_MAX_MS; a socket that has not opened in RESUME_OPEN_MS is given up (while the
// network is down, a connect can hang far longer than the server waits).
const RESUME_FIRST_MS = 250;
const RESUME_MAX_MS = 2000;
const RESUME_OPEN_MS = 3000;
// WebCodecs: frames whose read time is kept until their chunk comes out (encodeDelay).
const MAX_FRAME_TIMES = 64;
// How long to wait for the first audio and video before the broadcast's time zero is set
// without the late one.
const TIME_ZERO_WAIT_MS = 1000;

// WebCodecs frame header (docs/protocol.md, "WebCodecs frames"): type u8, flags u8,
// timestamp i64 µs, payload length u32, big-endian.
const WC_HEADER = 14;
const WC_VIDEO_CONFIG = 1;
const WC_AUDIO_CONFIG = 2;
const WC_VIDEO = 3;
const WC_AUDIO = 4;
const WC_KEY = 0x01;
const WC_MAX_PAYLOAD = 4 * 1024 * 1024 - WC_HEADER; // the server's default message limit

// H.264 levels for constrained baseline (avc1.42e0xx), lowest first: [level_idc, max
// macroblocks per frame, max macroblocks per second] (ITU-T H.264 table A-1).
const H264_LEVELS = Object.freeze([
  [0x1f, 3600, 108000], // 3.1: 1280×720 at 30
  [0x20, 5120, 216000], // 3.2: 1280×720 at 60
  [0x28, 8192, 245760], // 4.0: 1920×1080 at 30
  [0x2a, 8704, 522240], // 4.2: 1920×1080 at 60
  [0x32, 22080, 589824], // 5.0: 2560×1440 at 30
  [0x33, 36864, 983040], // 5.1: 3840×2160 at 30
  [0x34, 36864, 2073600], // 5.2: 3840×2160 at 60
]);

// Chunk boundaries mean nothing to the server, so large blobs are sent in pieces well
// under its per-message limit (limits.max_message_bytes, 4 MiB by default).
const MAX_FRAME_BYTES = 1024 * 1024;

// How long stop() waits for the server to close after `stop` before closing itself.
const STOP_TIMEOUT_MS = 10_000;

// Close codes from protocol.md, used when the socket closes without an `error` message.
const CLOSE_CODES = Object.freeze({
  1001: ['shutting_down', 'the server is shutting down'],
  1009: ['too_large', 'a piece of media was too large for the server'],
  4400: ['bad_message', 'the server did not understand this client'],
  4403: ['not_allowed', 'the server refused a stream key or quality for this destination'],
  4404: ['unknown_destination', 'that destination is not configured on this server'],
  4408: ['no_media', 'the server received no media in time'],
  4415: ['unsupported_media', 'the server cannot take this video or audio format'],
  4422: ['bad_media', 'the server could not read the recorded media'],
  4429: ['too_many_sessions', 'the server is already running as many broadcasts as it allows'],
  4500: ['encoder_failed', 'the encoder on the server stopped'],
  4502: ['destination_failed', 'every destination of this broadcast failed'],
});

// A close without a word from the server (1006: no close frame at all; 1005, 1011): the
// network, not a decision. The server may then keep the broadcast for a `resume`.
function lostClose(code) {
  return code !== 1000 && !CLOSE_CODES[code] && code < 4000;
}

/** The first MediaRecorder type this browser supports from MIME_TYPES, or null. */
export function pickMimeType() {
  if (typeof MediaRecorder === 'undefined' || typeof MediaRecorder.isTypeSupported !== 'function') {
    return null;
  }
  for (const type of MIME_TYPES) {
    if (MediaRecorder.isTypeSupported(type)) return type;
  }
  return null;
}

/**
 * Whether this browser has what the WebCodecs way in needs: VideoEncoder, AudioEncoder and
 * MediaStreamTrackProcessor (Chromium; Firefox has no MediaStreamTrackProcessor).
 */
export function hasWebCodecs() {
  return typeof VideoEncoder === 'function' && typeof AudioEncoder === 'function'
    && typeof MediaStreamTrackProcessor === 'function' && typeof VideoEncoder.isConfigSupported === 'function';
}

/**
 * The VideoEncoder configuration for `track` (H.264 constrained baseline at the lowest level
 * its size and frame rate fit, realtime, AVCC output), or null when this browser cannot
 * encode it with WebCodecs.
 */
export async function videoEncoderConfig(track, { videoBitsPerSecond = 2_500_000 } = {}) {
  if (!hasWebCodecs() || !track) return null;
  const settings = typeof track.getSettings === 'function' ? track.getSettings() : {};
  const width = Math.round(settings.width || 0);
  const height = Math.round(settings.height || 0);
  if (!width || !height) return null;
  const framerate = settings.frameRate > 0 ? settings.frameRate : 30;
  const mbs = Math.ceil(width / 16) * Math.ceil(height / 16);
  // Cameras report 30.000030517578125 and the like: that is still 30 for the level.
  const fps = Math.round(framerate * 100) / 100;
  const fits = H264_LEVELS.filter(([, maxFs, maxMbps]) => mbs <= maxFs && mbs * fps <= maxMbps);
  const hex = (n) => n.toString(16).padStart(2, '0');
  // Constrained baseline first; Main (4d40xx) only if the browser offers no baseline.
  const codecs = [...fits.map(([level]) => `avc1.42e0${hex(level)}`), ...fits.map(([level]) => `avc1.4d40${hex(level)}`)];
  for (const codec of codecs) {
    const config = {
      codec, width, height, bitrate: videoBitsPerSecond, framerate, latencyMode: 'realtime', avc: { format: 'avc' },
    };
    try {
      const support = await VideoEncoder.isConfigSupported(config);
      if (support && support.supported) return config;
    } catch {
      // a configuration this browser rejects outright: try the next
    }
  }
  return null;
}

/**
 * How `stream` would be sent: {ingest: 'webcodecs', config} (the VideoEncoder configuration)
 * or {ingest: 'mediarecorder', mimeType}, or {ingest: null, reason} when neither works.
 * `ingest` is 'auto' (WebCodecs when this browser has it for the camera's size, else
 * MediaRecorder), 'webcodecs' or 'mediarecorder'.
 */
export async function chooseIngest(stream, { ingest = 'auto', mimeType, videoBitsPerSecond = 2_500_000 } = {}) {
  const want = ingest === 'webcodecs' || ingest === 'mediarecorder' ? ingest : 'auto';
  if (want !== 'mediarecorder') {
    const track = stream && stream.getVideoTracks()[0];
    const config = await videoEncoderConfig(track, { videoBitsPerSecond });
    if (config) return { ingest: 'webcodecs', config };
    if (want === 'webcodecs') {
      return {
        ingest: null,
        code: 'webcodecs_unavailable',
        reason: hasWebCodecs()
          ? 'this browser cannot encode this camera’s video to H.264 with WebCodecs'
          : 'this browser cannot send video with WebCodecs (it needs VideoEncoder and MediaStreamTrackProcessor)',
      };
    }
  }
  const type = mimeType || pickMimeType();
  if (type) return { ingest: 'mediarecorder', mimeType: type };
  return { ingest: null, code: 'no_supported_type', reason: 'this browser cannot record H.264 or VP8 video with MediaRecorder' };
}

/** ws(s)://<this host>/api/v1/publish, wss when the page is served over https. */
export function defaultURL() {
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${scheme}//${location.host}/api/v1/publish`;
}

/**
 * Start a broadcast of `stream` (a MediaStream with video and audio) to livegate.
 * Returns a Publication at once; follow it with its events. The stream stays the caller's:
 * its tracks are never stopped here.
 */
export function publish(stream, options = {}) {
  return new Publication(stream, options);
}

export class Publication extends EventTarget {
  #stream;
  #ws = null;
  // The MediaRecorder in use: {recorder, ws (the socket its data goes to), done (resolves on
  // its 'stop'), ours (we stopped it: not the camera going away), discard (drop its data)}.
  #rec = null;
  #recStarted = 0; // performance.now() when the current recorder started
  #restarting = false; // a recorder restart is under way
  #serverTarget = 0; // MediaRecorder: the bitrate the server's last `bitrate` allows
  #localCap = Infinity; // MediaRecorder: the ceiling the socket's own queue set
  #calmSince = 0; // MediaRecorder: since when the socket's queue has been small
  #wc = null; // the WebCodecs pipeline, while it runs (see #startWebCodecs)
  #videoConfig = null; // the VideoEncoder configuration, when ingest is 'webcodecs'
  #frameTimes = new Map(); // WebCodecs: VideoFrame timestamp → performance.now() when read
  #encodeDelays = []; // WebCodecs: [performance.now(), ms] per encoded frame, the last second
  #opts;
  #chain = Promise.resolve(); // sends, in the order dataavailable fired
  #stopPromise = null;
  #closed = null; // resolves when the last socket has closed
  #resolveClosed;
  #timer = 0;
  #rateMark = { time: 0, bytes: 0 };
  #readyTimer = 0;
  #openTimer = 0;
  #pingTimer = 0;
  #pingId = 0;
  #pings = new Map(); // ping id → performance.now() when sent
  #resume = null; // while reconnecting: {deadline, delay, timer, expiry}
  #keys = null; // {name: stream key}, only until `start` has been sent
  #token = null; // the publish token for `start`

  /** 'connecting' | 'live' | 'reconnecting' | 'stopping' | 'ended' | 'error' */
  state = 'connecting';
  /** how the browser encodes: 'webcodecs' or 'mediarecorder' (null until chosen). */
  ingest = null;
  /** MediaRecorder type in use; with WebCodecs, the codecs sent in `start` ("avc1.42e01f,opus"). */
  mimeType = null;
  /** the server's `ready` message, once it came. */
  ready = null;
  /** the latest server `stats` message. */
  stats = null;
  /** {code, message} (plus `type` when it came from the server) once the state is 'error'. */
  error = null;
  /** destination name → {name, state, reason, bytes_out, bitrate_out, queued_bytes, queued_ms,
   * delay_ms, delay_max_ms}, from `destination` and `stats`. */
  destinations = {};
  /** bytes handed to the WebSocket, and in how many chunks (WebCodecs: messages). */
  bytesSent = 0;
  chunksSent = 0;
  /** client-side send rate in bits per second over the last second (what left the socket buffer). */
  bitrate = 0;
  /** WebCodecs: video frames the encoder produced, and frames dropped (not encoded, or not sent). */
  framesEncoded = 0;
  framesDropped = 0;
  /** the video's bitrate target: WebCodecs sets its encoder to the server's `bitrate`
   * messages, MediaRecorder restarts its recorder at a new one (see setVideoBitrate). */
  videoBitrate = 0;
  /** the last `ping` round trip to the server in ms (0.1 ms steps), null until measured. */
  rtt = null;
  /** how many times the broadcast was resumed after a network loss. */
  reconnects = 0;
  /** MediaRecorder: how many times the recorder was restarted at a new bitrate. */
  restarts = 0;
  /** how many `keyframe` messages the server sent (a destination went live). */
  keyframeRequests = 0;
  /** Date.now() by which the server will end the broadcast, once it said it is stopping
   * (`draining`); 0 until then. */
  drainingUntil = 0;
  /** Date.now() when the state became 'live', and when it then became 'ended' or 'error'. */
  liveSince = 0;
  endedAt = 0;
  /** the close event's code and reason, once closed. */
  closeCode = 0;
  closeReason = '';

  constructor(stream, {
    url,
    destinations: names,
    destination,
    mimeType,
    ingest = 'auto',
    videoBitsPerSecond = 2_500_000,
    audioBitsPerSecond = 128_000,
    timeslice = 100, // ms of recording per chunk: 250 added 150 ms of glass-to-RTMP latency (docs/benchmarks.md)
    readyTimeout = 20_000,
    profile,
    keys,
    token,
  } = {}) {
    super();
    this.#stream = stream;
    // `destinations` (a list) or `destination` (one name, or a list); duplicates are dropped
    // (the server refuses them, and takes at most 8).
    const wanted = names !== undefined ? names : destination;
    const destinations = [...new Set((Array.isArray(wanted) ? wanted : [wanted])
      .filter((d) => typeof d === 'string' && d !== ''))];
    this.#opts = {
      url: url || defaultURL(),
      destinations,
      ingest: ingest === 'webcodecs' || ingest === 'mediarecorder' ? ingest : 'auto',
      mimeType: mimeType || null,
      videoBitsPerSecond,
      audioBitsPerSecond,
      timeslice,
      readyTimeout,
      profile: typeof profile === 'string' ? profile : '',
    };
    this.videoBitrate = videoBitsPerSecond;
    this.#serverTarget = videoBitsPerSecond;
    // Only keys with a value go into `start`; they are kept nowhere else.
    const entries = keys && typeof keys === 'object'
      ? Object.entries(keys).filter(([name, key]) => name && typeof key === 'string' && key !== '')
      : [];
    this.#keys = entries.length ? Object.fromEntries(entries) : null;
    // Who publishes, when the server asks for it (docs/security.md); sent only in `start`.
    this.#token = typeof token === 'string' && token !== '' ? token : null;
    this.#closed = new Promise((resolve) => { this.#resolveClosed = resolve; });

    // Fail after the caller had a chance to add listeners.
    if (destinations.length === 0) {
      this.#later(() => this.#fail('no_destination', 'no destination was chosen'));
      return;
    }
    if (!stream || stream.getVideoTracks().length === 0) {
      this.#later(() => this.#fail('no_stream', 'there is no camera video to send'));
      return;
    }
    this.#begin();
  }

  /** 'passthrough' or 'transcode' once ready, else null. */
  get video() { return this.ready ? this.ready.video : null; }
  get audio() { return this.ready ? this.ready.audio : null; }
  get url() { return this.#opts.url; }
  /** the output profile asked for in `start` ('' for none: the video goes as it came). */
  get profile() { return this.#opts.profile; }
  /** WebCodecs: frames waiting in the video encoder (its encodeQueueSize); 0 otherwise. */
  get encoderQueue() {
    const enc = this.#wc && this.#wc.venc;
    return enc && enc.state !== 'closed' ? enc.encodeQueueSize : 0;
  }
  /** bytes waiting in the WebSocket to be sent (its bufferedAmount); 0 without a socket. */
  get bufferedAmount() { return this.#ws ? this.#ws.bufferedAmount : 0; }
  /** the highest video bitrate (the `videoBitsPerSecond` option): no step-down goes above it. */
  get maxVideoBitrate() { return this.#opts.videoBitsPerSecond; }

  /**
   * WebCodecs: the client's share of the latency, in ms: the median over the last second of
   * the time from a VideoFrame being read to its chunk leaving the encoder. Null with
   * MediaRecorder (it does not say), or when no frame came out in the last second.
   */
  get encodeDelay() {
    if (this.ingest !== 'webcodecs') return null;
    const since = performance.now() - 1000;
    const recent = this.#encodeDelays.filter(([t]) => t >= since).map(([, ms]) => ms).sort((a, b) => a - b);
    if (recent.length === 0) return null;
    const mid = recent.length >> 1;
    const median = recent.length % 2 ? recent[mid] : (recent[mid - 1] + recent[mid]) / 2;
    return Math.round(median * 10) / 10;
  }

  /** WebCodecs: make the next video frame a key frame (the server asks with `keyframe`). */
  requestKeyFrame() {
    if (this.#wc) this.#wc.needKey = true;
  }

  /**
   * Follow a new video bitrate target (the server asks with `bitrate`), clamped to
   * [150 kbit/s, videoBitsPerSecond]; 0 or less means "no limit" (back to videoBitsPerSecond).
   * WebCodecs changes its encoder's bitrate live. MediaRecorder cannot: it restarts its
   * recorder at the target behind a `restart`, for a drop of more than 20 % at most once
   * every 5 s, for a rise of more than 20 % at most once every 15 s (a target that comes
   * too soon is applied when it may be). Each change emits 'bitrate'.
   */
  setVideoBitrate(bps) {
    if (typeof bps !== 'number' || !Number.isFinite(bps)) return;
    const top = this.#opts.videoBitsPerSecond;
    const target = bps <= 0 ? top : Math.round(Math.min(top, Math.max(MIN_VIDEO_BPS, bps)));
    if (this.ingest === 'mediarecorder') {
      this.#serverTarget = target;
      this.#adaptRecorder();
      return;
    }
    const wc = this.#wc;
    if (this.ingest !== 'webcodecs' || !wc || target === this.videoBitrate) return;
    const previous = this.videoBitrate;
    this.videoBitrate = target;
    this.#videoConfig = { ...this.#videoConfig, bitrate: target };
    if (wc.venc.state === 'configured') {
      try {
        wc.venc.configure(this.#videoConfig); // Chromium: no new key frame, same avcC
      } catch (err) {
        this.#encoderFailed('video', err);
        return;
      }
    }
    this.#emit('bitrate', { bitrate: target, previous, reason: 'server' });
  }

  /**
   * End the broadcast cleanly: stop the recorder (or flush the encoders), send what it still
   * had, send `stop`, and wait for the server to close. Resolves when the socket has closed
   * (never rejects).
   */
  stop() {
    if (this.#stopPromise) return this.#stopPromise;
    this.#stopPromise = this.#stop();
    return this.#stopPromise;
  }

  /** End at once without waiting for the server (for pagehide). */
  close() {
    this.#keys = null;
    this.#stopMedia();
    this.#cleanup();
    if (['connecting', 'live', 'reconnecting', 'stopping'].includes(this.state)) {
      this.#setState('ended');
    }
    const ws = this.#ws;
    if (ws && ws.readyState <= WebSocket.OPEN) {
      try { ws.close(1000, 'page closed'); } catch { /* already closing */ }
    }
    if (!ws || ws.readyState === WebSocket.CLOSED) this.#resolveClosed();
  }

  async #stop() {
    const ws = this.#ws;
    if (this.state === 'ended' || this.state === 'error') return;
    if (!ws || !this.ready || this.state === 'reconnecting') {
      // Nothing was recorded yet, or no socket reaches the server: there is nothing to flush
      // (a broadcast waiting for a resume ends on the server when resume_ms have passed).
      this.#setState('stopping');
      this.close();
      await this.#waitClosed(STOP_TIMEOUT_MS);
      return;
    }
    this.#setState('stopping');
    await this.#stopMedia(true); // the recorder's last data, the encoders' last frames
    await this.#chain;
    if (ws.readyState === WebSocket.OPEN && this.#ws === ws) {
      try { ws.send(JSON.stringify({ type: 'stop' })); } catch { /* closing */ }
    }
    await this.#waitClosed(STOP_TIMEOUT_MS);
    if (ws.readyState !== WebSocket.CLOSED) {
      try { ws.close(1000, 'stopped'); } catch { /* already closing */ }
      this.#cleanup();
      if (this.state === 'stopping') this.#setState('ended');
    }
  }

  async #waitClosed(ms) {
    let timeout = 0;
    await Promise.race([
      this.#closed,
      new Promise((resolve) => { timeout = setTimeout(resolve, ms); }),
    ]);
    clearTimeout(timeout);
  }

  // Chooses WebCodecs or MediaRecorder (isConfigSupported is asynchronous), then connects.
  async #begin() {
    let choice;
    try {
      choice = await chooseIngest(this.#stream, {
        ingest: this.#opts.ingest, mimeType: this.#opts.mimeType, videoBitsPerSecond: this.#opts.videoBitsPerSecond,
      });
    } catch (err) {
      choice = { ingest: null, code: 'no_supported_type', reason: `the browser could not check its encoders: ${err.message}` };
    }
    if (this.state !== 'connecting') return; // closed meanwhile
    if (!choice.ingest) {
      this.#fail(choice.code, choice.reason);
      return;
    }
    this.ingest = choice.ingest;
    if (choice.ingest === 'webcodecs') {
      this.#videoConfig = choice.config;
      this.mimeType = this.#stream.getAudioTracks().length ? `${choice.config.codec},opus` : choice.config.codec;
    } else {
      this.mimeType = choice.mimeType;
    }
    this.#emit('ingest', { ingest: this.ingest, mimeType: this.mimeType });
    this.#connect();
  }

  // Opens a socket: `start` on the first one; `resume` on those after a network loss. Events
  // of a socket that is no longer this.#ws (a resume attempt given up on) are ignored.
  #connect(resume = false) {
    let ws;
    try {
      // A socket that comes to resume says so in its URL: a server that is stopping takes
      // only those (protocol.md, `draining`).
      let url = this.#opts.url;
      if (resume) {
        const u = new URL(url, location.href);
        u.searchParams.set('resume', this.ready.session);
        url = u.href;
      }
      ws = new WebSocket(url);
    } catch (err) {
      if (resume) this.#later(() => this.#scheduleResume());
      else this.#later(() => this.#fail('connection_failed', `could not connect to ${this.#opts.url}: ${err.message}`));
      return;
    }
    ws.binaryType = 'arraybuffer';
    this.#ws = ws;
    let opened = false;
    if (resume) {
      this.#openTimer = setTimeout(() => {
        if (this.#ws === ws && !opened) this.#dropAttempt(ws);
      }, RESUME_OPEN_MS);
    }

    ws.addEventListener('open', () => {
      if (this.#ws !== ws) return;
      opened = true;
      clearTimeout(this.#openTimer);
      if (resume) {
        const { session, resume_token: token } = this.ready;
        ws.send(JSON.stringify({ type: 'resume', version: PROTOCOL_VERSION, session, token }));
      } else {
        const start = { type: 'start', version: PROTOCOL_VERSION, ingest: this.ingest };
        if (this.ingest === 'webcodecs') start.codecs = this.mimeType;
        else start.mime = this.mimeType;
        start.destinations = this.#opts.destinations;
        if (this.#opts.profile) start.profile = this.#opts.profile;
        if (this.#keys) start.keys = this.#keys;
        if (this.#token) start.token = this.#token;
        this.#keys = null; // sent; this object does not keep them
        ws.send(JSON.stringify(start));
      }
      this.#readyTimer = setTimeout(() => {
        if (this.#ws !== ws) return;
        if (resume) {
          // This attempt got no answer: another one, while the server may still wait.
          if (this.state === 'reconnecting') this.#dropAttempt(ws);
        } else if (!this.ready && this.state === 'connecting') {
          this.#fail('ready_timeout', 'the server did not answer in time');
          try { ws.close(1000, 'no answer'); } catch { /* closing */ }
        }
      }, this.#opts.readyTimeout);
    });

    ws.addEventListener('message', (ev) => {
      if (this.#ws !== ws) return;
      if (typeof ev.data !== 'string') return; // the server sends no binary in version 1
      let msg;
      try { msg = JSON.parse(ev.data); } catch { return; }
      if (msg && typeof msg === 'object') this.#onMessage(msg);
    });

    ws.addEventListener('close', (ev) => {
      if (this.#ws !== ws) return;
      clearTimeout(this.#openTimer);
      clearTimeout(this.#readyTimer);
      this.closeCode = ev.code;
      this.closeReason = ev.reason;
      if (this.state === 'reconnecting') {
        // A resume attempt failed: the network again (try once more), or the server's answer.
        this.#ws = null;
        if (lostClose(ev.code)) this.#scheduleResume();
        else this.#connectionLost();
        return;
      }
      if (this.state === 'live' && lostClose(ev.code) && this.#canResume()) {
        this.#ws = null;
        this.#lost();
        return;
      }
      this.#stopMedia();
      this.#cleanup();
      this.#resolveClosed();
      if (this.state === 'error' || this.state === 'ended') return;
      if (ev.code === 1000) {
        this.#setState('ended');
      } else if (CLOSE_CODES[ev.code]) {
        const [code, text] = CLOSE_CODES[ev.code];
        this.#fail(code, ev.reason || text);
      } else if (this.state === 'stopping') {
        // We asked to stop; the server went away a little rudely, but nothing is lost.
        this.#setState('ended');
      } else if (!opened) {
        this.#fail('connection_failed', 'could not connect to the server');
      } else {
        this.#fail('connection_lost', 'connection to the server was lost');
      }
    });
    // 'error' on a WebSocket carries no information; 'close' always follows it.
  }

  #onMessage(msg) {
    switch (msg.type) {
      case 'ready':
        if (msg.resumed === true) {
          if (this.state === 'reconnecting') this.#resumed(msg);
          return;
        }
        if (this.ready || this.state !== 'connecting') return;
        clearTimeout(this.#readyTimer);
        this.ready = msg;
        for (const name of msg.destinations || this.#opts.destinations) {
          if (!this.destinations[name]) this.destinations[name] = { name, state: 'connecting', reason: '' };
        }
        this.#emit('ready', msg);
        if (this.ingest === 'webcodecs') this.#startWebCodecs();
        else this.#startRecorder();
        break;
      case 'stats':
        this.stats = msg;
        for (const d of msg.destinations || []) {
          this.destinations[d.name] = { ...(this.destinations[d.name] || { reason: '' }), ...d };
        }
        this.#emit('stats', msg);
        break;
      case 'destination':
        this.destinations[msg.name] = {
          ...(this.destinations[msg.name] || {}),
          name: msg.name,
          state: msg.state,
          reason: msg.reason || '',
        };
        this.#emit('destination', msg);
        break;
      case 'error':
        if (this.state === 'reconnecting') {
          // The server no longer keeps the broadcast (unknown_session): it is over.
          this.#connectionLost(msg);
          break;
        }
        this.#fail(msg.code || 'server_error', msg.message || 'the server ended the broadcast', msg);
        break;
      case 'pong':
        this.#onPong(msg.id);
        break;
      case 'keyframe':
        // A destination (re)connected and starts at the next key frame. MediaRecorder cannot
        // make one on demand (it makes one a second anyway).
        this.keyframeRequests += 1;
        this.requestKeyFrame();
        this.#emit('keyframe', msg);
        break;
      case 'draining':
        // The server is stopping: the broadcast goes on until then, and nothing needs doing.
        this.drainingUntil = Date.now() + Math.max(0, Number(msg.deadline_ms) || 0);
        this.#emit('draining', msg);
        break;
      case 'bitrate': {
        // The server's side is congested (or calm again). Its target is for the whole
        // stream: the audio keeps its bitrate, the video gets the rest.
        const audio = this.#stream.getAudioTracks().length ? this.#opts.audioBitsPerSecond : 0;
        this.setVideoBitrate(msg.bps > 0 ? msg.bps - audio : msg.bps);
        break;
      }
      default:
        // Unknown messages (later protocol additions) are ignored.
        break;
    }
  }

  // ------------------------------------------------------------ resume after a network loss

  #canResume() {
    const r = this.ready;
    return !!(r && typeof r.resume_token === 'string' && r.resume_token && r.session && r.resume_ms > 0);
  }

  // The socket went away without a word while live. The server keeps the broadcast for
  // resume_ms: new sockets try to take it over until then. WebCodecs keeps its encoders (and
  // its clock); the recorder's stream is cut where the socket was, and a new one starts on
  // resume, so what it still produces is dropped.
  #lost() {
    const ms = this.ready.resume_ms;
    clearTimeout(this.#readyTimer);
    if (this.#rec) this.#stopRecorder(true);
    const r = { deadline: performance.now() + ms, delay: RESUME_FIRST_MS, timer: 0, expiry: 0 };
    r.expiry = setTimeout(() => { if (this.#resume === r) this.#connectionLost(); }, ms);
    this.#resume = r;
    this.#setState('reconnecting');
    this.#scheduleResume();
  }

  // The next resume attempt, after a wait that doubles each time (never past the deadline).
  #scheduleResume() {
    const r = this.#resume;
    if (this.state !== 'reconnecting' || !r) return;
    const left = r.deadline - performance.now();
    if (left <= 0) {
      this.#connectionLost();
      return;
    }
    clearTimeout(r.timer);
    r.timer = setTimeout(() => {
      r.timer = 0;
      if (this.#resume === r && this.state === 'reconnecting' && !this.#ws) this.#connect(true);
    }, Math.min(r.delay, left));
    r.delay = Math.min(r.delay * 2, RESUME_MAX_MS);
  }

  // Gives up on a resume attempt that did not open, or got no answer, and schedules the next.
  #dropAttempt(ws) {
    this.#ws = null;
    clearTimeout(this.#openTimer);
    clearTimeout(this.#readyTimer);
    try { ws.close(); } catch { /* closing */ }
    this.#scheduleResume();
  }

  #connectionLost(cause) {
    const ws = this.#ws;
    const message = 'connection to the server was lost';
    this.#fail('connection_lost', message, cause ? { code: 'connection_lost', message, cause } : undefined);
    if (ws && ws.readyState <= WebSocket.OPEN) {
      try { ws.close(1000, 'gave up'); } catch { /* closing */ }
    }
  }

  // `ready` with `resumed: true`: the broadcast is ours again on this socket. The media that
  // follows is a new stream (protocol.md, `resume`): a new recorder, or with WebCodecs the
  // configurations and a key frame first.
  #resumed(msg) {
    const r = this.#resume;
    clearTimeout(this.#readyTimer);
    if (r) {
      clearTimeout(r.timer);
      clearTimeout(r.expiry);
    }
    this.#resume = null;
    // The first `ready` says what the broadcast is (session, destinations, video, audio);
    // only what a next resume needs is taken from this one.
    const ready = { ...this.ready, resumed: true };
    if (typeof msg.resume_token === 'string' && msg.resume_token) ready.resume_token = msg.resume_token;
    if (typeof msg.resume_ms === 'number') ready.resume_ms = msg.resume_ms;
    this.ready = ready;
    this.reconnects += 1;
    this.#rateMark = { time: performance.now(), bytes: this.bytesSent };
    this.#setState('live');
    this.#emit('resumed', { reconnects: this.reconnects, ready: msg });
    if (this.#wc) this.#restartWebCodecs();
    else this.#startRecorderAfter(this.#rec);
  }

  // ------------------------------------------------------------ round trip

  #startPing() {
    if (this.#pingTimer) return;
    this.#pingTimer = setInterval(() => this.#ping(), PING_INTERVAL_MS);
    this.#ping();
  }

  #stopPing() {
    clearInterval(this.#pingTimer);
    this.#pingTimer = 0;
    this.#pings.clear();
  }

  #ping() {
    const ws = this.#ws;
    if (this.state !== 'live' || !ws || ws.readyState !== WebSocket.OPEN) return;
    // A few unanswered ones are remembered; an older one is not coming back.
    if (this.#pings.size >= MAX_PINGS) this.#pings.delete(this.#pings.keys().next().value);
    const id = ++this.#pingId;
    this.#pings.set(id, performance.now());
    try { ws.send(JSON.stringify({ type: 'ping', id })); } catch { /* closing */ }
  }

  #onPong(id) {
    const sent = this.#pings.get(id);
    if (sent === undefined) return; // not one of ours, or forgotten
    // Pongs come in order: the ones before it are not coming any more.
    for (const k of [...this.#pings.keys()]) if (k <= id) this.#pings.delete(k);
    this.rtt = Math.round((performance.now() - sent) * 10) / 10;
    this.#emit('rtt', { rtt: this.rtt });
  }

  // ------------------------------------------------------------ MediaRecorder

  #startRecorder() {
    let recorder;
    try {
      recorder = new MediaRecorder(this.#stream, {
        mimeType: this.mimeType,
        videoBitsPerSecond: this.videoBitrate,
        audioBitsPerSecond: this.#opts.audioBitsPerSecond,
        // Chromium: one key frame a second, so the stream can be joined and cut quickly.
        videoKeyFrameIntervalDuration: 1000,
      });
    } catch (err) {
      this.#fail('recorder_failed', `the browser could not start recording: ${err.message}`);
      this.#closeSocket(1000, 'recorder failed');
      return;
    }
    // Its data goes to the socket of its time only: after a loss, a new stream starts anyway.
    const rec = { recorder, ws: this.#ws, ours: false, discard: false, done: null };
    rec.done = new Promise((resolve) => { recorder.addEventListener('stop', () => resolve(), { once: true }); });
    recorder.addEventListener('dataavailable', (ev) => {
      if (rec.discard || !ev.data || ev.data.size === 0) return;
      const blob = ev.data;
      this.#chain = this.#chain.then(() => this.#send(blob, rec.ws)).catch(() => {});
    });
    recorder.addEventListener('error', (ev) => {
      if (rec.ours) return; // being stopped anyway
      const err = ev.error || {};
      this.#fail('recorder_error', `recording failed${err.message ? `: ${err.message}` : ''}`);
      this.#closeSocket(1000, 'recorder error');
    });
    recorder.addEventListener('stop', () => {
      if (!rec.ours && (this.state === 'connecting' || this.state === 'live')) {
        // The recorder stopped by itself, e.g. the camera was unplugged.
        this.#chain.then(() => this.#mediaWentAway());
      }
    });
    try {
      recorder.start(this.#opts.timeslice);
    } catch (err) {
      this.#fail('recorder_failed', `the browser could not start recording: ${err.message}`);
      this.#closeSocket(1000, 'recorder failed');
      return;
    }
    this.#rec = rec;
    this.#recStarted = performance.now();
    this.#startTicking();
  }

  // After a resume: a new recorder once the one cut by the loss has stopped.
  async #startRecorderAfter(old) {
    if (old) await within(old.done, 2000);
    if (this.state === 'live' && this.#rec === old) this.#startRecorder();
  }

  // MediaRecorder cannot change its bitrate: the recorder is stopped, its last data sent, then
  // `restart` and a new recorder at `target` (protocol.md, `restart`).
  async #restartRecorder(target, reason) {
    const old = this.#rec;
    const ws = this.#ws;
    if (!old || this.#restarting) return;
    this.#restarting = true;
    const previous = this.videoBitrate;
    this.videoBitrate = target;
    this.restarts += 1;
    this.#recStarted = performance.now();
    this.#emit('bitrate', { bitrate: target, previous, reason, restart: true });
    await this.#stopRecorder(); // its last dataavailable comes before 'stop': it is in #chain
    this.#restarting = false;
    if (this.state !== 'live' || this.#ws !== ws || this.#rec !== old) return; // lost, stopping, failed
    this.#chain = this.#chain.then(() => {
      if (this.#ws === ws && ws.readyState === WebSocket.OPEN && this.state === 'live') {
        ws.send(JSON.stringify({ type: 'restart' }));
      }
    }).catch(() => {});
    this.#startRecorder();
  }

  // MediaRecorder: restarts the recorder when the target (the server's, capped by what the
  // socket's own queue allows) is far enough from the current bitrate, long enough after the
  // last start (RESTART_DOWN_MS going down, RESTART_UP_MS going up). Each tick and each
  // `bitrate`.
  #adaptRecorder() {
    if (this.ingest !== 'mediarecorder' || this.state !== 'live' || !this.#rec || this.#restarting) return;
    const ws = this.#ws;
    const now = performance.now();
    const top = this.#opts.videoBitsPerSecond;
    const since = now - this.#recStarted;
    const queued = ws ? ws.bufferedAmount : 0;
    if (queued > SOFT_BUFFERED_BYTES) {
      // The network cannot carry this bitrate: 70 % of it, once the pacing allows.
      this.#calmSince = now;
      if (since >= RESTART_DOWN_MS) this.#localCap = Math.max(MIN_VIDEO_BPS, Math.round(this.videoBitrate * 0.7));
    } else if (queued > CALM_BUFFERED_BYTES) {
      this.#calmSince = now;
    } else if (this.#localCap !== Infinity && now - this.#calmSince >= RESTART_UP_MS) {
      // Calm for a while: try a step higher.
      this.#calmSince = now;
      const up = Math.round(this.#localCap * 1.25);
      this.#localCap = up >= top ? Infinity : up;
    }
    const target = Math.min(this.#serverTarget, this.#localCap, top);
    const reason = this.#localCap < this.#serverTarget ? 'network' : 'server';
    if ((target < this.videoBitrate * 0.8 && since >= RESTART_DOWN_MS)
      || (target > this.videoBitrate * 1.2 && since >= RESTART_UP_MS)) {
      this.#restartRecorder(target, reason);
    }
  }

  #startTicking() {
    if (this.#timer) return;
    this.#rateMark = { time: performance.now(), bytes: this.bytesSent };
    this.#timer = setInterval(() => this.#tick(), 1000);
  }

  #mediaWentAway() {
    if (this.state === 'connecting' || this.state === 'live' || this.state === 'reconnecting') {
      this.#fail('recorder_stopped', 'recording stopped: the camera or microphone went away');
      this.#closeSocket(1000, 'recorder stopped');
    }
  }

  async #send(blob, ws) {
    if (!ws || this.#ws !== ws || ws.readyState !== WebSocket.OPEN) return;
    if (this.state !== 'connecting' && this.state !== 'live' && this.state !== 'stopping') return;
    const buf = await blob.arrayBuffer();
    if (this.#ws !== ws || ws.readyState !== WebSocket.OPEN) return;
    for (let off = 0; off < buf.byteLength; off += MAX_FRAME_BYTES) {
      ws.send(off === 0 && buf.byteLength <= MAX_FRAME_BYTES ? buf : buf.slice(off, off + MAX_FRAME_BYTES));
    }
    this.#sent(buf.byteLength);
  }

  #sent(n) {
    this.bytesSent += n;
    this.chunksSent += 1;
    if (this.chunksSent === 1 && this.state === 'connecting') {
      this.liveSince = Date.now();
      this.#setState('live');
    }
    this.#emit('sent', { bytesSent: this.bytesSent, chunksSent: this.chunksSent, bitrate: this.bitrate });
    this.#checkBuffer();
  }

  // ------------------------------------------------------------ WebCodecs
  //
  // Each track is read with a MediaStreamTrackProcessor (on a clone of the track, so that the
  // caller's tracks are never touched), encoded (VideoEncoder H.264, AudioEncoder Opus), and
  // every encoded chunk is sent as one binary message behind the 14-byte header.
  //
  // Time: Chromium stamps VideoFrames and AudioData on different clocks (video: the system's
  // monotonic clock; audio: the page's, as performance.now()), so each track is put on the
  // page's clock when its first input arrives, and time zero is the earlier of the two
  // tracks' first inputs (no chunk is then before it). Until both have arrived, chunks wait.

  #startWebCodecs() {
    const videoTrack = this.#stream.getVideoTracks()[0];
    const audioTrack = this.#stream.getAudioTracks()[0] || null;
    const wc = {
      running: true, // taking input
      outputs: true, // sending the encoders' output
      venc: null,
      aenc: null,
      tracks: [], // the clones read here, stopped at the end
      readers: [],
      kinds: audioTrack ? ['video', 'audio'] : ['video'],
      offset: {}, // kind → µs to add to its timestamps to be on the page's clock
      first: {}, // kind → its first input's time on the page's clock
      zero: null, // the broadcast's time zero on the page's clock, once known
      zeroTimer: 0,
      pending: [], // frames waiting for time zero: [type, flags, pageTime, payload]
      needKey: false, // the next video frame must be a key frame
      waitKey: false, // a video chunk was dropped: drop the rest until a key frame
      lastKey: -Infinity, // input timestamp of the last key frame
      videoDesc: null, // the avcC last sent
      audioDesc: null, // the OpusHead last sent (empty: none)
      audioDrops: 0,
    };
    this.#wc = wc;
    wc.zeroTimer = setTimeout(() => this.#setZero(), TIME_ZERO_WAIT_MS);
    try {
      wc.venc = new VideoEncoder({
        output: (chunk, meta) => this.#onVideoChunk(wc, chunk, meta),
        error: (err) => this.#encoderFailed('video', err),
      });
      wc.venc.configure(this.#videoConfig);
      if (audioTrack) {
        wc.aenc = new AudioEncoder({
          output: (chunk, meta) => this.#onAudioChunk(wc, chunk, meta),
          error: (err) => this.#encoderFailed('audio', err),
        });
      }
      this.#readTrack(wc, 'video', videoTrack, (frame) => this.#onVideoFrame(wc, frame));
      if (audioTrack) this.#readTrack(wc, 'audio', audioTrack, (data) => this.#onAudioData(wc, data));
    } catch (err) {
      this.#encoderFailed('video', err);
      return;
    }
    this.#startTicking();
  }

  #readTrack(wc, kind, track, handle) {
    const clone = track.clone();
    wc.tracks.push(clone);
    const reader = new MediaStreamTrackProcessor({ track: clone }).readable.getReader();
    wc.readers.push(reader);
    (async () => {
      for (;;) {
        let r;
        try {
          r = await reader.read();
        } catch {
          break;
        }
        if (r.done) break;
        if (!wc.running) {
          r.value.close();
          break;
        }
        handle(r.value);
      }
      // The track ended by itself (the camera or microphone went away), not by our stop.
      if (wc.running && this.#wc === wc) this.#mediaWentAway();
    })();
  }

  // The first input of a track puts it on the page's clock.
  #noteInput(wc, kind, timestamp) {
    if (kind in wc.offset) return;
    const now = Math.round(performance.now() * 1000);
    // Audio already on the page's clock (Chromium's) keeps its times exact. Video is always
    // mapped by when its first frame was read: a canvas track's times start at 0 at its first
    // frame, which in a young page is within 0.5 s of performance.now() without being on its
    // clock (it put the sound 100+ ms late in the A/V-sync benchmark).
    wc.offset[kind] = kind === 'audio' && Math.abs(now - timestamp) < 500_000 ? 0 : now - timestamp;
    wc.first[kind] = timestamp + wc.offset[kind];
    if (wc.kinds.every((k) => k in wc.first)) this.#setZero();
  }

  #setZero() {
    const wc = this.#wc;
    if (!wc || wc.zero !== null) return;
    const firsts = Object.values(wc.first);
    if (firsts.length === 0) return; // nothing yet: the first input sets it
    clearTimeout(wc.zeroTimer);
    wc.zero = Math.min(...firsts);
    const pending = wc.pending;
    wc.pending = [];
    for (const [type, flags, time, payload] of pending) this.#sendFrame(wc, type, flags, time, payload);
  }

  #onVideoFrame(wc, frame) {
    try {
      this.#noteInput(wc, 'video', frame.timestamp);
      const enc = wc.venc;
      if (enc.state !== 'configured') return;
      if (this.state === 'reconnecting') {
        // No socket to send to: nothing is encoded until the resume, which starts on a key frame.
        this.framesDropped += 1;
        wc.needKey = true;
        return;
      }
      const ws = this.#ws;
      if (enc.encodeQueueSize > MAX_ENCODE_QUEUE) {
        // The encoder cannot keep up: skip this frame (the next ones still follow the last).
        this.framesDropped += 1;
        return;
      }
      if (ws && ws.bufferedAmount > SOFT_BUFFERED_BYTES) {
        // The network cannot keep up: skip, and start again from a key frame once it has.
        this.framesDropped += 1;
        wc.needKey = true;
        return;
      }
      const t = frame.timestamp;
      const key = wc.needKey || t - wc.lastKey >= KEY_INTERVAL_US || t < wc.lastKey;
      if (key) {
        wc.needKey = false;
        wc.lastKey = t;
      }
      // When it was read, for encodeDelay (its chunk carries the same timestamp).
      this.#frameTimes.set(t, performance.now());
      if (this.#frameTimes.size > MAX_FRAME_TIMES) this.#frameTimes.delete(this.#frameTimes.keys().next().value);
      enc.encode(frame, { keyFrame: key });
    } catch (err) {
      this.#encoderFailed('video', err);
    } finally {
      frame.close();
    }
  }

  #onAudioData(wc, data) {
    try {
      this.#noteInput(wc, 'audio', data.timestamp);
      const enc = wc.aenc;
      if (enc.state === 'unconfigured') {
        enc.configure({
          codec: 'opus',
          sampleRate: data.sampleRate,
          numberOfChannels: data.numberOfChannels,
          bitrate: this.#opts.audioBitsPerSecond,
          // 60 ms packets, as MediaRecorder makes: a third of the messages
          // and of the server's per-packet work, for 40 ms more audio delay.
          opus: { frameDuration: 60_000 },
        });
      }
      if (enc.state !== 'configured' || this.state === 'reconnecting') return;
      if (enc.encodeQueueSize > 50) {
        wc.audioDrops += 1; // a second of audio waiting: the machine is overloaded
        return;
      }
      enc.encode(data);
    } catch (err) {
      this.#encoderFailed('audio', err);
    } finally {
      data.close();
    }
  }

  #onVideoChunk(wc, chunk, meta) {
    if (!wc.outputs || this.#wc !== wc) return;
    this.framesEncoded += 1;
    const read = this.#frameTimes.get(chunk.timestamp);
    if (read !== undefined) {
      this.#frameTimes.delete(chunk.timestamp);
      this.#noteEncodeDelay(performance.now() - read);
    }
    const key = chunk.type === 'key';
    if (key) {
      wc.lastKey = Math.max(wc.lastKey, chunk.timestamp);
    }
    if (this.state === 'reconnecting') {
      // Encoded before the loss: no socket for it, and the resumed stream starts on a key frame.
      this.framesDropped += 1;
      wc.waitKey = true;
      wc.needKey = true;
      return;
    }
    const ws = this.#ws;
    const congested = ws && ws.bufferedAmount > SOFT_BUFFERED_BYTES;
    if (!key && (wc.waitKey || congested || !wc.videoDesc && !(meta && meta.decoderConfig))) {
      // A frame the server could not decode (one before it is missing), or no room for it.
      this.framesDropped += 1;
      wc.waitKey = true;
      wc.needKey = true;
      return;
    }
    if (chunk.byteLength > WC_MAX_PAYLOAD) {
      this.framesDropped += 1;
      wc.waitKey = true;
      wc.needKey = true;
      return;
    }
    if (key) wc.waitKey = false;
    const time = chunk.timestamp + wc.offset.video;
    const desc = meta && meta.decoderConfig && meta.decoderConfig.description;
    if (desc) {
      const bytes = copyBytes(desc);
      if (!sameBytes(bytes, wc.videoDesc)) {
        wc.videoDesc = bytes;
        this.#frame(wc, WC_VIDEO_CONFIG, 0, time, bytes);
      }
    }
    if (!wc.videoDesc) {
      this.#encoderFailed('video', new Error('the encoder gave no H.264 configuration (avcC)'));
      return;
    }
    const payload = new Uint8Array(chunk.byteLength);
    chunk.copyTo(payload);
    this.#frame(wc, WC_VIDEO, key ? WC_KEY : 0, time, payload);
  }

  #onAudioChunk(wc, chunk, meta) {
    if (!wc.outputs || this.#wc !== wc || chunk.byteLength === 0 || this.state === 'reconnecting') return;
    const time = chunk.timestamp + wc.offset.audio;
    const desc = meta && meta.decoderConfig ? meta.decoderConfig.description : undefined;
    if (desc || wc.audioDesc === null) {
      const bytes = desc ? copyBytes(desc) : new Uint8Array(0);
      if (!sameBytes(bytes, wc.audioDesc)) {
        wc.audioDesc = bytes;
        this.#frame(wc, WC_AUDIO_CONFIG, 0, time, bytes);
      }
    }
    const payload = new Uint8Array(chunk.byteLength);
    chunk.copyTo(payload);
    this.#frame(wc, WC_AUDIO, WC_KEY, time, payload);
  }

  // One frame to send, or to keep until time zero is known.
  #frame(wc, type, flags, time, payload) {
    if (wc.zero === null) wc.pending.push([type, flags, time, payload]);
    else this.#sendFrame(wc, type, flags, time, payload);
  }

  #sendFrame(wc, type, flags, time, payload) {
    const ws = this.#ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return;
    // Reconnecting: the socket (if any) has not resumed the broadcast yet.
    if (this.state === 'error' || this.state === 'ended' || this.state === 'reconnecting') return;
    let t = time - wc.zero;
    if (t < 0) {
      if (type === WC_AUDIO) return; // sound from before the broadcast's start
      t = 0;
    }
    const buf = new Uint8Array(WC_HEADER + payload.byteLength);
    const view = new DataView(buf.buffer);
    view.setUint8(0, type);
    view.setUint8(1, flags);
    view.setBigInt64(2, BigInt(Math.round(t)));
    view.setUint32(10, payload.byteLength);
    buf.set(payload, WC_HEADER);
    ws.send(buf);
    this.#sent(buf.byteLength);
  }

  // After a resume: the stream starts again with the configurations (their time means nothing
  // to the server), then video from the next key frame; the clock (wc.zero) goes on.
  #restartWebCodecs() {
    const wc = this.#wc;
    if (!wc || !wc.running) return;
    wc.waitKey = true;
    wc.needKey = true;
    if (wc.zero === null) return; // nothing was sent yet: the configurations come first anyway
    const now = Math.round(performance.now() * 1000);
    if (wc.videoDesc) this.#sendFrame(wc, WC_VIDEO_CONFIG, 0, now, wc.videoDesc);
    if (wc.audioDesc) this.#sendFrame(wc, WC_AUDIO_CONFIG, 0, now, wc.audioDesc);
  }

  #noteEncodeDelay(ms) {
    const now = performance.now();
    const d = this.#encodeDelays;
    d.push([now, ms]);
    while (d.length && (d[0][0] < now - 1000 || d.length > 240)) d.shift();
  }

  #encoderFailed(kind, err) {
    if (!['connecting', 'live', 'reconnecting', 'stopping'].includes(this.state)) return;
    const what = kind === 'audio' ? 'audio' : 'video';
    this.#fail('encoder_error', `the browser's ${what} encoder failed${err && err.message ? `: ${err.message}` : ''}`);
    this.#closeSocket(1000, 'encoder error');
  }

  // Ends the WebCodecs pipeline. With `flush`, what the encoders still hold is encoded and
  // sent first.
  async #stopWebCodecs(flush) {
    const wc = this.#wc;
    if (!wc || !wc.running) return;
    wc.running = false;
    for (const reader of wc.readers) reader.cancel().catch(() => {});
    if (flush) {
      const flushing = [wc.venc, wc.aenc]
        .filter((enc) => enc && enc.state === 'configured')
        .map((enc) => enc.flush().catch(() => {}));
      await Promise.race([Promise.all(flushing), new Promise((resolve) => { setTimeout(resolve, 2000); })]);
      this.#setZero();
    }
    wc.outputs = false;
    clearTimeout(wc.zeroTimer);
    for (const enc of [wc.venc, wc.aenc]) {
      if (enc && enc.state !== 'closed') {
        try { enc.close(); } catch { /* closed */ }
      }
    }
    for (const track of wc.tracks) track.stop(); // our clones only
  }

  // Stops whichever way in is running; resolves when the last media has been handed over.
  #stopMedia(flush = false) {
    if (this.#wc) return this.#stopWebCodecs(flush);
    return this.#stopRecorder();
  }

  #tick() {
    const ws = this.#ws;
    if (!ws || this.state === 'reconnecting') return;
    const now = performance.now();
    const onWire = this.bytesSent - ws.bufferedAmount;
    const dt = (now - this.#rateMark.time) / 1000;
    if (dt > 0) this.bitrate = Math.max(0, Math.round(((onWire - this.#rateMark.bytes) * 8) / dt));
    this.#rateMark = { time: now, bytes: onWire };
    this.#checkBuffer();
    this.#adaptRecorder();
  }

  #checkBuffer() {
    const ws = this.#ws;
    if (ws && ws.bufferedAmount > MAX_BUFFERED_BYTES && (this.state === 'live' || this.state === 'connecting')) {
      this.#fail('network_too_slow', 'network too slow: the connection cannot carry this bitrate');
      this.#closeSocket(1000, 'network too slow');
    }
  }

  // Stops the recorder (ours: not the camera going away); with `discard`, what it still
  // produces is dropped. Resolves after its 'stop', when its last data is in #chain.
  #stopRecorder(discard = false) {
    const rec = this.#rec;
    if (!rec) return Promise.resolve();
    rec.ours = true;
    if (discard) rec.discard = true;
    if (rec.recorder.state !== 'inactive') {
      try { rec.recorder.stop(); } catch { return Promise.resolve(); }
    }
    return within(rec.done, 2000);
  }

  #closeSocket(code, reason) {
    const ws = this.#ws;
    if (ws && ws.readyState <= WebSocket.OPEN) {
      try { ws.close(code, reason); } catch { /* closing */ }
    }
  }

  // Every timer of this broadcast.
  #cleanup() {
    clearInterval(this.#timer);
    this.#timer = 0;
    clearTimeout(this.#readyTimer);
    clearTimeout(this.#openTimer);
    this.#stopPing();
    const r = this.#resume;
    if (r) {
      clearTimeout(r.timer);
      clearTimeout(r.expiry);
    }
    this.#resume = null;
  }

  #fail(code, message, detail) {
    if (this.state === 'error' || this.state === 'ended') return;
    this.#keys = null;
    this.error = detail || { code, message };
    this.#stopMedia();
    this.#cleanup();
    this.#setState('error');
    this.#emit('error', this.error);
    if (!this.#ws || this.#ws.readyState === WebSocket.CLOSED) this.#resolveClosed();
  }

  #setState(state) {
    if (this.state === state) return;
    const previous = this.state;
    this.state = state;
    if (state === 'live') this.#startPing();
    else this.#stopPing();
    if ((state === 'ended' || state === 'error') && this.liveSince && !this.endedAt) this.endedAt = Date.now();
    this.#emit('state', { state, previous });
  }

  #emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  #later(fn) {
    setTimeout(fn, 0);
  }
}

// `promise`, or undefined after `ms` if it has not settled by then.
function within(promise, ms) {
  let timer = 0;
  return Promise.race([promise, new Promise((resolve) => { timer = setTimeout(resolve, ms); })])
    .finally(() => clearTimeout(timer));
}

// A copy of a decoderConfig.description (an ArrayBuffer or a view of one).
function copyBytes(src) {
  const view = ArrayBuffer.isView(src)
    ? new Uint8Array(src.buffer, src.byteOffset, src.byteLength)
    : new Uint8Array(src);
  return new Uint8Array(view);
}

function sameBytes(a, b) {
  if (!a || !b || a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
