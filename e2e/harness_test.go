package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Self-tests of the harness. They need the real binaries but not livegate
// (TestHarnessLivegate runs a stand-in server).

// TestHarnessNginxFFmpeg publishes a test pattern with ffmpeg to nginx-rtmp,
// stops nginx, and checks the recording with the probe helpers.
func TestHarnessNginxFFmpeg(t *testing.T) {
	n := startNginx(t)
	const key = "selftest"
	began := time.Now()
	ffmpegPublish(t, n.URL(key), 3*time.Second)
	t.Logf("ffmpeg: published 3 s in %v", time.Since(began).Round(time.Millisecond))
	n.Stop()

	path := n.RecordPath(key)
	r := probe(t, path)
	t.Logf("probe %s: format %+v streams %+v", filepath.Base(path), r.Format, r.Streams)
	if r.Format.Name != "flv" {
		t.Errorf("format = %q, want flv", r.Format.Name)
	}
	v := r.Video()
	switch {
	case v == nil:
		t.Fatal("no video stream")
	case v.CodecName != "h264" || v.Width != 1280 || v.Height != 720:
		t.Errorf("video = %s %dx%d, want h264 1280x720", v.CodecName, v.Width, v.Height)
	}
	if fps := v.FPS(); fps < 29 || fps > 31 {
		t.Errorf("video fps = %.2f (%s), want about 30", fps, v.AvgFrameRate)
	}
	if v.NbReadFrames < 75 {
		t.Errorf("video frames = %d, want about 90", v.NbReadFrames)
	}
	if a := r.Audio(); a == nil || a.CodecName != "aac" {
		t.Errorf("audio = %+v, want aac", a)
	}
	if r.Format.Duration < 2.5 {
		t.Errorf("duration = %.3f s, want >= 2.5", r.Format.Duration)
	}
	if errs := decodeErrors(t, path); errs != "" {
		t.Errorf("decode errors:\n%s", errs)
	}
	sps := h264SPS(t, path)
	if len(sps) < 4 || sps[0]&0x1f != 7 {
		t.Fatalf("SPS = %x", sps)
	}
	// libx264 ultrafast: Constrained Baseline (profile_idc 66), level 3.1.
	if sps[1] != 66 || sps[3] != 31 {
		t.Errorf("SPS profile_idc %d level_idc %d, want 66 and 31 (SPS %x)", sps[1], sps[3], sps)
	}
	t.Logf("SPS: %x", sps)
}

// TestHarnessNginxRestart checks that nginx comes back on the same port
// after Kill and after Stop.
func TestHarnessNginxRestart(t *testing.T) {
	n := startNginx(t)
	port := n.Port
	n.Kill()
	if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second); err == nil {
		_ = c.Close()
		t.Fatal("nginx still accepts connections after Kill")
	}
	n.Start()
	n.Stop()
	n.Start()
	if n.Port != port {
		t.Fatalf("port changed from %d to %d", port, n.Port)
	}
	ffmpegPublish(t, n.URL("again"), time.Second)
	n.Stop()
	if v := probe(t, n.RecordPath("again")).Video(); v == nil || v.CodecName != "h264" {
		t.Errorf("recording after restart: video %+v", v)
	}
}

// TestHarnessNginxStopMidBroadcast stops nginx while ffmpeg publishes: Stop
// must not wait for the publisher (worker_shutdown_timeout), and what was
// recorded must be playable.
func TestHarnessNginxStopMidBroadcast(t *testing.T) {
	n := startNginx(t)
	pub := startFFmpegPublish(t, n.URL("mid"), 30*time.Second)
	path := n.RecordPath("mid")
	if err := poll(10*time.Second, 50*time.Millisecond, func() (bool, error) {
		fi, err := os.Stat(path)
		return err == nil && fi.Size() > 1_500_000, nil // about 1.5 s of the test pattern
	}); err != nil {
		t.Fatalf("recording did not grow: %v", err)
	}
	began := time.Now()
	n.Stop()
	stopped := time.Since(began)
	t.Logf("nginx: stopped mid-broadcast in %v", stopped.Round(time.Millisecond))
	if stopped > 5*time.Second {
		t.Errorf("Stop with a live publisher took %v", stopped)
	}
	if err := pub.Wait(); err == nil {
		t.Error("ffmpeg did not notice that nginx went away")
	}
	r := probe(t, path)
	if v := r.Video(); v == nil || v.NbReadFrames < 30 {
		t.Errorf("recording: %+v", r)
	}
	if errs := decodeErrors(t, path); errs != "" {
		t.Logf("decode errors in the recording cut by Stop:\n%s", errs)
	}
}

