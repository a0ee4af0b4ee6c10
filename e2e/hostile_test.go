package e2e

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/livegate/livegate/internal/auth"
	"github.com/livegate/livegate/internal/demux/webm"
	"github.com/livegate/livegate/internal/ingest/webcodecs"
	"github.com/livegate/livegate/internal/media"
	"github.com/livegate/livegate/internal/testutil"
)

// The hostile-input suite (issue #5, docs/security.md), against the real
// binary. Each way a client can misbehave gets its own refusal, and
// nothing else happens meanwhile: livegate opens no connection but to its
// own built-in receiver (a bring-your-own-key destination points at a
// listener of the test's, which counts what reaches it; /proc shows every
// socket the server holds), writes no file (its working and temporary
// directories are compared), starts no process (its children are sampled
// all along), and a well-behaved broadcast that runs the whole time (the
// canary) sees no interruption at the built-in receiver.

// recording is the committed 4 s 640x360 H.264 (and Opus) recording.
const recording = "../internal/ingest/mediarecorder/testdata/h264.mkv"

// hostileServer is a livegate under attack and what watches it.
type hostileServer struct {
	lg      *livegate
	rcvPort int
	byok    *tcpCounter // the bring-your-own-key destination's server
	watch   *serverWatch
	canary  *canary
}

// startHostile starts livegate with the built-in receiver on a known port
// (destination local carries the canary, sink the hostile broadcasts
// that get as far as sending media), a bring-your-own-key destination
// whose server is the test's listener, and YouTube (RTMPS, the
// operator's key); extraYAML adds to it. The canary starts with canaryStart.
func startHostile(t *testing.T, extraYAML string, env []string, canaryStart string) *hostileServer {
	t.Helper()
	requireBinary(t, "ffmpeg", "ffmpeg")
	h := &hostileServer{rcvPort: freePort(t), byok: startTCPCounter(t)}
	tmp := t.TempDir()
	cfg := fmt.Sprintf(`receiver:
  listen: 127.0.0.1:%d
limits:
  first_media_timeout: 1s
  max_message_bytes: 256KiB
  max_sessions_per_address: 0
  resume_window: 1s
destinations:
  local:
    builtin: true
  sink:
    builtin: true
  byok:
    preset: custom
    server: rtmp://%s/live
    key_from_client: true
  youtube:
    preset: youtube
    key: abcd-efgh-ijkl-mnop-qrst
%s`, h.rcvPort, h.byok.addr, extraYAML)
	// Its temporary files would go to TMPDIR: a directory of the test's.
	h.lg = runLivegate(t, buildLivegate(t), append([]string{"TMPDIR=" + tmp}, env...), cfg)
	cwd, err := os.Readlink(fmt.Sprintf("/proc/%d/cwd", h.lg.PID))
	if err != nil {
		t.Fatal(err)
	}
	h.watch = startServerWatch(t, h.lg, h.rcvPort, []string{cwd, tmp})
	h.canary = startCanary(t, h, canaryStart)
	h.settle(t, allowNothing)
	return h
}

// What a case may legitimately make livegate do.
type allowance int

const (
	allowNothing allowance = 0
	allowFFmpeg  allowance = 1 << iota // a valid start with Opus: an encoder, gone afterwards
	allowBYOK                          // a connection to the bring-your-own-key server
)

// settle waits until only the canary is live and no child is left, then
// checks that nothing else happened since the last settle: no process, no
// connection but to the built-in receiver, no file, and the canary went on.
func (h *hostileServer) settle(t *testing.T, allow allowance) (kids []procInfo, conns []string) {
	t.Helper()
	if err := poll(15*time.Second, 20*time.Millisecond, func() (bool, error) {
		return h.lg.Metric("livegate_sessions_active") == "1", nil
	}); err != nil {
		t.Errorf("livegate_sessions_active %q, want 1 (the canary): a broadcast did not end: %v", h.lg.Metric("livegate_sessions_active"), err)
	}
	if err := poll(5*time.Second, 20*time.Millisecond, func() (bool, error) { return h.lg.Children() == 0, nil }); err != nil {
		t.Errorf("livegate still has children: %v", descendants(h.lg.PID))
	}
	kids, conns = h.watch.take()
	if len(kids) > 0 && allow&allowFFmpeg == 0 {
		t.Errorf("livegate started processes: %v", kids)
	}
	for _, c := range conns {
		if allow&allowBYOK == 0 || !strings.HasSuffix(c, "->"+h.byok.addr) {
			t.Errorf("livegate opened a connection other than to its built-in receiver: %s", c)
		}
	}
	if n := h.byok.count.Load(); n != 0 && allow&allowBYOK == 0 {
		t.Errorf("%d connections reached the bring-your-own-key destination's server", n)
	}
	if d := h.watch.filesChanged(); d != "" {
		t.Errorf("livegate wrote files: %s", d)
	}
	h.canary.check(t)
	return kids, conns
}

// ---- the main suite ----

