// Package mediarecorder is the publish WebSocket (docs/protocol.md): a JSON
// start message, then binary media, and JSON messages back. It began as
// the MediaRecorder ingest (the recorder's output as one continuous byte
// stream) and now also serves the webcodecs ingest, whose frame format
// lives in internal/ingest/webcodecs; the two share everything but the
// demuxer. (To be renamed for what it is once the WHIP ingest arrives.)
package mediarecorder

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base32"
	"encoding/base64"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"

	"github.com/livegate/livegate/internal/auth"
	"github.com/livegate/livegate/internal/demux/fmp4"
	"github.com/livegate/livegate/internal/demux/webm"
	"github.com/livegate/livegate/internal/ingest/webcodecs"
	"github.com/livegate/livegate/internal/media"
	"github.com/livegate/livegate/internal/metrics"
	"github.com/livegate/livegate/internal/publish"
	"github.com/livegate/livegate/internal/session"
	"github.com/livegate/livegate/internal/transcode"
)

const (
	startTimeout = 10 * time.Second // from connect to the start message
	writeTimeout = 5 * time.Second  // for one message to the browser
	statsPeriod  = time.Second
)

// errStopRequested: the browser sent stop.
var errStopRequested = errors.New("the browser ended the broadcast")

// Destination is a destination as browsers may choose it.
type Destination struct {
	Name string
	// Target gives the publish URL (gortmplib's form); clientKey is the
	// streamer's own key for a KeyFromClient destination, else "". Its
	// errors never repeat the key.
	Target        func(clientKey string) (*url.URL, error)
	KeyFromClient bool
	// Profile is forced on every broadcast to it; Profiles are those a
	// streamer may choose (none: the video goes as it came).
	Profile  string
	Profiles []string
}

// Handler serves the publish WebSocket. Set its fields, Initialize with the
// server's context (cancelling it ends every session with shutting_down),
// then Wait for the sessions to end. Drain before that lets the live
// broadcasts go on for a while and takes no new one; Reconfigure changes
// the settings while it runs.
type Handler struct {
	Log        *slog.Logger
	Metrics    *metrics.Metrics
	FFmpegPath string

	// The fields below are the first Settings (see there): those of the
	// broadcasts that start before the first Reconfigure. Changing them
	// after Initialize has no effect.

	Encode                transcode.Options
	Destinations          map[string]Destination
	Profiles              map[string]session.Profile
	MaxSessions           int
	MaxSessionsPerAddress int
	MaxSessionLength      time.Duration
	MaxIngestBitrate      int64
	MaxMessageBytes       int64
	FirstMediaTimeout     time.Duration
	IdleTimeout           time.Duration
	Auth                  *auth.Verifier
	AllowedOrigins        []string
	ResumeWindow          time.Duration

	ctx      context.Context
	known    map[string]bool // the names of Destinations
	settings atomic.Pointer[snapshot]
	mu       sync.Mutex
	closed   bool
	parked   map[string]*parkedSession // by session id: broadcasts a resume may take over
	byAddr   map[string]int            // broadcasts per client IP address
	live     map[string]*connSession   // the broadcasts in progress, by session id
	wg       sync.WaitGroup
	active   atomic.Int64

	// The drain (Drain): drainCh is closed when it begins, drained when,
	// after that, no publish WebSocket is left (open counts them).
	draining    bool
	deadline    time.Time
	drainCh     chan struct{}
	open        int
	drained     chan struct{}
	drainedShut bool
}

// Settings are what may change while livegate runs (Reconfigure, on a
// configuration reload). Each broadcast takes the settings of the moment
// its WebSocket arrives and keeps them to its end: a destination removed
// meanwhile goes on receiving the broadcasts that were already sent to it.
type Settings struct {
	// Encode holds the encoder settings, used only for the tracks that
	// must be transcoded (Opus audio, VP8/VP9/AV1 video).
	Encode transcode.Options
	// Destinations the browser may choose, by name.
	Destinations map[string]Destination
	Profiles     map[string]session.Profile
	// MaxSessions bounds the broadcasts in progress.
	MaxSessions int
	// MaxSessionsPerAddress bounds the broadcasts from one client IP
	// address (0: no bound).
	MaxSessionsPerAddress int
	// MaxSessionLength ends a broadcast that has lasted this long (0: no
	// bound).
	MaxSessionLength time.Duration
	// MaxIngestBitrate ends a broadcast whose media arrives faster than
	// this many bits a second, over 5 s (0: no bound).
	MaxIngestBitrate  int64
	MaxMessageBytes   int64
	FirstMediaTimeout time.Duration
	IdleTimeout       time.Duration
	// Auth decides who may publish; nil: anyone (no auth configured).
	Auth *auth.Verifier
	// AllowedOrigins are the other web origins ("https://app.example.com",
	// path.Match patterns) whose pages may publish; the page's own origin
	// always may.
	AllowedOrigins []string
	// ResumeWindow is how long a broadcast whose socket was lost waits for
	// the browser to resume it on a new one (0: it ends at once).
	ResumeWindow time.Duration
}

