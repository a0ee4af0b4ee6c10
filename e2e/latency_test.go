package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/livegate/livegate/internal/media"
	"github.com/livegate/livegate/internal/receiver"
)

// Glass-to-RTMP latency: how long after a picture is drawn in the browser
// its frame reaches an RTMP server. The page draws the time (Date.now(), in
// ms) as a barcode into every frame of a canvas it publishes with
// client.js; an in-process RTMP receiver notes when each video packet
// arrives (time.Now(): the same clock, on one machine); ffmpeg decodes the
// packets afterwards and the barcode of frame i is subtracted from the
// arrival of packet i.

const (
	latencyStreamKey = "lat"
	// The barcode: the low barcodeBits bits of the ms clock (17 minutes
	// before it wraps), most significant first, as blocks barcodeBlockW
	// wide across the top of a 1280×720 picture; below it the same blocks
	// inverted, so that a frame whose two rows are not exact opposites is
	// known to be misread rather than taken for another time.
	barcodeBits   = 20
	barcodeBlockW = 64
	barcodeBlockH = 96
	// A decoded block is black below barcodeLow and white above
	// barcodeHigh (0-255); in between the frame is unreadable.
	barcodeLow  = 96
	barcodeHigh = 160
	// A reading further than this from the arrival cannot be a latency:
	// it is a decode error (and is counted, not measured).
	latencyPlausible = 10 * time.Second
	// latencyWarmup is left out at the start of what the watch gets: the
	// encoders are still settling, and start-up is measured elsewhere
	// (Go live → destination live). It is reported apart.
	latencyWarmup = 2 * time.Second
)

// latencyPage builds the canvas, draws the barcode every 33 ms and starts a
// publication of it (and of a quiet tone) with client.js. Its arguments:
// barcodeBits, barcodeBlockW, barcodeBlockH, the destination, and the
// ingest as a JavaScript string.
//
// A 33 ms timer rather than requestAnimationFrame: rAF runs at the
// display's rate (about 60/s in headless Chromium here, which the report
// shows) and not at all in a hidden tab, while the timer draws at the
// capture rate whatever the page's rendering.
const latencyPage = `(async (ingest) => {
  const W = 1280, H = 720, BITS = %d, BW = %d, BH = %d;
  const canvas = document.createElement('canvas');
  canvas.width = W;
  canvas.height = H;
  const g = canvas.getContext('2d', {alpha: false});
  const lat = window.__lat = {drawn: 0, maxGap: 0, last: 0, raf: 0, t0: performance.now()};
  const draw = () => {
    const now = Date.now();
    const t = performance.now();
    if (lat.last) lat.maxGap = Math.max(lat.maxGap, t - lat.last);
    lat.last = t;
    const v = now & ((1 << BITS) - 1);
    g.fillStyle = '#808080';
    g.fillRect(0, 0, W, H);
    for (let i = 0; i < BITS; i++) {
      const bit = (v >> (BITS - 1 - i)) & 1;
      g.fillStyle = bit ? '#fff' : '#000';
      g.fillRect(i * BW, 0, BW, BH);
      g.fillStyle = bit ? '#000' : '#fff';
      g.fillRect(i * BW, BH, BW, BH);
    }
    // Something that moves and changes colour, so the encoder has work.
    const n = lat.drawn;
    g.fillStyle = 'hsl(' + (n * 7) %% 360 + ' 80%% 50%%)';
    g.fillRect((n * 12) %% (W - 200), 260 + (n * 5) %% 200, 200, 200);
    g.fillStyle = '#fff';
    g.font = '64px sans-serif';
    g.fillText(String(now), 40, 680);
    lat.drawn++;
  };
  draw();
  lat.timer = setInterval(draw, 33);
  const countRAF = () => { lat.raf++; lat.rafID = requestAnimationFrame(countRAF); };
  lat.rafID = requestAnimationFrame(countRAF);

  // Audio as a real broadcast has it (MediaRecorder muxes it with the video).
  const ac = new AudioContext();
  const osc = ac.createOscillator();
  osc.frequency.value = 440;
  const gain = ac.createGain();
  gain.gain.value = 0.05;
  const dest = ac.createMediaStreamDestination();
  osc.connect(gain).connect(dest);
  osc.start();
  await ac.resume();

  const video = canvas.captureStream(30).getVideoTracks()[0];
  const stream = new MediaStream([video, ...dest.stream.getAudioTracks()]);
  lat.stop = () => {
    clearInterval(lat.timer);
    cancelAnimationFrame(lat.rafID);
    stream.getTracks().forEach((t) => t.stop());
    return ac.close();
  };
  // When media leaves the page (ms since the epoch, like Date.now()): the
  // browser's share ends there. WebCodecs: video frames only (type 3);
  // MediaRecorder: every chunk.
  lat.sends = [];
  const send = WebSocket.prototype.send;
  WebSocket.prototype.send = function (data) {
    if ((data instanceof ArrayBuffer || ArrayBuffer.isView(data)) && data.byteLength > 0) {
      const first = new Uint8Array(data.buffer || data, data.byteOffset || 0, 1)[0];
      if (ingest !== 'webcodecs' || first === 3) lat.sends.push(performance.timeOrigin + performance.now());
    }
    return send.call(this, data);
  };
  const m = await import('/client.js');
  const pub = window.__pub = m.publish(stream, {destination: %[4]q, ingest});
  pub.addEventListener('error', (e) => console.error('latency: publish error ' + JSON.stringify(e.detail)));
  return {visibility: document.visibilityState, settings: video.getSettings()};
})(%[5]s)`

