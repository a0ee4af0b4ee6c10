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
//   pub.addEventListener('state', () => console.log(pub.state));
//   pub.addEventListener('error', (e) => console.log(e.detail.code, e.detail.message));
//   ...
//   await pub.stop();
//
// States: 'connecting' → 'live' → 'stopping' → 'ended', or 'error' from any of them.
// 'live' means the server answered `ready` and the first chunk of media has been sent.

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
  #recorder = null;
  #opts;
  #chain = Promise.resolve(); // sends, in the order dataavailable fired
  #stopPromise = null;
  #closed = null; // resolves when the socket has closed
  #resolveClosed;
  #timer = 0;
  #rateMark = { time: 0, bytes: 0 };
  #readyTimer = 0;
  #keys = null; // {name: stream key}, only until `start` has been sent

  /** 'connecting' | 'live' | 'stopping' | 'ended' | 'error' */
  state = 'connecting';
  /** MediaRecorder type in use. */
  mimeType = null;
  /** the server's `ready` message, once it came. */
  ready = null;
  /** the latest server `stats` message. */
  stats = null;
  /** {code, message} (plus `type` when it came from the server) once the state is 'error'. */
  error = null;
  /** destination name → {name, state, reason, bytes_out, bitrate_out}, from `destination` and `stats`. */
  destinations = {};
  /** bytes handed to the WebSocket, and in how many chunks. */
  bytesSent = 0;
  chunksSent = 0;
  /** client-side send rate in bits per second over the last second (what left the socket buffer). */
  bitrate = 0;
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
    videoBitsPerSecond = 2_500_000,
    audioBitsPerSecond = 128_000,
    timeslice = 250,
    readyTimeout = 20_000,
    profile,
    keys,
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
      videoBitsPerSecond,
      audioBitsPerSecond,
      timeslice,
      readyTimeout,
      profile: typeof profile === 'string' ? profile : '',
    };
    // Only keys with a value go into `start`; they are kept nowhere else.
    const entries = keys && typeof keys === 'object'
      ? Object.entries(keys).filter(([name, key]) => name && typeof key === 'string' && key !== '')
      : [];
    this.#keys = entries.length ? Object.fromEntries(entries) : null;
    this.mimeType = mimeType || pickMimeType();
    this.#closed = new Promise((resolve) => { this.#resolveClosed = resolve; });

    // Fail after the caller had a chance to add listeners.
    if (!this.mimeType) {
      this.#later(() => this.#fail('no_supported_type',
        'this browser cannot record H.264 or VP8 video with MediaRecorder'));
      return;
    }
    if (destinations.length === 0) {
      this.#later(() => this.#fail('no_destination', 'no destination was chosen'));
      return;
    }
    if (!stream || stream.getVideoTracks().length === 0) {
      this.#later(() => this.#fail('no_stream', 'there is no camera video to send'));
      return;
    }
    this.#connect();
  }

  /** 'passthrough' or 'transcode' once ready, else null. */
  get video() { return this.ready ? this.ready.video : null; }
  get audio() { return this.ready ? this.ready.audio : null; }
  get url() { return this.#opts.url; }
  /** the output profile asked for in `start` ('' for none: the video goes as it came). */
  get profile() { return this.#opts.profile; }

  /**
   * End the broadcast cleanly: stop the recorder, send what it still had, send `stop`,
   * and wait for the server to close. Resolves when the socket has closed (never rejects).
   */
  stop() {
    if (this.#stopPromise) return this.#stopPromise;
    this.#stopPromise = this.#stop();
    return this.#stopPromise;
  }

  /** End at once without waiting for the server (for pagehide). */
  close() {
    this.#keys = null;
    this.#stopRecorder();
    this.#cleanup();
    if (this.state === 'connecting' || this.state === 'live' || this.state === 'stopping') {
      this.#setState('ended');
    }
    if (this.#ws && this.#ws.readyState <= WebSocket.OPEN) {
      try { this.#ws.close(1000, 'page closed'); } catch { /* already closing */ }
    }
  }

  async #stop() {
    const ws = this.#ws;
    if (this.state === 'ended' || this.state === 'error') return;
    if (!ws || !this.ready) {
      // Nothing was recorded yet: there is nothing to flush.
      this.#setState('stopping');
      this.close();
      if (ws) await this.#waitClosed(STOP_TIMEOUT_MS);
      return;
    }
    this.#setState('stopping');
    await this.#stopRecorder(); // the final dataavailable comes before 'stop'
    await this.#chain;
    if (ws.readyState === WebSocket.OPEN) {
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

  #connect() {
    let ws;
    try {
      ws = new WebSocket(this.#opts.url);
    } catch (err) {
      this.#later(() => this.#fail('connection_failed', `could not connect to ${this.#opts.url}: ${err.message}`));
      return;
    }
    ws.binaryType = 'arraybuffer';
    this.#ws = ws;
    let opened = false;

    ws.addEventListener('open', () => {
      opened = true;
      const start = {
        type: 'start',
        version: PROTOCOL_VERSION,
        ingest: 'mediarecorder',
        mime: this.mimeType,
        destinations: this.#opts.destinations,
      };
      if (this.#opts.profile) start.profile = this.#opts.profile;
      if (this.#keys) start.keys = this.#keys;
      this.#keys = null; // sent; this object does not keep them
      ws.send(JSON.stringify(start));
      this.#readyTimer = setTimeout(() => {
        if (!this.ready && this.state === 'connecting') {
          this.#fail('ready_timeout', 'the server did not answer in time');
          try { ws.close(1000, 'no answer'); } catch { /* closing */ }
        }
      }, this.#opts.readyTimeout);
    });

    ws.addEventListener('message', (ev) => {
      if (typeof ev.data !== 'string') return; // the server sends no binary in version 1
      let msg;
      try { msg = JSON.parse(ev.data); } catch { return; }
      if (msg && typeof msg === 'object') this.#onMessage(msg);
    });

    ws.addEventListener('close', (ev) => {
      this.closeCode = ev.code;
      this.closeReason = ev.reason;
      this.#stopRecorder();
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
        if (this.ready || this.state !== 'connecting') return;
        clearTimeout(this.#readyTimer);
        this.ready = msg;
        for (const name of msg.destinations || this.#opts.destinations) {
          if (!this.destinations[name]) this.destinations[name] = { name, state: 'connecting', reason: '' };
        }
        this.#emit('ready', msg);
        this.#startRecorder();
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
        this.#fail(msg.code || 'server_error', msg.message || 'the server ended the broadcast', msg);
        break;
      default:
        // Unknown messages (later protocol additions such as `bitrate`, `keyframe`) are ignored.
        break;
    }
  }

  #startRecorder() {
    let recorder;
    try {
      recorder = new MediaRecorder(this.#stream, {
        mimeType: this.mimeType,
        videoBitsPerSecond: this.#opts.videoBitsPerSecond,
        audioBitsPerSecond: this.#opts.audioBitsPerSecond,
        // Chromium: one key frame a second, so the stream can be joined and cut quickly.
        videoKeyFrameIntervalDuration: 1000,
      });
    } catch (err) {
      this.#fail('recorder_failed', `the browser could not start recording: ${err.message}`);
      this.#closeSocket(1000, 'recorder failed');
      return;
    }
    this.#recorder = recorder;
    recorder.addEventListener('dataavailable', (ev) => {
      if (!ev.data || ev.data.size === 0) return;
      const blob = ev.data;
      this.#chain = this.#chain.then(() => this.#send(blob));
    });
    recorder.addEventListener('error', (ev) => {
      const err = ev.error || {};
      this.#fail('recorder_error', `recording failed${err.message ? `: ${err.message}` : ''}`);
      this.#closeSocket(1000, 'recorder error');
    });
    recorder.addEventListener('stop', () => {
      if (this.state === 'connecting' || this.state === 'live') {
        // The recorder stopped by itself, e.g. the camera was unplugged.
        this.#chain.then(() => {
          if (this.state === 'connecting' || this.state === 'live') {
            this.#fail('recorder_stopped', 'recording stopped: the camera or microphone went away');
            this.#closeSocket(1000, 'recorder stopped');
          }
        });
      }
    });
    try {
      recorder.start(this.#opts.timeslice);
    } catch (err) {
      this.#fail('recorder_failed', `the browser could not start recording: ${err.message}`);
      this.#closeSocket(1000, 'recorder failed');
      return;
    }
    this.#rateMark = { time: performance.now(), bytes: 0 };
    this.#timer = setInterval(() => this.#tick(), 1000);
  }

  async #send(blob) {
    const ws = this.#ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return;
    if (this.state === 'error' || this.state === 'ended') return;
    const buf = await blob.arrayBuffer();
    if (ws.readyState !== WebSocket.OPEN) return;
    for (let off = 0; off < buf.byteLength; off += MAX_FRAME_BYTES) {
      ws.send(off === 0 && buf.byteLength <= MAX_FRAME_BYTES ? buf : buf.slice(off, off + MAX_FRAME_BYTES));
    }
    this.bytesSent += buf.byteLength;
    this.chunksSent += 1;
    if (this.chunksSent === 1 && this.state === 'connecting') {
      this.liveSince = Date.now();
      this.#setState('live');
    }
    this.#emit('sent', { bytesSent: this.bytesSent, chunksSent: this.chunksSent, bitrate: this.bitrate });
    this.#checkBuffer();
  }

  #tick() {
    const ws = this.#ws;
    if (!ws) return;
    const now = performance.now();
    const onWire = this.bytesSent - ws.bufferedAmount;
    const dt = (now - this.#rateMark.time) / 1000;
    if (dt > 0) this.bitrate = Math.max(0, Math.round(((onWire - this.#rateMark.bytes) * 8) / dt));
    this.#rateMark = { time: now, bytes: onWire };
    this.#checkBuffer();
  }

  #checkBuffer() {
    const ws = this.#ws;
    if (ws && ws.bufferedAmount > MAX_BUFFERED_BYTES && (this.state === 'live' || this.state === 'connecting')) {
      this.#fail('network_too_slow', 'network too slow: the connection cannot carry this bitrate');
      this.#closeSocket(1000, 'network too slow');
    }
  }

  #stopRecorder() {
    const recorder = this.#recorder;
    if (!recorder || recorder.state === 'inactive') return Promise.resolve();
    return new Promise((resolve) => {
      recorder.addEventListener('stop', () => resolve(), { once: true });
      try { recorder.stop(); } catch { resolve(); }
    });
  }

  #closeSocket(code, reason) {
    const ws = this.#ws;
    if (ws && ws.readyState <= WebSocket.OPEN) {
      try { ws.close(code, reason); } catch { /* closing */ }
    }
  }

  #cleanup() {
    clearInterval(this.#timer);
    clearTimeout(this.#readyTimer);
    this.#timer = 0;
  }

  #fail(code, message, detail) {
    if (this.state === 'error' || this.state === 'ended') return;
    this.#keys = null;
    this.error = detail || { code, message };
    this.#stopRecorder();
    this.#cleanup();
    this.#setState('error');
    this.#emit('error', this.error);
    if (!this.#ws) this.#resolveClosed();
  }

  #setState(state) {
    if (this.state === state) return;
    const previous = this.state;
    this.state = state;
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
