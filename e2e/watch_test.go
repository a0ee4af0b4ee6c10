package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// watchStats is the part of GET /api/v1/receiver this test reads.
type watchStats struct {
	Streams []struct {
		Path   string `json:"path"`
		Active bool   `json:"active"`
		Video  *struct {
			Width  int     `json:"width"`
			Height int     `json:"height"`
			FPS    float64 `json:"fps"`
		} `json:"video"`
		Bitrate    int64  `json:"bitrate"`
		AVOffsetMS *int64 `json:"av_offset_ms"`
		DelayMS    int64  `json:"delay_ms"`
	} `json:"streams"`
}

// watchVideo is what the watch-back <video> shows.
type watchVideo struct {
	ReadyState  int     `json:"readyState"`
	VideoWidth  int     `json:"videoWidth"`
	VideoHeight int     `json:"videoHeight"`
	CurrentTime float64 `json:"currentTime"`
	Paused      bool    `json:"paused"`
	Buffered    float64 `json:"buffered"` // end of the last range
	State       string  `json:"state"`
	Message     string  `json:"message"`
}

const watchVideoExpr = `(() => {
  const v = document.getElementById('watch-video');
  const b = v.buffered;
  return {readyState: v.readyState, videoWidth: v.videoWidth, videoHeight: v.videoHeight,
    currentTime: v.currentTime, paused: v.paused, buffered: b.length ? b.end(b.length - 1) : 0,
    state: window.__livegate.watch.state, message: window.__livegate.watch.message};
})()`

// TestChromiumWatchesBackTheReceiver goes live from Chromium to the built-in
// receiver, presses Watch back on the same page, and checks that the
// browser plays what the receiver got (fMP4 over a WebSocket into Media
// Source Extensions): 1280x720 pictures, and time that advances.
func TestChromiumWatchesBackTheReceiver(t *testing.T) {
	lg := startLivegate(t, "receiver:\n  listen: 127.0.0.1:0\n")
	b := startChromium(t)
	screenshotOnFailure(t, "studio", b)
	if err := b.Navigate(lg.URL("/?destination=local&autostart=1")); err != nil {
		t.Fatal(err)
	}
	if err := b.WaitFor(`(window.__livegate.destinations||{}).local?.state === 'live'`, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	// The receiver reports the stream after 2 s of it; the page polls
	// every 2 s.
	button := `document.querySelector('.watch-button[data-path="live/local"]')`
	if err := b.WaitFor(button+` && !`+button+`.hidden && !`+button+`.disabled`, 15*time.Second); err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	if _, err := b.Eval(button + `.click()`); err != nil {
		t.Fatal(err)
	}
	if err := b.WaitFor(`(v => v.readyState >= 2 && v.videoWidth > 0)(document.getElementById('watch-video'))`, 15*time.Second); err != nil {
		t.Fatal(err)
	}
	var v watchVideo
	if err := evalInto(b, watchVideoExpr, &v); err != nil {
		t.Fatal(err)
	}
	t.Logf("watch-back: first picture %v after the click: %+v", time.Since(began).Round(time.Millisecond), v)
	if v.ReadyState < 2 || v.VideoWidth != 1280 || v.VideoHeight != 720 || v.State != "playing" {
		t.Fatalf("watch video %+v, want readyState >= 2, 1280x720, playing", v)
	}
	// Time advances: the browser decodes and plays what keeps arriving.
	start := v.CurrentTime
	var last watchVideo
	if err := poll(10*time.Second, 100*time.Millisecond, func() (bool, error) {
		err := evalInto(b, watchVideoExpr, &last)
		return err == nil && last.CurrentTime > start+2 && !last.Paused, err
	}); err != nil {
		t.Fatalf("watch video did not play 2 s on: from %.2f s to %+v: %v", start, last, err)
	}
	// Close to live: the page keeps within 1.5 s of the newest media.
	if behind := last.Buffered - last.CurrentTime; behind > 2 {
		t.Errorf("playing %.2f s behind the newest media, want <= 1.5 (+ one fragment)", behind)
	}
	t.Logf("watch-back: played %.2f s → %.2f s, %.2f s behind the newest media", start, last.CurrentTime, last.Buffered-last.CurrentTime)

	// The receiver's new numbers, and the page shows them.
	var rep watchStats
	getJSON(t, lg.URL("/api/v1/receiver"), &rep)
	if len(rep.Streams) != 1 || rep.Streams[0].Video == nil {
		t.Fatalf("receiver report %+v", rep)
	}
	s := rep.Streams[0]
	if s.Video.FPS < 25 || s.Video.FPS > 31 || s.Bitrate <= 0 || s.AVOffsetMS == nil || s.DelayMS < 0 {
		t.Errorf("receiver stats %+v, want about 30 fps, a bit rate, an A/V offset and a delay >= 0", s)
	}
	t.Logf("receiver: %.2f fps, %d bit/s, A/V offset %d ms, delay %d ms", s.Video.FPS, s.Bitrate, *s.AVOffsetMS, s.DelayMS)
	for _, fact := range []string{"Frame rate", "A/V offset", "Arrival delay", " fps", "kbit/s"} {
		if err := b.WaitFor(`document.querySelector('#receiver-streams').textContent.includes(`+jsString(fact)+`)`, 5*time.Second); err != nil {
			t.Error(err)
		}
	}
	if dir := os.Getenv("LIVEGATE_SCREENSHOT_DIR"); dir != "" {
		if err := b.Screenshot(filepath.Join(dir, "studio-watch.png")); err != nil {
			t.Error(err)
		}
	}

	// Stop watching lets go of the stream; Watch back again, then the end
	// of the broadcast ends the watch with words.
	if _, err := b.Eval(`document.getElementById('watch-stop').click()`); err != nil {
		t.Fatal(err)
	}
	if err := b.WaitFor(`window.__livegate.watch.state === 'off' && document.getElementById('watch').hidden && !document.getElementById('watch-video').src`, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Eval(button + `.click()`); err != nil {
		t.Fatal(err)
	}
	if err := b.WaitFor(`window.__livegate.watch.state === 'playing'`, 15*time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Eval(`window.__livegate.stop()`); err != nil {
		t.Fatal(err)
	}
	if err := b.WaitFor(`window.__livegate.watch.state === 'ended' && document.getElementById('watch-status').textContent === 'The stream ended'`, 15*time.Second); err != nil {
		t.Fatal(err)
	}
}

// jsString quotes s for JavaScript (JSON strings are JavaScript strings).
func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