func TestHostileInput(t *testing.T) {
	requireE2E(t)
	began := time.Now()
	h := startHostile(t, "auth:\n  allowed_origins: [https://app.example.com]\n", nil,
		`{"type":"start","version":1,"ingest":"webcodecs","codecs":"avc1.42c01e","destinations":["local"]}`)
	lg := h.lg
	// The slowloris client takes the server's header timeout (10 s): it
	// runs beside the other cases and is judged at the end.
	slow := startSlowloris(t, lg)

	const start = `{"type":"start","version":1,"ingest":"mediarecorder","mime":"video/x-matroska;codecs=avc1,opus","destinations":%s}`
	_, err := os.Stat("/tmp/x")
	tmpXBefore := err == nil
	t.Run("destination names that are URLs or paths", func(t *testing.T) {
		for _, name := range []string{"rtmp://evil/x", "file:///tmp/x", "pipe:1", "../", "http://169.254.169.254/",
			"rtmps://a.rtmps.youtube.com/live2", "/etc/passwd", "local/../sink", "LOCAL", "local\x00", " local"} {
			dests, _ := json.Marshal([]string{name})
			c := dialPublish(t, lg, nil)
			c.send(t, fmt.Sprintf(start, dests))
			c.expectRefusal(t, "unknown_destination", 4404)
		}
		if _, err := os.Stat("/tmp/x"); err == nil && !tmpXBefore {
			t.Error("/tmp/x exists after file:///tmp/x was asked for")
		}
		h.settle(t, allowNothing)
	})

	t.Run("stream keys that are not keys", func(t *testing.T) {
		for _, ca := range []struct {
			keys  string
			dests string
			close websocket.StatusCode
		}{
			{`{"byok":"live_1234?x=rtmp://evil/"}`, `["byok"]`, 4403},
			{`{"byok":"live/../../other"}`, `["byok"]`, 4403},
			{`{"byok":"live_1234/x"}`, `["byok"]`, 4403},
			{`{"byok":"live 12345678"}`, `["byok"]`, 4403},
			{`{"byok":"live_12345678\n"}`, `["byok"]`, 4403},
			{`{"byok":"live_1234\r\nX-Evil: 1"}`, `["byok"]`, 4403},
			{`{"byok":"live_1234\u0000"}`, `["byok"]`, 4403},
			{`{"byok":"short"}`, `["byok"]`, 4403},
			{`{"byok":"` + strings.Repeat("k", 129) + `"}`, `["byok"]`, 4403},
			{`{"byok":"live_1234#frag"}`, `["byok"]`, 4403},
			{`{"youtube":"attacker-key-1234"}`, `["youtube"]`, 4400}, // the operator's key stays
			{`{"local":"live_12345678"}`, `["local"]`, 4400},
			{`{"byok":"live_12345678"}`, `["sink"]`, 4400}, // a key for a destination not chosen
		} {
			c := dialPublish(t, lg, nil)
			c.send(t, fmt.Sprintf(`{"type":"start","version":1,"ingest":"webcodecs","codecs":"avc1.42c01e","destinations":%s,"keys":%s}`, ca.dests, ca.keys))
			msg := c.expectRefusal(t, "bad_key", ca.close)
			var keys map[string]string
			_ = json.Unmarshal([]byte(ca.keys), &keys)
			for _, k := range keys {
				if len(k) > 5 && strings.Contains(msg, k) {
					t.Errorf("the refusal repeats the key: %q", msg)
				}
			}
		}
		h.settle(t, allowNothing)
	})

	t.Run("fields the protocol does not have, and no way to rtmp", func(t *testing.T) {
		// YouTube is RTMPS: nothing a client sends can change its scheme,
		// host or path, because no field names one.
		base := `{"type":"start","version":1,"ingest":"mediarecorder","mime":"video/webm;codecs=vp8,opus","destinations":["youtube"]`
		for _, ca := range []struct{ field, value string }{
			{"url", `"rtmp://a.rtmp.youtube.com/live2/key"`},
			{"host", `"169.254.169.254"`},
			{"args", `["-f","flv","rtmp://evil/x"]`},
			{"protocol", `"rtmp"`},
			{"scheme", `"rtmp"`},
			{"server", `"rtmp://evil/live"`},
			{"port", `1935`},
			{"app", `"live"`},
			{"path", `"../"`},
			{"output", `"pipe:1"`},
			{"key", `"abcd"`},
			{"tls", `false`},
		} {
			c := dialPublish(t, lg, nil)
			c.send(t, base+`,"`+ca.field+`":`+ca.value+`}`)
			msg := c.expectRefusal(t, "bad_message", 4400)
			if !strings.Contains(msg, `"`+ca.field+`"`) {
				t.Errorf("field %s: the refusal does not name it: %q", ca.field, msg)
			}
		}
		// Nor in the media type, which is read for its codecs only.
		c := dialPublish(t, lg, nil)
		c.send(t, strings.Replace(base, "codecs=vp8,opus", "codecs=vp8,opus;protocol=rtmp", 1)+`}`)
		c.expectRefusal(t, "unsupported_media", 4415)
		// The browser is never told where a destination goes.
		resp, err := http.Get(lg.URL("/api/v1/destinations")) //nolint:noctx // a test on loopback
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, secret := range []string{"rtmp", "youtube.com", "abcd-efgh", h.byok.addr, strconv.Itoa(h.rcvPort)} {
			if strings.Contains(string(body), secret) {
				t.Errorf("/api/v1/destinations shows %q: %s", secret, body)
			}
		}
		h.settle(t, allowNothing)
	})

	t.Run("cross-origin handshake", func(t *testing.T) {
		before := metricInt(lg, `livegate_session_errors_total{code="handshake_refused"}`)
		for _, origin := range []string{"https://evil.example", "http://app.example.com", "https://app.example.com.evil.example", "null"} {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			c, resp, err := websocket.Dial(ctx, lg.WSURL("/api/v1/publish"), &websocket.DialOptions{HTTPHeader: http.Header{"Origin": {origin}}})
			cancel()
			if err == nil {
				c.CloseNow()
				t.Errorf("origin %s: the handshake was accepted", origin)
				continue
			}
			if resp == nil || resp.StatusCode != http.StatusForbidden {
				t.Errorf("origin %s: %v (%v), want 403", origin, err, resp)
			}
		}
		if err := poll(5*time.Second, 20*time.Millisecond, func() (bool, error) {
			return metricInt(lg, `livegate_session_errors_total{code="handshake_refused"}`) == before+4, nil
		}); err != nil {
			t.Errorf("handshake_refused counted %d, want %d", metricInt(lg, `livegate_session_errors_total{code="handshake_refused"}`), before+4)
		}
		// An allowed origin may publish.
		c := dialPublish(t, lg, http.Header{"Origin": {"https://app.example.com"}})
		c.send(t, `{"type":"start","version":1,"ingest":"webcodecs","codecs":"avc1.42c01e","destinations":["sink"]}`)
		c.expect(t, "ready")
		c.send(t, `{"type":"stop"}`)
		if code := c.closeStatus(t); code != websocket.StatusNormalClosure {
			t.Errorf("allowed origin: close %d, want 1000", code)
		}
		h.settle(t, allowNothing)
	})

	t.Run("oversized messages", func(t *testing.T) {
		// Before start only a control message fits (4 KiB).
		c := dialPublish(t, lg, nil)
		_ = c.c.Write(context.Background(), websocket.MessageText, []byte(`{"type":"start","mime":"`+strings.Repeat("a", 5000)+`"}`))
		if code := c.closeStatus(t); code != websocket.StatusMessageTooBig {
			t.Errorf("5000-byte start: close %d, want 1009", code)
		}
		// After it, limits.max_message_bytes (256 KiB here).
		c = dialPublish(t, lg, nil)
		c.send(t, `{"type":"start","version":1,"ingest":"webcodecs","codecs":"avc1.42c01e","destinations":["sink"]}`)
		c.expect(t, "ready")
		_ = c.c.Write(context.Background(), websocket.MessageBinary, make([]byte, 256<<10+1))
		if code := c.closeStatus(t); code != websocket.StatusMessageTooBig {
			t.Errorf("256 KiB + 1 message: close %d, want 1009", code)
		}
		h.settle(t, allowNothing)
	})

	rec, err := os.ReadFile(recording)
	if err != nil {
		t.Fatal(err)
	}
	garbage := make([]byte, 256<<10)
	rng := mrand.New(mrand.NewPCG(5, 6))
	for i := range garbage {
		garbage[i] = byte(rng.Uint32())
	}
	t.Run("garbage media", func(t *testing.T) {
		for _, ca := range []struct {
			name    string
			prefix  []byte
			encoder bool
		}{
			{"from the first byte", nil, false},
			// The header and a second of media: the Opus encoder has
			// started when the garbage comes.
			{"after a second of good media", rec[:len(rec)/4], true},
		} {
			c := dialPublish(t, lg, nil)
			c.send(t, fmt.Sprintf(start, `["sink"]`))
			c.expect(t, "ready")
			go c.sendAll(append(slices.Clone(ca.prefix), garbage...), 64<<10) // ends when sent or refused
			c.expectRefusal(t, "bad_media", 4422)
			kids, _ := h.settle(t, allowFFmpeg)
			if ca.encoder && len(kids) == 0 {
				t.Errorf("%s: no encoder was started; the case tests less than it should", ca.name)
			}
		}
	})

	t.Run("frame header that lies about its length", func(t *testing.T) {
		v, a := canaryMedia(t)
		cfg := slices.Concat(v.configFrame(), a.configFrame())
		good := [][]byte{cfg, v.frame(0, 0)}
		for i := range 10 {
			good = append(good, a.frame(i, 0))
		}
		lie := func(typ byte, length uint32, payload int) []byte {
			b := webcodecs.AppendFrame(nil, typ, 0, 40*time.Millisecond, make([]byte, payload))
			binary.BigEndian.PutUint32(b[10:14], length)
			return b
		}
		for _, ca := range []struct {
			name string
			msgs [][]byte
		}{
			{"over the limit", [][]byte{cfg, lie(webcodecs.TypeVideo, 0xffffffff, 16)}},
			// 10 bytes said, 200 sent: the rest is read as the next
			// header, and refused.
			{"shorter than the frame", append(slices.Clone(good), lie(webcodecs.TypeAudio, 10, 200))},
			// 50000 said, 100 sent: the frames that follow are taken
			// for its payload, and the stream no longer makes sense.
			{"longer than the frame", append(append(slices.Clone(good), lie(webcodecs.TypeVideo, 50000, 100)), v.frames(1, 40)...)},
		} {
			c := dialPublish(t, lg, nil)
			c.send(t, `{"type":"start","version":1,"ingest":"webcodecs","codecs":"avc1.42c01e,opus","destinations":["sink"]}`)
			c.expect(t, "ready")
			go func() { // the test's client; ends when sent or refused
				for _, m := range ca.msgs {
					if c.c.Write(context.Background(), websocket.MessageBinary, m) != nil {
						return
					}
				}
			}()
			c.expectRefusal(t, "bad_media", 4422)
			h.settle(t, allowFFmpeg)
		}
	})

	t.Run("start that never sends media", func(t *testing.T) {
		c := dialPublish(t, lg, nil)
		c.send(t, `{"type":"start","version":1,"ingest":"webcodecs","codecs":"avc1.42c01e,opus","destinations":["sink"]}`)
		c.expect(t, "ready")
		ready := time.Now()
		c.expectRefusal(t, "no_media", 4408)
		// first_media_timeout is 1 s, checked every second.
		if d := time.Since(ready); d < 900*time.Millisecond || d > 8*time.Second {
			t.Errorf("no_media came %v after ready, want about 1..2 s", d)
		}
		h.settle(t, allowNothing)
	})

	t.Run("control-message flood", func(t *testing.T) {
		v, _ := canaryMedia(t)
		for _, ca := range []struct {
			name, msg string
			n         int
		}{
			{"pings", `{"type":"ping","id":1}`, 20},
			{"restarts", `{"type":"restart"}`, 3},
		} {
			c := dialPublish(t, lg, nil)
			c.send(t, `{"type":"start","version":1,"ingest":"webcodecs","codecs":"avc1.42c01e","destinations":["sink"]}`)
			c.expect(t, "ready")
			for _, m := range append([][]byte{v.configFrame()}, v.frames(0, 5)...) {
				c.sendBinary(t, m)
			}
			for range ca.n {
				if c.c.Write(context.Background(), websocket.MessageText, []byte(ca.msg)) != nil {
					break
				}
			}
			c.expectRefusal(t, "too_many_messages", 4429)
			h.settle(t, allowNothing)
		}
	})

	t.Run("client that reads nothing back", func(t *testing.T) {
		clientReadsNothing(t, h)
		h.settle(t, allowNothing)
	})

	t.Run("slowloris handshake", func(t *testing.T) {
		r := slow.result(t)
		t.Logf("slowloris: closed by the server %v after it connected, after %d bytes of its request", r.after.Round(time.Millisecond), r.sent)
		// net/http may say 400 as it closes; never 101.
		if r.after < 9*time.Second || r.after > 15*time.Second || strings.Contains(r.answer, " 101 ") {
			t.Errorf("slowloris: closed after %v with answer %q; want closed by the 10 s header timeout", r.after, r.answer)
		} else if r.answer != "" {
			t.Logf("slowloris: the server answered %q", strings.SplitN(r.answer, "\r\n", 2)[0])
		}
		h.settle(t, allowNothing)
	})

	t.Run("the canaries work", func(t *testing.T) {
		// A good key for the bring-your-own-key destination reaches its
		// server: what the other cases counted would have been seen.
		v, _ := canaryMedia(t)
		c := dialPublish(t, lg, nil)
		c.send(t, `{"type":"start","version":1,"ingest":"webcodecs","codecs":"avc1.42c01e","destinations":["byok"],"keys":{"byok":"live_12345678"}}`)
		c.expect(t, "ready")
		go c.sendAll(slices.Concat(append([][]byte{v.configFrame()}, v.frames(0, 30)...)...), 0) // ends when sent or refused
		c.expectRefusal(t, "destination_failed", 4502)
		if n := h.byok.count.Load(); n == 0 {
			t.Error("the bring-your-own-key server saw no connection")
		}
		_, conns := h.settle(t, allowBYOK)
		if len(conns) == 0 {
			t.Error("the server watch saw no connection to the bring-your-own-key server")
		}
		h.byok.count.Store(0)
	})

	h.canary.stop(t)
	// No stream key, the operator's or a streamer's, good or bad, is in
	// the server's log.
	for _, key := range []string{"abcd-efgh-ijkl-mnop-qrst", "live_12345678", "attacker-key-1234", "live 12345678", "live_1234?x="} {
		if strings.Contains(lg.Log(), key) {
			t.Errorf("the server's log holds the stream key %q", key)
		}
	}
	t.Logf("hostile suite: %v", time.Since(began).Round(time.Millisecond))
}