// snapshot is one Settings as the broadcasts read it: never changed once
// stored.
type snapshot struct {
	Settings
	known map[string]bool // the destination names
}

func newSnapshot(s Settings) *snapshot {
	return &snapshot{Settings: s, known: keySet(s.Destinations)}
}

// keySet is the set of a map's keys.
func keySet[V any](m map[string]V) map[string]bool {
	set := make(map[string]bool, len(m))
	for name := range m {
		set[name] = true
	}
	return set
}

// parkedSession is a broadcast a resume may take over: one whose socket was
// lost, or one whose socket still looks alive to livegate but is dead to
// the browser (a network change often leaves the server's side open).
type parkedSession struct {
	token  string
	attach chan *attachment // buffered: the one resumer never blocks
}

// attachment hands a resumed socket to the broadcast's goroutine. The
// handler that accepted the socket waits until release is called, so
// that Wait covers it.
type attachment struct {
	c       *websocket.Conn
	remote  string
	release func()
}

// Initialize prepares the handler; ctx is the server's lifetime.
func (h *Handler) Initialize(ctx context.Context) {
	h.ctx = ctx
	h.parked = make(map[string]*parkedSession)
	h.byAddr = make(map[string]int)
	h.live = make(map[string]*connSession)
	h.drainCh = make(chan struct{})
	h.drained = make(chan struct{})
	h.known = keySet(h.Destinations)
	h.settings.Store(&snapshot{known: h.known, Settings: Settings{
		Encode: h.Encode, Destinations: h.Destinations, Profiles: h.Profiles,
		MaxSessions: h.MaxSessions, MaxSessionsPerAddress: h.MaxSessionsPerAddress, MaxSessionLength: h.MaxSessionLength,
		MaxIngestBitrate: h.MaxIngestBitrate, MaxMessageBytes: h.MaxMessageBytes,
		FirstMediaTimeout: h.FirstMediaTimeout, IdleTimeout: h.IdleTimeout,
		Auth: h.Auth, AllowedOrigins: h.AllowedOrigins, ResumeWindow: h.ResumeWindow,
	}})
}

// Reconfigure replaces the settings for the broadcasts that start from now
// on; those in progress keep theirs. The caller must not change s's maps,
// slices or Auth afterwards.
func (h *Handler) Reconfigure(s Settings) {
	h.settings.Store(newSnapshot(s))
}

// Wait returns when every session has ended. Cancel the context given to
// Initialize first.
func (h *Handler) Wait() {
	// After this no new session is added, so wg.Wait cannot race an Add.
	h.mu.Lock()
	h.closed = true
	h.mu.Unlock()
	h.wg.Wait()
}

// Drain stops taking broadcasts: from now on a publish WebSocket is refused
// (HTTP 503) unless it comes to resume one in progress, and a start is
// refused with shutting_down. Each live broadcast is told (a draining
// message) that it ends in grace; it goes on meanwhile. Drain returns at
// once: Drained tells when the last broadcast has ended, and cancelling the
// context given to Initialize ends those left. Only the first call counts.
func (h *Handler) Drain(grace time.Duration) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.draining {
		return
	}
	h.draining = true
	h.deadline = time.Now().Add(grace)
	close(h.drainCh)
	h.checkDrained()
}

// Draining reports whether Drain has been called.
func (h *Handler) Draining() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.draining
}

// Drained is closed once Drain has been called and no publish WebSocket is
// left.
func (h *Handler) Drained() <-chan struct{} { return h.drained }

// checkDrained closes drained when the drain has nothing left. h.mu is held.
func (h *Handler) checkDrained() {
	if h.draining && h.open == 0 && !h.drainedShut {
		h.drainedShut = true
		close(h.drained)
	}
}

// authorize checks the start's token against what it asks for.
func authorize(v *auth.Verifier, token string, req *startRequest) (*auth.Grant, *protoError) {
	if v == nil {
		return &auth.Grant{Subject: "anonymous"}, nil
	}
	g, err := v.Verify(token)
	switch {
	case errors.Is(err, auth.ErrNoToken):
		return nil, errorf("unauthorized", closeUnauthorized, "this server needs a token to publish; ask its operator for one")
	case errors.Is(err, auth.ErrExpired):
		return nil, errorf("unauthorized", closeUnauthorized, "your token has expired; get a new one and go live again")
	case err != nil:
		return nil, errorf("unauthorized", closeUnauthorized, "your token is not valid on this server")
	}
	for _, d := range req.Destinations {
		if !g.AllowsDestination(d) {
			return nil, errorf("destination_not_allowed", closeForbidden, "your token does not allow destination %q", d)
		}
	}
	if !g.AllowsProfile(req.Profile) {
		return nil, errorf("profile_not_allowed", closeForbidden, "your token does not allow the %s profile", req.Profile)
	}
	return g, nil
}

