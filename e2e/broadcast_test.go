package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/livegate/livegate/internal/demux/flv"
	"github.com/livegate/livegate/internal/demux/webm"
	"github.com/livegate/livegate/internal/ingest/webcodecs"
	"github.com/livegate/livegate/internal/media"
)

// minLive is how long each browser broadcast lasts at least.
const minLive = 11 * time.Second

// broadcastResult is what a test saw while the browser was live.
type broadcastResult struct {
	mime       string
	video      string        // what livegate said in ready: passthrough or transcode
	toLive     time.Duration // Go live pressed -> destination live (first RTMP packet sent)
	cpuSeconds float64       // livegate + its children, over the measured window
	window     time.Duration
}

// liveState is the part of window.__livegate the tests read.
type liveState struct {
	State    string `json:"state"`
	MimeType string `json:"mimeType"`
	Ready    struct {
		Video string `json:"video"`
	} `json:"ready"`
	Stats struct {
		UptimeMS int64 `json:"uptime_ms"`
	} `json:"lastStats"`
	Destinations map[string]struct {
		State string `json:"state"`
	} `json:"destinations"`
}

// broadcast opens the studio page with an autostart link to dest, waits
// until it has been live for minLive, measures, then presses Stop.
func broadcast(t *testing.T, b browser, lg *livegate, dest string) broadcastResult {
	t.Helper()
	return broadcastURL(t, b, lg, dest, "/?destination="+dest+"&autostart=1")
}