// TestHostileTokens: with tokens configured, a start without a valid
// token, or with one for a destination it does not allow, is refused and
// counted; nothing else happens; good tokens publish.
func TestHostileTokens(t *testing.T) {
	requireE2E(t)
	secret := []byte(hex.EncodeToString(randomBytes(t, 32)))
	key := auth.SigningKey{ID: "k1", Secret: secret}
	static := auth.NewToken()
	extra := fmt.Sprintf(`auth:
  tokens:
    - name: studio
      hash: %s
      destinations: [local, sink]
  signing_keys:
    - id: k1
      secret_env: LIVEGATE_HOSTILE_KEY
`, auth.HashToken(static))
	h := startHostile(t, extra, []string{"LIVEGATE_HOSTILE_KEY=" + string(secret)},
		`{"type":"start","version":1,"ingest":"webcodecs","codecs":"avc1.42c01e","destinations":["local"],"token":"`+static+`"}`)
	sign := func(k auth.SigningKey, c auth.Claims) string {
		tok, err := auth.Sign(k, c)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	hour := time.Now().Add(time.Hour).Unix()
	good := sign(key, auth.Claims{Expires: hour, Destinations: []string{"sink"}})
	// A byte of the claims changed: the signature no longer matches.
	dot := strings.IndexByte(good[4:], '.') + 4
	claims, _ := base64.RawURLEncoding.DecodeString(good[4:dot])
	forged := strings.Replace(string(claims), `"sink"`, `"local"`, 1)
	tampered := "lg1." + base64.RawURLEncoding.EncodeToString([]byte(forged)) + good[dot:]
	for _, ca := range []struct {
		name, token, dest, code string
		close                   websocket.StatusCode
	}{
		{"no token", "", "sink", "unauthorized", 4401},
		{"wrong token", auth.NewToken(), "sink", "unauthorized", 4401},
		{"expired", sign(key, auth.Claims{Expires: time.Now().Add(-time.Hour).Unix(), Destinations: []string{"sink"}}), "sink", "unauthorized", 4401},
		{"tampered", tampered, "local", "unauthorized", 4401},
		{"signed with another secret", sign(auth.SigningKey{ID: "k1", Secret: []byte(strings.Repeat("x", 64))}, auth.Claims{Expires: hour}), "sink", "unauthorized", 4401},
		{"static token for another destination", static, "youtube", "destination_not_allowed", 4403},
		{"signed token for another destination", good, "local", "destination_not_allowed", 4403},
		{"good static token", static, "sink", "", 0},
		{"good signed token", good, "sink", "", 0},
	} {
		t.Run(ca.name, func(t *testing.T) {
			c := dialPublish(t, h.lg, nil)
			tok := ""
			if ca.token != "" {
				tok = `,"token":"` + ca.token + `"`
			}
			c.send(t, `{"type":"start","version":1,"ingest":"webcodecs","codecs":"avc1.42c01e","destinations":["`+ca.dest+`"]`+tok+`}`)
			if ca.code == "" {
				c.expect(t, "ready")
				v, _ := canaryMedia(t)
				for _, m := range append([][]byte{v.configFrame()}, v.frames(0, 10)...) {
					c.sendBinary(t, m)
				}
				c.send(t, `{"type":"stop"}`)
				if code := c.closeStatus(t); code != websocket.StatusNormalClosure {
					t.Errorf("close %d, want 1000", code)
				}
			} else {
				msg := c.expectRefusal(t, ca.code, ca.close)
				if ca.token != "" && strings.Contains(msg, ca.token) {
					t.Errorf("the refusal repeats the token: %q", msg)
				}
			}
			h.settle(t, allowNothing)
		})
	}
	for code, want := range map[string]int{"unauthorized": 5, "destination_not_allowed": 2} {
		if got := metricInt(h.lg, `livegate_session_errors_total{code="`+code+`"}`); got != want {
			t.Errorf("livegate_session_errors_total{code=%q} = %d, want %d", code, got, want)
		}
	}
	if strings.Contains(h.lg.Log(), static) || strings.Contains(h.lg.Log(), string(secret)) {
		t.Error("the server's log holds a token or the signing secret")
	}
	h.canary.stop(t)
}

// ---- a client that reads nothing ----

// clientReadsNothing: a client that streams, makes the server write to it
// (WebSocket pings, which it must answer) and never reads. Once the
// kernel's buffers are full, the server's writes time out (5 s), the
// socket is closed, the broadcast waits its resume window (1 s) and ends.
func clientReadsNothing(t *testing.T, h *hostileServer) {
	// A small receive buffer: the server's buffers fill sooner.
	conn := rawWebSocket(t, h.lg, 4096)
	v, _ := canaryMedia(t)
	var first []byte
	first = append(first, wsFrame(0x1, []byte(`{"type":"start","version":1,"ingest":"webcodecs","codecs":"avc1.42c01e","destinations":["sink"]}`))...)
	for _, m := range append([][]byte{v.configFrame()}, v.frames(0, 10)...) {
		first = append(first, wsFrame(0x2, m)...)
	}
	_ = conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Write(first); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetWriteDeadline(time.Time{})
	if err := poll(10*time.Second, 20*time.Millisecond, func() (bool, error) {
		return h.lg.Metric("livegate_sessions_active") == "2", nil
	}); err != nil {
		t.Fatalf("the broadcast did not start: %v", err)
	}
	began := time.Now()
	ping := wsFrame(0x9, make([]byte, 125))
	pings := slices.Concat(slices.Repeat([][]byte{ping}, 64)...)
	wrote := make(chan error, 1)
	var sent atomic.Int64
	go func() { // the client: writes until the server cuts it off (or the test's cleanup closes it)
		next := 10
		for {
			msg := pings
			if time.Since(began) > time.Duration(next-10)*33*time.Millisecond {
				msg = wsFrame(0x2, v.frame(next%len(v.payloads), next/len(v.payloads)))
				next++
			}
			n, err := conn.Write(msg)
			sent.Add(int64(n))
			if err != nil {
				wrote <- err
				return
			}
		}
	}()
	if err := poll(30*time.Second, 20*time.Millisecond, func() (bool, error) {
		return h.lg.Metric("livegate_sessions_active") == "1", nil
	}); err != nil {
		t.Fatalf("the broadcast of a client that reads nothing did not end: %v", err)
	}
	ended := time.Since(began)
	select {
	case err := <-wrote:
		t.Logf("a client that reads nothing: its broadcast ended %v after it stopped reading; it had written %d bytes when the server cut it off (%v)",
			ended.Round(time.Millisecond), sent.Load(), err)
	case <-time.After(10 * time.Second):
		t.Errorf("the server did not close the connection of a client that reads nothing (%d bytes written)", sent.Load())
		conn.Close()
		<-wrote
	}
	// Buffers fill within a second; 5 s write timeout; 1 s resume window.
	if ended > 20*time.Second {
		t.Errorf("the broadcast ended %v after its client stopped reading, want within 20 s", ended)
	}
}

// ---- slowloris ----

type slowlorisResult struct {
	after  time.Duration // from connect to the server's close
	sent   int           // bytes of the request sent by then
	answer string        // what the server said, if anything
}

type slowloris struct {
	done chan slowlorisResult
}

// startSlowloris connects and sends the request headers of a WebSocket
// handshake one byte a second; its goroutine ends when the server closes
// the connection (or after 20 s, or at the test's end).
func startSlowloris(t *testing.T, lg *livegate) *slowloris {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(lg.BaseURL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	req := "GET /api/v1/publish HTTP/1.1\r\nHost: " + strings.TrimPrefix(lg.BaseURL, "http://") +
		"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
	s := &slowloris{done: make(chan slowlorisResult, 1)}
	closed := make(chan string, 1)
	quit := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { // reads what the server says until it closes
		defer wg.Done()
		b, _ := io.ReadAll(conn)
		closed <- string(b)
	}()
	go func() { // the client, one byte a second
		defer wg.Done()
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		sent := 0
		for {
			if sent < len(req) {
				if _, err := conn.Write([]byte{req[sent]}); err == nil {
					sent++
				}
			}
			select {
			case answer := <-closed:
				s.done <- slowlorisResult{after: time.Since(began), sent: sent, answer: answer}
				return
			case <-quit:
				s.done <- slowlorisResult{after: time.Since(began), sent: sent, answer: "(the test ended first)"}
				return
			case <-tick.C:
				if time.Since(began) > 20*time.Second {
					s.done <- slowlorisResult{after: time.Since(began), sent: sent, answer: "(still open after 20 s)"}
					return
				}
			}
		}
	}()
	t.Cleanup(func() {
		close(quit)
		conn.Close()
		wg.Wait()
	})
	return s
}

func (s *slowloris) result(t *testing.T) slowlorisResult {
	t.Helper()
	select {
	case r := <-s.done:
		return r
	case <-time.After(30 * time.Second):
		t.Fatal("the slowloris client did not finish")
	}
	return slowlorisResult{}
}

// ---- the canary broadcast ----

// canary is a well-behaved WebCodecs broadcast (the recording's H.264,
// looped at real-time pace, no encoder) to the built-in receiver.
type canary struct {
	h      *hostileServer
	c      *websocket.Conn
	quit   chan struct{}
	sender sync.WaitGroup
	reader chan struct{} // closed when the socket has closed

	mu        sync.Mutex
	problems  []string
	ready     chan struct{}
	readyOnce sync.Once
	closeCode websocket.StatusCode
	sent      atomic.Int64
	frames    uint64         // at the receiver, at the last check
	publisher netip.AddrPort // livegate's connection to the receiver
	maxDelay  int64
	stopped   bool
}

func startCanary(t *testing.T, h *hostileServer, startMsg string) *canary {
	t.Helper()
	v, _ := canaryMedia(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, h.lg.WSURL("/api/v1/publish"), nil)
	if err != nil {
		t.Fatal(err)
	}
	k := &canary{h: h, c: c, quit: make(chan struct{}), reader: make(chan struct{}), ready: make(chan struct{})}
	t.Cleanup(func() {
		k.stopSending()
		c.CloseNow()
		<-k.reader
	})
	go k.read() // ends when the socket closes
	if err := c.Write(ctx, websocket.MessageText, []byte(startMsg)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-k.ready:
	case <-k.reader:
		t.Fatalf("the canary was refused: %v", k.problems)
	case <-ctx.Done():
		t.Fatal("the canary got no ready")
	}
	k.sender.Add(1)
	go k.send(v) // ends at stopSending or when the socket fails
	var s receiverStream
	if err := poll(10*time.Second, 50*time.Millisecond, func() (bool, error) {
		var ok bool
		s, ok = k.stream(t)
		return ok && s.Video != nil && s.Video.Frames > 0, nil
	}); err != nil {
		t.Fatalf("the canary's stream did not reach the receiver: %v", err)
	}
	k.frames = s.Video.Frames
	pubs := h.watch.receiverConns()
	if len(pubs) != 1 {
		t.Fatalf("livegate has %d connections to its receiver, want the canary's one", len(pubs))
	}
	k.publisher = pubs[0]
	return k
}

func (k *canary) problem(format string, args ...any) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.problems = append(k.problems, fmt.Sprintf(format, args...))
}

// read records what livegate tells the canary: anything but ready, stats,
// pongs and its destination going live is a problem.
func (k *canary) read() {
	defer close(k.reader)
	for {
		_, data, err := k.c.Read(context.Background())
		if err != nil {
			k.mu.Lock()
			k.closeCode = websocket.CloseStatus(err)
			stopped := k.stopped
			k.mu.Unlock()
			if !stopped {
				k.problem("the canary's socket closed: %v", err)
			}
			return
		}
		var m struct {
			Type, Code, Message, Name, State string
		}
		_ = json.Unmarshal(data, &m)
		switch {
		case m.Type == "ready":
			k.readyOnce.Do(func() { close(k.ready) })
		case m.Type == "error":
			k.problem("the canary got error %s: %s", m.Code, m.Message)
		case m.Type == "destination" && m.State != "live" && m.State != "connecting":
			k.problem("the canary's destination %s went %s", m.Name, m.State)
		}
	}
}

// send sends the recording's frames at their pace, looped.
func (k *canary) send(v *trackMedia) {
	defer k.sender.Done()
	if err := k.c.Write(context.Background(), websocket.MessageBinary, v.configFrame()); err != nil {
		k.problem("the canary could not send: %v", err)
		return
	}
	began := time.Now()
	t := time.NewTimer(0)
	defer t.Stop()
	for i := 0; ; i++ {
		pts := time.Duration(i/len(v.payloads))*v.period + v.pts[i%len(v.payloads)]
		t.Reset(time.Until(began.Add(pts)))
		select {
		case <-k.quit:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := k.c.Write(ctx, websocket.MessageBinary, v.frame(i%len(v.payloads), i/len(v.payloads)))
		cancel()
		if err != nil {
			k.problem("the canary could not send: %v", err)
			return
		}
		k.sent.Add(1)
	}
}

func (k *canary) stopSending() {
	select {
	case <-k.quit:
	default:
		close(k.quit)
	}
	k.sender.Wait()
}

// stream is the canary's stream at the receiver; false unless there is
// exactly one.
func (k *canary) stream(t *testing.T) (receiverStream, bool) {
	var rep struct {
		Streams []receiverStream `json:"streams"`
	}
	getJSON(t, k.h.lg.URL("/api/v1/receiver"), &rep)
	var found []receiverStream
	for _, s := range rep.Streams {
		if s.Path == "live/local" {
			found = append(found, s)
		}
	}
	if len(found) != 1 {
		if len(found) > 1 {
			k.problem("the receiver got %d streams from the canary: it was interrupted", len(found))
		}
		return receiverStream{}, false
	}
	return found[0], true
}

// check: the canary had no trouble, and its stream at the receiver is one,
// live, on the same connection, and still growing.
func (k *canary) check(t *testing.T) {
	t.Helper()
	var s receiverStream
	err := poll(5*time.Second, 20*time.Millisecond, func() (bool, error) {
		var ok bool
		s, ok = k.stream(t)
		return ok && s.Active && s.Video != nil && s.Video.Frames > k.frames, nil
	})
	if err != nil {
		t.Errorf("the canary's stream at the receiver stopped growing: %+v: %v", s, err)
	} else {
		k.frames = s.Video.Frames
		k.maxDelay = max(k.maxDelay, s.DelayMS)
		if s.DelayMS > 500 {
			t.Logf("the canary's frames arrive %d ms late (the test's own sender may be starved too)", s.DelayMS)
		}
	}
	if !slices.Contains(k.h.watch.receiverConns(), k.publisher) {
		t.Errorf("livegate's connection to the receiver for the canary (%v) is gone: %v", k.publisher, k.h.watch.receiverConns())
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, p := range k.problems {
		t.Error(p)
	}
	k.problems = nil
}

// stop ends the canary with stop and checks the receiver got all of it as
// one uninterrupted stream.
func (k *canary) stop(t *testing.T) {
	t.Helper()
	k.check(t)
	k.stopSending()
	k.mu.Lock()
	k.stopped = true
	k.mu.Unlock()
	if err := k.c.Write(context.Background(), websocket.MessageText, []byte(`{"type":"stop"}`)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-k.reader:
	case <-time.After(15 * time.Second):
		t.Fatal("the canary's socket did not close after stop")
	}
	if k.closeCode != websocket.StatusNormalClosure {
		t.Errorf("the canary closed with %d, want 1000", k.closeCode)
	}
	var s receiverStream
	if err := poll(10*time.Second, 50*time.Millisecond, func() (bool, error) {
		var ok bool
		s, ok = k.stream(t)
		return ok && !s.Active, nil
	}); err != nil {
		t.Fatalf("the canary's stream: %+v: %v", s, err)
	}
	sent := uint64(k.sent.Load())
	span := time.Duration(s.LastPTSms-s.FirstPTSms) * time.Millisecond
	t.Logf("canary: %d frames sent, %d received over %v at %.2f fps (%d key frames); largest arrival delay seen %d ms",
		sent, s.Video.Frames, span, s.Video.FPS, s.Video.KeyFrames, k.maxDelay)
	if s.Video.Frames < sent*98/100 || s.Video.FPS < 28 || s.Video.FPS > 32 {
		t.Errorf("the canary's stream has gaps: %d frames of %d sent over %v (%.2f fps)", s.Video.Frames, sent, span, s.Video.FPS)
	}
	for _, p := range k.problems {
		t.Error(p)
	}
}

// receiverStream is one stream of GET /api/v1/receiver.
type receiverStream struct {
	Path   string `json:"path"`
	Active bool   `json:"active"`
	Video  *struct {
		Frames    uint64  `json:"frames"`
		KeyFrames uint64  `json:"key_frames"`
		FPS       float64 `json:"fps"`
	} `json:"video"`
	FirstPTSms int64 `json:"first_pts_ms"`
	LastPTSms  int64 `json:"last_pts_ms"`
	DelayMS    int64 `json:"delay_ms"`
}

// trackMedia is one track of the recording as WebCodecs frames.
type trackMedia struct {
	typ      byte
	config   []byte
	payloads [][]byte
	keys     []bool
	pts      []time.Duration
	period   time.Duration // of one play of the recording
}

// frame is frame i of play n, with its header.
func (m *trackMedia) frame(i, n int) []byte {
	flags := byte(0)
	if m.keys[i] {
		flags = webcodecs.FlagKey
	}
	return webcodecs.AppendFrame(nil, m.typ, flags, time.Duration(n)*m.period+m.pts[i], m.payloads[i])
}

// configFrame is the track's configuration, with its header.
func (m *trackMedia) configFrame() []byte {
	typ := byte(webcodecs.TypeVideoConfig)
	if m.typ == webcodecs.TypeAudio {
		typ = webcodecs.TypeAudioConfig
	}
	return webcodecs.AppendFrame(nil, typ, 0, 0, m.config)
}

// frames are frames from..to of the first play.
func (m *trackMedia) frames(from, to int) [][]byte {
	var out [][]byte
	for i := from; i < to; i++ {
		out = append(out, m.frame(i, 0))
	}
	return out
}

var (
	mediaOnce  sync.Once
	videoMedia *trackMedia
	audioMedia *trackMedia
)

// canaryMedia is the recording's video (H.264) and audio (Opus) as WebCodecs frames.
func canaryMedia(t *testing.T) (video, audio *trackMedia) {
	t.Helper()
	mediaOnce.Do(func() {
		tracks, pkts := testutil.Demux(t, recording, webm.NewReader)
		videoMedia = &trackMedia{typ: webcodecs.TypeVideo, period: 4 * time.Second}
		audioMedia = &trackMedia{typ: webcodecs.TypeAudio, period: 4 * time.Second}
		for _, tr := range tracks {
			switch tr.Codec {
			case media.CodecH264:
				videoMedia.config = media.BuildAVCC(tr.SPS, tr.PPS)
			case media.CodecOpus:
				audioMedia.config = tr.OpusHead
			}
		}
		for _, p := range pkts {
			if p.PTS < 0 {
				continue
			}
			m, payload := audioMedia, p.Data
			if p.Track.Codec == media.CodecH264 {
				m, payload = videoMedia, media.AppendAVCC(nil, p.AU)
			}
			m.payloads = append(m.payloads, payload)
			m.keys = append(m.keys, p.Key)
			m.pts = append(m.pts, p.PTS)
		}
	})
	if videoMedia == nil || len(videoMedia.payloads) < 100 || !videoMedia.keys[0] || audioMedia.config == nil {
		t.Fatalf("the recording %s did not give H.264 and Opus frames", recording)
	}
	return videoMedia, audioMedia
}

// ---- a publish client ----

type publishClient struct {
	c *websocket.Conn
}

func dialPublish(t *testing.T, lg *livegate, hdr http.Header) *publishClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, lg.WSURL("/api/v1/publish"), &websocket.DialOptions{HTTPHeader: hdr})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.CloseNow() })
	return &publishClient{c: c}
}