// gumPage asks for a 1280x720 camera and a microphone when run() is called
// and exposes what it got in window.__result; it also writes to the console
// so that the console capture can be checked.
const gumPage = `<!doctype html>
<html><head><meta charset="utf-8"><title>gum</title></head>
<body data-state="idle"><div id="status">idle</div>
<script>
window.__result = null;
const status = document.getElementById('status');
async function run() {
  document.body.dataset.state = 'capturing';
  status.textContent = 'capturing';
  try {
    const s = await navigator.mediaDevices.getUserMedia({video: {width: 1280, height: 720}, audio: true});
    const v = s.getVideoTracks()[0].getSettings();
    const a = s.getAudioTracks();
    window.__result = {
      width: v.width, height: v.height, frameRate: v.frameRate,
      videoLabel: s.getVideoTracks()[0].label,
      audioTracks: a.length,
      audio: a.length ? a[0].getSettings() : null,
      secure: isSecureContext,
    };
    console.log('selftest gum: ' + JSON.stringify(window.__result));
    s.getTracks().forEach(t => t.stop());
    document.body.dataset.state = 'done';
    status.textContent = 'got ' + v.width + 'x' + v.height;
  } catch (e) {
    window.__result = {error: String(e)};
    console.error('selftest gum failed: ' + e);
    document.body.dataset.state = 'error';
    status.textContent = String(e);
  }
}
</script></body></html>`

type gumResult struct {
	Width, Height int
	FrameRate     float64
	VideoLabel    string
	AudioTracks   int
	Audio         map[string]any
	Secure        bool
	Error         string
}

func serveGumPage(t *testing.T) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write([]byte(gumPage))
	}))
	t.Cleanup(srv.Close)
	if !strings.HasPrefix(srv.URL, "http://127.0.0.1:") {
		t.Fatalf("httptest server on %s, want 127.0.0.1", srv.URL)
	}
	return srv.URL + "/gum.html"
}