// latencyStop reads what the page measured and ends the publication (it
// resolves once the server has closed the socket), then the drawing.
const latencyStop = `(async () => {
  const lat = window.__lat, pub = window.__pub;
  const seconds = (performance.now() - lat.t0) / 1000;
  const s = {drawn: lat.drawn, seconds, maxGapMs: lat.maxGap, rafPerSecond: lat.raf / seconds,
    visibility: document.visibilityState, ingest: pub.ingest, mimeType: pub.mimeType,
    sends: lat.sends, framesEncoded: pub.framesEncoded, framesDropped: pub.framesDropped, encodeDelayMs: pub.encodeDelay,
    state: pub.state, error: pub.error};
  await pub.stop();
  await lat.stop();
  s.endState = pub.state;
  return s;
})()`

// latencyPageStats is what latencyStop returns.
type latencyPageStats struct {
	Drawn         int
	Seconds       float64
	MaxGapMs      float64
	RAFPerSecond  float64
	Visibility    string
	Ingest        string
	MimeType      string
	FramesEncoded int
	FramesDropped int
	EncodeDelayMs *float64 // WebCodecs only: the client's median read-to-encoded time
	// Sends are when the page handed media to its WebSocket (ms since
	// the epoch): WebCodecs video frames, MediaRecorder chunks.
	Sends    []float64
	State    string
	EndState string
	Error    any
}

// videoArrival is one H.264 packet as the receiver handed it over.
type videoArrival struct {
	at    time.Time
	track *media.Track
	key   bool
	au    [][]byte
}

// arrivalCollector reads a receiver watch as fast as packets come and
// notes when each video packet arrived.
type arrivalCollector struct {
	done     chan struct{}
	arrivals []videoArrival // only read after done is closed
	dropped  uint64
	err      error // why the watch ended
}

func collectArrivals(ctx context.Context, r *receiver.Receiver, path string, w *receiver.Watcher) *arrivalCollector {
	c := &arrivalCollector{done: make(chan struct{})}
	go func() {
		defer close(c.done)
		for {
			for p := range w.C {
				if p.Track.Codec == media.CodecH264 {
					c.arrivals = append(c.arrivals, videoArrival{at: time.Now(), track: p.Track, key: p.Key, au: p.AU})
				}
			}
			c.dropped += w.Dropped()
			c.err = w.Err()
			if !errors.Is(c.err, receiver.ErrFormatChanged) {
				return
			}
			// New parameter sets: a new watch goes on from the next key
			// frame (each key frame is written with its own SPS and PPS).
			nw, err := r.Watch(ctx, path)
			if err != nil {
				c.err = err
				return
			}
			w = nw
		}
	}()
	return c
}

