package e2e

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
	"github.com/chromedp/chromedp"

	"github.com/livegate/livegate/internal/media"
	"github.com/livegate/livegate/internal/receiver"
	"github.com/livegate/livegate/internal/testutil"
)

// A/V sync: how far the sound at an RTMP server is from the picture it
// belongs with, whether that changes over a broadcast, and whether it
// survives a reconnect of the destination.
//
// The source flashes the picture once a second (a white frame, then two
// that fade) and beeps (1 kHz, 30 ms) at the same instants. Two sources:
//
//   - file: Chromium's fake camera and microphone play a y4m video and a
//     WAV made here with ffmpeg (--use-file-for-fake-video-capture and
//     --use-file-for-fake-audio-capture), through the studio page.
//   - canvas: a page draws the flashes on a canvas (captureStream(0),
//     requestFrame at each drawing) and schedules the beeps in WebAudio for
//     the same instants, then publishes with client.js.
//
// Neither source is exactly in sync by itself (Chromium opens the two files
// at moments of its own; a canvas and WebAudio have their own delays), so
// the page also measures the offset at the source, on clones of the
// published tracks (MediaStreamTrackProcessor), and each instant at the
// receiver is matched with the same instant at the source: the difference
// is what the broadcast (the browser's encoders, client.js, livegate, the
// AAC encoder) added.
//
// livegate publishes to an in-process RTMP receiver through a TCP proxy the
// test can cut (the reconnect). Afterwards the video packets are decoded to
// one mean brightness per frame, the AAC packets to PCM; a flash is a frame
// much brighter than the one before it, a beep the first millisecond whose
// RMS crosses a threshold; each flash pairs with the beep nearest to it,
// and offset = beep − flash (positive: the sound comes late).

const (
	avWidth, avHeight = 640, 360
	avFPS             = 30
	// avLoopSeconds is the files' length: Chromium plays them in a loop.
	avLoopSeconds = 2
	// avFlashFrame is the frame of each second where the flash begins
	// (0.5 s): white, then two frames that fade (avFlashLevels), so that
	// a flash whose first frame was lost on the way is still placed right
	// (its first frame that arrived says which one it is).
	avFlashFrame = 15
	// avDark is the gray of the other frames (0-255).
	avDark      = 0x18
	avBeepMs    = 30
	avBeepHz    = 1000
	avRate      = 48000
	avStreamKey = "avsync"
	// avPeriod is the time between flashes: a beep further than half of
	// it from every flash cannot be told apart from the next one's.
	avPeriod = time.Second
	// avMediaVersion names the cached files; change it with the recipe.
	avMediaVersion = 3
)

// avFlashLevels are the flash's frames, as a share of the way from the
// dark frames to white.
var avFlashLevels = []float64{1, 0.67, 0.37}

// avFlashIndex says which frame of a flash a brightness is, as a share q of
// the way from dark to white: -1 when it is no flash frame.
func avFlashIndex(q float64) int {
	switch {
	case q > 0.83:
		return 0
	case q > 0.52:
		return 1
	case q > 0.2:
		return 2
	}
	return -1
}

// avVideoSource is ffmpeg's lavfi graph of the test picture: dark, with a
// flash (a white frame, then two that fade) at frame avFlashFrame of every
// second, and a frame counter when withCounter. It runs for ever.
func avVideoSource(withCounter bool) string {
	g := fmt.Sprintf("color=c=0x%02x%02x%02x:s=%dx%d:r=%d", avDark, avDark, avDark, avWidth, avHeight, avFPS)
	for i, q := range avFlashLevels {
		v := avDark + int(math.Round(q*float64(255-avDark)))
		g += fmt.Sprintf(",drawbox=x=0:y=0:w=iw:h=ih:color=0x%02x%02x%02x:t=fill:enable='eq(mod(n\\,%d)\\,%d)'",
			v, v, v, avFPS, avFlashFrame+i)
	}
	if withCounter {
		// It helps a person looking at a recording; the analysis does not
		// read it.
		font := ""
		if _, err := os.Stat("/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf"); err == nil {
			font = "fontfile=/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf:"
		}
		g += ",drawtext=" + font + "text='%{frame_num}':x=20:y=20:fontsize=40:fontcolor=0x808080"
	}
	return g
}

// avAudioSource is ffmpeg's lavfi graph of the test sound: silent, with a
// 1 kHz beep of avBeepMs at the flashes' instants. It runs for ever.
func avAudioSource() string {
	at := float64(avFlashFrame) / avFPS
	return fmt.Sprintf("aevalsrc='0.5*sin(2*PI*%d*t)*gte(mod(t\\,1)\\,%g)*lt(mod(t\\,1)\\,%g)':s=%d",
		avBeepHz, at, at+avBeepMs/1000.0, avRate)
}

// avMedia returns the y4m video and the WAV that Chromium's fake devices
// play in a loop (avVideoSource and avAudioSource). They are made once
// with ffmpeg and kept in the user cache directory (the video is raw:
// 10 MB a second).
//
// Chromium's file-backed camera spends one frame period more at each loop
// of the y4m than the file lasts (Chromium 156, a 60-frame file: flashes
// 1000 and 1033 ms apart, in turn), while its microphone loops the WAV
// exactly, in 10 ms buffers (a partial last buffer is padded). So the
// video has one frame less than avLoopSeconds (its flashes at 0.5 and
// 1.5 s are kept), both loops then last avLoopSeconds, and the beeps stay
// with the flashes; else they would drift apart by a second a minute.
func avMedia(t testing.TB) (video, audio string) {
	t.Helper()
	ffmpeg := requireBinary(t, "ffmpeg", "ffmpeg")
	dir, err := os.UserCacheDir()
	if err != nil {
		dir = os.TempDir()
	}
	dir = filepath.Join(dir, "livegate")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	base := filepath.Join(dir, fmt.Sprintf("avsync-v%d-%dx%d-%dfps-%ds", avMediaVersion, avWidth, avHeight, avFPS, avLoopSeconds))
	video, audio = base+".y4m", base+".wav"
	_, verr := os.Stat(video)
	_, aerr := os.Stat(audio)
	if verr == nil && aerr == nil {
		return video, audio
	}
	mk := func(out string, args ...string) {
		t.Helper()
		tmp := out + ".tmp" + strconv.Itoa(os.Getpid())
		defer os.Remove(tmp)
		full := append([]string{"-nostdin", "-v", "error", "-y"}, args...)
		if _, stderr, err := runTool(time.Minute, ffmpeg, append(full, tmp)...); err != nil {
			t.Fatalf("ffmpeg making %s: %v\n%s", filepath.Base(out), err, stderr)
		}
		// A rename, so that a test running at the same time never reads
		// half a file.
		if err := os.Rename(tmp, out); err != nil {
			t.Fatal(err)
		}
	}
	src := avVideoSource(true)
	if _, stderr, err := runTool(time.Minute, ffmpeg, "-nostdin", "-v", "error", "-f", "lavfi", "-i", src, "-frames:v", "1", "-f", "null", "-"); err != nil {
		t.Logf("ffmpeg cannot draw text here (%v: %s): the test video has no frame counter", err, strings.TrimSpace(string(stderr)))
		src = avVideoSource(false)
	}
	mk(video, "-f", "lavfi", "-i", src, "-frames:v", strconv.Itoa(avLoopSeconds*avFPS-1), "-pix_fmt", "yuv420p", "-f", "yuv4mpegpipe")
	mk(audio, "-f", "lavfi", "-i", avAudioSource(), "-t", strconv.Itoa(avLoopSeconds), "-ac", "1", "-c:a", "pcm_s16le", "-f", "wav")
	return video, audio
}