// countAddress counts a broadcast from remote's IP address; ok is false
// when that address has limit already (0: no bound). release uncounts it.
func (h *Handler) countAddress(remote string, limit int) (release func(), ok bool) {
	ip := remote
	if host, _, err := net.SplitHostPort(remote); err == nil {
		ip = host
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if limit > 0 && h.byAddr[ip] >= limit {
		return nil, false
	}
	h.byAddr[ip]++
	return func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		if h.byAddr[ip]--; h.byAddr[ip] <= 0 {
			delete(h.byAddr, ip)
		}
	}, true
}

// Active is the number of broadcasts in progress.
func (h *Handler) Active() int { return int(h.active.Load()) }

// resumeParam, in the publish URL's query, says that the socket comes to
// resume a broadcast (its session id): during a drain only such sockets
// are taken.
const resumeParam = "resume"

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	set := h.settings.Load()
	h.mu.Lock()
	if h.closed || h.ctx.Err() != nil || (h.draining && r.URL.Query().Get(resumeParam) == "") {
		h.mu.Unlock()
		// A browser's WebSocket sees no status or body, only a failed
		// connection; a load balancer or a script sees this.
		if h.Metrics != nil {
			h.Metrics.SessionErrors.WithLabelValues("shutting_down").Inc()
		}
		w.Header().Set("Retry-After", "5")
		http.Error(w, "livegate is shutting down and takes no new broadcast; start again in a moment", http.StatusServiceUnavailable)
		return
	}
	h.wg.Add(1)
	h.open++
	h.mu.Unlock()
	defer func() {
		h.mu.Lock()
		h.open--
		h.checkDrained()
		h.mu.Unlock()
		h.wg.Done()
	}()

	// The Origin must be the page's own or an allowed one: this stops
	// other sites from publishing through a visitor's browser (cross-site
	// WebSocket hijacking).
	c, err := websocket.Accept(w, r, &websocket.AcceptOptions{OriginPatterns: set.AllowedOrigins})
	if err != nil {
		h.Log.Info("websocket handshake refused", "remote", r.RemoteAddr, "origin", truncate(r.Header.Get("Origin"), 100), "error", err)
		if h.Metrics != nil {
			h.Metrics.SessionErrors.WithLabelValues("handshake_refused").Inc()
		}
		return
	}
	// Until start is accepted only control messages are expected: a
	// client cannot make us hold megabytes before it has asked for
	// anything.
	c.SetReadLimit(maxControlLength)
	id := newID()
	log := h.Log.With("session", id)
	cs := &connSession{h: h, set: set, c: c, id: id, log: log, remote: r.RemoteAddr,
		stop: make(chan struct{}), ended: make(chan struct{})}
	cs.run()
}

type connSession struct {
	h      *Handler
	set    *snapshot // the settings of this broadcast, from its first socket
	c      *websocket.Conn
	id     string
	log    *slog.Logger
	remote string

	// The operator's stop (Handler.Stop) closes stop once; ended is
	// closed when the broadcast has ended.
	stop     chan struct{}
	stopOnce sync.Once
	ended    chan struct{}
	// What the admin API shows (Handler.Sessions), written by the
	// broadcast's goroutine.
	infoMu sync.Mutex
	info   SessionInfo
	last   *statsMessage // the latest stats sent to the browser

	sess       *session.Session
	resumable  *parkedSession // nil when resuming is off
	lastMedia  atomic.Int64   // unix nanoseconds of the last media message; 0 before any
	token      string         // the resume token; "" when resuming is off
	maxBitrate int64          // the ingest cap for this broadcast; 0: none
	release    func()         // lets the handler of a resumed socket return
}