// glassRun is the result of one measured broadcast.
type glassRun struct {
	Ingest    string
	Latencies []float64 // ms, one per frame measured, in arrival order
	// Server is, for each of Latencies, the time from the page's last
	// send before the arrival to the arrival (ms): livegate's share and
	// the loopback's. Nil when the page reported no sends.
	Server     []float64
	Packets    int       // video packets that arrived
	Decoded    int       // frames ffmpeg decoded from them (must be equal)
	Warmup     []float64 // ms, frames of the first latencyWarmup, left out
	Unreadable int       // frames whose barcode did not read
	Outliers   int       // read, but further than latencyPlausible from the arrival
	Backwards  int       // frames drawn before the frame before them (should be 0)
	Repeats    int       // frames with the same barcode as the one before
	Dropped    uint64    // packets the watch lost (it could not keep up)
	Page       latencyPageStats
}

// percentile is the nearest-rank percentile p (0-100) of sorted values.
func percentile(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return math.NaN()
	}
	i := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// summary is p50, p95 and max of the latencies, in ms.
func (g glassRun) summary() (p50, p95, maxMs float64) {
	s := slices.Sorted(slices.Values(g.Latencies))
	return percentile(s, 50), percentile(s, 95), percentile(s, 100)
}

func (g glassRun) String() string {
	p50, p95, maxMs := g.summary()
	warm := slices.Sorted(slices.Values(g.Warmup))
	s := fmt.Sprintf("glass-to-RTMP %s: p50 %.1f ms, p95 %.1f ms, max %.1f ms over %d frames "+
		"(%d packets, %d decoded, %d of the warm-up left out (p50 %.1f ms, max %.1f ms), %d unreadable, %d decode errors, %d backwards, %d repeats, %d dropped by the watch); "+
		"page: %d frames drawn in %.1f s (%.1f/s, largest gap %.0f ms, rAF %.1f/s, %s), %s",
		g.Ingest, p50, p95, maxMs, len(g.Latencies),
		g.Packets, g.Decoded, len(warm), percentile(warm, 50), percentile(warm, 100), g.Unreadable, g.Outliers, g.Backwards, g.Repeats, g.Dropped,
		g.Page.Drawn, g.Page.Seconds, float64(g.Page.Drawn)/g.Page.Seconds, g.Page.MaxGapMs, g.Page.RAFPerSecond, g.Page.Visibility,
		g.Page.MimeType)
	if len(g.Server) > 0 {
		browser := make([]float64, len(g.Server))
		for i, sv := range g.Server {
			browser[i] = g.Latencies[i] - sv
		}
		server := slices.Sorted(slices.Values(g.Server))
		slices.Sort(browser)
		s += fmt.Sprintf("; drawn → sent by the page p50 %.1f ms, p95 %.1f ms; sent → arrived (livegate) p50 %.1f ms, p95 %.1f ms",
			percentile(browser, 50), percentile(browser, 95), percentile(server, 50), percentile(server, 95))
	}
	if g.Page.Ingest == "webcodecs" {
		enc := "?"
		if g.Page.EncodeDelayMs != nil {
			enc = strconv.FormatFloat(*g.Page.EncodeDelayMs, 'f', 1, 64)
		}
		s += fmt.Sprintf(", %d encoded, %d dropped by the client, encoder delay %s ms", g.Page.FramesEncoded, g.Page.FramesDropped, enc)
	}
	return s
}

