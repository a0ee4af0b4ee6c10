package mediarecorder

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"go.uber.org/goleak"

	"github.com/livegate/livegate/internal/auth"
	"github.com/livegate/livegate/internal/demux/webm"
	"github.com/livegate/livegate/internal/ingest/webcodecs"
	"github.com/livegate/livegate/internal/metrics"
	"github.com/livegate/livegate/internal/receiver"
	"github.com/livegate/livegate/internal/testutil"
	"github.com/livegate/livegate/internal/transcode"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// fixture is a handler with the built-in receiver as its one destination,
// behind a real HTTP server on loopback.
type fixture struct {
	h      *Handler
	cancel context.CancelFunc
	rcv    *receiver.Receiver
	srv    *httptest.Server
}

func newFixture(t *testing.T, tweak func(*Handler)) *fixture {
	t.Helper()
	testutil.NeedTool(t, "ffmpeg")
	log := testutil.Logger()
	rcv := &receiver.Receiver{Listen: "127.0.0.1:0", Log: log}
	if err := rcv.Initialize(); err != nil {
		t.Fatal(err)
	}
	u := testutil.RTMPURL(t, rcv.Addr().String(), "local")
	h := &Handler{
		Log:        log,
		FFmpegPath: "ffmpeg",
		Encode: transcode.Options{VideoBitrate: 1_000_000, KeyframeInterval: 2 * time.Second, X264Preset: "ultrafast",
			AudioBitrate: 128_000, AudioSampleRate: 48000},
		Destinations:      map[string]Destination{"local": {Name: "local", Target: fixed(u)}},
		MaxSessions:       4,
		MaxMessageBytes:   1 << 20,
		FirstMediaTimeout: 3 * time.Second,
		IdleTimeout:       3 * time.Second,
	}
	if tweak != nil {
		tweak(h)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h.Initialize(ctx)
	srv := httptest.NewServer(h)
	t.Cleanup(func() {
		cancel()
		h.Wait()
		srv.Close()
		rcv.Close()
	})
	return &fixture{h: h, cancel: cancel, rcv: rcv, srv: srv}
}

type client struct {
	t *testing.T
	c *websocket.Conn
}

func (f *fixture) dial(t *testing.T) *client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(f.srv.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.CloseNow() })
	return &client{t: t, c: c}
}

func (c *client) sendText(s string) {
	c.t.Helper()
	if err := c.c.Write(context.Background(), websocket.MessageText, []byte(s)); err != nil {
		c.t.Fatal(err)
	}
}

func (c *client) sendBinary(b []byte) error {
	return c.c.Write(context.Background(), websocket.MessageBinary, b)
}

// next reads the next JSON message, skipping stats and destination messages
// unless they are what is asked.
func (c *client) next(want string) map[string]any {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	for {
		_, data, err := c.c.Read(ctx)
		if err != nil {
			c.t.Fatalf("waiting for %q: %v", want, err)
		}
		var m map[string]any
		if err := json.Unmarshal(data, &m); err != nil {
			c.t.Fatalf("server sent non-JSON %q", data)
		}
		if m["type"] == want || m["type"] == "error" {
			return m
		}
	}
}

// closeStatus reads until the socket closes and returns the close code.
func (c *client) closeStatus() websocket.StatusCode {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	for {
		if _, _, err := c.c.Read(ctx); err != nil {
			return websocket.CloseStatus(err)
		}
	}
}