func (c *publishClient) send(t *testing.T, s string) {
	t.Helper()
	if err := c.c.Write(context.Background(), websocket.MessageText, []byte(s)); err != nil {
		t.Fatal(err)
	}
}

func (c *publishClient) sendBinary(t *testing.T, b []byte) {
	t.Helper()
	if err := c.c.Write(context.Background(), websocket.MessageBinary, b); err != nil {
		t.Fatal(err)
	}
}

// sendAll sends b in messages of at most n bytes (0: one frame per
// message, as WebCodecs frames), until it is sent or the socket fails.
func (c *publishClient) sendAll(b []byte, n int) {
	for len(b) > 0 {
		size := n
		if n == 0 {
			size = webcodecs.HeaderSize + int(binary.BigEndian.Uint32(b[10:14]))
		}
		size = min(size, len(b))
		if c.c.Write(context.Background(), websocket.MessageBinary, b[:size]) != nil {
			return
		}
		b = b[size:]
	}
}

// expect reads until a message of type want (or an error, which fails).
func (c *publishClient) expect(t *testing.T, want string) map[string]any {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	for {
		_, data, err := c.c.Read(ctx)
		if err != nil {
			t.Fatalf("waiting for %s: %v", want, err)
		}
		var m map[string]any
		if err := json.Unmarshal(data, &m); err != nil {
			t.Fatalf("livegate sent %q", data)
		}
		if m["type"] == want {
			return m
		}
		if m["type"] == "error" {
			t.Fatalf("waiting for %s: got %v", want, m)
		}
	}
}