// measureGlassToRTMP broadcasts the barcode canvas from a new headless
// Chromium through a new livegate to an in-process RTMP receiver for dur,
// and measures every frame that arrived.
func measureGlassToRTMP(t testing.TB, ingest string, dur time.Duration) glassRun {
	t.Helper()
	ffmpeg := requireBinary(t, "ffmpeg", "ffmpeg")

	var rlog syncBuffer
	logOnFailure(t, "receiver log", rlog.String)
	r := &receiver.Receiver{Listen: "127.0.0.1:0", Log: slog.New(slog.NewTextHandler(&rlog, nil))}
	if err := r.Initialize(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	// The watch ends with the stream, or here at the latest (goroutines
	// must not outlive the test).
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)

	lg := startLivegate(t, fmt.Sprintf("receiver:\n  enabled: false\ndestinations:\n  %s:\n    url: %s\n",
		latencyStreamKey, r.URL(latencyStreamKey)))
	br := startChromium(t)
	// Any page of livegate's origin will do for client.js and its socket;
	// /healthz rather than the studio, which would open the fake camera
	// and poll the server for nothing.
	if err := br.Navigate(lg.URL("/healthz")); err != nil {
		t.Fatal(err)
	}
	var started struct {
		Visibility string
		Settings   map[string]any
	}
	if err := evalInto(br, fmt.Sprintf(latencyPage, barcodeBits, barcodeBlockW, barcodeBlockH, latencyStreamKey, jsString(ingest)), &started); err != nil {
		t.Fatal(err)
	}
	t.Logf("page: %s, canvas track %v", started.Visibility, started.Settings)
	if err := br.WaitFor(`window.__pub.state === 'live'`, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	var got string
	if err := evalInto(br, `window.__pub.ingest`, &got); err != nil || got != ingest {
		t.Fatalf("the client chose ingest %q (%v), want %s", got, err, ingest)
	}

	// The stream is on the receiver once livegate has published its
	// header; the watch starts at the next key frame.
	path := "live/" + latencyStreamKey
	var w *receiver.Watcher
	if err := poll(15*time.Second, 10*time.Millisecond, func() (bool, error) {
		var err error
		w, err = r.Watch(ctx, path)
		if errors.Is(err, receiver.ErrNoStream) {
			return false, nil
		}
		return err == nil, err
	}); err != nil {
		t.Fatalf("watch %s: %v (receiver streams: %+v)", path, err, r.Streams())
	}
	col := collectArrivals(ctx, r, path, w)
	t.Cleanup(func() {
		cancel()
		<-col.done
	})

	// The broadcast itself: the one deliberate wait.
	select {
	case <-time.After(dur):
	case <-col.done:
		t.Fatalf("the stream ended after %d packets, before %v: %v", len(col.arrivals), dur, col.err)
	}
	var page latencyPageStats
	if err := evalInto(br, latencyStop, &page); err != nil {
		t.Fatal(err)
	}
	if page.Error != nil || page.State != "live" || page.EndState != "ended" {
		t.Fatalf("publication: state %q then %q, error %v", page.State, page.EndState, page.Error)
	}
	select {
	case <-col.done:
	case <-time.After(15 * time.Second):
		t.Fatal("the receiver's stream did not end within 15 s of the publication's end")
	}
	if !errors.Is(col.err, receiver.ErrStreamEnded) {
		t.Fatalf("the watch ended with %v, want the end of the stream", col.err)
	}
	br.Close()
	lg.Stop()

	run := glassRun{Ingest: ingest, Packets: len(col.arrivals), Dropped: col.dropped, Page: page}
	if run.Packets == 0 {
		t.Fatal("no video packet arrived")
	}
	file := filepath.Join(t.TempDir(), "lat.h264")
	if err := os.WriteFile(file, annexB(col.arrivals), 0o644); err != nil {
		t.Fatal(err)
	}
	frames := decodeBarcodes(t, ffmpeg, file)
	run.Decoded = len(frames)
	// The file starts on a key frame and the encoders make no B-frames,
	// so decoded frame i is packet i; anything else would pair pictures
	// with the wrong arrivals.
	if run.Decoded != run.Packets {
		t.Fatalf("ffmpeg decoded %d frames from %d packets: cannot pair them", run.Decoded, run.Packets)
	}

	first := col.arrivals[0].at
	var prevValue uint32
	var prevDrawn int64
	havePrev := false
	for i, px := range frames {
		at := col.arrivals[i].at
		v, ok := readBarcode(px)
		if !ok {
			run.Unreadable++
			continue
		}
		// Unwrap the 20-bit ms value to the one nearest the arrival.
		const mod = 1 << barcodeBits
		arrivedMs := at.UnixMilli()
		d := (arrivedMs - int64(v)) % mod
		if d < 0 {
			d += mod
		}
		if d >= mod/2 {
			d -= mod
		}
		drawn := arrivedMs - d
		lat := time.Duration(at.UnixMicro()-drawn*1000) * time.Microsecond
		if lat < -latencyPlausible || lat > latencyPlausible {
			run.Outliers++
			continue
		}
		if havePrev {
			switch {
			case v == prevValue:
				run.Repeats++
			case drawn < prevDrawn:
				run.Backwards++
			}
		}
		prevValue, prevDrawn, havePrev = v, drawn, true
		if at.Sub(first) < latencyWarmup {
			run.Warmup = append(run.Warmup, float64(lat.Microseconds())/1000)
			continue
		}
		run.Latencies = append(run.Latencies, float64(lat.Microseconds())/1000)
		if len(page.Sends) > 0 {
			// The frame left the page with the last send before it
			// arrived (livegate holds a frame far less than the 33 ms
			// between WebCodecs frames or the 250 ms between chunks).
			arrived := float64(at.UnixMicro()) / 1000
			if i, _ := slices.BinarySearch(page.Sends, arrived); i > 0 {
				run.Server = append(run.Server, arrived-page.Sends[i-1])
			} else {
				run.Server = nil
				page.Sends = nil // an arrival before any send: leave the split out
			}
		}
	}
	return run
}

// annexB writes the access units as an H.264 Annex B stream: an access unit
// delimiter before each (so that ffmpeg's parser cannot merge or split
// pictures), and the SPS and PPS of its track before each key frame.
func annexB(aus []videoArrival) []byte {
	var b bytes.Buffer
	nal := func(n []byte) {
		b.Write([]byte{0, 0, 0, 1})
		b.Write(n)
	}
	for _, a := range aus {
		au := a.au
		if len(au) > 0 && len(au[0]) > 0 && au[0][0]&0x1f == 9 {
			nal(au[0])
			au = au[1:]
		} else {
			nal([]byte{0x09, 0xf0}) // AUD: any picture type
		}
		if a.key {
			nal(a.track.SPS)
			nal(a.track.PPS)
		}
		for _, n := range au {
			if len(n) > 0 {
				nal(n)
			}
		}
	}
	return b.Bytes()
}

// decodeBarcodes decodes an Annex B file and returns, per frame, the two
// barcode rows averaged down to one gray value per block (2×barcodeBits
// bytes: the row, then the inverted row).
func decodeBarcodes(t testing.TB, ffmpeg, file string) [][]byte {
	t.Helper()
	// Crop relative to the picture's size, in case it was scaled; area
	// averaging makes each output pixel the mean of one block; passthrough
	// keeps ffmpeg from dropping or duplicating frames to fit a rate.
	filter := fmt.Sprintf("crop=iw:ih*%d/720:0:0,scale=%d:2:flags=area,format=gray", 2*barcodeBlockH, barcodeBits)
	out, stderr, err := runTool(5*time.Minute, ffmpeg, "-nostdin", "-v", "error", "-f", "h264", "-i", file,
		"-vf", filter, "-fps_mode", "passthrough", "-f", "rawvideo", "-pix_fmt", "gray", "-")
	if err != nil {
		t.Fatalf("ffmpeg decode of %s: %v\n%s", file, err, stderr)
	}
	if s := strings.TrimSpace(string(stderr)); s != "" {
		t.Logf("ffmpeg decode of %s said:\n%s", file, tail(s, 4096))
	}
	size := 2 * barcodeBits
	if len(out)%size != 0 {
		t.Fatalf("ffmpeg wrote %d bytes, not a whole number of %d-byte frames", len(out), size)
	}
	var frames [][]byte
	for p := out; len(p) > 0; p = p[size:] {
		frames = append(frames, p[:size])
	}
	return frames
}

// readBarcode reads one frame's blocks: every block must be clearly black or
// white, and the second row the exact inverse of the first.
func readBarcode(px []byte) (uint32, bool) {
	var v uint32
	for i := range barcodeBits {
		top, bottom := px[i], px[barcodeBits+i]
		switch {
		case top > barcodeHigh && bottom < barcodeLow:
			v = v<<1 | 1
		case top < barcodeLow && bottom > barcodeHigh:
			v <<= 1
		default:
			return 0, false
		}
	}
	return v, true
}

// BenchmarkGlassToRTMP measures the glass-to-RTMP latency of each way in:
// from the moment a picture is drawn in headless Chromium to the moment its
// frame arrives at an RTMP server, through livegate, on one machine.
//
//	go test -run XXX -bench GlassToRTMP -benchtime 1x -timeout 10m -v ./e2e/
//
// LIVEGATE_BENCH_SECONDS sets the broadcast length (30 s by default).
func BenchmarkGlassToRTMP(b *testing.B) {
	dur := 30 * time.Second
	if s, err := strconv.Atoi(os.Getenv("LIVEGATE_BENCH_SECONDS")); err == nil && s > 0 {
		dur = time.Duration(s) * time.Second
	}
	for _, ingest := range []string{"webcodecs", "mediarecorder"} {
		b.Run(ingest, func(b *testing.B) {
			all := glassRun{Ingest: ingest}
			for range b.N {
				run := measureGlassToRTMP(b, ingest, dur)
				b.Log(run)
				all.Latencies = append(all.Latencies, run.Latencies...)
			}
			if len(all.Latencies) == 0 {
				b.Fatal("no frame measured")
			}
			p50, p95, maxMs := all.summary()
			b.ReportMetric(p50, "p50-ms")
			b.ReportMetric(p95, "p95-ms")
			b.ReportMetric(maxMs, "max-ms")
			b.ReportMetric(float64(len(all.Latencies))/float64(b.N), "frames")
		})
	}
}

// TestGlassToRTMPSmoke proves that the latency measurement works: a short
// WebCodecs broadcast whose barcodes read back consistently and give a
// plausible latency.
func TestGlassToRTMPSmoke(t *testing.T) {
	run := measureGlassToRTMP(t, "webcodecs", 6*time.Second)
	t.Log(run)
	p50, _, _ := run.summary()
	if n := len(run.Latencies); n < 60 {
		t.Errorf("%d frames measured, want >= 60 (%d unreadable, %d decode errors)", n, run.Unreadable, run.Outliers)
	}
	// A barcode that reads but means nothing would go backwards, or give
	// latencies that are not plausible.
	if bad := run.Unreadable + run.Outliers + run.Backwards; bad*20 > run.Decoded {
		t.Errorf("%d of %d frames unreadable, implausible or going backwards, want < 5%%", bad, run.Decoded)
	}
	if negative := slices.IndexFunc(run.Latencies, func(l float64) bool { return l < 0 }); negative >= 0 {
		t.Errorf("frame %d arrived %.1f ms before it was drawn: frames and arrivals are mispaired", negative, -run.Latencies[negative])
	}
	if !(p50 > 0 && p50 < 3000) {
		t.Errorf("p50 = %.1f ms, want 0 < p50 < 3000", p50)
	}
}