func (cs *connSession) run() {
	defer close(cs.ended)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	defer func() { _ = cs.c.CloseNow() }() // the last resort; Close was tried first

	m, perr := cs.readFirst(ctx)
	if perr != nil {
		cs.refuse(perr)
		return
	}
	if m.Type == "resume" {
		cs.handOver(m)
		return
	}
	h, set := cs.h, cs.set
	if h.Draining() {
		cs.refuse(errorf("shutting_down", int(websocket.StatusGoingAway), "the server is restarting and takes no new broadcast; start again in a moment"))
		return
	}
	req, perr := validateStart(m, set.known)
	if perr != nil {
		cs.refuse(perr)
		return
	}
	grant, perr := authorize(set.Auth, m.Token, req)
	if perr != nil {
		cs.refuse(perr)
		return
	}
	cs.log = cs.log.With("subject", grant.Subject)
	cs.maxBitrate = set.MaxIngestBitrate
	if grant.MaxBitrate > 0 && (cs.maxBitrate == 0 || grant.MaxBitrate < cs.maxBitrate) {
		cs.maxBitrate = grant.MaxBitrate
	}
	dests, profile, perr := set.resolve(req.Destinations, req.Profile, req.Keys)
	if perr != nil {
		cs.refuse(perr)
		return
	}
	if n := h.active.Add(1); set.MaxSessions > 0 && n > int64(set.MaxSessions) {
		h.active.Add(-1)
		cs.refuse(errorf("too_many_sessions", closeTooMany, "this server already carries its maximum of %d broadcasts; try again later", set.MaxSessions))
		return
	}
	defer h.active.Add(-1)
	release, ok := h.countAddress(cs.remote, set.MaxSessionsPerAddress)
	if !ok {
		cs.refuse(errorf("too_many_sessions", closeTooMany, "your address already has %d broadcasts on this server; end one first", set.MaxSessionsPerAddress))
		return
	}
	defer release()
	if h.Metrics != nil {
		h.Metrics.SessionsTotal.Inc()
		h.Metrics.SessionsActive.Inc()
		defer h.Metrics.SessionsActive.Dec()
	}

	events := make(chan session.Event, 64)
	videoPass := req.Video == media.CodecH264 && profile == nil
	cs.sess = &session.Session{
		ID:           cs.id,
		Log:          cs.log,
		FFmpegPath:   h.FFmpegPath,
		Encode:       set.Encode,
		NewDemuxer:   demuxerFor(req),
		Profile:      profile,
		Destinations: dests,
		Metrics:      h.Metrics,
		OnEvent: func(ev session.Event) {
			select {
			case events <- ev:
			default:
				cs.log.Warn("destination event dropped: the browser is not keeping up", "destination", ev.Destination, "state", ev.State)
			}
		},
	}
	if err := cs.sess.Start(ctx); err != nil {
		cs.log.Error("could not start the pipeline", "error", err)
		cs.refuse(errorf("encoder_failed", closeInternal, "the server could not start its encoder; the operator should check the logs"))
		return
	}
	cs.c.SetReadLimit(set.MaxMessageBytes)
	started := time.Now()
	cs.log.Info("broadcast started", "remote", cs.remote, "destinations", strings.Join(req.Destinations, ","),
		"video", req.Video.String(), "audio", req.Audio.String(), "video_passthrough", videoPass)
	cs.register(req, grant, profile, started)
	defer cs.unregister()

	ready := readyMessage{Type: "ready", Version: ProtocolVersion, Session: cs.id, Destinations: req.Destinations}
	ready.Video = passOrTranscode(req.Video, media.CodecH264)
	if profile != nil && ready.Video != "" {
		ready.Video = "transcode" // resized to the profile
	}
	ready.Audio = passOrTranscode(req.Audio, media.CodecAAC)
	if set.ResumeWindow > 0 {
		cs.token = newToken()
		ready.ResumeToken, ready.ResumeMS = cs.token, set.ResumeWindow.Milliseconds()
		cs.resumable = &parkedSession{token: cs.token, attach: make(chan *attachment, 1)}
		h.mu.Lock()
		h.parked[cs.id] = cs.resumable
		h.mu.Unlock()
		defer cs.unpark()
	}
	if err := cs.send(ready); err != nil {
		cs.sess.Close()
		return
	}

	var end outcome
	for {
		rctx, rcancel := context.WithCancel(ctx)
		readErr := make(chan error, 1)
		readDone := make(chan struct{})
		go func() { // ends when rctx is cancelled or the socket closes; run waits for it
			defer close(readDone)
			readErr <- cs.readMedia(rctx)
		}()
		end = cs.loop(readErr, events, started)
		if end.lost && cs.token != "" {
			rcancel()
			<-readDone
			_ = cs.c.CloseNow()
			cs.releaseConn()
			lostAt := time.Now()
			var resumed bool
			if end.takeover != nil {
				cs.log.Info("a resume takes the broadcast over from a socket that still looked alive")
				resumed, end = cs.attach(end.takeover, lostAt, ready)
			} else {
				cs.log.Info("connection lost; waiting for the browser to resume", "error", end.cause, "for", set.ResumeWindow)
				cs.setResuming(true)
				resumed, end = cs.waitResume(events, ready)
			}
			if resumed {
				cs.setResuming(false)
				cs.log.Info("broadcast resumed", "remote", cs.remote, "after", time.Since(lostAt).Round(time.Millisecond))
				if h.Metrics != nil {
					h.Metrics.Resumes.Inc()
				}
				continue
			}
		}
		cs.finish(end, rcancel, readDone)
		break
	}
	cs.log.Info("broadcast ended", "duration", time.Since(started).Round(time.Millisecond),
		"bytes_in", cs.sess.Stats().BytesIn, "reason", end.reason())
}

// waitResume keeps the broadcast for the resume window. It returns true
// once a new socket has taken over (the media that follows is a new
// stream), else how the broadcast ends.
func (cs *connSession) waitResume(events <-chan session.Event, ready readyMessage) (bool, outcome) {
	h := cs.h
	lostAt := time.Now()
	t := time.NewTimer(cs.set.ResumeWindow)
	defer t.Stop()
	var end outcome
wait:
	for {
		select {
		case a := <-cs.resumable.attach:
			return cs.attach(a, lostAt, ready)
		case <-events: // the resumed browser is sent the states as they are then
			continue
		case <-t.C:
			end = outcome{graceful: true, closed: true, cause: errors.New("the browser did not resume the broadcast in time")}
		case <-cs.sess.Ended():
			end = cs.pipelineOutcome() // nobody to tell: the socket is gone
		case <-h.ctx.Done():
			end = outcome{graceful: true, closed: true, cause: errors.New("livegate is shutting down")}
		case <-cs.stop:
			end = outcome{graceful: true, closed: true, cause: errStoppedByOperator}
		}
		break wait
	}
	return false, end
}

