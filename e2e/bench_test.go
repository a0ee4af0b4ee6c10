package e2e

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// BenchmarkStreamCPU measures, side by side in one run, what one Chromium
// 720p30 H.264/Opus stream costs in CPU: livegate (its process and its
// ffmpeg children, from the kernel's accounting) against the seed's
// approach (one ffmpeg per stream re-encoding everything). Both get the
// same real Chromium recording at real-time pace, as a browser would send
// it, and publish to the same nginx-rtmp.
//
//	make bench   (LIVEGATE_BENCH_SECONDS=60 by default)
//
// The recording is made once with headless Chromium and kept in the user
// cache directory.
func BenchmarkStreamCPU(b *testing.B) {
	secs := 60
	if s, err := strconv.Atoi(os.Getenv("LIVEGATE_BENCH_SECONDS")); err == nil && s > 0 {
		secs = s
	}
	dur := time.Duration(secs) * time.Second
	rec := chromiumRecording(b, dur)
	nginx := startNginx(b)
	lg := startLivegate(b, fmt.Sprintf("receiver:\n  enabled: false\ndestinations:\n  nginx:\n    url: %s\n", nginx.URL("livegate")))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var wg sync.WaitGroup
		var lgCPU, seedCPU float64
		var lgErr, seedErr error
		wg.Add(2)
		go func() {
			defer wg.Done()
			lgCPU, lgErr = replayLivegate(lg, rec, dur)
		}()
		go func() {
			defer wg.Done()
			seedCPU, seedErr = replaySeed(nginx.URL(fmt.Sprintf("seed%d", i)), rec, dur)
		}()
		wg.Wait()
		if lgErr != nil || seedErr != nil {
			b.Fatalf("livegate: %v; seed: %v", lgErr, seedErr)
		}
		media := dur.Seconds()
		b.ReportMetric(lgCPU/media, "livegate-cores")
		b.ReportMetric(seedCPU/media, "seed-cores")
		b.ReportMetric(seedCPU/lgCPU, "seed/livegate")
		b.Logf("%d s of Chromium 720p30 H.264+Opus (%d bytes): livegate+ffmpeg %.2f CPU s = %.4f cores; seed ffmpeg %.2f CPU s = %.4f cores; ratio %.1f",
			secs, len(rec), lgCPU, lgCPU/media, seedCPU, seedCPU/media, seedCPU/lgCPU)
	}
}

// chromiumRecording returns dur of Chromium's MediaRecorder output
// (video/x-matroska;codecs=avc1,opus, 1280x720 fake camera), recording it
// through the studio page the first time.
func chromiumRecording(b *testing.B, dur time.Duration) []byte {
	b.Helper()
	dir, err := os.UserCacheDir()
	if err != nil {
		dir = os.TempDir()
	}
	path := filepath.Join(dir, "livegate", fmt.Sprintf("chromium-720p-%ds.mkv", int(dur.Seconds())))
	if data, err := os.ReadFile(path); err == nil {
		return data
	}
	lg := startLivegate(b, "receiver:\n  listen: 127.0.0.1:0\n")
	br := startChromium(b)
	// MediaRecorder: the recording replayed is its Matroska.
	if err := br.Navigate(lg.URL("/?destination=local&ingest=mediarecorder")); err != nil {
		b.Fatal(err)
	}
	if err := br.WaitFor(`document.body.dataset.state === 'ready'`, 20*time.Second); err != nil {
		b.Fatal(err)
	}
	if _, err := br.Eval(captureHook); err != nil {
		b.Fatal(err)
	}
	if _, err := br.Eval(`window.__livegate.goLive()`); err != nil {
		b.Fatal(err)
	}
	if err := br.WaitFor(fmt.Sprintf(`window.__livegate.lastStats?.uptime_ms > %d`, dur.Milliseconds()+1500), dur+30*time.Second); err != nil {
		b.Fatal(err)
	}
	if _, err := br.Eval(`window.__livegate.stop()`); err != nil {
		b.Fatal(err)
	}
	if err := br.WaitFor(`document.body.dataset.state === 'stopped'`, 15*time.Second); err != nil {
		b.Fatal(err)
	}
	var b64 string
	if err := evalInto(br, capturedBytes, &b64); err != nil {
		b.Fatal(err)
	}
	data, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		b.Fatal(err)
	}
	br.Close()
	lg.Stop()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err == nil {
		_ = os.WriteFile(path, data, 0o644)
	}
	return data
}