// ---- collecting what the receiver gets ----

// avSegment is what one RTMP connection carried: livegate connects again
// after a cut, and the receiver sees a new stream.
type avSegment struct {
	video   []*media.Packet
	videoAt []time.Time // arrival of each video packet
	audio   []*media.Packet
	err     error // why the last watch of it ended
}

// avCollector watches the receiver's stream for as long as its context
// lasts, and each new stream on the same path (after a reconnect) as a new
// segment.
type avCollector struct {
	done     chan struct{}
	segments []*avSegment // read only after done is closed
	count    atomic.Int32 // segments begun
	between  atomic.Bool  // the last stream ended; waiting for another
	dropped  atomic.Uint64
}

func collectAV(ctx context.Context, r *receiver.Receiver, path string) *avCollector {
	c := &avCollector{done: make(chan struct{})}
	watch := func() *receiver.Watcher {
		for {
			w, err := r.Watch(ctx, path)
			if err == nil {
				return w
			}
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
	go func() { // ends with ctx; the test waits on done
		defer close(c.done)
		for {
			w := watch()
			if w == nil {
				return
			}
			c.between.Store(false)
			seg := &avSegment{}
			c.segments = append(c.segments, seg)
			c.count.Add(1)
			for w != nil {
				for p := range w.C {
					if p.Track.Codec == media.CodecH264 {
						seg.video = append(seg.video, p)
						seg.videoAt = append(seg.videoAt, time.Now())
					} else {
						seg.audio = append(seg.audio, p)
					}
				}
				c.dropped.Add(w.Dropped())
				seg.err = w.Err()
				w = nil
				if errors.Is(seg.err, receiver.ErrFormatChanged) {
					// New parameter sets, same connection: go on from the
					// next key frame.
					w = watch()
				}
			}
			c.between.Store(true)
			if ctx.Err() != nil {
				return
			}
		}
	}()
	return c
}

// ---- decoding and detecting ----

// avVideoLuma decodes a segment's H.264 packets and returns each frame's
// mean brightness (0-255). Decoded frame i is packet i (checked).
func avVideoLuma(t testing.TB, ffmpeg, dir string, seg *avSegment) []float64 {
	t.Helper()
	aus := make([]videoArrival, len(seg.video))
	for i, p := range seg.video {
		aus[i] = videoArrival{at: seg.videoAt[i], track: p.Track, key: p.Key, au: p.AU}
	}
	file := filepath.Join(dir, "video.h264")
	if err := os.WriteFile(file, annexB(aus), 0o644); err != nil {
		t.Fatal(err)
	}
	out, stderr, err := runTool(5*time.Minute, ffmpeg, "-nostdin", "-v", "error", "-f", "h264", "-i", file,
		"-vf", "scale=8:8:flags=area,format=gray", "-fps_mode", "passthrough", "-f", "rawvideo", "-pix_fmt", "gray", "-")
	if err != nil {
		t.Fatalf("ffmpeg decode of the video: %v\n%s", err, stderr)
	}
	if len(out)%64 != 0 || len(out)/64 != len(seg.video) {
		t.Fatalf("ffmpeg decoded %d bytes (%d frames of 8×8) from %d packets: cannot pair them\n%s",
			len(out), len(out)/64, len(seg.video), stderr)
	}
	luma := make([]float64, 0, len(seg.video))
	for p := out; len(p) > 0; p = p[64:] {
		var sum int
		for _, v := range p[:64] {
			sum += int(v)
		}
		luma = append(luma, float64(sum)/64)
	}
	return luma
}

// avAudioPCM decodes a segment's AAC packets (written as ADTS) to mono
// float samples; packet i gives samples [i*1024, (i+1)*1024) (checked).
// FLV says nothing of the encoder's priming, so nothing is skipped: the
// first packet's samples are the priming, stamped 1024 samples before the
// input they precede.
func avAudioPCM(t testing.TB, ffmpeg, dir string, seg *avSegment) []float32 {
	t.Helper()
	cfg := seg.audio[0].Track.AAC
	if cfg == nil {
		t.Fatal("the audio track has no AudioSpecificConfig")
	}
	pkts := make(mpeg4audio.ADTSPackets, len(seg.audio))
	for i, p := range seg.audio {
		pkts[i] = &mpeg4audio.ADTSPacket{Type: cfg.Type, SampleRate: cfg.SampleRate, ChannelConfig: cfg.ChannelConfig, AU: p.Data}
	}
	adts, err := pkts.Marshal()
	if err != nil {
		t.Fatalf("ADTS: %v", err)
	}
	file := filepath.Join(dir, "audio.aac")
	if err := os.WriteFile(file, adts, 0o644); err != nil {
		t.Fatal(err)
	}
	out, stderr, err := runTool(5*time.Minute, ffmpeg, "-nostdin", "-v", "error", "-f", "aac", "-i", file,
		"-ac", "1", "-f", "f32le", "-")
	if err != nil {
		t.Fatalf("ffmpeg decode of the audio: %v\n%s", err, stderr)
	}
	if want := len(seg.audio) * 1024 * 4; len(out) != want {
		t.Fatalf("ffmpeg decoded %d samples from %d AAC packets, want %d: cannot place them in time\n%s",
			len(out)/4, len(seg.audio), want/4, stderr)
	}
	pcm := make([]float32, len(out)/4)
	for i := range pcm {
		pcm[i] = math.Float32frombits(binary.LittleEndian.Uint32(out[4*i:]))
	}
	return pcm
}

// avFlash is a flash found in the video, on the stream's clock.
type avFlash struct {
	PTS time.Duration // when its first frame is (or would have been)
	At  time.Time     // when the first of its frames that came arrived
}

// avFlashes finds the flashes: a frame brighter than a fifth of the way
// from the dark frames to the brightest after one below it. Which frame of
// the flash it is (its level) puts the flash's start that many frame
// durations before it.
func avFlashes(seg *avSegment, luma []float64) []avFlash {
	if len(luma) < 2 {
		return nil
	}
	sorted := slices.Sorted(slices.Values(luma))
	dark, bright := sorted[len(sorted)/10], sorted[len(sorted)-1]
	if bright-dark < 64 {
		return nil // no flash at all
	}
	var out []avFlash
	prev := avFlashIndex((luma[0] - dark) / (bright - dark))
	for i := 1; i < len(luma); i++ {
		idx := avFlashIndex((luma[i] - dark) / (bright - dark))
		if idx >= 0 && prev < 0 {
			out = append(out, avFlash{PTS: seg.video[i].PTS - time.Duration(idx)*time.Second/avFPS, At: seg.videoAt[i]})
		}
		prev = idx
	}
	return out
}

// avBeeps returns when each beep begins: the start of the first 1 ms window
// whose RMS is above a fifth of the loudest window's, after at least 300 ms
// below it. Sample n of the PCM is at the PTS of packet n/1024 plus
// n%1024 samples.
func avBeeps(audio []*media.Packet, pcm []float32, rate int) []time.Duration {
	win := rate / 1000
	rms := make([]float64, len(pcm)/win)
	var loudest float64
	for i := range rms {
		var e float64
		for _, v := range pcm[i*win : (i+1)*win] {
			e += float64(v) * float64(v)
		}
		rms[i] = math.Sqrt(e / float64(win))
		loudest = max(loudest, rms[i])
	}
	if loudest < 0.01 {
		return nil // silence
	}
	thr := loudest / 5
	var out []time.Duration
	quietSince := -1 << 30
	for i, v := range rms {
		if v <= thr {
			continue
		}
		if i-quietSince >= 300 {
			n := i * win
			at := audio[n/1024].PTS + time.Duration(n%1024)*time.Second/time.Duration(rate)
			out = append(out, at)
		}
		quietSince = i
	}
	return out
}

// avPair is one flash with its beep, on the RTMP stream's clock.
type avPair struct {
	Flash  time.Duration
	At     time.Time // when the flash arrived (zero at the source)
	Offset float64   // ms: beep − flash
	Seg    int       // RTMP connection it came in
}

// pairAV pairs each flash with the beep nearest to it, if within half a
// period.
func pairAV(flashes []avFlash, beeps []time.Duration, seg int) []avPair {
	var out []avPair
	for _, f := range flashes {
		i, _ := slices.BinarySearch(beeps, f.PTS)
		best := time.Duration(math.MaxInt64)
		for _, j := range []int{i - 1, i} {
			if j >= 0 && j < len(beeps) && absDur(beeps[j]-f.PTS) < absDur(best) {
				best = beeps[j] - f.PTS
			}
		}
		if absDur(best) < avPeriod/2 {
			out = append(out, avPair{Flash: f.PTS, At: f.At, Offset: float64(best.Microseconds()) / 1000, Seg: seg})
		}
	}
	return out
}

func absDur(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

// ---- statistics ----

type avStats struct {
	N                  int
	Mean, Min, Max, SD float64 // ms
	MaxAbs             float64 // ms
	DriftPerMin        float64 // ms per minute: least-squares slope of offset against time
	Span               float64 // s between the first and the last pair
}

func avSummary(pairs []avPair) avStats {
	s := avStats{N: len(pairs), Min: math.Inf(1), Max: math.Inf(-1)}
	if s.N == 0 {
		return avStats{Mean: math.NaN(), Min: math.NaN(), Max: math.NaN(), SD: math.NaN(), MaxAbs: math.NaN(), DriftPerMin: math.NaN()}
	}
	var sx, sy, sxx, sxy float64
	for _, p := range pairs {
		x := p.Flash.Minutes()
		sx += x
		sy += p.Offset
		sxx += x * x
		sxy += x * p.Offset
		s.Min, s.Max = min(s.Min, p.Offset), max(s.Max, p.Offset)
		s.MaxAbs = max(s.MaxAbs, math.Abs(p.Offset))
	}
	n := float64(s.N)
	s.Mean = sy / n
	for _, p := range pairs {
		s.SD += (p.Offset - s.Mean) * (p.Offset - s.Mean)
	}
	s.SD = math.Sqrt(s.SD / n)
	if d := n*sxx - sx*sx; s.N >= 3 && d > 0 {
		s.DriftPerMin = (n*sxy - sx*sy) / d
	} else {
		s.DriftPerMin = math.NaN()
	}
	s.Span = (pairs[len(pairs)-1].Flash - pairs[0].Flash).Seconds()
	return s
}

func (s avStats) String() string {
	if s.N == 0 {
		return "no pairs"
	}
	return fmt.Sprintf("%d pairs over %.0f s: mean %+.1f ms, min %+.1f, max %+.1f, sd %.1f, drift %+.2f ms/min",
		s.N, s.Span, s.Mean, s.Min, s.Max, s.SD, s.DriftPerMin)
}

// ---- the page side ----

// avProbe reads clones of a stream's tracks with MediaStreamTrackProcessor
// (Chromium) and notes when each flash and each beep leaves the source, by
// the frames' and the audio's own timestamps (µs): the offset the broadcast
// starts from. A flash is placed as in avFlashes (its first frame that the
// probe read, less its index times 1/30 s), from the mean brightness of
// the middle 16×16 pixels (Y, or R+G+B for a canvas's frames) between the
// darkest and the brightest seen so far.
const avProbe = `((stream) => {
  const P = window.__avprobe = {flashes: [], beeps: [], frames: 0, chunks: 0, vLag: null, aLag: null,
    vFirstLag: null, aFirstLag: null, timeOrigin: performance.timeOrigin, errors: []};
  const clones = [];
  const read = async (track, handle) => {
    const clone = track.clone();
    clones.push(clone);
    const reader = new MediaStreamTrackProcessor({track: clone}).readable.getReader();
    for (;;) {
      let r;
      try { r = await reader.read(); } catch (e) { break; }
      if (r.done) break;
      const now = performance.now() * 1000;
      try { await handle(r.value, now); } catch (e) { if (P.errors.length < 10) P.errors.push(String(e)); }
      finally { r.value.close(); }
    }
  };
  const index = (q) => q > 0.83 ? 0 : q > 0.52 ? 1 : q > 0.2 ? 2 : -1;
  let prev = 0, dark = 255, bright = 0;
  read(stream.getVideoTracks()[0], async (f, now) => {
    P.frames++;
    if (P.vLag === null) P.vFirstLag = now - f.timestamp;
    P.vLag = P.vLag === null ? now - f.timestamp : Math.min(P.vLag, now - f.timestamp);
    const v = f.visibleRect, w = v.width, h = v.height;
    const rect = {x: (v.x + w / 2 - 8) & ~1, y: (v.y + h / 2 - 8) & ~1, width: 16, height: 16};
    const buf = new Uint8Array(f.allocationSize({rect}));
    await f.copyTo(buf, {rect});
    let y = 0;
    if (/^(RGB|BGR)/.test(f.format)) { // a canvas: 4 bytes a pixel
      for (let i = 0; i < 1024; i += 4) y += buf[i] + buf[i + 1] + buf[i + 2];
      y /= 768;
    } else { // I420, NV12...: the Y plane comes first
      for (let i = 0; i < 256; i++) y += buf[i];
      y /= 256;
    }
    dark = Math.min(dark, y);
    bright = Math.max(bright, y);
    const i = index((y - dark) / (Math.max(bright, dark + 150) - dark));
    if (i >= 0 && prev < 0) P.flashes.push(f.timestamp - i * 1e6 / 30);
    prev = i;
  });
  let quiet = 1e9;
  read(stream.getAudioTracks()[0], async (d, now) => {
    P.chunks++;
    if (P.aLag === null) P.aFirstLag = now - d.timestamp;
    P.aLag = P.aLag === null ? now - d.timestamp : Math.min(P.aLag, now - d.timestamp);
    const n = d.numberOfFrames, rate = d.sampleRate, win = Math.round(rate / 1000);
    const x = new Float32Array(n);
    d.copyTo(x, {planeIndex: 0, format: 'f32-planar'});
    for (let i = 0; i + win <= n; i += win) {
      let e = 0;
      for (let j = i; j < i + win; j++) e += x[j] * x[j];
      if (Math.sqrt(e / win) > 0.05) {
        if (quiet >= 300) P.beeps.push(d.timestamp + i / rate * 1e6);
        quiet = 0;
      } else {
        quiet++;
      }
    }
  });
  P.stop = () => clones.forEach((t) => t.stop());
  return true;
})(%s)`

// avProbeResult is what avProbe noted (µs, each track on its own clock).
type avProbeResult struct {
	Flashes    []float64
	Beeps      []float64
	Frames     int
	Chunks     int
	VLag       *float64 // smallest now − timestamp of the video frames
	ALag       *float64
	VFirstLag  *float64 // the first frame's
	AFirstLag  *float64
	TimeOrigin float64 // performance.timeOrigin: ms since the epoch
	Errors     []string
}

// avSource is one flash at the source with its beep, on the page's clock
// (performance.now(), ms).
type avSource struct {
	Page   float64
	Offset float64 // ms: beep − flash
}

// sources pairs the probe's flashes and beeps on the page's clock.
// Chromium stamps audio on the page's clock (its read delay is a few ms) but
// never video: a camera's frames on the system's monotonic clock, a
// canvas's from 0 at the track's first frame. So video is put on the page's
// clock with its smallest read delay (now − timestamp: the clocks'
// difference plus the quickest delivery, under a millisecond), and audio
// too if its delay says it is on another clock.
func (p avProbeResult) sources() []avSource {
	if p.VLag == nil || p.ALag == nil {
		return nil
	}
	onPage := func(ts []float64, lag float64) []time.Duration {
		out := make([]time.Duration, len(ts))
		for i, v := range ts {
			out[i] = time.Duration((v + lag) * 1000)
		}
		return out
	}
	var flashes []avFlash
	for _, f := range onPage(p.Flashes, *p.VLag) {
		flashes = append(flashes, avFlash{PTS: f})
	}
	alag := *p.ALag
	if math.Abs(alag) < 500_000 {
		alag = 0
	}
	beeps := onPage(p.Beeps, alag)
	slices.Sort(beeps)
	var out []avSource
	for _, pr := range pairAV(flashes, beeps, 0) {
		out = append(out, avSource{Page: float64(pr.Flash.Microseconds()) / 1000, Offset: pr.Offset})
	}
	return out
}

// matchSources finds, for each pair at the receiver, the same instant at
// the source. The stream's clock is the page's shifted by a constant
// (livegate keeps its clock across a reconnect): the shift is the one most
// (flash at the receiver, flash at the source) candidates agree on, where
// a candidate arrived less than 2 s after it left the page. It returns, per
// matched instant, what the broadcast added to the source's offset
// (receiver's − source's) and how long the flash took from the page to
// the receiver (ms).
func matchSources(pairs []avPair, src []avSource, origin float64) (added, latency []float64) {
	var shifts []float64
	for _, p := range pairs {
		at := float64(p.At.UnixMicro()) / 1000
		for _, s := range src {
			if d := at - (origin + s.Page); d >= 0 && d < 2000 {
				shifts = append(shifts, float64(p.Flash.Microseconds())/1000-s.Page)
			}
		}
	}
	if len(shifts) == 0 {
		return nil, nil
	}
	slices.Sort(shifts)
	best, bestN := 0.0, 0
	for i, v := range shifts {
		j, _ := slices.BinarySearch(shifts, v+25)
		if j-i > bestN {
			best, bestN = shifts[(i+j-1)/2], j-i
		}
	}
	for _, p := range pairs {
		want := float64(p.Flash.Microseconds())/1000 - best
		k := -1
		for i, s := range src {
			if math.Abs(s.Page-want) < 100 && (k < 0 || math.Abs(s.Page-want) < math.Abs(src[k].Page-want)) {
				k = i
			}
		}
		if k >= 0 {
			// Each offset is within half a period; so is their difference,
			// unless one of them has just wrapped round.
			d := p.Offset - src[k].Offset
			period := float64(avPeriod.Milliseconds())
			d -= period * math.Round(d/period)
			added = append(added, d)
			latency = append(latency, float64(p.At.UnixMicro())/1000-(origin+src[k].Page))
		}
	}
	return added, latency
}

// avCanvasPage draws a 640×360 canvas about 30 times a second, dark, with
// a flash once a second (as the test video: white, then two frames that
// fade), and WebAudio beeps (1 kHz, 30 ms) at the same instants of the
// page's clock. Each frame is captured as it is drawn (captureStream(0),
// requestFrame). The beep is scheduled 300 ms ahead on the audio context's
// clock, put on the page's with the smallest performance.now() −
// currentTime of the last second (currentTime moves in steps); the flash is drawn by the
// timer tick nearest its instant. The page notes, for each flash, when it
// drew it and what it meant (beep − flash, ms). Then it publishes with
// client.js. Arguments: the levels (CSS colours of the dark frame and the
// flash's), the destination, the ingest.
const avCanvasPage = `(async (levels, dest, ingest) => {
  const W = 640, H = 360;
  const canvas = document.createElement('canvas');
  canvas.width = W;
  canvas.height = H;
  const g = canvas.getContext('2d', {alpha: false});
  const av = window.__av = {flashes: [], intended: [], drawn: 0, maxGap: 0, last: 0, map: Infinity,
    timeOrigin: performance.timeOrigin, clock: []};
  const ac = new AudioContext({sampleRate: 48000});
  const osc = ac.createOscillator();
  osc.frequency.value = 1000;
  const gain = ac.createGain();
  gain.gain.value = 0;
  const out = ac.createMediaStreamDestination();
  osc.connect(gain).connect(out);
  osc.start();
  await ac.resume();
  const captured = canvas.captureStream(0);
  const video = captured.getVideoTracks()[0];
  // Chromium has requestFrame on the track, Firefox on the stream.
  const requestFrame = video.requestFrame ? () => video.requestFrame() : () => captured.requestFrame();
  let next = (Math.floor(performance.now() / 1000) + 2) * 1000 + 500; // the next instant, page ms
  let scheduled = 0; // the instant whose beep is scheduled
  let beepAt = 0; // its page time
  let fade = levels.length; // the flash's frame being drawn
  const lags = [];
  const tick = () => {
    const now = performance.now();
    // The page's time of the audio clock's zero: the smallest difference
    // of the last second (currentTime moves in steps, and its rate may
    // differ from the page's clock a little).
    lags.push(now - ac.currentTime * 1000);
    if (lags.length > 30) lags.shift();
    av.map = Math.min(...lags);
    if (av.drawn %% 30 === 0) av.clock.push([now, ac.currentTime * 1000]);
    if (av.last) av.maxGap = Math.max(av.maxGap, now - av.last);
    av.last = now;
    if (scheduled !== next && next - now < 300) {
      const t = (next - av.map) / 1000;
      gain.gain.setValueAtTime(0.5, t);
      gain.gain.setValueAtTime(0, t + 0.03);
      scheduled = next;
      beepAt = t * 1000 + av.map;
    }
    if (now >= next - 1000 / 60) {
      fade = 1;
      av.flashes.push(now);
      av.intended.push(beepAt - now);
      next += 1000;
    } else if (fade < levels.length) {
      fade++;
    }
    g.fillStyle = levels[fade < levels.length ? fade : 0];
    g.fillRect(0, 0, W, H);
    g.fillStyle = '#808080';
    g.font = '40px sans-serif';
    g.fillText(String(av.drawn), 20, 60);
    requestFrame();
    av.drawn++;
  };
  tick();
  av.timer = setInterval(tick, 1000 / 30);
  const stream = window.__avstream = new MediaStream([video, ...out.stream.getAudioTracks()]);
  av.stop = () => {
    clearInterval(av.timer);
    stream.getTracks().forEach((t) => t.stop());
    return ac.close();
  };
  const m = await import('/client.js');
  const pub = window.__pub = m.publish(stream, {destination: dest, ingest});
  pub.addEventListener('error', (e) => console.error('avsync: publish error ' + JSON.stringify(e.detail)));
  return true;
})(%s, %s, %s)`

// avCanvasLevels are avCanvasPage's colours: the dark frame, then the
// flash's frames.
func avCanvasLevels() string {
	levels := []string{fmt.Sprintf("'#%02x%02x%02x'", avDark, avDark, avDark)}
	for _, q := range avFlashLevels {
		v := avDark + int(math.Round(q*float64(255-avDark)))
		levels = append(levels, fmt.Sprintf("'#%02x%02x%02x'", v, v, v))
	}
	return "[" + strings.Join(levels, ", ") + "]"
}

// avCanvasResult is what avCanvasPage noted.
type avCanvasResult struct {
	Flashes    []float64 // ms, page clock
	Intended   []float64
	Drawn      int
	MaxGap     float64
	TimeOrigin float64
	// Clock samples [performance.now(), AudioContext.currentTime] (ms),
	// about once a second.
	Clock [][2]float64
}

// audioRate is how fast the audio context's clock ran against the page's
// (1: as fast), from the first and last clock samples.
func (c avCanvasResult) audioRate() float64 {
	if len(c.Clock) < 2 {
		return math.NaN()
	}
	a, b := c.Clock[0], c.Clock[len(c.Clock)-1]
	return (b[1] - a[1]) / (b[0] - a[0])
}

// ---- one measured broadcast ----

// avOptions choose a broadcast.
type avOptions struct {
	Browser string // "chromium" (docs/benchmarks.md says why not Firefox)
	Source  string // "file" or "canvas"
	Ingest  string // "webcodecs" or "mediarecorder"
	Dur     time.Duration
	// CutAt cuts livegate's connection to the receiver this long after
	// the watch began (0: no cut).
	CutAt time.Duration
}

func (o avOptions) name() string { return o.Browser + "-" + o.Source + "/" + o.Ingest }

// avRun is what one broadcast measured.
type avRun struct {
	Opts        avOptions
	Pairs       []avPair
	Flashes     int // flashes seen at the receiver
	Beeps       int
	Segments    int
	VideoFrames int
	AudioPkts   int
	Dropped     uint64 // packets the watch lost
	// KeyIntervals are the times between key frames in a row (s), within
	// each RTMP connection.
	KeyIntervals []float64
	// Backwards lists timestamps that did not go forward (should be none).
	Backwards []string
	// Sources are the instants at the source: measured in the page, or
	// as the canvas page meant them when it cannot be measured. Added is,
	// for each pair matched with its source, what the broadcast added to
	// the source's offset; Latency the flash's time from the page to the
	// receiver (ms).
	Sources  []avSource
	Measured bool // Sources were measured, not meant
	Added    []float64
	Latency  []float64
	Probe    avProbeResult
	Canvas   avCanvasResult
	Reconn   time.Duration // cut → the stream back on the receiver
	Mime     string
}

// offsets are the sources' offsets.
func offsets(src []avSource) []float64 {
	out := make([]float64, len(src))
	for i, s := range src {
		out[i] = s.Offset
	}
	return out
}

// spread describes values (ms): mean, min, max, standard deviation.
func spread(v []float64) string {
	if len(v) == 0 {
		return "none"
	}
	m, lo, hi := meanMinMax(v)
	var sd float64
	for _, x := range v {
		sd += (x - m) * (x - m)
	}
	return fmt.Sprintf("%d: mean %+.1f ms, min %+.1f, max %+.1f, sd %.1f", len(v), m, lo, hi, math.Sqrt(sd/float64(len(v))))
}

func (r avRun) String() string {
	s := fmt.Sprintf("A/V %s (%s): at the receiver %s; %d flashes, %d beeps seen, %d RTMP connections, %d video frames, %d audio packets, %d dropped by the watch",
		r.Opts.name(), r.Mime, avSummary(r.Pairs), r.Flashes, r.Beeps, r.Segments, r.VideoFrames, r.AudioPkts, r.Dropped)
	if r.Measured {
		s += fmt.Sprintf("; at the source (measured in the page, %d frames and %d audio chunks read): %s",
			r.Probe.Frames, r.Probe.Chunks, spread(offsets(r.Sources)))
		if p := r.Probe; p.VLag != nil && p.ALag != nil {
			s += fmt.Sprintf(" (now − timestamp at reading: video smallest %.1f ms, the first frame %+.1f ms more; audio smallest %.1f ms, the first %+.1f ms more)",
				*p.VLag/1000, (*p.VFirstLag-*p.VLag)/1000, *p.ALag/1000, (*p.AFirstLag-*p.ALag)/1000)
		}
	} else if len(r.Sources) > 0 {
		s += "; at the source (as the page meant it): " + spread(offsets(r.Sources))
	}
	if len(r.Canvas.Intended) > 0 {
		s += fmt.Sprintf("; the canvas page meant %s (%d frames drawn, largest gap %.0f ms, audio clock at %.4f× the page's)",
			spread(r.Canvas.Intended), r.Canvas.Drawn, r.Canvas.MaxGap, r.Canvas.audioRate())
		if r.Measured {
			// How well the probe puts video on the page's clock: its
			// flashes against when the page drew them.
			var d []float64
			for _, src := range r.Sources {
				for _, f := range r.Canvas.Flashes {
					if math.Abs(src.Page-f) < 100 {
						d = append(d, src.Page-f)
					}
				}
			}
			s += "; the probe's flashes − when the page drew them " + spread(d)
		}
	}
	if len(r.Added) > 0 {
		lat := slices.Sorted(slices.Values(r.Latency))
		s += fmt.Sprintf("; added by the broadcast (receiver − source, same instant) %s; flash page → receiver p50 %.0f ms, max %.0f ms",
			spread(r.Added), percentile(lat, 50), percentile(lat, 100))
	}
	if len(r.KeyIntervals) > 0 {
		k := slices.Sorted(slices.Values(r.KeyIntervals))
		s += fmt.Sprintf("; key frames every %.2f s (median; %.2f…%.2f)", percentile(k, 50), k[0], k[len(k)-1])
	}
	if r.Segments > 1 {
		s += fmt.Sprintf("; the cut: back on the receiver in %v, before it %s, after it %s", r.Reconn.Round(time.Millisecond),
			avSummary(segPairs(r.Pairs, 0)), avSummary(segPairs(r.Pairs, 1)))
	}
	if len(r.Backwards) > 0 {
		s += "; TIMESTAMPS NOT GOING FORWARD: " + strings.Join(r.Backwards, "; ")
	}
	return s
}

func meanMinMax(v []float64) (mean, lo, hi float64) {
	lo, hi = math.Inf(1), math.Inf(-1)
	for _, x := range v {
		mean += x
		lo, hi = min(lo, x), max(hi, x)
	}
	return mean / float64(len(v)), lo, hi
}

// segPairs are the pairs of the first RTMP connection (after 0), or of the
// later ones (after 1).
func segPairs(pairs []avPair, after int) []avPair {
	var out []avPair
	for _, p := range pairs {
		if (after == 0) == (p.Seg == 0) {
			out = append(out, p)
		}
	}
	return out
}

// measureAVSync runs one broadcast and analyses what the receiver got.
func measureAVSync(t testing.TB, o avOptions) avRun {
	t.Helper()
	ffmpeg := requireBinary(t, "ffmpeg", "ffmpeg")
	var rlog syncBuffer
	logOnFailure(t, "receiver log", rlog.String)
	r := &receiver.Receiver{Listen: "127.0.0.1:0", Log: slog.New(slog.NewTextHandler(&rlog, nil))}
	if err := r.Initialize(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	// livegate reaches the receiver through a proxy the test can cut.
	link := testutil.StartThrottle(t, r.Addr().String(), 1<<30)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	lg := startLivegate(t, fmt.Sprintf("receiver:\n  enabled: false\ndestinations:\n  av:\n    url: rtmp://%s/live/%s\n", link.Addr, avStreamKey))

	var b browser
	switch {
	case o.Browser == "chromium" && o.Source == "file":
		video, audio := avMedia(t)
		b = startChromiumWith(t,
			chromedp.Flag("use-file-for-fake-video-capture", video),
			chromedp.Flag("use-file-for-fake-audio-capture", audio))
	case o.Browser == "chromium" && o.Source == "canvas":
		b = startChromium(t)
	default:
		t.Fatalf("no A/V source %q in %s", o.Source, o.Browser)
	}
	screenshotOnFailure(t, "page", b)
	run := avRun{Opts: o, Measured: o.Browser == "chromium"}
	if o.Source == "file" {
		if err := b.Navigate(lg.URL("/?destination=av&autostart=1&ingest=" + o.Ingest)); err != nil {
			t.Fatal(err)
		}
		if err := b.WaitFor(`window.__livegate.destinations?.av?.state === 'live'`, 30*time.Second); err != nil {
			t.Fatal(err)
		}
		var label string
		if err := evalInto(b, `document.querySelector('#preview').srcObject.getVideoTracks()[0].label`, &label); err != nil {
			t.Fatal(err)
		}
		if !strings.HasSuffix(label, ".y4m") {
			t.Fatalf("the camera is %q, not the test video", label)
		}
		if _, err := b.Eval(fmt.Sprintf(avProbe, `document.querySelector('#preview').srcObject`)); err != nil {
			t.Fatal(err)
		}
		if err := evalInto(b, `window.__livegate.ingest + ' ' + window.__livegate.mimeType`, &run.Mime); err != nil {
			t.Fatal(err)
		}
	} else {
		if err := b.Navigate(lg.URL("/healthz")); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Eval(fmt.Sprintf(avCanvasPage, avCanvasLevels(), jsString("av"), jsString(o.Ingest))); err != nil {
			t.Fatal(err)
		}
		if err := b.WaitFor(`window.__pub.state === 'live'`, 30*time.Second); err != nil {
			t.Fatal(err)
		}
		if run.Measured {
			if _, err := b.Eval(fmt.Sprintf(avProbe, `window.__avstream`)); err != nil {
				t.Fatal(err)
			}
		}
		if err := evalInto(b, `window.__pub.ingest + ' ' + window.__pub.mimeType`, &run.Mime); err != nil {
			t.Fatal(err)
		}
	}
	if !strings.HasPrefix(run.Mime, o.Ingest) {
		t.Fatalf("the client chose %q, want %s", run.Mime, o.Ingest)
	}

	col := collectAV(ctx, r, "live/"+avStreamKey)
	t.Cleanup(func() {
		cancel()
		<-col.done
	})
	if err := poll(20*time.Second, 10*time.Millisecond, func() (bool, error) { return col.count.Load() > 0, nil }); err != nil {
		t.Fatalf("the stream did not reach the receiver: %v (streams %+v)", err, r.Streams())
	}

	// The broadcast itself: the one deliberate wait (in two, with a cut).
	began := time.Now()
	if o.CutAt > 0 && o.CutAt < o.Dur {
		time.Sleep(o.CutAt)
		link.Cut()
		cut := time.Now()
		if err := poll(30*time.Second, 10*time.Millisecond, func() (bool, error) { return col.count.Load() > 1, nil }); err != nil {
			t.Fatalf("the stream did not come back on the receiver after the cut: %v", err)
		}
		run.Reconn = time.Since(cut)
	}
	time.Sleep(o.Dur - time.Since(began))

	if run.Measured {
		if err := evalInto(b, `(() => { const p = window.__avprobe; p.stop(); return p; })()`, &run.Probe); err != nil {
			t.Fatal(err)
		}
		if len(run.Probe.Errors) > 0 {
			t.Logf("probe errors: %v", run.Probe.Errors)
		}
	}
	if o.Source == "file" {
		if _, err := b.Eval(`window.__livegate.stop()`); err != nil {
			t.Fatal(err)
		}
		if err := b.WaitFor(`document.body.dataset.state === 'stopped'`, 15*time.Second); err != nil {
			t.Fatal(err)
		}
	} else {
		if err := evalInto(b, `window.__av`, &run.Canvas); err != nil {
			t.Fatal(err)
		}
		var state string
		if err := evalInto(b, `(async () => { await window.__pub.stop(); await window.__av.stop(); return window.__pub.state; })()`, &state); err != nil {
			t.Fatal(err)
		}
		if state != "ended" {
			t.Fatalf("the publication ended in state %q", state)
		}
	}
	// The stream ends on the receiver once livegate has sent the rest.
	if err := poll(15*time.Second, 10*time.Millisecond, func() (bool, error) { return col.between.Load(), nil }); err != nil {
		t.Fatalf("the receiver's stream did not end within 15 s of the publication's end")
	}
	cancel()
	<-col.done
	b.Close()
	lg.Stop()

	run.analyse(t, ffmpeg, col.segments)
	run.Dropped = col.dropped.Load()
	origin := run.Probe.TimeOrigin
	if run.Measured {
		run.Sources = run.Probe.sources()
	} else {
		origin = run.Canvas.TimeOrigin
		for i, f := range run.Canvas.Flashes {
			if i < len(run.Canvas.Intended) {
				run.Sources = append(run.Sources, avSource{Page: f, Offset: run.Canvas.Intended[i]})
			}
		}
	}
	run.Added, run.Latency = matchSources(run.Pairs, run.Sources, origin)
	return run
}

// analyse decodes and pairs what each RTMP connection carried.
func (run *avRun) analyse(t testing.TB, ffmpeg string, segs []*avSegment) {
	t.Helper()
	run.Segments = len(segs)
	dir := t.TempDir()
	for si, seg := range segs {
		if len(seg.video) == 0 || len(seg.audio) == 0 {
			t.Fatalf("RTMP connection %d carried %d video and %d audio packets", si, len(seg.video), len(seg.audio))
		}
		run.VideoFrames += len(seg.video)
		run.AudioPkts += len(seg.audio)
		run.Backwards = append(run.Backwards, avBackwards(si, seg, segs)...)
		var lastKey time.Duration = -1
		for _, p := range seg.video {
			if p.Key {
				if lastKey >= 0 {
					run.KeyIntervals = append(run.KeyIntervals, (p.PTS - lastKey).Seconds())
				}
				lastKey = p.PTS
			}
		}
		flashes := avFlashes(seg, avVideoLuma(t, ffmpeg, dir, seg))
		rate := avRate
		if c := seg.audio[0].Track.AAC; c != nil {
			rate = c.SampleRate
		}
		beeps := avBeeps(seg.audio, avAudioPCM(t, ffmpeg, dir, seg), rate)
		run.Flashes += len(flashes)
		run.Beeps += len(beeps)
		run.Pairs = append(run.Pairs, pairAV(flashes, beeps, si)...)
	}
}

// avBackwards lists the timestamps of a segment that do not go forward
// (a DTS at or before the one before it): within each track, and against
// the end of the segment before.
func avBackwards(si int, seg *avSegment, all []*avSegment) []string {
	var out []string
	check := func(kind string, pkts []*media.Packet, before []*media.Packet) {
		if len(before) > 0 && len(pkts) > 0 && pkts[0].DTS <= before[len(before)-1].DTS {
			out = append(out, fmt.Sprintf("connection %d begins its %s at %v, connection %d ended it at %v",
				si, kind, pkts[0].DTS, si-1, before[len(before)-1].DTS))
		}
		for i := 1; i < len(pkts); i++ {
			if pkts[i].DTS <= pkts[i-1].DTS {
				out = append(out, fmt.Sprintf("connection %d: %s DTS %v follows %v (packet %d)", si, kind, pkts[i].DTS, pkts[i-1].DTS, i))
				if len(out) > 10 {
					return
				}
			}
		}
	}
	var pv, pa []*media.Packet
	if si > 0 {
		pv, pa = all[si-1].video, all[si-1].audio
	}
	check("video", seg.video, pv)
	check("audio", seg.audio, pa)
	return out
}

// ---- the benchmark and the tests ----

// BenchmarkAVSync measures the A/V offset at an RTMP server, its drift and
// the key-frame interval, for each source and way in (Chromium; Firefox is
// left out, see docs/benchmarks.md), over a broadcast of
// LIVEGATE_BENCH_SECONDS (60 s by default) whose connection to the
// destination is cut half-way:
//
//	go test -run XXX -bench AVSync -benchtime 1x -timeout 20m -v ./e2e/
//
// Besides the offset at the receiver (what a viewer gets) it reports the
// offset at the source (source-offset-ms) and what the broadcast added to
// it, instant by instant (added-mean-ms).
func BenchmarkAVSync(b *testing.B) {
	dur := 60 * time.Second
	if s, err := strconv.Atoi(os.Getenv("LIVEGATE_BENCH_SECONDS")); err == nil && s > 0 {
		dur = time.Duration(s) * time.Second
	}
	for _, o := range []avOptions{
		{Browser: "chromium", Source: "file", Ingest: "webcodecs"},
		{Browser: "chromium", Source: "file", Ingest: "mediarecorder"},
		{Browser: "chromium", Source: "canvas", Ingest: "webcodecs"},
		{Browser: "chromium", Source: "canvas", Ingest: "mediarecorder"},
	} {
		o.Dur, o.CutAt = dur, dur/2
		b.Run(o.name(), func(b *testing.B) {
			var all []avPair
			var source, added, keys []float64
			backwards := 0
			for range b.N {
				run := measureAVSync(b, o)
				b.Log(run)
				// Reported, not failed: the other figures still count.
				backwards += len(run.Backwards)
				all = append(all, run.Pairs...)
				source = append(source, offsets(run.Sources)...)
				added = append(added, run.Added...)
				keys = append(keys, run.KeyIntervals...)
			}
			if len(all) == 0 {
				b.Fatal("no flash paired with a beep")
			}
			s := avSummary(all)
			b.ReportMetric(s.Mean, "offset-mean-ms")
			b.ReportMetric(s.MaxAbs, "offset-max-ms")
			b.ReportMetric(s.DriftPerMin, "drift-ms-per-min")
			if len(keys) > 0 {
				// The median: a reconnect adds a key frame out of turn.
				b.ReportMetric(percentile(slices.Sorted(slices.Values(keys)), 50), "keyint-s")
			}
			if len(source) > 0 {
				m, _, _ := meanMinMax(source)
				b.ReportMetric(m, "source-offset-ms")
			}
			if len(added) > 0 {
				m, _, _ := meanMinMax(added)
				b.ReportMetric(m, "added-mean-ms")
			}
			b.ReportMetric(float64(backwards), "dts-not-forward")
		})
	}
}

// TestAVSyncSmoke proves that the A/V measurement works: a short WebCodecs
// broadcast from Chromium's file-backed camera and microphone, cut once,
// whose flashes and beeps are found and paired with a plausible offset
// (500 ms is a sanity bound, not the target).
func TestAVSyncSmoke(t *testing.T) {
	run := measureAVSync(t, avOptions{Browser: "chromium", Source: "file", Ingest: "webcodecs", Dur: 10 * time.Second, CutAt: 4 * time.Second})
	t.Log(run)
	s := avSummary(run.Pairs)
	if s.N < 5 {
		t.Errorf("%d flash/beep pairs (%d flashes, %d beeps), want >= 5", s.N, run.Flashes, run.Beeps)
	}
	if s.N > 0 && s.MaxAbs >= 500 {
		t.Errorf("|offset| up to %.1f ms, want < 500", s.MaxAbs)
	}
	if len(run.Backwards) > 0 {
		t.Errorf("timestamps did not go forward: %v", run.Backwards)
	}
	if run.Segments < 2 {
		t.Errorf("%d RTMP connections, want 2 (the cut)", run.Segments)
	}
}

// TestAVSyncAnalysis checks the analysis against a stream whose offset is
// known: ffmpeg itself publishes the test picture and sound to the receiver
// (x264, and its AAC encoder, which stamps its priming 1024 samples early
// as FLV players expect), so the flashes and beeps must pair at 0 ms, give
// or take the 1 ms window.
func TestAVSyncAnalysis(t *testing.T) {
	ffmpeg := requireBinary(t, "ffmpeg", "ffmpeg")
	r := &receiver.Receiver{Listen: "127.0.0.1:0", Log: slog.New(slog.DiscardHandler)}
	if err := r.Initialize(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	col := collectAV(ctx, r, "live/"+avStreamKey)
	t.Cleanup(func() {
		cancel()
		<-col.done
	})
	cmd := exec.Command(ffmpeg, "-nostdin", "-v", "error", "-re", "-f", "lavfi", "-i", avVideoSource(false),
		"-re", "-f", "lavfi", "-i", avAudioSource(), "-t", "9",
		"-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "30",
		"-c:a", "aac", "-b:a", "128k", "-f", "flv", r.URL(avStreamKey))
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	p, err := startProc("ffmpeg", cmd)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.kill() })
	if !p.wait(60 * time.Second) {
		t.Fatalf("ffmpeg did not finish publishing 9 s within 60 s\n%s", out.String())
	}
	if code := p.exitCode(); code != 0 {
		t.Fatalf("ffmpeg: exit code %d\n%s", code, out.String())
	}
	if err := poll(15*time.Second, 10*time.Millisecond, func() (bool, error) { return col.between.Load(), nil }); err != nil {
		t.Fatal("the receiver's stream did not end")
	}
	cancel()
	<-col.done
	run := avRun{Opts: avOptions{Browser: "ffmpeg", Source: "file", Ingest: "rtmp"}}
	run.analyse(t, ffmpeg, col.segments)
	t.Log(run)
	s := avSummary(run.Pairs)
	if s.N < 4 {
		t.Fatalf("%d pairs (%d flashes, %d beeps), want >= 4", s.N, run.Flashes, run.Beeps)
	}
	if s.MaxAbs > 2 {
		t.Errorf("offsets %+.1f…%+.1f ms on a stream made in sync, want within ±2 ms", s.Min, s.Max)
	}
}