// unpark ends the broadcast's chance of a resume; a resume that came too
// late is refused.
func (cs *connSession) unpark() {
	h := cs.h
	h.mu.Lock()
	delete(h.parked, cs.id)
	h.mu.Unlock()
	select {
	case a := <-cs.resumable.attach:
		late := &connSession{h: h, c: a.c, id: cs.id, log: cs.log, remote: a.remote}
		late.refuse(errorf("unknown_session", closeNotFound, "the broadcast ended before it could be resumed; start a new one"))
		a.release()
	default:
	}
}

// attach takes a resumed socket over: the stream starts again (a new
// recorder, or WebCodecs configurations and a key frame) after the time
// that passed, and the browser hears the destinations' states.
func (cs *connSession) attach(a *attachment, lostAt time.Time, ready readyMessage) (bool, outcome) {
	cs.c, cs.remote, cs.release = a.c, a.remote, a.release
	cs.c.SetReadLimit(cs.set.MaxMessageBytes)
	cs.infoMu.Lock()
	cs.info.Remote = a.remote
	cs.infoMu.Unlock()
	if cs.lastMedia.Load() != 0 {
		cs.lastMedia.Store(time.Now().UnixNano()) // the idle time counts from now
	}
	if err := cs.sess.Restart(time.Since(lostAt)); err != nil {
		return false, outcome{cause: err, perr: errorf("encoder_failed", closeInternal, "the server could not resume the broadcast; start again")}
	}
	ready.Resumed = true
	if err := cs.send(ready); err != nil {
		return true, outcome{} // the loop sees the socket fail and waits again
	}
	for _, d := range cs.sess.Stats().Destinations {
		if err := cs.send(destinationMessage{Type: "destination", Name: d.Name, State: string(d.State)}); err != nil {
			return true, outcome{}
		}
	}
	return true, outcome{}
}

// handOver gives this socket to the broadcast a resume message names, then
// waits until that broadcast is done with it.
func (cs *connSession) handOver(m *clientMessage) {
	h := cs.h
	if m.Version != ProtocolVersion {
		cs.refuse(errorf("unsupported_version", closeBadRequest, "protocol version %d is not supported; this server speaks version %d", m.Version, ProtocolVersion))
		return
	}
	done := make(chan struct{})
	a := &attachment{c: cs.c, remote: cs.remote, release: sync.OnceFunc(func() { close(done) })}
	h.mu.Lock()
	p, ok := h.parked[m.Session]
	if ok && subtle.ConstantTimeCompare([]byte(p.token), []byte(m.Token)) == 1 {
		select {
		case p.attach <- a: // given while h.mu is held: unpark cannot miss it
		default:
			ok = false // another resume is being taken over
		}
	} else {
		ok = false
	}
	h.mu.Unlock()
	if !ok {
		cs.refuse(errorf("unknown_session", closeNotFound, "no broadcast can be resumed with that session and token; start a new one"))
		return
	}
	<-done
}

// takeover is where a resume arrives while the socket is in use (nil, so
// never, when resuming is off).
func (cs *connSession) takeover() <-chan *attachment {
	if cs.resumable == nil {
		return nil
	}
	return cs.resumable.attach
}

// releaseConn lets the handler of a resumed socket return.
func (cs *connSession) releaseConn() {
	if cs.release != nil {
		cs.release()
		cs.release = nil
	}
}

// outcome is how a broadcast ended.
type outcome struct {
	lost     bool        // the socket failed without a close: the browser may resume
	takeover *attachment // a resume came while the socket still looked alive
	graceful bool        // flush the pipeline before closing
	perr     *protoError // tell the browser, then close with its code
	closed   bool        // the browser went away: nothing to tell
	normal   bool        // close 1000 after a stop
	cause    error
}

func (o outcome) reason() string {
	switch {
	case o.perr != nil:
		return o.perr.Error()
	case o.cause != nil:
		return o.cause.Error()
	case o.normal:
		return "stopped by the browser"
	}
	return "connection closed"
}