// expectRefusal reads until the error message, checks its code and the
// close code that follows, and returns its sentence.
func (c *publishClient) expectRefusal(t *testing.T, code string, closeCode websocket.StatusCode) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	for {
		_, data, err := c.c.Read(ctx)
		if err != nil {
			t.Errorf("waiting for error %s: %v", code, err)
			return ""
		}
		var m map[string]string
		_ = json.Unmarshal(data, &m)
		if m["type"] != "error" {
			continue
		}
		if m["code"] != code || len(m["message"]) < 10 {
			t.Errorf("error %s (%q), want %s", m["code"], m["message"], code)
		}
		if got := c.closeStatus(t); got != closeCode {
			t.Errorf("error %s: close %d, want %d", code, got, closeCode)
		}
		return m["message"]
	}
}

// closeStatus reads until the socket closes and returns the close code.
func (c *publishClient) closeStatus(t *testing.T) websocket.StatusCode {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	for {
		if _, _, err := c.c.Read(ctx); err != nil {
			if ctx.Err() != nil {
				t.Errorf("the socket did not close: %v", err)
			}
			return websocket.CloseStatus(err)
		}
	}
}

// rawWebSocket opens the publish WebSocket by hand, with a receive buffer
// of rcvbuf bytes (0: the default), and returns the connection after the
// handshake: the caller writes frames itself (wsFrame).
func rawWebSocket(t *testing.T, lg *livegate, rcvbuf int) net.Conn {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second}
	if rcvbuf > 0 {
		d.Control = func(_, _ string, rc syscall.RawConn) error {
			var serr error
			err := rc.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, rcvbuf)
			})
			if err != nil {
				return err
			}
			return serr
		}
	}
	host := strings.TrimPrefix(lg.BaseURL, "http://")
	conn, err := d.Dial("tcp", host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	key := base64.StdEncoding.EncodeToString(randomBytes(t, 16))
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(conn, "GET /api/v1/publish HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n", host, key)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("handshake: %s", resp.Status)
	}
	_ = conn.SetDeadline(time.Time{})
	return conn
}