// broadcastURL is broadcast from a given studio link.
func broadcastURL(t *testing.T, b browser, lg *livegate, dest, link string) broadcastResult {
	t.Helper()
	screenshotOnFailure(t, "studio", b)
	if err := b.Navigate(lg.URL(link)); err != nil {
		t.Fatal(err)
	}
	// The page presses Go live by itself; time from its "connecting" to
	// the destination going live.
	if err := b.WaitFor(`['connecting','live'].includes(document.body.dataset.state)`, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	destLive := fmt.Sprintf(`(window.__livegate.destinations||{})[%q]?.state === 'live'`, dest)
	if err := b.WaitFor(destLive, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	res := broadcastResult{toLive: time.Since(began)}

	cpu0, own0, t0 := treeCPU(lg.PID), procCPU(lg.PID), time.Now()
	if err := b.WaitFor(fmt.Sprintf(`window.__livegate.lastStats?.uptime_ms > %d`, minLive.Milliseconds()), minLive+20*time.Second); err != nil {
		t.Fatal(err)
	}
	res.cpuSeconds, res.window = treeCPU(lg.PID)-cpu0, time.Since(t0)
	own := procCPU(lg.PID) - own0

	var st liveState
	if err := evalInto(b, `window.__livegate`, &st); err != nil {
		t.Fatal(err)
	}
	if st.State != "live" || st.Destinations[dest].State != "live" {
		t.Fatalf("after %v live, page state %q, destination %q", minLive, st.State, st.Destinations[dest].State)
	}
	res.mime, res.video = st.MimeType, st.Ready.Video
	if dir := os.Getenv("LIVEGATE_SCREENSHOT_DIR"); dir != "" {
		// make screenshots: the README's picture of the studio, live.
		if err := b.Screenshot(filepath.Join(dir, "studio-"+dest+".png")); err != nil {
			t.Error(err)
		}
	}

	if _, err := b.Eval(`window.__livegate.stop()`); err != nil {
		t.Fatal(err)
	}
	if err := b.WaitFor(`document.body.dataset.state === 'stopped'`, 15*time.Second); err != nil {
		t.Fatal(err)
	}
	// The session's ffmpeg child must be gone within 2 s of the end.
	if err := poll(2*time.Second, 50*time.Millisecond, func() (bool, error) { return lg.Children() == 0, nil }); err != nil {
		t.Errorf("livegate still has %d child processes 2 s after the broadcast ended", lg.Children())
	}
	t.Logf("%s: mime %s, video %s; Go live -> destination live in %v; livegate+ffmpeg CPU %.2f s over %.1f s = %.3f cores (livegate itself %.3f)",
		dest, res.mime, res.video, res.toLive.Round(time.Millisecond), res.cpuSeconds, res.window.Seconds(), res.cpuSeconds/res.window.Seconds(), own/res.window.Seconds())
	return res
}

// checkRecording checks what nginx-rtmp recorded.
func checkRecording(t *testing.T, path, wantProfile string, wantX264 bool) {
	t.Helper()
	checkRecordingSize(t, path, wantProfile, wantX264, 1280, 720)
}

// checkRecordingSize is checkRecording for a given picture size.
func checkRecordingSize(t *testing.T, path, wantProfile string, wantX264 bool, width, height int) {
	t.Helper()
	if dir := os.Getenv("LIVEGATE_KEEP_DIR"); dir != "" {
		// Keep what the server got, to look at after the test.
		if b, err := os.ReadFile(path); err == nil {
			_ = os.WriteFile(filepath.Join(dir, filepath.Base(path)), b, 0o644)
		}
	}
	pr := probe(t, path)
	v, a := pr.Video(), pr.Audio()
	if v == nil || v.CodecName != "h264" || v.Width != width || v.Height != height {
		t.Fatalf("video at the server = %+v, want h264 %dx%d", v, width, height)
	}
	if a == nil || a.CodecName != "aac" {
		t.Fatalf("audio at the server = %+v, want aac", a)
	}
	if pr.Format.Duration < 8 {
		t.Errorf("duration at the server %.2f s, want >= 8 s", pr.Format.Duration)
	}
	// The frame rate from the timestamps themselves: ffprobe's own guess
	// (avg_frame_rate) is sometimes 0/0 for a live FLV.
	vts := packetTimes(t, path, "v")
	fps := 0.0
	if len(vts) > 1 {
		fps = float64(len(vts)-1) / (vts[len(vts)-1] - vts[0])
	}
	if fps < 25 || fps > 31 {
		t.Errorf("frame rate at the server %.2f, want about 30", fps)
	}
	if v.Profile != wantProfile {
		t.Errorf("H.264 profile at the server %q, want %q", v.Profile, wantProfile)
	}
	if e := decodeErrors(t, path); e != "" {
		t.Errorf("decode errors at the server:\n%s", e)
	}
	// Timestamps never go back: video strictly increases, audio does not
	// decrease.
	for _, kind := range []string{"v", "a"} {
		ts := packetTimes(t, path, kind)
		for i := 1; i < len(ts); i++ {
			if ts[i] < ts[i-1] || (kind == "v" && ts[i] == ts[i-1]) {
				t.Errorf("%s timestamps at the server go from %.3f to %.3f (packet %d)", kind, ts[i-1], ts[i], i)
				break
			}
		}
	}
	// x264 signs its stream with an SEI ("x264 - core ..."). Chromium's
	// encoder (OpenH264) does not: its absence proves livegate copied the
	// video rather than re-encoding it.
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := bytes.Contains(raw, []byte("x264 - core")); got != wantX264 {
		t.Errorf("x264 signature in the stream: %v, want %v", got, wantX264)
	}
	t.Logf("recording: %s %s %dx%d %.2f fps, %d frames, %s %s, %.2f s", v.CodecName, v.Profile, v.Width, v.Height, fps,
		v.NbReadFrames, a.CodecName, a.Profile, pr.Format.Duration)
}

func TestChromiumToNginx(t *testing.T) {
	nginx := startNginx(t)
	lg := startLivegate(t, fmt.Sprintf("receiver:\n  listen: 127.0.0.1:0\ndestinations:\n  nginx:\n    url: %s\n", nginx.URL("chromium")))
	b := startChromium(t)
	res := broadcast(t, b, lg, "nginx")
	if res.video != "passthrough" || !strings.Contains(res.mime, "avc1") {
		t.Errorf("Chromium sent %q and livegate chose %q video; want H.264 passthrough", res.mime, res.video)
	}
	nginx.Stop()
	checkRecording(t, nginx.RecordPath("chromium"), "Constrained Baseline", false)
}

func TestFirefoxToNginx(t *testing.T) {
	nginx := startNginx(t)
	lg := startLivegate(t, fmt.Sprintf("receiver:\n  enabled: false\ndestinations:\n  nginx:\n    url: %s\n", nginx.URL("firefox")))
	b := startFirefox(t)
	res := broadcast(t, b, lg, "nginx")
	if res.video != "transcode" || !strings.Contains(res.mime, "vp8") {
		t.Errorf("Firefox sent %q and livegate chose %q video; want VP8 transcoded", res.mime, res.video)
	}
	nginx.Stop()
	checkRecording(t, nginx.RecordPath("firefox"), "High", true)
}

// receiverReport is GET /api/v1/receiver.
type receiverReport struct {
	Streams []struct {
		Path   string `json:"path"`
		Active bool   `json:"active"`
		Video  *struct {
			Codec     string `json:"codec"`
			Profile   string `json:"profile"`
			Width     int    `json:"width"`
			Height    int    `json:"height"`
			Frames    int    `json:"frames"`
			KeyFrames int    `json:"key_frames"`
		} `json:"video"`
		Audio *struct {
			Codec      string `json:"codec"`
			SampleRate int    `json:"sample_rate"`
			Frames     int    `json:"frames"`
		} `json:"audio"`
		Bytes      int64 `json:"bytes"`
		FirstPTSms int64 `json:"first_pts_ms"`
		LastPTSms  int64 `json:"last_pts_ms"`
	} `json:"streams"`
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url) //nolint:noctx // a test on loopback
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}

func TestChromiumToBuiltinReceiver(t *testing.T) {
	lg := startLivegate(t, "receiver:\n  listen: 127.0.0.1:0\n")
	var dests struct {
		Destinations []map[string]any `json:"destinations"`
	}
	getJSON(t, lg.URL("/api/v1/destinations"), &dests)
	if len(dests.Destinations) != 1 || dests.Destinations[0]["name"] != "local" || dests.Destinations[0]["url"] != nil {
		t.Fatalf("destinations = %v, want only the name local and no URL", dests.Destinations)
	}
	b := startChromium(t)
	res := broadcast(t, b, lg, "local")
	if res.video != "passthrough" {
		t.Errorf("video %q, want passthrough", res.video)
	}
	var rep receiverReport
	if err := poll(5*time.Second, 100*time.Millisecond, func() (bool, error) {
		getJSON(t, lg.URL("/api/v1/receiver"), &rep)
		return len(rep.Streams) == 1 && !rep.Streams[0].Active, nil
	}); err != nil {
		t.Fatalf("receiver report %+v: %v", rep, err)
	}
	s := rep.Streams[0]
	if s.Video == nil || s.Video.Codec != "H264" || s.Video.Width != 1280 || s.Video.Height != 720 || s.Video.Profile != "Constrained Baseline" {
		t.Fatalf("receiver video %+v", s.Video)
	}
	if s.Audio == nil || s.Audio.Codec != "AAC" || s.Audio.SampleRate != 48000 {
		t.Fatalf("receiver audio %+v", s.Audio)
	}
	dur := s.LastPTSms - s.FirstPTSms
	if dur < 8000 || s.Video.Frames < 8*25 || s.Video.KeyFrames < 5 {
		t.Errorf("receiver got %d ms, %d frames, %d key frames; want >= 8 s at about 30 fps with a key frame a second", dur, s.Video.Frames, s.Video.KeyFrames)
	}
	// The page shows the report too.
	if err := b.WaitFor(`document.querySelector('#receiver').textContent.includes('1280')`, 5*time.Second); err != nil {
		t.Error(err)
	}
	t.Logf("receiver: %d ms, %d video frames (%d key), %d audio frames, %d bytes", dur, s.Video.Frames, s.Video.KeyFrames, s.Audio.Frames, s.Bytes)
}

// TestBadInputKeepsServing sends bad input to the real binary: each gets
// its error, the server goes on serving, and no ffmpeg child is left.
func TestBadInputKeepsServing(t *testing.T) {
	lg := startLivegate(t, "receiver:\n  listen: 127.0.0.1:0\n")
	start := `{"type":"start","version":1,"ingest":"mediarecorder","mime":"video/x-matroska;codecs=avc1,opus","destinations":["local"]}`
	for _, ca := range []struct {
		name string
		send []string // "T:" text, "B:" binary (repeated garbage of that many KiB)
		code string
	}{
		{"data before start", []string{"B:1"}, "media_before_start"},
		{"unknown destination", []string{`T:{"type":"start","version":1,"ingest":"mediarecorder","mime":"video/webm;codecs=vp8,opus","destinations":["rtmp://evil.example/live"]}`}, "unknown_destination"},
		{"second start", []string{"T:" + start, "T:" + start}, "duplicate_start"},
		{"garbage bytes", []string{"T:" + start, "B:64", "B:64", "B:64", "B:64"}, "bad_media"},
	} {
		t.Run(ca.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			c, _, err := websocket.Dial(ctx, lg.WSURL("/api/v1/publish"), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer c.CloseNow()
			for _, s := range ca.send {
				if txt, ok := strings.CutPrefix(s, "T:"); ok {
					_ = c.Write(ctx, websocket.MessageText, []byte(txt))
					continue
				}
				kib, _ := strconv.Atoi(strings.TrimPrefix(s, "B:"))
				junk := bytes.Repeat([]byte("not a webm stream "), kib*1024/18)
				_ = c.Write(ctx, websocket.MessageBinary, junk)
			}
			var got map[string]any
			for {
				_, data, err := c.Read(ctx)
				if err != nil {
					t.Fatalf("no error message before the close: %v", err)
				}
				_ = json.Unmarshal(data, &got)
				if got["type"] == "error" {
					break
				}
			}
			if got["code"] != ca.code {
				t.Fatalf("error %v, want code %s", got, ca.code)
			}
			if err := poll(3*time.Second, 50*time.Millisecond, func() (bool, error) { return lg.Children() == 0, nil }); err != nil {
				t.Errorf("%d ffmpeg children left after %s", lg.Children(), ca.name)
			}
		})
	}
	// Still serving.
	resp, err := http.Get(lg.URL("/healthz")) //nolint:noctx // a test on loopback
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("healthz after bad input: %v %v", resp, err)
	}
	resp.Body.Close()
}