func (cs *connSession) loop(readErr <-chan error, events <-chan session.Event, started time.Time) outcome {
	h, set := cs.h, cs.set
	drain := h.drainCh // nil once the browser has been told
	tick := time.NewTicker(statsPeriod)
	defer tick.Stop()
	var lastIn uint64
	lastOut := map[string]uint64{}
	var cc congestion
	var inWindow [5]uint64 // the last 5 s of bitrate_in
	var ticks int
	for {
		select {
		case err := <-readErr:
			var perr *protoError
			switch {
			case errors.Is(err, errStopRequested):
				return outcome{graceful: true, normal: true}
			case errors.As(err, &perr):
				return outcome{perr: perr}
			case errors.Is(err, errEncoderInput):
				return cs.pipelineOutcome()
			default:
				// No close frame: a network loss, which the browser may
				// come back from. A close (1000 page closed, 1001 going
				// away) means it is gone, and so does a message over the
				// limit (the browser's fault, closed with 1009).
				return outcome{closed: true, cause: err, lost: websocket.CloseStatus(err) == -1 && !errors.Is(err, websocket.ErrMessageTooBig)}
			}
		case <-cs.sess.Ended():
			return cs.pipelineOutcome()
		case a := <-cs.takeover():
			return outcome{lost: true, takeover: a, cause: errors.New("a resume took the broadcast over")}
		case <-h.ctx.Done():
			return outcome{graceful: true, perr: &protoError{Code: "shutting_down", Close: int(websocket.StatusGoingAway),
				Message: "the server is shutting down; your broadcast has ended, start again in a moment"}}
		case <-cs.stop:
			return outcome{graceful: true, cause: errStoppedByOperator, perr: errorf("stopped_by_operator", closeGone, "the operator of this server ended your broadcast")}
		case <-drain:
			drain = nil
			left := max(time.Until(h.deadline), 0)
			cs.log.Info("told the browser that the server drains", "ends_in", left.Round(time.Millisecond))
			if err := cs.send(drainingMessage{Type: "draining", DeadlineMS: left.Milliseconds()}); err != nil {
				return outcome{closed: true, cause: err, lost: true}
			}
		case ev := <-events:
			if err := cs.send(destinationMessage{Type: "destination", Name: ev.Destination, State: string(ev.State), Reason: ev.Reason}); err != nil {
				return outcome{closed: true, cause: err, lost: true}
			}
			// A destination that (re)connected starts at the next key frame:
			// ask the browser for one now rather than wait for its interval
			// (a WebCodecs encoder can make one at once; MediaRecorder
			// ignores the message).
			if ev.State == publish.StateLive {
				if err := cs.send(keyframeMessage{Type: "keyframe", Reason: "destination " + ev.Destination + " is live"}); err != nil {
					return outcome{closed: true, cause: err, lost: true}
				}
			}
		case now := <-tick.C:
			last := cs.lastMedia.Load()
			switch {
			case last == 0 && now.Sub(started) > set.FirstMediaTimeout:
				return outcome{perr: errorf("no_media", closeTimeout, "no media arrived within %v of ready; is the recorder running?", set.FirstMediaTimeout)}
			case last != 0 && now.Sub(time.Unix(0, last)) > set.IdleTimeout:
				return outcome{perr: errorf("no_media", closeTimeout, "no media for %v; the broadcast was ended", set.IdleTimeout)}
			case set.MaxSessionLength > 0 && now.Sub(started) > set.MaxSessionLength:
				return outcome{graceful: true, perr: errorf("session_too_long", closeTimeout, "a broadcast on this server may last at most %v; start a new one", set.MaxSessionLength)}
			}
			st := cs.sess.Stats()
			msg := statsMessage{Type: "stats", UptimeMS: time.Since(started).Milliseconds(), BytesIn: st.BytesIn,
				BitrateIn: (st.BytesIn - lastIn) * 8}
			lastIn = st.BytesIn
			inWindow[ticks%len(inWindow)] = msg.BitrateIn
			if ticks++; cs.maxBitrate > 0 && ticks >= len(inWindow) {
				var sum uint64
				for _, v := range inWindow {
					sum += v
				}
				if avg := sum / uint64(len(inWindow)); avg > uint64(cs.maxBitrate) {
					return outcome{perr: errorf("bitrate_exceeded", closeTooMany, "your stream arrives at %d kbit/s; this server takes at most %d kbit/s from you: lower the quality", avg/1000, cs.maxBitrate/1000)}
				}
			}
			for _, d := range st.Destinations {
				msg.Destinations = append(msg.Destinations, destinationStats{Name: d.Name, State: string(d.State),
					BytesOut: d.BytesOut, BitrateOut: (d.BytesOut - lastOut[d.Name]) * 8, Dropped: d.Dropped, Queued: d.Queued,
					QueuedMS: d.QueuedDuration.Milliseconds(), DelayMS: d.DelayMedian.Milliseconds(), DelayMaxMS: d.DelayMax.Milliseconds()})
				lastOut[d.Name] = d.BytesOut
			}
			cs.infoMu.Lock()
			cs.last = &msg
			cs.infoMu.Unlock()
			if err := cs.send(msg); err != nil {
				return outcome{closed: true, cause: err, lost: true}
			}
			if bps, ok := cc.update(now, msg.BitrateIn, msg.Destinations); ok {
				if err := cs.send(bitrateMessage{Type: "bitrate", BPS: bps}); err != nil {
					return outcome{closed: true, cause: err, lost: true}
				}
			}
		}
	}
}