// wsFrame is one masked client frame (RFC 6455, 5.2).
func wsFrame(opcode byte, payload []byte) []byte {
	b := []byte{0x80 | opcode}
	switch n := len(payload); {
	case n < 126:
		b = append(b, 0x80|byte(n))
	case n < 1<<16:
		b = append(b, 0x80|126, byte(n>>8), byte(n))
	default:
		b = append(b, 0x80|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	mask := [4]byte{0x37, 0xfa, 0x21, 0x3d}
	b = append(b, mask[:]...)
	for i, c := range payload {
		b = append(b, c^mask[i%4])
	}
	return b
}

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func metricInt(lg *livegate, line string) int {
	n, _ := strconv.Atoi(lg.Metric(line))
	return n
}

// ---- what reaches the bring-your-own-key server ----

// tcpCounter is a TCP listener that counts connections, and closes each
// when its peer does or after 300 ms (long enough for serverWatch to see
// it).
type tcpCounter struct {
	addr  string
	count atomic.Int64
}

func startTCPCounter(t *testing.T) *tcpCounter {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &tcpCounter{addr: ln.Addr().String()}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // ends when the listener closes
		defer wg.Done()
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			c.count.Add(1)
			wg.Add(1)
			go func() { // ends within 300 ms
				defer wg.Done()
				_ = conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
				_, _ = io.Copy(io.Discard, conn)
				conn.Close()
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	return c
}

// ---- watching the server ----

// serverWatch samples livegate's children and sockets every 50 ms, and
// compares the directories it may write to with how they were.
type serverWatch struct {
	pid, httpPort, rcvPort int
	dirs                   []string
	files                  map[string]int64

	mu    sync.Mutex
	kids  map[int]procInfo
	conns map[string]bool // connections not to the built-in receiver, and UDP sockets
	quit  chan struct{}
	done  chan struct{}
}

func startServerWatch(t *testing.T, lg *livegate, rcvPort int, dirs []string) *serverWatch {
	t.Helper()
	w := &serverWatch{pid: lg.PID, httpPort: lg.Port, rcvPort: rcvPort, dirs: dirs, files: listFiles(dirs),
		kids: map[int]procInfo{}, conns: map[string]bool{}, quit: make(chan struct{}), done: make(chan struct{})}
	go func() { // ends at the test's cleanup
		defer close(w.done)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			w.sample()
			select {
			case <-w.quit:
				return
			case <-tick.C:
			}
		}
	}()
	t.Cleanup(func() {
		close(w.quit)
		<-w.done
	})
	return w
}

func (w *serverWatch) sample() {
	kids := descendants(w.pid)
	socks := sockets(w.pid)
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, k := range kids {
		w.kids[k.pid] = k
	}
	for _, s := range socks {
		if bad, what := w.unexpected(s); bad {
			w.conns[what] = true
		}
	}
}

// unexpected tells whether a socket of livegate's is other than its
// listeners, the connections to them, and its own connections to its
// built-in receiver.
func (w *serverWatch) unexpected(s socket) (bool, string) {
	what := fmt.Sprintf("%s %v->%v", s.proto, s.local, s.remote)
	switch {
	case strings.HasPrefix(s.proto, "udp"):
		return true, what
	case s.state == tcpListen:
		return s.local.Port() != uint16(w.httpPort) && s.local.Port() != uint16(w.rcvPort), what
	case s.local.Port() == uint16(w.httpPort) || s.local.Port() == uint16(w.rcvPort):
		return false, what // a client of livegate's
	}
	return !(s.remote.Addr().IsLoopback() && s.remote.Port() == uint16(w.rcvPort)), what
}

// receiverConns are livegate's connections to its built-in receiver (the
// publishers of broadcasts to local and sink), by their local address.
func (w *serverWatch) receiverConns() []netip.AddrPort {
	var out []netip.AddrPort
	for _, s := range sockets(w.pid) {
		if s.proto == "tcp" && s.state != tcpListen && s.local.Port() != uint16(w.rcvPort) && s.remote.Port() == uint16(w.rcvPort) {
			out = append(out, s.local)
		}
	}
	return out
}

// take returns what was seen since the last take, and forgets it.
func (w *serverWatch) take() ([]procInfo, []string) {
	w.sample()
	w.mu.Lock()
	defer w.mu.Unlock()
	var kids []procInfo
	for _, k := range w.kids {
		kids = append(kids, k)
	}
	var conns []string
	for c := range w.conns {
		conns = append(conns, c)
	}
	sort.Strings(conns)
	w.kids, w.conns = map[int]procInfo{}, map[string]bool{}
	return kids, conns
}

// filesChanged describes the files that differ from the start.
func (w *serverWatch) filesChanged() string {
	now := listFiles(w.dirs)
	var diff []string
	for p, size := range now {
		if was, ok := w.files[p]; !ok || was != size {
			diff = append(diff, fmt.Sprintf("%s (%d bytes)", p, size))
		}
	}
	for p := range w.files {
		if _, ok := now[p]; !ok {
			diff = append(diff, p+" (removed)")
		}
	}
	sort.Strings(diff)
	return strings.Join(diff, ", ")
}

func listFiles(dirs []string) map[string]int64 {
	files := map[string]int64{}
	for _, d := range dirs {
		_ = filepath.WalkDir(d, func(p string, e fs.DirEntry, err error) error {
			if err != nil {
				return nil
			}
			if fi, err := e.Info(); err == nil {
				files[p] = fi.Size()
			}
			return nil
		})
	}
	return files
}

const tcpListen = "0A"

// socket is one line of /proc/PID/net/{tcp,tcp6,udp,udp6} that belongs to
// the process.
type socket struct {
	proto         string
	local, remote netip.AddrPort
	state         string
}

// sockets lists the TCP and UDP sockets pid holds open.
func sockets(pid int) []socket {
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return nil
	}
	inodes := map[string]bool{}
	for _, fd := range fds {
		l, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
		if ino, ok := strings.CutPrefix(l, "socket:["); err == nil && ok {
			inodes[strings.TrimSuffix(ino, "]")] = true
		}
	}
	var out []socket
	for _, proto := range []string{"tcp", "tcp6", "udp", "udp6"} {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/%s", pid, proto))
		if err != nil {
			continue
		}
		for i, line := range strings.Split(string(b), "\n") {
			f := strings.Fields(line)
			if i == 0 || len(f) < 10 || !inodes[f[9]] {
				continue
			}
			out = append(out, socket{proto: strings.TrimSuffix(proto, "6"), local: hexAddrPort(f[1]), remote: hexAddrPort(f[2]), state: f[3]})
		}
	}
	return out
}

// hexAddrPort reads an address of /proc/net/tcp: the address in hex, each
// 32-bit word in the machine's (little-endian) order, then the port.
func hexAddrPort(s string) netip.AddrPort {
	h, p, _ := strings.Cut(s, ":")
	port, _ := strconv.ParseUint(p, 16, 16)
	raw, _ := hex.DecodeString(h)
	for i := 0; i+4 <= len(raw); i += 4 {
		raw[i], raw[i+1], raw[i+2], raw[i+3] = raw[i+3], raw[i+2], raw[i+1], raw[i]
	}
	addr, _ := netip.AddrFromSlice(raw)
	return netip.AddrPortFrom(addr.Unmap(), uint16(port))
}