// treeCPU is the user+system CPU seconds of pid and its live descendants.
// A child that exited inside the window is not counted, so measure while
// the broadcast runs.
func treeCPU(pid int) float64 {
	total := procCPU(pid)
	for _, d := range descendants(pid) {
		total += procCPU(d.pid)
	}
	return total
}

func procCPU(pid int) float64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100 // USER_HZ is 100 on Linux
}

// TestSIGTERMEndsBroadcasts: SIGTERM drains. The live browser is told at once that the
// server is restarting and when its broadcast will end, and stays live meanwhile, while
// /readyz answers 503; at the end of shutdown_grace it is told why its broadcast ended;
// livegate exits 0 with no child left (Stop checks).
func TestSIGTERMEndsBroadcasts(t *testing.T) {
	lg := startLivegate(t, "receiver:\n  listen: 127.0.0.1:0\nshutdown_grace: 3s\n")
	b := startChromium(t)
	screenshotOnFailure(t, "studio", b)
	if err := b.Navigate(lg.URL("/?destination=local&autostart=1")); err != nil {
		t.Fatal(err)
	}
	if err := b.WaitFor(`(window.__livegate.destinations||{}).local?.state === 'live'`, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	stopped := make(chan struct{})
	go func() { // SIGTERM, then the wait for the exit; the test waits for it below
		defer close(stopped)
		lg.Stop()
	}()
	defer func() { <-stopped }()
	began := time.Now()
	if err := b.WaitFor(`window.__livegate.drainingUntil > 0 && document.querySelector('#status').textContent.startsWith('The server is restarting: your broadcast will end in ')`, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(lg.URL("/readyz")) //nolint:noctx // a test on loopback
	if err != nil {
		t.Fatalf("/readyz while draining: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("/readyz while draining: %s, want 503", resp.Status)
	}
	time.Sleep(time.Second)
	var state string
	if err := evalInto(b, `document.body.dataset.state`, &state); err != nil || state != "live" {
		t.Errorf("a second into the drain the page is %q (%v), want live", state, err)
	}
	if err := b.WaitFor(`window.__livegate.lastError?.code === 'shutting_down' && document.body.dataset.state === 'error'`, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(began); took < 2*time.Second {
		t.Errorf("the broadcast ended %v after SIGTERM, want at shutdown_grace (3 s)", took)
	}
	status, err := b.Eval(`document.querySelector('#status').textContent`)
	if err != nil || !strings.Contains(status, "shutting down") {
		t.Errorf("status shown to the streamer: %s (%v)", status, err)
	}
}

// TestTwoDestinationsSurviveNginxRestart: one broadcast to nginx-rtmp and
// the built-in receiver at once; nginx is killed mid-broadcast and started
// again. The stream must be back on nginx within 5 s, the receiver must
// never notice, and the browser must do nothing (same session, still live).
func TestTwoDestinationsSurviveNginxRestart(t *testing.T) {
	nginx := startNginx(t)
	lg := startLivegate(t, fmt.Sprintf("receiver:\n  listen: 127.0.0.1:0\ndestinations:\n  nginx:\n    url: %s\n  local:\n    builtin: true\n", nginx.URL("two")))
	b := startChromium(t)
	screenshotOnFailure(t, "studio", b)
	if err := b.Navigate(lg.URL("/?destination=nginx,local&autostart=1")); err != nil {
		t.Fatal(err)
	}
	bothLive := `(d => d.nginx?.state === 'live' && d.local?.state === 'live')(window.__livegate.destinations || {})`
	if err := b.WaitFor(bothLive, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := b.WaitFor(`window.__livegate.lastStats?.uptime_ms > 4000`, 15*time.Second); err != nil {
		t.Fatal(err)
	}
	session, err := b.Eval(`window.__livegate.ready.session`)
	if err != nil {
		t.Fatal(err)
	}

	nginx.Kill() // a crash, not a clean stop
	part1 := filepath.Join(t.TempDir(), "part1.flv")
	copyFile(t, nginx.RecordPath("two"), part1)
	if err := b.WaitFor(`window.__livegate.destinations.nginx?.state === 'reconnecting'`, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	restarted := time.Now()
	nginx.Start()
	if err := b.WaitFor(bothLive, 15*time.Second); err != nil {
		t.Fatal(err)
	}
	back := time.Since(restarted)
	t.Logf("nginx restarted: the stream was back on it %v later", back.Round(time.Millisecond))
	if back > 5*time.Second {
		t.Errorf("the stream took %v to come back on nginx, want <= 5 s", back)
	}
	if err := b.WaitFor(`window.__livegate.lastStats?.uptime_ms > 11000`, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	// The browser did nothing: same session, still live, no error.
	var st struct {
		State     string          `json:"state"`
		Session   string          `json:"session"`
		LastError json.RawMessage `json:"lastError"`
	}
	if err := evalInto(b, `({state: window.__livegate.state, session: window.__livegate.ready.session, lastError: window.__livegate.lastError})`, &st); err != nil {
		t.Fatal(err)
	}
	if st.State != "live" || `"`+st.Session+`"` != session || (len(st.LastError) > 0 && string(st.LastError) != "null") {
		t.Errorf("the browser saw the restart: %+v (session was %s)", st, session)
	}
	var keyframes int
	if err := evalInto(b, `window.__livegate.keyframeRequests`, &keyframes); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Eval(`window.__livegate.stop()`); err != nil {
		t.Fatal(err)
	}
	if err := b.WaitFor(`document.body.dataset.state === 'stopped'`, 15*time.Second); err != nil {
		t.Fatal(err)
	}

	// The built-in receiver got one uninterrupted stream.
	var rep receiverReport
	if err := poll(5*time.Second, 100*time.Millisecond, func() (bool, error) {
		getJSON(t, lg.URL("/api/v1/receiver"), &rep)
		return len(rep.Streams) == 1 && !rep.Streams[0].Active, nil
	}); err != nil {
		t.Fatalf("receiver: %+v: %v (a second stream means it was interrupted)", rep, err)
	}
	s := rep.Streams[0]
	if d := s.LastPTSms - s.FirstPTSms; d < 10000 || s.Video == nil || float64(s.Video.Frames) < float64(d)/1000*25 {
		t.Errorf("receiver: %d ms with %+v; want >= 10 s at about 30 fps without a gap", d, s.Video)
	}

	// nginx: both parts play, and each keeps its timestamps in order.
	nginx.Stop()
	for _, p := range []string{part1, nginx.RecordPath("two")} {
		for _, kind := range []string{"v", "a"} {
			ts := packetTimes(t, p, kind)
			if len(ts) < 30 {
				t.Errorf("%s: only %d %s packets", filepath.Base(p), len(ts), kind)
			}
			for i := 1; i < len(ts); i++ {
				if ts[i] < ts[i-1] {
					t.Errorf("%s: %s timestamps go back from %.3f to %.3f", filepath.Base(p), kind, ts[i-1], ts[i])
					break
				}
			}
		}
	}
	pr := probe(t, nginx.RecordPath("two"))
	if pr.Video() == nil || pr.Audio() == nil || pr.Format.Duration < 3 {
		t.Errorf("after the restart nginx recorded %+v", pr)
	}
	// The new connection started on a key frame, which the browser was
	// asked for when the destination came back.
	if ps := packetList(t, nginx.RecordPath("two"), "v"); len(ps) == 0 || !ps[0].Key {
		t.Errorf("the reconnected stream does not start on a key frame (%d packets)", len(ps))
	}
	if keyframes < 3 {
		t.Errorf("the browser got %d key-frame requests; want one per destination going live, and one more after the reconnect", keyframes)
	}
	if err := poll(2*time.Second, 50*time.Millisecond, func() (bool, error) {
		return lg.Metric(`livegate_destination_reconnects_total{destination="nginx"}`) == "1", nil
	}); err != nil {
		t.Errorf("metrics do not count the reconnect: %v", err)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// captureHook records every binary WebSocket message the page sends.
const captureHook = `(() => {
  window.__sent = [];
  const send = WebSocket.prototype.send;
  WebSocket.prototype.send = function (d) {
    if (d instanceof ArrayBuffer) window.__sent.push(new Uint8Array(d.slice(0)));
    else if (ArrayBuffer.isView(d)) window.__sent.push(new Uint8Array(d.buffer.slice(d.byteOffset, d.byteOffset + d.byteLength)));
    return send.call(this, d);
  };
  return true;
})()`

// capturedBytes returns what the hook recorded, base64 over the wire.
const capturedBytes = `(() => {
  let n = 0; for (const c of window.__sent) n += c.length;
  const all = new Uint8Array(n); let o = 0;
  for (const c of window.__sent) { all.set(c, o); o += c.length; }
  let s = ''; for (let i = 0; i < all.length; i += 0x8000) s += String.fromCharCode.apply(null, all.subarray(i, i + 0x8000));
  return btoa(s);
})()`

// TestChromiumH264ArrivesUntouched: the H.264 slices nginx-rtmp received
// are byte for byte those Chromium sent, and the only ffmpeg livegate ran
// for the broadcast did audio.
func TestChromiumH264ArrivesUntouched(t *testing.T) {
	for _, ingest := range []string{"mediarecorder", "webcodecs"} {
		t.Run(ingest, func(t *testing.T) { h264Untouched(t, ingest) })
	}
}

func h264Untouched(t *testing.T, ingest string) {
	nginx := startNginx(t)
	lg := startLivegate(t, fmt.Sprintf("receiver:\n  enabled: false\ndestinations:\n  nginx:\n    url: %s\n", nginx.URL("same")))
	b := startChromium(t)
	screenshotOnFailure(t, "studio", b)
	if err := b.Navigate(lg.URL("/?destination=nginx&ingest=" + ingest)); err != nil {
		t.Fatal(err)
	}
	if err := b.WaitFor(`document.body.dataset.state === 'ready'`, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Eval(captureHook); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Eval(`window.__livegate.goLive()`); err != nil {
		t.Fatal(err)
	}
	if err := b.WaitFor(`window.__livegate.lastStats?.uptime_ms > 6000`, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	// While live: livegate's one child is an audio-only ffmpeg.
	kids := descendants(lg.PID)
	if len(kids) != 1 {
		t.Fatalf("livegate has %d children, want one ffmpeg (audio)", len(kids))
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", kids[0].pid))
	if err != nil {
		t.Fatal(err)
	}
	args := strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00")
	if !slices.Contains(args, "-vn") || slices.Contains(args, "libx264") {
		t.Errorf("the ffmpeg child does video work: %q", args)
	}
	if _, err := b.Eval(`window.__livegate.stop()`); err != nil {
		t.Fatal(err)
	}
	if err := b.WaitFor(`document.body.dataset.state === 'stopped'`, 15*time.Second); err != nil {
		t.Fatal(err)
	}
	var b64 string
	if err := evalInto(b, capturedBytes, &b64); err != nil {
		t.Fatal(err)
	}
	sent, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		t.Fatal(err)
	}
	nginx.Stop()

	var got string
	if err := evalInto(b, `window.__livegate.ingest`, &got); err != nil || got != ingest {
		t.Fatalf("the page used %q (%v), want %s", got, err, ingest)
	}
	browser := sliceHashes(t, "the browser's upload", func() (media.Demuxer, error) {
		if ingest == "webcodecs" {
			return webcodecs.NewReader(bytes.NewReader(sent), true, true)
		}
		return webm.NewReader(bytes.NewReader(sent))
	})
	f, err := os.Open(nginx.RecordPath("same"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	server := sliceHashes(t, "nginx's recording", func() (media.Demuxer, error) { return flv.NewReader(f) })
	if len(server) < 30 {
		t.Fatalf("nginx recorded only %d slices", len(server))
	}
	start := slices.Index(browser, server[0])
	if start < 0 || len(browser)-start < len(server) || !slices.Equal(browser[start:start+len(server)], server) {
		t.Fatalf("the H.264 slices at nginx (%d) are not those the browser sent (%d, first match at %d)", len(server), len(browser), start)
	}
	t.Logf("%d H.264 slices at nginx, byte-identical to the browser's (from its slice %d of %d)", len(server), start, len(browser))
}

// sliceHashes returns the SHA-256 of every H.264 slice NAL unit (types 1
// and 5) of a stream, in order.
func sliceHashes(t *testing.T, what string, open func() (media.Demuxer, error)) [][32]byte {
	t.Helper()
	d, err := open()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if _, err := d.Tracks(); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	var out [][32]byte
	for {
		p, err := d.ReadPacket()
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("%s: %v", what, err)
			}
			return out
		}
		for _, n := range p.AU {
			if len(n) > 0 && (n[0]&0x1f == 1 || n[0]&0x1f == 5) {
				out = append(out, sha256.Sum256(n))
			}
		}
	}
}

// TestKilledEncoderIsRestarted: livegate's ffmpeg child is killed in the
// middle of a Chromium broadcast; a new one takes over, the browser sees
// nothing, the receiver's stream goes on and audio keeps arriving.
func TestKilledEncoderIsRestarted(t *testing.T) {
	lg := startLivegate(t, "receiver:\n  listen: 127.0.0.1:0\n")
	b := startChromium(t)
	screenshotOnFailure(t, "studio", b)
	if err := b.Navigate(lg.URL("/?destination=local&autostart=1")); err != nil {
		t.Fatal(err)
	}
	if err := b.WaitFor(`window.__livegate.lastStats?.uptime_ms > 4000`, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	audioFrames := func() int {
		var rep receiverReport
		getJSON(t, lg.URL("/api/v1/receiver"), &rep)
		if len(rep.Streams) != 1 || rep.Streams[0].Audio == nil {
			return -1
		}
		return rep.Streams[0].Audio.Frames
	}
	kids := descendants(lg.PID)
	if len(kids) != 1 {
		t.Fatalf("livegate has %d children, want one ffmpeg", len(kids))
	}
	if err := syscall.Kill(kids[0].pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	if err := poll(5*time.Second, 20*time.Millisecond, func() (bool, error) {
		k := descendants(lg.PID)
		return len(k) == 1 && k[0].pid != kids[0].pid, nil
	}); err != nil {
		t.Fatalf("no new ffmpeg after the kill: %v", err)
	}
	t.Logf("a new ffmpeg started %v after the kill", time.Since(killed).Round(time.Millisecond))
	before := audioFrames()
	if err := poll(5*time.Second, 100*time.Millisecond, func() (bool, error) { return audioFrames() > before+20, nil }); err != nil {
		t.Fatalf("audio did not resume after the restart (%d frames): %v", before, err)
	}
	if _, err := b.Eval(`window.__livegate.stop()`); err != nil {
		t.Fatal(err)
	}
	if err := b.WaitFor(`document.body.dataset.state === 'stopped' && !window.__livegate.lastError`, 15*time.Second); err != nil {
		t.Fatal(err)
	}
	var rep receiverReport
	getJSON(t, lg.URL("/api/v1/receiver"), &rep)
	if len(rep.Streams) != 1 {
		t.Fatalf("the receiver saw %d streams; the broadcast should have gone on as one", len(rep.Streams))
	}
}

// TestFirefoxProfiles: Firefox's VP8 is encoded to H.264 at the profile the
// streamer picks among those the destination offers.
func TestFirefoxProfiles(t *testing.T) {
	for _, ca := range []struct {
		profile       string
		width, height int
	}{
		{"720p", 1280, 720},
		{"480p", 854, 480},
	} {
		t.Run(ca.profile, func(t *testing.T) {
			nginx := startNginx(t)
			lg := startLivegate(t, fmt.Sprintf("receiver:\n  enabled: false\ndestinations:\n  nginx:\n    url: %s\n    profiles: [720p, 480p]\n", nginx.URL("ff")))
			b := startFirefox(t)
			res := broadcastURL(t, b, lg, "nginx", "/?destination=nginx&profile="+ca.profile+"&autostart=1")
			if res.video != "transcode" {
				t.Errorf("video %q, want transcode", res.video)
			}
			nginx.Stop()
			checkRecordingSize(t, nginx.RecordPath("ff"), "High", true, ca.width, ca.height)
		})
	}
}

// TestChromiumWayIn: Chromium publishes to nginx-rtmp through each way in
// (WebCodecs, the default there, and the MediaRecorder fallback); both
// arrive as Chromium's own H.264 with AAC and a key frame about every
// second.
func TestChromiumWayIn(t *testing.T) {
	for _, ingest := range []string{"webcodecs", "mediarecorder"} {
		t.Run(ingest, func(t *testing.T) {
			nginx := startNginx(t)
			lg := startLivegate(t, fmt.Sprintf("receiver:\n  enabled: false\ndestinations:\n  nginx:\n    url: %s\n", nginx.URL("way")))
			b := startChromium(t)
			res := broadcastURL(t, b, lg, "nginx", "/?destination=nginx&ingest="+ingest+"&autostart=1")
			var used string
			if err := evalInto(b, `window.__livegate.ingest`, &used); err != nil || used != ingest {
				t.Fatalf("the page used %q (%v), want %s", used, err, ingest)
			}
			if res.video != "passthrough" {
				t.Errorf("video %q, want passthrough", res.video)
			}
			nginx.Stop()
			path := nginx.RecordPath("way")
			checkRecording(t, path, "Constrained Baseline", false)
			f, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			r, err := flv.NewReader(f)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := r.Tracks(); err != nil {
				t.Fatal(err)
			}
			var keys []time.Duration
			for {
				p, err := r.ReadPacket()
				if err != nil {
					break
				}
				if p.Track.Codec == media.CodecH264 && p.Key {
					keys = append(keys, p.DTS)
				}
			}
			if len(keys) < 2 {
				t.Fatalf("%d key frames", len(keys))
			}
			gap := (keys[len(keys)-1] - keys[0]) / time.Duration(len(keys)-1)
			t.Logf("%s: %d key frames, one every %v", ingest, len(keys), gap.Round(time.Millisecond))
			if gap < 500*time.Millisecond || gap > 2100*time.Millisecond {
				t.Errorf("a key frame every %v, want about 1 s", gap)
			}
		})
	}
}

// TestChromiumScreenWithCamera: the screen with the camera as a
// picture-in-picture, composed on a canvas in the page, goes live through
// the default way in and reaches the receiver at 1280x720 with audio.
func TestChromiumScreenWithCamera(t *testing.T) {
	lg := startLivegate(t, "receiver:\n  listen: 127.0.0.1:0\n")
	b := startChromium(t)
	res := broadcastURL(t, b, lg, "local", "/?destination=local&source=pip&autostart=1")
	var source string
	if err := evalInto(b, `window.__livegate.source`, &source); err != nil || source != "pip" {
		t.Fatalf("source %q (%v), want pip", source, err)
	}
	if res.video != "passthrough" {
		t.Errorf("video %q, want passthrough", res.video)
	}
	var rep receiverReport
	getJSON(t, lg.URL("/api/v1/receiver"), &rep)
	if len(rep.Streams) != 1 || rep.Streams[0].Video == nil || rep.Streams[0].Video.Width != 1280 || rep.Streams[0].Video.Height != 720 ||
		rep.Streams[0].Audio == nil || rep.Streams[0].Video.Frames < 200 {
		t.Fatalf("receiver %+v", rep)
	}
}