// pipelineOutcome turns the reason the pipeline ended into what the browser
// is told.
func (cs *connSession) pipelineOutcome() outcome {
	// Let the pipeline record why it ended before stopping what is left.
	t := time.NewTimer(2 * time.Second)
	select {
	case <-cs.sess.Done():
	case <-t.C:
	}
	t.Stop()
	cs.sess.Close()
	err := cs.sess.Err()
	switch {
	case errors.Is(err, session.ErrBadMedia):
		return outcome{cause: err, perr: errorf("bad_media", closeUnprocessable, "the server could not read your media stream as the type announced; reload the page and try again")}
	case errors.Is(err, session.ErrAllDestinationsFailed):
		return outcome{cause: err, perr: errorf("destination_failed", closeBadGateway, "%s", strings.TrimPrefix(err.Error(), session.ErrAllDestinationsFailed.Error()+": "))}
	case err == nil:
		return outcome{perr: errorf("encoder_failed", closeInternal, "the server's encoder stopped")}
	}
	return outcome{cause: err, perr: errorf("encoder_failed", closeInternal, "the server's encoder stopped unexpectedly; try again, and tell the operator if it happens again")}
}

func (cs *connSession) finish(o outcome, cancel context.CancelFunc, readDone <-chan struct{}) {
	if o.graceful {
		cs.sess.Finish()
	} else {
		cs.sess.Close()
	}
	if o.perr != nil {
		cs.countError(o.perr.Code)
		cs.log.Info("broadcast refused or ended", "code", o.perr.Code, "message", o.perr.Message, "cause", o.cause)
		_ = cs.send(errorMessage{Type: "error", Code: o.perr.Code, Message: o.perr.Message})
	}
	// Close the socket, which also ends the reader; then wait for it.
	switch {
	case o.perr != nil:
		_ = cs.c.Close(websocket.StatusCode(o.perr.Close), o.perr.Code)
	case o.normal:
		_ = cs.c.Close(websocket.StatusNormalClosure, "stopped")
	}
	cancel()
	<-readDone
	cs.releaseConn()
}

func (cs *connSession) countError(code string) {
	if cs.h.Metrics != nil {
		cs.h.Metrics.SessionErrors.WithLabelValues(code).Inc()
	}
}

func (cs *connSession) refuse(perr *protoError) {
	cs.countError(perr.Code)
	cs.log.Info("publish refused", "remote", cs.remote, "code", perr.Code, "message", perr.Message)
	_ = cs.send(errorMessage{Type: "error", Code: perr.Code, Message: perr.Message})
	_ = cs.c.Close(websocket.StatusCode(perr.Close), perr.Code)
}

func (cs *connSession) send(v any) error {
	ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
	defer cancel()
	return wsjson.Write(ctx, cs.c, v)
}

// readFirst reads the first message: start, or resume.
func (cs *connSession) readFirst(ctx context.Context) (*clientMessage, *protoError) {
	rctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	typ, data, err := cs.c.Read(rctx)
	if err != nil {
		if rctx.Err() != nil {
			return nil, errorf("no_media", closeTimeout, "no start message within %v", startTimeout)
		}
		return nil, errorf("bad_message", closeBadRequest, "could not read the start message: %v", err)
	}
	if typ == websocket.MessageBinary {
		return nil, errorf("media_before_start", closeBadRequest, "media arrived before the start message; send start first and wait for ready")
	}
	m, perr := parseClientMessage(data)
	if perr != nil {
		return nil, perr
	}
	if m.Type != "start" && m.Type != "resume" {
		return nil, errorf("bad_message", closeBadRequest, "the first message must be start (or resume), not %s", m.Type)
	}
	return m, nil
}

// errEncoderInput: the encoder no longer takes input (it ended).
var errEncoderInput = errors.New("the encoder no longer takes input")

// Control messages a browser may send, at most (docs/protocol.md).
const (
	maxPingsPerSecond = 10
	minRestartGap     = time.Second
)

// readMedia reads the browser's messages until the socket closes.
func (cs *connSession) readMedia(ctx context.Context) error {
	var pingWindow time.Time
	var pings int
	var lastRestart time.Time
	for {
		typ, data, err := cs.c.Read(ctx)
		if err != nil {
			return err
		}
		if typ == websocket.MessageBinary {
			if len(data) == 0 {
				continue
			}
			cs.lastMedia.Store(time.Now().UnixNano())
			if err := cs.sess.Write(data); err != nil {
				return errors.Join(errEncoderInput, err)
			}
			continue
		}
		m, perr := parseClientMessage(data)
		if perr != nil {
			return perr
		}
		switch m.Type {
		case "start":
			return errorf("duplicate_start", closeBadRequest, "the broadcast has already started; send start only once")
		case "stop":
			return errStopRequested
		case "resume":
			return errorf("bad_message", closeBadRequest, "resume must be the first message on a new socket")
		case "ping":
			now := time.Now()
			if now.Sub(pingWindow) >= time.Second {
				pingWindow, pings = now, 0
			}
			if pings++; pings > maxPingsPerSecond {
				return errorf("too_many_messages", closeTooMany, "more than %d pings a second", maxPingsPerSecond)
			}
			if err := cs.send(pongMessage{Type: "pong", ID: m.ID}); err != nil {
				return err
			}
		case "restart":
			now := time.Now()
			if now.Sub(lastRestart) < minRestartGap {
				return errorf("too_many_messages", closeTooMany, "a stream may be restarted at most once a second")
			}
			lastRestart = now
			// The new stream follows on from the last media that came.
			gap := time.Millisecond
			if last := cs.lastMedia.Load(); last != 0 {
				gap = min(max(now.Sub(time.Unix(0, last)), gap), time.Second)
			}
			if err := cs.sess.Restart(gap); err != nil {
				return errors.Join(errEncoderInput, err)
			}
		}
	}
}