// h264File is the Chromium MediaRecorder recording the tests send.
func h264File(t *testing.T) []byte {
	t.Helper()
	data, err := os.ReadFile("testdata/h264.mkv")
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// started dials, sends startH264 and returns the client with the ready
// message (or the error that came instead).
func (f *fixture) started(t *testing.T) (*client, map[string]any) {
	t.Helper()
	c := f.dial(t)
	c.sendText(startH264)
	return c, c.next("ready")
}

const startH264 = `{"type":"start","version":1,"ingest":"mediarecorder","mime":"video/x-matroska;codecs=avc1.42C01F,opus","destinations":["local"]}`

// sendChunks sends data cut at random places, as MediaRecorder does.
func sendChunks(t *testing.T, c *client, data []byte) {
	t.Helper()
	rng := rand.New(rand.NewPCG(1, 2))
	for len(data) > 0 {
		n := min(len(data), 1+rng.IntN(40_000))
		if err := c.sendBinary(data[:n]); err != nil {
			t.Fatalf("send media: %v", err)
		}
		data = data[n:]
	}
}

func TestPublishToReceiver(t *testing.T) {
	for _, ca := range []struct {
		name, file, mime, video string
		width, height           int
	}{
		{"h264 passthrough", "testdata/h264.mkv", "video/x-matroska;codecs=avc1,opus", "passthrough", 640, 360},
		{"vp8 transcode", "testdata/vp8.webm", "video/webm;codecs=vp8,opus", "transcode", 640, 360},
	} {
		t.Run(ca.name, func(t *testing.T) {
			f := newFixture(t, nil)
			data, err := os.ReadFile(ca.file)
			if err != nil {
				t.Fatal(err)
			}
			c := f.dial(t)
			c.sendText(`{"type":"start","version":1,"ingest":"mediarecorder","mime":"` + ca.mime + `","destinations":["local"]}`)
			ready := c.next("ready")
			if ready["type"] != "ready" || ready["video"] != ca.video {
				t.Fatalf("ready = %v", ready)
			}
			sendChunks(t, c, data)
			c.sendText(`{"type":"stop"}`)
			if code := c.closeStatus(); code != websocket.StatusNormalClosure {
				t.Fatalf("close code %d, want 1000", code)
			}
			// The receiver reads on until the publisher's connection ends.
			waitFor(t, func() bool { s := f.rcv.Streams(); return len(s) == 1 && !s[0].Active })
			streams := f.rcv.Streams()
			if len(streams) != 1 {
				t.Fatalf("receiver got %d streams", len(streams))
			}
			s := streams[0]
			if s.Video == nil || s.Video.Codec != "H264" || s.Video.Width != ca.width || s.Video.Height != ca.height {
				t.Fatalf("video = %+v", s.Video)
			}
			// 4 s at 30 fps: everything must arrive after a stop.
			if s.Video.Frames < 115 {
				t.Errorf("video frames = %d, want about 120", s.Video.Frames)
			}
			if s.Audio == nil || s.Audio.Codec != "AAC" || s.Audio.SampleRate != 48000 || s.Audio.Frames < 170 {
				t.Errorf("audio = %+v", s.Audio)
			}
			if s.LastPTSms-s.FirstPTSms < 3800 {
				t.Errorf("duration %d ms, want about 4000", s.LastPTSms-s.FirstPTSms)
			}
		})
	}
}

func TestProtocolErrors(t *testing.T) {
	for _, ca := range []struct {
		name  string
		send  func(c *client)
		code  string
		close websocket.StatusCode
	}{
		{"media before start", func(c *client) { _ = c.sendBinary([]byte{0x1a, 0x45, 0xdf, 0xa3}) }, "media_before_start", closeBadRequest},
		{"not json", func(c *client) { c.sendText("hello") }, "bad_message", closeBadRequest},
		{"unknown type", func(c *client) { c.sendText(`{"type":"play"}`) }, "bad_message", closeBadRequest},
		{"stop first", func(c *client) { c.sendText(`{"type":"stop"}`) }, "bad_message", closeBadRequest},
		{"version", func(c *client) { c.sendText(strings.Replace(startH264, `"version":1`, `"version":2`, 1)) }, "unsupported_version", closeBadRequest},
		{"ingest", func(c *client) { c.sendText(strings.Replace(startH264, `mediarecorder`, `webrtc`, 1)) }, "unsupported_ingest", closeBadRequest},
		{"unknown destination", func(c *client) { c.sendText(strings.Replace(startH264, `["local"]`, `["youtube"]`, 1)) }, "unknown_destination", closeNotFound},
		{"url as destination", func(c *client) {
			c.sendText(strings.Replace(startH264, `["local"]`, `["rtmp://evil.example/x"]`, 1))
		}, "unknown_destination", closeNotFound},
		{"no destination", func(c *client) { c.sendText(strings.Replace(startH264, `["local"]`, `[]`, 1)) }, "unknown_destination", closeNotFound},
		{"ogg", func(c *client) {
			c.sendText(strings.Replace(startH264, `video/x-matroska;codecs=avc1.42C01F,opus`, `audio/ogg;codecs=opus`, 1))
		}, "unsupported_media", closeUnsupported},
		{"ffmpeg argument as mime", func(c *client) {
			c.sendText(strings.Replace(startH264, `video/x-matroska;codecs=avc1.42C01F,opus`, `video/webm;codecs=vp8 -i /etc/passwd`, 1))
		}, "unsupported_media", closeUnsupported},
		{"duplicate start", func(c *client) {
			c.sendText(startH264)
			c.next("ready")
			c.sendText(startH264)
		}, "duplicate_start", closeBadRequest},
		{"garbage bytes", func(c *client) {
			c.sendText(startH264)
			c.next("ready")
			junk := make([]byte, 256<<10)
			rng := rand.New(rand.NewPCG(3, 4))
			for i := range junk {
				junk[i] = byte(rng.Uint32())
			}
			for i := 0; i < 4; i++ {
				if c.sendBinary(junk[i*64<<10:(i+1)*64<<10]) != nil {
					return
				}
			}
		}, "bad_media", closeUnprocessable},
		{"start and no media", func(c *client) {
			c.sendText(startH264)
			c.next("ready")
		}, "no_media", closeTimeout},
	} {
		t.Run(ca.name, func(t *testing.T) {
			f := newFixture(t, nil)
			c := f.dial(t)
			ca.send(c)
			m := c.next("error")
			if m["type"] != "error" || m["code"] != ca.code {
				t.Fatalf("got %v, want error %s", m, ca.code)
			}
			if msg, _ := m["message"].(string); len(msg) < 10 {
				t.Errorf("error message %q says too little", msg)
			}
			if code := c.closeStatus(); code != ca.close {
				t.Errorf("close code %d, want %d", code, ca.close)
			}
			// The server goes on serving: a good broadcast still works.
			waitFor(t, func() bool { return f.h.Active() == 0 })
			good := f.dial(t)
			good.sendText(startH264)
			if m := good.next("ready"); m["type"] != "ready" {
				t.Fatalf("after %s, a good start got %v", ca.name, m)
			}
		})
	}
}

func TestTooLarge(t *testing.T) {
	f := newFixture(t, func(h *Handler) { h.MaxMessageBytes = 64 << 10; h.ResumeWindow = 10 * time.Second })
	c, _ := f.started(t)
	_ = c.sendBinary(make([]byte, 65<<10))
	if code := c.closeStatus(); code != websocket.StatusMessageTooBig {
		t.Fatalf("close code %d, want 1009", code)
	}
	// Not a network loss: the broadcast ends now, not after the resume window.
	closed := time.Now()
	waitFor(t, func() bool { return f.h.Active() == 0 })
	if d := time.Since(closed); d > 3*time.Second {
		t.Errorf("the broadcast ended %v after the 1009, want at once", d)
	}
}

func TestTooManySessions(t *testing.T) {
	f := newFixture(t, func(h *Handler) { h.MaxSessions = 1 })
	f.started(t) // the one broadcast allowed, kept open
	if _, m := f.started(t); m["code"] != "too_many_sessions" {
		t.Fatalf("second session got %v", m)
	}
}

func TestBrowserLeavesMidStream(t *testing.T) {
	f := newFixture(t, nil)
	data := h264File(t)
	c, _ := f.started(t)
	// gortmplib's reader (in the receiver) reads 2 s ahead before it
	// reports tracks: send 3 of the 4 seconds.
	_ = c.sendBinary(data[:len(data)*3/4])
	waitFor(t, func() bool {
		s := f.rcv.Streams()
		return len(s) == 1 && s[0].Video != nil && s[0].Video.Frames > 10
	})
	if err := c.c.CloseNow(); err != nil {
		t.Fatalf("close: %v", err)
	}
	began := time.Now()
	waitFor(t, func() bool { return f.h.Active() == 0 })
	if d := time.Since(began); d > 2*time.Second {
		t.Errorf("the session took %v to end after the browser left; want < 2 s", d)
	}
}

func TestShutdownTellsTheBrowser(t *testing.T) {
	f := newFixture(t, nil)
	c, _ := f.started(t)
	f.cancel() // as SIGTERM does
	m := c.next("never")
	if m["code"] != "shutting_down" {
		t.Fatalf("got %v, want shutting_down", m)
	}
	if code := c.closeStatus(); code != websocket.StatusGoingAway {
		t.Fatalf("close code %d, want 1001", code)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestDestinationUnreachable(t *testing.T) {
	addr := testutil.ClosedPort(t)
	f := newFixture(t, func(h *Handler) {
		u := testutil.RTMPURL(t, addr, "key")
		h.Destinations["gone"] = Destination{Name: "gone", Target: fixed(u)}
	})
	data := h264File(t)
	c := f.dial(t)
	c.sendText(strings.Replace(startH264, `["local"]`, `["gone"]`, 1))
	c.next("ready")
	go func() { _ = c.sendBinary(data) }() // the test's client; ends when the socket closes
	ev := c.next("destination")
	for ev["type"] == "destination" && ev["state"] != "failed" {
		ev = c.next("destination")
	}
	if ev["state"] != "failed" || !strings.Contains(ev["reason"].(string), "could not connect") {
		t.Fatalf("destination event %v, want failed with the reason", ev)
	}
	m := c.next("error")
	if m["code"] != "destination_failed" || !strings.Contains(m["message"].(string), "could not connect") {
		t.Fatalf("got %v, want destination_failed saying why", m)
	}
	if code := c.closeStatus(); code != closeBadGateway {
		t.Fatalf("close code %d, want %d", code, closeBadGateway)
	}
}

// TestEncoderRestarted: ffmpeg is killed mid-broadcast; it is started
// again and the broadcast goes on to a clean end.
func TestEncoderRestarted(t *testing.T) {
	f := newFixture(t, nil)
	data := h264File(t)
	c, _ := f.started(t)
	cut := len(data) * 3 / 4
	if err := c.sendBinary(data[:cut]); err != nil {
		t.Fatal(err)
	}
	// Kill it once its output reaches the receiver (which reports a stream
	// after reading 2 s of it).
	waitFor(t, func() bool { s := f.rcv.Streams(); return len(s) == 1 && s[0].Audio != nil && s[0].Audio.Frames > 0 })
	atKill := f.rcv.Streams()[0].Audio.Frames
	pid := childFFmpeg(t)
	if pid <= 0 { // 0 would signal the whole process group
		t.Fatal("no ffmpeg child to kill")
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { p := childFFmpeg(t); return p != 0 && p != pid })
	if err := c.sendBinary(data[cut:]); err != nil {
		t.Fatal(err)
	}
	c.sendText(`{"type":"stop"}`)
	if code := c.closeStatus(); code != websocket.StatusNormalClosure {
		t.Fatalf("close code %d, want 1000: the broadcast should survive the encoder's death", code)
	}
	waitFor(t, func() bool { s := f.rcv.Streams(); return len(s) == 1 && !s[0].Active })
	s := f.rcv.Streams()[0]
	// All the video (it never went through ffmpeg), and audio again after
	// the restart (what ffmpeg held when it was killed is lost).
	if s.Video == nil || s.Video.Frames < 115 || s.Audio == nil || s.Audio.Frames < atKill+20 {
		t.Errorf("receiver got video %+v audio %+v", s.Video, s.Audio)
	}
}

// childFFmpeg returns the pid of an ffmpeg child of this test process, or 0.
func childFFmpeg(t *testing.T) int {
	t.Helper()
	if kids := testutil.FFmpegChildren(t); len(kids) > 0 {
		return kids[0]
	}
	return 0
}

// fixed is the Target of a destination with the operator's own URL.
func fixed(u *url.URL) func(string) (*url.URL, error) {
	return func(key string) (*url.URL, error) {
		if key != "" {
			return nil, errors.New("this destination takes no key")
		}
		return u, nil
	}
}

// TestBigMessageBeforeStart: before start only control messages are
// accepted; a large frame closes the socket at once.
func TestBigMessageBeforeStart(t *testing.T) {
	f := newFixture(t, nil)
	c := f.dial(t)
	_ = c.sendBinary(make([]byte, 64<<10))
	if code := c.closeStatus(); code != websocket.StatusMessageTooBig {
		t.Fatalf("close code %d, want 1009", code)
	}
}

// TestWebCodecsToReceiver: the webcodecs ingest (one encoded frame per
// message) reaches the receiver with the H.264 passed through.
func TestWebCodecsToReceiver(t *testing.T) {
	f := newFixture(t, nil)
	tracks, pkts := testutil.Demux(t, "../../demux/webm/testdata/chromium-h264-opus.mkv", webm.NewReader)
	stream := webcodecs.Frames(tracks, pkts)
	c := f.dial(t)
	c.sendText(`{"type":"start","version":1,"ingest":"webcodecs","codecs":"avc1.42e01f,opus","destinations":["local"]}`)
	if m := c.next("ready"); m["video"] != "passthrough" || m["audio"] != "transcode" {
		t.Fatalf("ready %v", m)
	}
	// One message per frame, as the page sends them.
	for len(stream) > 0 {
		n := webcodecs.HeaderSize + int(binary.BigEndian.Uint32(stream[10:14]))
		if err := c.sendBinary(stream[:n]); err != nil {
			t.Fatal(err)
		}
		stream = stream[n:]
	}
	c.sendText(`{"type":"stop"}`)
	if code := c.closeStatus(); code != websocket.StatusNormalClosure {
		t.Fatalf("close code %d", code)
	}
	waitFor(t, func() bool { s := f.rcv.Streams(); return len(s) == 1 && !s[0].Active })
	s := f.rcv.Streams()[0]
	if s.Video == nil || s.Video.Width != 1280 || s.Video.Frames < 130 || s.Audio == nil || s.Audio.Frames < 150 {
		t.Errorf("receiver got video %+v audio %+v", s.Video, s.Audio)
	}
}

// TestKeyframeAskedWhenLive: when a destination goes live the browser is
// asked for a key frame.
func TestKeyframeAskedWhenLive(t *testing.T) {
	f := newFixture(t, nil)
	data := h264File(t)
	c, _ := f.started(t)
	go func() { _ = c.sendBinary(data) }() // the test's client; ends when sent or closed
	if m := c.next("keyframe"); m["type"] != "keyframe" || !strings.Contains(m["reason"].(string), "local") {
		t.Fatalf("got %v, want a keyframe request", m)
	}
}

// TestBitrateFallsOnASlowLink: a destination behind a link slower than
// the stream falls behind; the browser is asked for a lower bitrate.
func TestBitrateFallsOnASlowLink(t *testing.T) {
	var slow *testutil.Throttle
	f := newFixture(t, func(h *Handler) {
		// 10 kB/s (80 kbit/s) to a stream of about 1 Mbit/s: the kernel
		// buffers (a few hundred kB) fill in well under a second.
		rcv := &receiver.Receiver{Listen: "127.0.0.1:0", Log: testutil.Logger()}
		if err := rcv.Initialize(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(rcv.Close)
		slow = testutil.StartThrottle(t, rcv.Addr().String(), 10_000)
		h.Destinations["slow"] = Destination{Name: "slow", Target: fixed(testutil.RTMPURL(t, slow.Addr, "slow"))}
	})
	data := h264File(t)
	c := f.dial(t)
	c.sendText(strings.Replace(startH264, `["local"]`, `["slow"]`, 1))
	c.next("ready")
	go func() { // the browser, at about real time: 4 s of media in 4 s
		for i := 0; i < 16 && len(data) > 0; i++ {
			n := min(len(data), 487711/16+1)
			if c.sendBinary(data[:n]) != nil {
				return
			}
			data = data[n:]
			time.Sleep(250 * time.Millisecond)
		}
	}()
	m := c.next("bitrate")
	if bps, _ := m["bps"].(float64); m["type"] != "bitrate" || bps <= 0 || bps > 1_500_000 {
		t.Fatalf("got %v, want a lower bitrate target", m)
	}
}

// TestResume: a socket lost without a close (a network loss) leaves the
// broadcast waiting; a new socket with the session's token takes it over,
// and the destination sees one stream, not a new broadcast.
func TestResume(t *testing.T) {
	f := newFixture(t, func(h *Handler) { h.ResumeWindow = 5 * time.Second; h.Metrics = metrics.New() })
	data := h264File(t)
	a, ready := f.started(t)
	session, _ := ready["session"].(string)
	token, _ := ready["resume_token"].(string)
	if ms, _ := ready["resume_ms"].(float64); session == "" || len(token) < 20 || ms != 5000 {
		t.Fatalf("ready %v, want a session, a resume token and resume_ms 5000", ready)
	}
	sendChunks(t, a, data[:len(data)*3/4]) // cut off in the middle of an element
	waitFor(t, func() bool { s := f.rcv.Streams(); return len(s) == 1 && s[0].Video != nil })
	_ = a.c.CloseNow() // no close frame: as a network loss looks

	for _, bad := range []string{
		`{"type":"resume","version":1,"session":"` + session + `","token":"wrong-token-wrong-token"}`,
		`{"type":"resume","version":1,"session":"nosuchsession","token":"` + token + `"}`,
	} {
		x := f.dial(t)
		x.sendText(bad)
		if m := x.next("ready"); m["code"] != "unknown_session" {
			t.Fatalf("resume %s: got %v, want unknown_session", bad, m)
		}
		if code := x.closeStatus(); code != 4404 {
			t.Fatalf("close %d, want 4404", code)
		}
	}

	b := f.dial(t)
	b.sendText(`{"type":"resume","version":1,"session":"` + session + `","token":"` + token + `"}`)
	if m := b.next("ready"); m["resumed"] != true || m["session"] != session {
		t.Fatalf("got %v, want ready with resumed", m)
	}
	if m := b.next("destination"); m["name"] != "local" || m["state"] != "live" {
		t.Fatalf("got %v, want the destination's state, live", m)
	}
	sendChunks(t, b, data) // a new recorder: a new stream, its clock from 0
	b.sendText(`{"type":"stop"}`)
	if code := b.closeStatus(); code != websocket.StatusNormalClosure {
		t.Fatalf("close code %d, want 1000", code)
	}
	waitFor(t, func() bool { s := f.rcv.Streams(); return len(s) == 1 && !s[0].Active })
	s := f.rcv.Streams()
	if len(s) != 1 {
		t.Fatalf("the receiver got %d streams, want one", len(s))
	}
	// 3 s, a gap, then 4 s: one stream whose time went on.
	if v := s[0].Video; v == nil || v.Frames < 200 || s[0].LastPTSms-s[0].FirstPTSms < 6800 {
		t.Errorf("video %+v over %d ms, want about 210 frames over about 7 s", v, s[0].LastPTSms-s[0].FirstPTSms)
	}
	if got := testutil.MetricValue(t, f.h.Metrics.Handler(), "livegate_session_resumes_total"); got != "1" {
		t.Errorf("livegate_session_resumes_total %s, want 1", got)
	}
}

// TestNotResumed: a lost broadcast that nobody resumes ends after the
// window, and its destination's stream with it.
func TestNotResumed(t *testing.T) {
	f := newFixture(t, func(h *Handler) { h.ResumeWindow = time.Second })
	data := h264File(t)
	a, _ := f.started(t)
	sendChunks(t, a, data)
	waitFor(t, func() bool { s := f.rcv.Streams(); return len(s) == 1 && s[0].Video != nil })
	_ = a.c.CloseNow()
	lost := time.Now()
	waitFor(t, func() bool { return f.h.Active() == 0 })
	if d := time.Since(lost); d < 900*time.Millisecond || d > 4*time.Second {
		t.Errorf("the broadcast ended %v after the loss, want after the 1 s window", d)
	}
	waitFor(t, func() bool { s := f.rcv.Streams(); return len(s) == 1 && !s[0].Active })
}

// TestRestartAndPing: restart begins a new stream on the same connection
// to the destination; ping is answered; floods of either are refused.
func TestRestartAndPing(t *testing.T) {
	f := newFixture(t, nil)
	data := h264File(t)
	c, _ := f.started(t)
	c.sendText(`{"type":"ping","id":1.5}`)
	if m := c.next("pong"); m["id"] != 1.5 {
		t.Fatalf("got %v, want pong 1.5", m)
	}
	sendChunks(t, c, data)
	c.sendText(`{"type":"restart"}`)
	sendChunks(t, c, data)
	c.sendText(`{"type":"stop"}`)
	if code := c.closeStatus(); code != websocket.StatusNormalClosure {
		t.Fatalf("close code %d, want 1000", code)
	}
	waitFor(t, func() bool { s := f.rcv.Streams(); return len(s) == 1 && !s[0].Active })
	s := f.rcv.Streams()
	if v := s[0].Video; len(s) != 1 || v == nil || v.Frames < 235 || s[0].LastPTSms-s[0].FirstPTSms < 7900 {
		t.Errorf("streams %d, video %+v, want one of about 240 frames over 8 s", len(s), v)
	}

	for _, ca := range []struct{ name, msg string }{
		{"ping flood", `{"type":"ping","id":1}`},
		{"restart flood", `{"type":"restart"}`},
	} {
		t.Run(ca.name, func(t *testing.T) {
			c := f.dial(t)
			c.sendText(startH264)
			c.next("ready")
			_ = c.sendBinary(data[:100_000])
			for range 12 {
				if c.c.Write(context.Background(), websocket.MessageText, []byte(ca.msg)) != nil {
					break
				}
			}
			if m := c.next("error"); m["code"] != "too_many_messages" {
				t.Fatalf("got %v, want too_many_messages", m)
			}
			if code := c.closeStatus(); code != 4429 {
				t.Fatalf("close %d, want 4429", code)
			}
		})
	}
}

// TestLimits: each bound on what a browser may do ends that broadcast with
// its own error, and only that one.
func TestLimits(t *testing.T) {
	data := h264File(t)
	t.Run("per address", func(t *testing.T) {
		f := newFixture(t, func(h *Handler) { h.MaxSessionsPerAddress = 1 })
		a := f.dial(t)
		a.sendText(startH264)
		a.next("ready")
		b := f.dial(t)
		b.sendText(startH264)
		if m := b.next("ready"); m["code"] != "too_many_sessions" || !strings.Contains(m["message"].(string), "your address") {
			t.Fatalf("second broadcast from one address: %v, want too_many_sessions", m)
		}
		// The first goes on; once it has ended, the address may start again.
		sendChunks(t, a, data)
		a.sendText(`{"type":"stop"}`)
		if code := a.closeStatus(); code != websocket.StatusNormalClosure {
			t.Fatalf("first broadcast closed with %d, want 1000", code)
		}
		waitFor(t, func() bool { return f.h.Active() == 0 })
		c := f.dial(t)
		c.sendText(startH264)
		if m := c.next("ready"); m["type"] != "ready" {
			t.Fatalf("after the first ended: %v, want ready", m)
		}
	})
	t.Run("session length", func(t *testing.T) {
		f := newFixture(t, func(h *Handler) { h.MaxSessionLength = 1500 * time.Millisecond })
		c := f.dial(t)
		c.sendText(startH264)
		c.next("ready")
		go func() { _ = c.sendBinary(data) }() // the test's client; ends when sent or closed
		if m := c.next("error"); m["code"] != "session_too_long" {
			t.Fatalf("got %v, want session_too_long", m)
		}
		if code := c.closeStatus(); code != 4408 {
			t.Fatalf("close %d, want 4408", code)
		}
	})
	t.Run("ingest bitrate", func(t *testing.T) {
		// The 4 s file is about 1 Mbit/s; sent in 6 s it is still well over
		// 200 kbit/s.
		f := newFixture(t, func(h *Handler) { h.MaxIngestBitrate = 200_000; h.IdleTimeout = 10 * time.Second })
		c := f.dial(t)
		c.sendText(startH264)
		c.next("ready")
		go func() { // paced: a chunk every 250 ms
			for off := 0; off < len(data); off += len(data) / 24 {
				if c.sendBinary(data[off:min(off+len(data)/24, len(data))]) != nil {
					return
				}
				time.Sleep(250 * time.Millisecond)
			}
		}()
		if m := c.next("error"); m["code"] != "bitrate_exceeded" {
			t.Fatalf("got %v, want bitrate_exceeded", m)
		}
	})
	t.Run("unknown field", func(t *testing.T) {
		f := newFixture(t, nil)
		c := f.dial(t)
		c.sendText(strings.Replace(startH264, `"type":"start"`, `"type":"start","url":"rtmp://evil.example/x"`, 1))
		if m := c.next("ready"); m["code"] != "bad_message" || !strings.Contains(m["message"].(string), `"url" is not part of the protocol`) {
			t.Fatalf("got %v, want bad_message about the url field", m)
		}
	})
}

// TestAuth: with tokens configured, a start without a valid token, or with
// one for other destinations, is refused; a good one goes live.
func TestAuth(t *testing.T) {
	key := auth.SigningKey{ID: "k1", Secret: []byte("0123456789abcdef0123456789abcdef")}
	static := auth.NewToken()
	hash, err := auth.ParseHash(auth.HashToken(static))
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, func(h *Handler) {
		h.Auth = &auth.Verifier{
			Static: []auth.StaticToken{{Name: "studio", Hash: hash, Grant: auth.Grant{Destinations: []string{"local"}}}},
			Keys:   []auth.SigningKey{key},
		}
	})
	sign := func(c auth.Claims) string {
		tok, err := auth.Sign(key, c)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	withToken := func(tok string) string {
		return strings.Replace(startH264, `"type":"start"`, `"type":"start","token":"`+tok+`"`, 1)
	}
	hour := time.Now().Add(time.Hour).Unix()
	for _, ca := range []struct {
		name, start, code string
		close             websocket.StatusCode
	}{
		{"no token", startH264, "unauthorized", 4401},
		{"wrong token", withToken(auth.NewToken()), "unauthorized", 4401},
		{"expired", withToken(sign(auth.Claims{Expires: time.Now().Add(-time.Hour).Unix()})), "unauthorized", 4401},
		{"tampered", withToken(flipChar(sign(auth.Claims{Expires: hour}), 40)), "unauthorized", 4401},
		{"other destination", withToken(sign(auth.Claims{Expires: hour, Destinations: []string{"twitch"}})), "destination_not_allowed", 4403},
		{"static", withToken(static), "", 0},
		{"signed", withToken(sign(auth.Claims{Expires: hour, Destinations: []string{"local"}})), "", 0},
	} {
		t.Run(ca.name, func(t *testing.T) {
			c := f.dial(t)
			c.sendText(ca.start)
			m := c.next("ready")
			if ca.code == "" {
				if m["type"] != "ready" {
					t.Fatalf("got %v, want ready", m)
				}
				c.sendText(`{"type":"stop"}`)
				return
			}
			if m["code"] != ca.code {
				t.Fatalf("got %v, want %s", m, ca.code)
			}
			if code := c.closeStatus(); code != ca.close {
				t.Fatalf("close %d, want %d", code, ca.close)
			}
		})
	}
}

// flipChar changes the base64url character at i into another one.
func flipChar(s string, i int) string {
	c := byte('A')
	if s[i] == c {
		c = 'B'
	}
	return s[:i] + string(c) + s[i+1:]
}

// TestOrigins: a page of another site cannot open the publish socket
// (cross-site WebSocket hijacking) unless the operator allows its origin.
func TestOrigins(t *testing.T) {
	f := newFixture(t, func(h *Handler) { h.AllowedOrigins = []string{"https://app.example.com"} })
	u := "ws" + strings.TrimPrefix(f.srv.URL, "http")
	for _, ca := range []struct {
		origin string
		ok     bool
	}{
		{"", true}, // not a browser: no Origin, nothing to hijack
		{f.srv.URL, true},
		{"https://app.example.com", true},
		{"http://app.example.com", false}, // the scheme counts
		{"https://evil.example", false},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		hdr := http.Header{}
		if ca.origin != "" {
			hdr.Set("Origin", ca.origin)
		}
		c, resp, err := websocket.Dial(ctx, u, &websocket.DialOptions{HTTPHeader: hdr})
		cancel()
		if ca.ok != (err == nil) {
			t.Errorf("origin %q: err %v, want ok=%v", ca.origin, err, ca.ok)
		}
		if err != nil && resp != nil && resp.StatusCode != http.StatusForbidden {
			t.Errorf("origin %q: status %d, want 403", ca.origin, resp.StatusCode)
		}
		if c != nil {
			_ = c.CloseNow()
		}
	}
}

// TestResumeTakesOver: a resume that comes while livegate still thinks the
// old socket is alive (a network change often leaves the server's side
// open) takes the broadcast over at once.
func TestResumeTakesOver(t *testing.T) {
	f := newFixture(t, func(h *Handler) { h.ResumeWindow = 5 * time.Second })
	data := h264File(t)
	a, ready := f.started(t)
	sendChunks(t, a, data[:len(data)/2])
	waitFor(t, func() bool { s := f.rcv.Streams(); return len(s) == 1 && s[0].Video != nil })

	// The old socket stays open; a second one resumes.
	b := f.dial(t)
	b.sendText(`{"type":"resume","version":1,"session":"` + ready["session"].(string) + `","token":"` + ready["resume_token"].(string) + `"}`)
	if m := b.next("ready"); m["resumed"] != true {
		t.Fatalf("got %v, want ready resumed", m)
	}
	if code := a.closeStatus(); code != -1 && code != websocket.StatusGoingAway {
		t.Errorf("the old socket closed with %d", code)
	}
	sendChunks(t, b, data)
	b.sendText(`{"type":"stop"}`)
	if code := b.closeStatus(); code != websocket.StatusNormalClosure {
		t.Fatalf("close code %d, want 1000", code)
	}
	waitFor(t, func() bool { s := f.rcv.Streams(); return len(s) == 1 && !s[0].Active })
	if s := f.rcv.Streams(); len(s) != 1 || s[0].LastPTSms-s[0].FirstPTSms < 5500 {
		t.Errorf("the receiver got %d streams, %+v; want one of about 6 s", len(s), s)
	}
}
