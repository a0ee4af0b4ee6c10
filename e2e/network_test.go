package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/livegate/livegate/internal/testutil"
)

// TestChromiumResumesAfterNetworkLoss: the browser's connection to
// livegate is cut (a reset, as a network loss looks); the page reconnects
// and resumes the broadcast, and the destination sees one stream, not a
// new broadcast.
func TestChromiumResumesAfterNetworkLoss(t *testing.T) {
	for _, ingest := range []string{"webcodecs", "mediarecorder"} {
		t.Run(ingest, func(t *testing.T) { resumeAfterLoss(t, ingest) })
	}
}

func resumeAfterLoss(t *testing.T, ingest string) {
	nginx := startNginx(t)
	lg := startLivegate(t, fmt.Sprintf("destinations:\n  nginx:\n    url: %s\n", nginx.URL("resume")))
	// The browser reaches livegate through a proxy the test can cut.
	link := testutil.StartThrottle(t, strings.TrimPrefix(lg.BaseURL, "http://"), 1<<30)
	b := startChromium(t)
	screenshotOnFailure(t, "studio", b)
	if err := b.Navigate("http://" + link.Addr + "/?destination=nginx&autostart=1&ingest=" + ingest); err != nil {
		t.Fatal(err)
	}
	if err := b.WaitFor(`window.__livegate.destinations?.nginx?.state === 'live' && window.__livegate.lastStats?.uptime_ms > 4000`, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	var session string
	if err := evalInto(b, `window.__livegate.ready.session`, &session); err != nil {
		t.Fatal(err)
	}

	link.Cut()
	cut := time.Now()
	if err := b.WaitFor(`window.__livegate.reconnects >= 1 && window.__livegate.state === 'live'`, 15*time.Second); err != nil {
		t.Fatal(err)
	}
	back := time.Since(cut)
	if err := b.WaitFor(`window.__livegate.lastStats?.uptime_ms > 10000`, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	var st struct {
		State      string `json:"state"`
		Session    string `json:"session"`
		Reconnects int    `json:"reconnects"`
		LastError  any    `json:"lastError"`
		Dest       string `json:"dest"`
	}
	if err := evalInto(b, `({state: window.__livegate.state, session: window.__livegate.ready.session,
	  reconnects: window.__livegate.reconnects, lastError: window.__livegate.lastError,
	  dest: window.__livegate.destinations.nginx.state})`, &st); err != nil {
		t.Fatal(err)
	}
	if st.State != "live" || st.Session != session || st.Reconnects != 1 || st.LastError != nil || st.Dest != "live" {
		t.Errorf("after the resume the page shows %+v; want live, session %s, one reconnect, no error", st, session)
	}
	if _, err := b.Eval(`window.__livegate.stop()`); err != nil {
		t.Fatal(err)
	}
	if err := b.WaitFor(`document.body.dataset.state === 'stopped'`, 15*time.Second); err != nil {
		t.Fatal(err)
	}
	// livegate kept its connection to nginx: one resume, no reconnect.
	if got := lg.Metric("livegate_session_resumes_total"); got != "1" {
		t.Errorf("livegate_session_resumes_total %q, want 1", got)
	}
	if got := lg.Metric(`livegate_destination_reconnects_total{destination="nginx"}`); got != "" && got != "0" {
		t.Errorf("livegate reconnected to nginx (%s times): the destination saw a new broadcast", got)
	}

	nginx.Stop()
	rec := nginx.RecordPath("resume")
	pr := probe(t, rec)
	if pr.Video() == nil || pr.Audio() == nil || pr.Format.Duration < 9 {
		t.Fatalf("nginx recorded %+v; want video and audio over 10 s in one stream", pr)
	}
	for _, kind := range []string{"v", "a"} {
		ps := packetList(t, rec, kind)
		for i := 1; i < len(ps); i++ {
			if ps[i].DTS < ps[i-1].DTS {
				t.Errorf("%s timestamps go back from %.3f to %.3f", kind, ps[i-1].DTS, ps[i].DTS)
				break
			}
		}
		gap, at := largestGap(ps)
		t.Logf("%s: %d packets over %.1f s, largest gap %.0f ms at %.1f s", kind, len(ps), pr.Format.Duration, gap*1000, at)
		if gap > back.Seconds()+1.5 {
			t.Errorf("%s: a gap of %.0f ms at %.1f s; the connection was back after %v", kind, gap*1000, at, back.Round(time.Millisecond))
		}
	}
	t.Logf("%s: connection cut; the page was live again %v later, in the same session", ingest, back.Round(time.Millisecond))
}

// statsSample is what the congestion test reads from the page every 250 ms.
type statsSample struct {
	Now       float64 `json:"now"` // Date.now()
	BitrateIn float64 `json:"in"`
	QueuedMS  float64 `json:"queued_ms"`
	Queued    float64 `json:"queued"`
	Dropped   float64 `json:"dropped"`
	Buffered  float64 `json:"buffered"`
	Target    float64 `json:"target"`
	Restarts  float64 `json:"restarts"`
}

const sampleExpr = `(() => { const l = window.__livegate, s = l.lastStats || {}, d = (s.destinations || [])[0] || {};
  return {now: Date.now(), in: s.bitrate_in || 0, queued_ms: d.queued_ms || 0, queued: d.queued_bytes || 0,
    dropped: d.dropped || 0, buffered: l.bufferedAmount || 0, target: l.videoBitrate || 0, restarts: l.restarts || 0}; })()`

// TestChromiumAdaptsToASlowLink: the link from livegate to nginx-rtmp is
// cut to half the stream's rate mid-broadcast. livegate's target falls,
// the browser's encoder follows (WebCodecs live; MediaRecorder by
// restarting), the backlog drains, the stream at nginx has no gap over a
// second, and the target rises again when the link recovers.
func TestChromiumAdaptsToASlowLink(t *testing.T) {
	for _, ingest := range []string{"webcodecs", "mediarecorder"} {
		t.Run(ingest, func(t *testing.T) { adaptToSlowLink(t, ingest) })
	}
}

func adaptToSlowLink(t *testing.T, ingest string) {
	nginx := startNginx(t)
	link := testutil.StartThrottle(t, strings.TrimPrefix(strings.TrimSuffix(nginx.URL(""), "/live/"), "rtmp://"), 1<<30)
	lg := startLivegate(t, fmt.Sprintf("destinations:\n  slow:\n    url: rtmp://%s/live/slow\n", link.Addr))
	b := startChromium(t)
	screenshotOnFailure(t, "studio", b)
	if err := b.Navigate(lg.URL("/?destination=slow&autostart=1&ingest=" + ingest)); err != nil {
		t.Fatal(err)
	}
	if err := b.WaitFor(`window.__livegate.destinations?.slow?.state === 'live' && window.__livegate.lastStats?.uptime_ms > 5000`, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	var samples []statsSample
	sample := func() statsSample {
		var s statsSample
		if err := evalInto(b, sampleExpr, &s); err != nil {
			t.Fatal(err)
		}
		samples = append(samples, s)
		return s
	}
	// What the browser sends on a free link: the mean of three seconds.
	var full float64
	for i := range 3 {
		if i > 0 {
			if err := b.WaitFor(fmt.Sprintf(`Date.now() > %f`, samples[len(samples)-1].Now+1000), 5*time.Second); err != nil {
				t.Fatal(err)
			}
		}
		full += sample().BitrateIn / 3
	}
	startTarget := samples[len(samples)-1].Target

	link.SetRate(int64(full / 16)) // half the stream's bits, in bytes a second
	halved := time.Now()
	var reacted, settled time.Duration
	var maxQueued, maxQueuedMS, maxBuffered, lowest float64
	lowest = startTarget
	calm := 0
	for time.Since(halved) < 30*time.Second && settled == 0 {
		time.Sleep(250 * time.Millisecond)
		s := sample()
		maxQueued, maxQueuedMS, maxBuffered = max(maxQueued, s.Queued), max(maxQueuedMS, s.QueuedMS), max(maxBuffered, s.Buffered)
		lowest = min(lowest, s.Target)
		if reacted == 0 && s.Target < startTarget*0.75 && s.Target < full*0.75 {
			reacted = time.Since(halved)
		}
		// Settled: the backlog has drained and the browser sends what the
		// link carries, for a second.
		if reacted != 0 && s.QueuedMS < 500 && s.BitrateIn < full*0.6 {
			if calm++; calm == 4 {
				settled = time.Since(halved) - time.Second
			}
		} else {
			calm = 0
		}
	}
	if reacted == 0 {
		t.Fatalf("the browser's target stayed at %.0f kbit/s 30 s after the link fell to %.0f kbit/s", lowest/1000, full/2000)
	}
	if settled == 0 {
		t.Errorf("the backlog did not drain within 30 s (largest %0.f ms queued)", maxQueuedMS)
	}
	link.SetRate(1 << 30)
	recovered := time.Now()
	rose := `window.__livegate.videoBitrate > ` + fmt.Sprint(lowest*1.05)
	if err := b.WaitFor(rose, 25*time.Second); err != nil {
		t.Errorf("the bitrate did not rise after the link recovered: %v", err)
	}
	risen := time.Since(recovered)
	last := sample()
	if _, err := b.Eval(`window.__livegate.stop()`); err != nil {
		t.Fatal(err)
	}
	if err := b.WaitFor(`document.body.dataset.state === 'stopped'`, 15*time.Second); err != nil {
		t.Fatal(err)
	}
	if last.Dropped != 0 {
		t.Errorf("livegate dropped %.0f packets for the slow destination; the target should have kept it from it", last.Dropped)
	}
	// Bounded: never more than 8 s of media waiting, nor 2 MiB in the
	// browser's socket.
	if maxQueuedMS > 8000 || maxBuffered > 2<<20 {
		t.Errorf("queues grew to %.0f ms (%.0f kB) at livegate and %.0f kB in the browser", maxQueuedMS, maxQueued/1000, maxBuffered/1000)
	}
	if ingest == "mediarecorder" && last.Restarts < 1 {
		t.Errorf("the MediaRecorder client never restarted its recorder (restarts %.0f)", last.Restarts)
	}

	nginx.Stop()
	rec := nginx.RecordPath("slow")
	v := packetList(t, rec, "v")
	gap, at := largestGap(v)
	if len(v) < 300 || gap > 1.0 {
		t.Errorf("nginx got %d video packets, the largest gap %.0f ms at %.1f s; want a stream with no gap over 1 s", len(v), gap*1000, at)
	}
	if a := packetList(t, rec, "a"); len(a) < 300 {
		t.Errorf("nginx got %d audio packets", len(a))
	}
	t.Logf("%s: %.0f kbit/s on a free link; link halved: target below 75%% after %v, backlog drained after %v (largest %0.f ms, %.0f kB; browser buffer %.0f kB), lowest target %.0f kbit/s; link back: target rose after %v; largest video gap at nginx %.0f ms",
		ingest, full/1000, reacted.Round(time.Millisecond), settled.Round(time.Millisecond), maxQueuedMS, maxQueued/1000, maxBuffered/1000,
		lowest/1000, risen.Round(time.Millisecond), gap*1000)
}