// passOrTranscode says what happens to a track: RTMP takes H.264 and AAC
// as they are; anything else is transcoded.
func passOrTranscode(c, rtmp media.Codec) string {
	switch c {
	case media.CodecUnknown:
		return ""
	case rtmp:
		return "passthrough"
	}
	return "transcode"
}

// demuxerFor returns the demuxer of what the browser announced.
func demuxerFor(req *startRequest) func(io.Reader) (media.Demuxer, error) {
	switch req.Container {
	case ContainerMP4:
		return func(r io.Reader) (media.Demuxer, error) { return fmp4.NewReader(r) }
	case ContainerWebCodecs:
		video, audio := req.Video != media.CodecUnknown, req.Audio != media.CodecUnknown
		return func(r io.Reader) (media.Demuxer, error) { return webcodecs.NewReader(r, video, audio) }
	}
	return func(r io.Reader) (media.Demuxer, error) { return webm.NewReader(r) }
}

// resolve turns the chosen names, profile and keys into publish targets
// and the broadcast's profile, with the handler's first settings.
func (h *Handler) resolve(names []string, profile string, keys map[string]string) ([]session.Destination, *session.Profile, *protoError) {
	return resolve(h.Destinations, h.Profiles, names, profile, keys)
}

// resolve is Handler.resolve with the broadcast's settings.
func (set *snapshot) resolve(names []string, profile string, keys map[string]string) ([]session.Destination, *session.Profile, *protoError) {
	return resolve(set.Destinations, set.Profiles, names, profile, keys)
}

// resolve turns the chosen names, profile and keys into publish targets
// and the broadcast's profile, among destinations and profiles.
func resolve(destinations map[string]Destination, profiles map[string]session.Profile, names []string, profile string, keys map[string]string) ([]session.Destination, *session.Profile, *protoError) {
	for name := range keys {
		d, ok := destinations[name]
		if !ok || !slices.Contains(names, name) {
			return nil, nil, errorf("bad_key", closeBadRequest, "a stream key was sent for %q, which is not a destination of this broadcast", truncate(name, 64))
		}
		if !d.KeyFromClient {
			return nil, nil, errorf("bad_key", closeBadRequest, "destination %q uses the operator's stream key; do not send one", name)
		}
	}
	forced := ""
	dests := make([]session.Destination, 0, len(names))
	for _, name := range names {
		d := destinations[name]
		key := keys[name]
		if d.KeyFromClient && key == "" {
			return nil, nil, errorf("missing_key", closeBadRequest, "destination %q needs your stream key: enter it and go live again", name)
		}
		u, err := d.Target(key)
		if err != nil {
			return nil, nil, errorf("bad_key", closeForbidden, "%v", err)
		}
		dests = append(dests, session.Destination{Name: name, URL: u})
		if d.Profile != "" {
			if forced != "" && forced != d.Profile {
				return nil, nil, errorf("profile_conflict", closeBadRequest, "destinations %s need different profiles (%s and %s); broadcast to them separately", strings.Join(names, ", "), forced, d.Profile)
			}
			forced = d.Profile
		}
	}
	switch {
	case profile == "" && forced == "":
		return dests, nil, nil
	case profile == "":
		profile = forced
	case forced != "" && profile != forced:
		return nil, nil, errorf("profile_not_allowed", closeForbidden, "this broadcast's destinations take only the %s profile", forced)
	}
	p, ok := profiles[profile]
	if !ok {
		return nil, nil, errorf("unknown_profile", closeNotFound, "profile %q is not configured on this server", truncate(profile, 40))
	}
	for _, name := range names {
		d := destinations[name]
		if profile != forced && len(d.Profiles) > 0 && !slices.Contains(d.Profiles, profile) {
			return nil, nil, errorf("profile_not_allowed", closeForbidden, "destination %q takes the profiles %s, not %s", name, strings.Join(d.Profiles, ", "), profile)
		}
		if profile != forced && len(d.Profiles) == 0 {
			return nil, nil, errorf("profile_not_allowed", closeForbidden, "destination %q takes the video as it comes; choose no profile", name)
		}
	}
	return dests, &p, nil
}

// newToken is a resume token: 128 random bits.
func newToken() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func newID() string {
	var b [5]byte
	_, _ = rand.Read(b[:])
	return strings.ToLower(base32.StdEncoding.EncodeToString(b[:]))
}