// checkBrowser runs the getUserMedia page in b and checks the parts of the
// browser interface every e2e test relies on.
func checkBrowser(t *testing.T, b browser, console func() string, mimeType string) gumResult {
	url := serveGumPage(t)
	began := time.Now()
	if err := b.Navigate(url); err != nil {
		t.Fatal(err)
	}
	if err := b.WaitFor(`document.body.dataset.state === 'idle'`, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Eval("run()"); err != nil {
		t.Fatal(err)
	}
	var r gumResult
	if err := evalInto(b, "window.__result", &r); err != nil {
		t.Fatal(err)
	}
	t.Logf("getUserMedia after %v: %+v", time.Since(began).Round(time.Millisecond), r)
	if r.Error != "" {
		t.Fatalf("getUserMedia: %s", r.Error)
	}
	if !r.Secure {
		t.Error("isSecureContext is false on http://127.0.0.1")
	}
	if r.AudioTracks != 1 {
		t.Errorf("audio tracks = %d, want 1", r.AudioTracks)
	}

	var supported bool
	if err := evalInto(b, fmt.Sprintf("MediaRecorder.isTypeSupported(%q)", mimeType), &supported); err != nil {
		t.Fatal(err)
	}
	if !supported {
		t.Errorf("MediaRecorder.isTypeSupported(%q) = false", mimeType)
	}

	// Eval: JSON results, undefined, promises, exceptions.
	for expr, want := range map[string]string{
		`({a: 1, b: "x"})`:         `{"a":1,"b":"x"}`,
		`undefined`:                `undefined`,
		`Promise.resolve([1, 2]);`: `[1,2]`,
		`"str"`:                    `"str"`,
	} {
		got, err := b.Eval(expr)
		if err != nil || got != want {
			t.Errorf("Eval(%s) = %q, %v; want %q", expr, got, err, want)
		}
	}
	if got, err := b.Eval("navigator.userActivation.isActive"); err != nil || got != "true" {
		t.Errorf("Eval has no user activation: %q, %v", got, err)
	}
	if _, err := b.Eval("noSuchVariable.x"); err == nil {
		t.Error("Eval of a throwing expression: no error")
	}
	if err := b.WaitFor(`new Promise(r => setTimeout(() => r(true), 300))`, 5*time.Second); err != nil {
		t.Errorf("WaitFor(promise): %v", err)
	}

	// WaitFor's timeout error must say what the page shows.
	waitBegan := time.Now()
	err := b.WaitFor("window.neverTrue === 1", 300*time.Millisecond)
	switch {
	case err == nil:
		t.Error("WaitFor(false): no error")
	case !strings.Contains(err.Error(), "window.neverTrue === 1") ||
		!strings.Contains(err.Error(), `"state":"done"`) ||
		!strings.Contains(err.Error(), `"status":"got `):
		t.Errorf("WaitFor timeout error lacks the expression or page state: %v", err)
	case time.Since(waitBegan) > 5*time.Second:
		t.Errorf("WaitFor(300ms) took %v", time.Since(waitBegan))
	default:
		t.Logf("WaitFor timeout error: %v", err)
	}

	// The console capture got the page's console.log.
	if err := poll(5*time.Second, 50*time.Millisecond, func() (bool, error) {
		return strings.Contains(console(), "selftest gum: {"), nil
	}); err != nil {
		t.Errorf("console capture has no 'selftest gum' line: %v\nconsole:\n%s", err, console())
	}

	png := filepath.Join(t.TempDir(), "shot.png")
	if err := b.Screenshot(png); err != nil {
		t.Error(err)
	} else if data, err := os.ReadFile(png); err != nil || !bytes.HasPrefix(data, []byte("\x89PNG\r\n\x1a\n")) {
		t.Errorf("screenshot is not a PNG (%d bytes, %v)", len(data), err)
	}
	return r
}

func TestHarnessChromium(t *testing.T) {
	c := startChromium(t)
	r := checkBrowser(t, c, c.Console, "video/x-matroska;codecs=avc1,opus")
	if r.Width != 1280 || r.Height != 720 {
		t.Errorf("camera = %dx%d, want 1280x720", r.Width, r.Height)
	}
	if r.FrameRate != 30 {
		t.Errorf("camera frame rate = %v, want 30", r.FrameRate)
	}
	began := time.Now()
	c.Close()
	t.Logf("chromium: closed in %v", time.Since(began).Round(time.Millisecond))
}

func TestHarnessFirefox(t *testing.T) {
	f := startFirefox(t)
	r := checkBrowser(t, f, f.Console, "video/webm;codecs=vp8,opus")
	if r.Width != 1280 || r.Height != 720 {
		t.Errorf("camera = %dx%d, want 1280x720", r.Width, r.Height)
	}
	began := time.Now()
	f.Close()
	t.Logf("firefox: closed in %v", time.Since(began).Round(time.Millisecond))
}

// TestHarnessBrowsersTogether runs both browsers at once, as a test of one
// broadcast per browser would.
func TestHarnessBrowsersTogether(t *testing.T) {
	var wg sync.WaitGroup
	c := startChromium(t)
	f := startFirefox(t)
	url := serveGumPage(t)
	for _, b := range []browser{c, f} {
		wg.Go(func() {
			if err := b.Navigate(url); err != nil {
				t.Error(err)
				return
			}
			if _, err := b.Eval("run()"); err != nil {
				t.Error(err)
				return
			}
			if err := b.WaitFor("document.body.dataset.state === 'done'", 10*time.Second); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
}

// ---- livegate stand-in ----

// fakeLivegateEnv makes the test binary act as a stand-in server (see
// TestMain): it serves /healthz on the config's listen address, has one
// child (sleep) and exits on SIGTERM. Modes: "good" (kills and waits for
// its child, exits 0), "leak" (child in its own process group, left
// running), "badexit" (exits 3).
const fakeLivegateEnv = "LIVEGATE_E2E_FAKE"

func fakeLivegateMain(mode string) {
	fail := func(err error) {
		fmt.Fprintln(os.Stderr, "fake livegate:", err)
		os.Exit(2)
	}
	var cfg string
	for i, a := range os.Args {
		if a == "-config" && i+1 < len(os.Args) {
			cfg = os.Args[i+1]
		}
	}
	b, err := os.ReadFile(cfg)
	if err != nil {
		fail(err)
	}
	var listen string
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "listen:"); ok {
			listen = strings.TrimSpace(v)
		}
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM)

	child := exec.Command("sleep", "300")
	if mode == "leak" {
		child.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	}
	if err := child.Start(); err != nil {
		fail(err)
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		fail(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	fmt.Println("fake livegate: listening on", listen, "mode", mode)

	<-sigs
	fmt.Println("fake livegate: SIGTERM")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(ctx)
	if mode != "leak" {
		_ = child.Process.Kill()
		_ = child.Wait()
	}
	if mode == "badexit" {
		os.Exit(3)
	}
	os.Exit(0)
}

// errRecorder is a testing.TB that records Errorf calls instead of failing,
// to test that a helper reports problems.
type errRecorder struct {
	testing.TB
	mu   sync.Mutex
	errs []string
}

func (r *errRecorder) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

func (r *errRecorder) errors() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.errs, "\n")
}

func TestHarnessLivegate(t *testing.T) {
	requireE2E(t)
	requireBinary(t, "sleep", "coreutils")
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, ca := range []struct {
		mode    string
		wantErr string // in what Stop reports; "" = nothing
	}{
		{"good", ""},
		{"leak", "left child processes running"},
		{"badexit", "exited with status 3"},
	} {
		t.Run(ca.mode, func(t *testing.T) {
			rec := &errRecorder{TB: t}
			lg := runLivegate(rec, self, []string{fakeLivegateEnv + "=" + ca.mode}, "destinations: {}\n")
			if n := lg.Children(); n != 1 {
				t.Errorf("Children() = %d, want 1 (sleep)", n)
			}
			resp, err := http.Get(lg.URL("/healthz"))
			if err != nil {
				t.Fatal(err)
			}
			_ = resp.Body.Close()
			kids := descendants(lg.PID)
			lg.Stop()
			got := rec.errors()
			switch {
			case ca.wantErr == "" && got != "":
				t.Errorf("Stop reported: %s", got)
			case ca.wantErr != "" && !strings.Contains(got, ca.wantErr):
				t.Errorf("Stop reported %q, want it to contain %q", got, ca.wantErr)
			}
			if left := stillAlive(kids); len(left) > 0 {
				t.Errorf("processes left after Stop: %v", left)
			}
			if !strings.Contains(lg.Log(), "fake livegate: SIGTERM") {
				t.Errorf("Log() lacks the server output: %q", lg.Log())
			}
		})
	}
}

// ---- pure helpers (run with -short too) ----

func TestHarnessSplitAnnexB(t *testing.T) {
	in := []byte{
		0, 0, 0, 1, 0x67, 0x42, 0xc0, 0x1f, 0x80, 0, // SPS + trailing zero
		0, 0, 1, 0x68, 0xce, 0x3c, 0x80, // PPS, 3-byte start code
		0, 0, 0, 1, 0x65, 0x88, 0x84, // IDR
	}
	got := splitAnnexB(in)
	want := [][]byte{{0x67, 0x42, 0xc0, 0x1f, 0x80}, {0x68, 0xce, 0x3c, 0x80}, {0x65, 0x88, 0x84}}
	if fmt.Sprintf("%x", got) != fmt.Sprintf("%x", want) {
		t.Errorf("splitAnnexB = %x, want %x", got, want)
	}
	if got := splitAnnexB([]byte{1, 2, 3}); got != nil {
		t.Errorf("no start code: %x", got)
	}
}

func TestHarnessParseProbe(t *testing.T) {
	r, err := parseProbe([]byte(`{"streams":[{"index":0,"codec_type":"video","codec_name":"h264",
		"profile":"Constrained Baseline","level":31,"width":1280,"height":720,"avg_frame_rate":"1000/33",
		"nb_read_frames":"90","start_time":"0.023000"},{"index":1,"codec_type":"audio","codec_name":"aac"}],
		"format":{"format_name":"flv","duration":"2.990000"}}`))
	if err != nil {
		t.Fatal(err)
	}
	v := r.Video()
	if v == nil || v.Level != 31 || v.NbReadFrames != 90 || v.StartTime != 0.023 || r.Format.Duration != 2.99 {
		t.Errorf("parsed %+v", r)
	}
	if fps := v.FPS(); fps < 30.30 || fps > 30.31 {
		t.Errorf("FPS = %v", fps)
	}
	if r.Audio() == nil || r.Audio().CodecName != "aac" {
		t.Errorf("audio %+v", r.Audio())
	}
}

func TestHarnessProcs(t *testing.T) {
	self, ok := readProc(os.Getpid())
	if !ok || self.ppid != os.Getppid() || self.state == 0 {
		t.Fatalf("readProc(self) = %+v, %v", self, ok)
	}
	if err := poll(time.Second, time.Millisecond, func() (bool, error) { return true, nil }); err != nil {
		t.Error(err)
	}
	err := poll(30*time.Millisecond, 5*time.Millisecond, func() (bool, error) { return false, nil })
	if !errors.Is(err, errPollTimeout) {
		t.Errorf("poll timeout error = %v", err)
	}
}