// pace writes data to w in 250 ms worth of bytes at a time, spread over
// dur, as MediaRecorder does.
func pace(ctx context.Context, data []byte, dur time.Duration, write func([]byte) error) error {
	const tick = 250 * time.Millisecond
	n := int(dur / tick)
	chunk := (len(data) + n - 1) / n
	t0 := time.Now()
	for i := 0; len(data) > 0; i++ {
		if d := time.Until(t0.Add(time.Duration(i) * tick)); d > 0 {
			select {
			case <-time.After(d):
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		c := min(chunk, len(data))
		if err := write(data[:c]); err != nil {
			return err
		}
		data = data[c:]
	}
	return nil
}

// replayLivegate publishes rec through livegate's WebSocket protocol and
// returns the CPU seconds livegate and its children used.
func replayLivegate(lg *livegate, rec []byte, dur time.Duration) (float64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), dur+time.Minute)
	defer cancel()
	before := selfAndChildrenCPU(lg.PID)
	c, _, err := websocket.Dial(ctx, lg.WSURL("/api/v1/publish"), nil)
	if err != nil {
		return 0, err
	}
	defer c.CloseNow()
	c.SetReadLimit(1 << 20)
	start := `{"type":"start","version":1,"ingest":"mediarecorder","mime":"video/x-matroska;codecs=avc1,opus","destinations":["nginx"]}`
	if err := c.Write(ctx, websocket.MessageText, []byte(start)); err != nil {
		return 0, err
	}
	if _, msg, err := c.Read(ctx); err != nil || !strings.Contains(string(msg), `"ready"`) {
		return 0, fmt.Errorf("no ready: %s %v", msg, err)
	}
	// Read the server's messages meanwhile (stats), until it closes.
	closed := make(chan error, 1)
	go func() {
		for {
			if _, _, err := c.Read(ctx); err != nil {
				closed <- err
				return
			}
		}
	}()
	if err := pace(ctx, rec, dur, func(p []byte) error { return c.Write(ctx, websocket.MessageBinary, p) }); err != nil {
		return 0, err
	}
	if err := c.Write(ctx, websocket.MessageText, []byte(`{"type":"stop"}`)); err != nil {
		return 0, err
	}
	if err := <-closed; websocket.CloseStatus(err) != websocket.StatusNormalClosure {
		return 0, fmt.Errorf("livegate closed with %v", err)
	}
	// The session's ffmpeg has exited and been waited for by now, so the
	// kernel has added its time to livegate's children's.
	if err := poll(5*time.Second, 50*time.Millisecond, func() (bool, error) { return len(descendants(lg.PID)) == 0, nil }); err != nil {
		return 0, err
	}
	return selfAndChildrenCPU(lg.PID) - before, nil
}

// replaySeed runs the seed's approach on rec: one ffmpeg per stream that
// reads the browser's bytes on stdin and re-encodes everything.
func replaySeed(url string, rec []byte, dur time.Duration) (float64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), dur+time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ffmpeg", "-hide_banner", "-loglevel", "error", "-i", "-",
		"-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency", "-c:a", "aac", "-ar", "44100", "-b:a", "64k",
		"-f", "flv", url)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return 0, err
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	werr := pace(ctx, rec, dur, func(p []byte) error { _, err := stdin.Write(p); return err })
	_ = stdin.Close()
	err = cmd.Wait()
	if werr != nil && werr != io.ErrClosedPipe {
		return 0, fmt.Errorf("feeding the seed's ffmpeg: %w (%s)", werr, stderr.String())
	}
	if err != nil {
		return 0, fmt.Errorf("the seed's ffmpeg: %w (%s)", err, stderr.String())
	}
	st := cmd.ProcessState
	return (st.UserTime() + st.SystemTime()).Seconds(), nil
}

// selfAndChildrenCPU is utime+stime+cutime+cstime of pid in seconds: its
// own CPU and that of the children it has waited for.
func selfAndChildrenCPU(pid int) float64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	var total float64
	for _, i := range []int{11, 12, 13, 14} {
		v, _ := strconv.ParseFloat(f[i], 64)
		total += v
	}
	return total / 100
}
