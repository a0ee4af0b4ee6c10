package receiver

import (
	"bytes"
	"context"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/livegate/livegate/internal/demux/flv"
	"github.com/livegate/livegate/internal/media"
	"github.com/livegate/livegate/internal/testutil"
)

// loadPlays reads the test file and plays it n times over, each play
// shifted 2048 ms (96 AAC frames) past the one before.
func loadPlays(t *testing.T, n int) ([]*media.Track, []*media.Packet) {
	t.Helper()
	tracks, pkts := testutil.Demux(t, testFile, flv.NewReader)
	return tracks, testutil.Loop(pkts, n, 2048*time.Millisecond)
}

// keyFrameAfter is the index of the first video key frame at or after
// DTS d.
func keyFrameAfter(t *testing.T, pkts []*media.Packet, d time.Duration) int {
	t.Helper()
	for i, p := range pkts {
		if p.Track.Codec == media.CodecH264 && p.Key && p.DTS >= d {
			return i
		}
	}
	t.Fatalf("no key frame at or after %v", d)
	return 0
}

func activeStream(r *Receiver) func() bool {
	return func() bool {
		s := r.Streams()
		return len(s) == 1 && s[0].Active
	}
}

// receivedAll: the one stream has its frames of pkts (the receiver's audio
// count may lag by the packet it holds).
func receivedAll(r *Receiver, pkts []*media.Packet) func() bool {
	var video, audio uint64
	for _, p := range pkts {
		if p.Track.Codec.IsVideo() {
			video++
		} else {
			audio++
		}
	}
	return func() bool {
		s := r.Streams()
		return len(s) == 1 && s[0].Active && s[0].Video != nil && s[0].Audio != nil &&
			s[0].Video.Frames >= video && s[0].Audio.Frames >= audio-1
	}
}

func ended(r *Receiver) func() bool {
	return func() bool {
		s := r.Streams()
		return len(s) == 1 && !s[0].Active
	}
}

// recv takes the next packet of w; ok is false once C is closed.
func recv(t *testing.T, w *Watcher, within time.Duration) (*media.Packet, bool) {
	t.Helper()
	select {
	case p, ok := <-w.C:
		return p, ok
	case <-time.After(within):
		t.Fatalf("no packet and no end of the watch within %v", within)
		return nil, false
	}
}

// drain reads w until C is closed and returns how many packets came.
func drain(t *testing.T, w *Watcher, within time.Duration) int {
	t.Helper()
	deadline := time.Now().Add(within)
	n := 0
	for {
		select {
		case _, ok := <-w.C:
			if !ok {
				return n
			}
			n++
		case <-time.After(time.Until(deadline)):
			t.Fatalf("the watch did not end within %v (%d packets)", within, n)
		}
	}
}

func TestStats(t *testing.T) {
	tracks, pkts := loadPlays(t, 3)
	r := startReceiver(t)
	p := startPublisher(t, r, "stats", tracks)
	push(t, p, pkts)
	finish(t, p)
	testutil.WaitFor(t, "the stream ends", 5*time.Second, ended(r))
	s := r.Streams()[0]
	t.Logf("fps %.2f, bitrate %d, av offset %v ms, delay %d ms", s.Video.FPS, s.Bitrate, s.AVOffsetMS, s.DelayMS)
	// 180 frames from 0 to 2048*2+1967 ms: 179/6.063 s.
	if s.Video == nil || s.Video.Frames != 180 || math.Abs(s.Video.FPS-29.52) > 0.01 {
		t.Errorf("video %+v, want 180 frames at 29.52 fps", s.Video)
	}
	if s.Video.FPS != math.Round(s.Video.FPS*100)/100 {
		t.Errorf("fps %v has more than 2 decimals", s.Video.FPS)
	}
	if s.Bitrate <= 0 {
		t.Errorf("bitrate %d, want > 0", s.Bitrate)
	}
	// The publisher starts on the key frame: the first audio frame kept
	// is the one just after it.
	if s.AVOffsetMS == nil || *s.AVOffsetMS < 0 || *s.AVOffsetMS > 30 {
		t.Errorf("av_offset_ms %v, want 0..30", s.AVOffsetMS)
	}
	// Everything was pushed at once: 6 s of media arrived in far less,
	// so the first packets came early and the last ones late... relative
	// to the earliest, never before it.
	if s.DelayMS < 0 {
		t.Errorf("delay_ms %d, want >= 0", s.DelayMS)
	}
}

func TestStreamStateTiming(t *testing.T) {
	const frame = 33 * time.Millisecond
	for _, ca := range []struct {
		name string
		// late is how much later than real time frame i arrives.
		late      func(i int) time.Duration
		minDelay  time.Duration
		maxDelay  time.Duration
		wantRate  int64 // bits per second, 1000 bytes a frame
		rateSlack int64
	}{
		{"on time", func(int) time.Duration { return 0 }, 0, 0, 8000 * 1000 / 33, 300},
		{"steady 100 ms late", func(int) time.Duration { return 100 * time.Millisecond }, 0, 0, 8000 * 1000 / 33, 300},
		{"first frame late", func(i int) time.Duration {
			if i == 0 {
				return 500 * time.Millisecond
			}
			return 0
		}, 0, 0, 8000 * 1000 / 33, 300},
		// The last 2 s are frames 253 to 299, 2.53 to 2.99 s late: the
		// median is 2.76 s.
		{"falls behind 10 ms a frame", func(i int) time.Duration { return time.Duration(i) * 10 * time.Millisecond }, 2750 * time.Millisecond, 2770 * time.Millisecond, 8000 * 1000 / 43, 300},
		{"jitter", func(i int) time.Duration { return time.Duration(i%3) * 20 * time.Millisecond }, 20 * time.Millisecond, 20 * time.Millisecond, 8000 * 1000 / 33, 3000},
	} {
		t.Run(ca.name, func(t *testing.T) {
			st := newStreamState("live/x", 1)
			st.setVideo(&VideoInfo{Codec: "H264"})
			base := st.StartedAt
			var last time.Time
			for i := range 300 {
				pts := time.Duration(i) * frame
				last = base.Add(pts + ca.late(i))
				st.onVideo(pts, pts, i%30 == 0, arrival{at: last, bytes: uint64(i+1) * 1000})
			}
			st.end(300 * 1000)
			s := st.snapshot()
			if d := time.Duration(s.DelayMS) * time.Millisecond; d < ca.minDelay || d > ca.maxDelay {
				t.Errorf("delay %v, want %v..%v", d, ca.minDelay, ca.maxDelay)
			}
			if s.Video.FPS != 30.3 {
				t.Errorf("fps %v, want 30.3", s.Video.FPS)
			}
			if s.Bitrate < ca.wantRate-ca.rateSlack || s.Bitrate > ca.wantRate+ca.rateSlack {
				t.Errorf("bitrate %d, want %d ± %d", s.Bitrate, ca.wantRate, ca.rateSlack)
			}
			if s.AVOffsetMS != nil {
				t.Errorf("av_offset_ms %d without audio", *s.AVOffsetMS)
			}
		})
	}
}

func TestWindowRate(t *testing.T) {
	base := time.Now()
	var w window
	if r := w.rate(base); r != 0 {
		t.Errorf("empty window rate %v", r)
	}
	// 100 bytes every 100 ms for 10 s.
	for i := range 101 {
		w.add(base.Add(time.Duration(i)*100*time.Millisecond), int64(i)*100)
	}
	end := base.Add(10 * time.Second)
	for _, ca := range []struct {
		name string
		end  time.Time
		want float64
	}{
		{"at the last sample", end, 1000},
		{"1 s after the last", end.Add(time.Second), 500},
		{"3 s after the last", end.Add(3 * time.Second), 0},
	} {
		t.Run(ca.name, func(t *testing.T) {
			if got := w.rate(ca.end); math.Abs(got-ca.want) > 1 {
				t.Errorf("rate = %v, want %v", got, ca.want)
			}
		})
	}
	if n := len(w.s); n > 22 {
		t.Errorf("window keeps %d samples for 2 s at 10 a second", n)
	}
	for i := range 2 * maxWindowSamples {
		w.add(end.Add(time.Duration(i)), int64(i))
	}
	if n := len(w.s); n > maxWindowSamples {
		t.Errorf("window keeps %d samples, want at most %d", n, maxWindowSamples)
	}
}

func TestWatch(t *testing.T) {
	tracks, pkts := loadPlays(t, 3)
	r := startReceiver(t)
	p := startPublisher(t, r, "watched", tracks)
	// The receiver reports the stream once it has 2 s of it: push into
	// the second play, stop just before a key frame, watch, push the rest.
	key := keyFrameAfter(t, pkts, 3*time.Second)
	push(t, p, pkts[:key])
	testutil.WaitFor(t, "the stream is received", 5*time.Second, activeStream(r))

	w, err := r.Watch(context.Background(), "live/watched")
	if err != nil {
		t.Fatal(err)
	}
	if w.Video == nil || !bytes.Equal(w.Video.SPS, tracks[0].SPS) || !bytes.Equal(w.Video.PPS, tracks[0].PPS) ||
		w.Video.Width != 320 || w.Video.Height != 240 {
		t.Fatalf("watch video track %+v, want the publisher's SPS and PPS, 320x240", w.Video)
	}
	if w.Audio == nil || w.Audio.AAC == nil || w.Audio.AAC.SampleRate != 48000 {
		t.Fatalf("watch audio track %+v, want AAC 48 kHz", w.Audio)
	}
	push(t, p, pkts[key:])
	first, ok := recv(t, w, 5*time.Second)
	if !ok {
		t.Fatalf("the watch ended before its first packet: %v", w.Err())
	}
	if first.Track != w.Video || !first.Key || first.DTS != pkts[key].DTS {
		t.Errorf("first packet: %v key %v at %v; want the key frame at %v", first.Track, first.Key, first.DTS, pkts[key].DTS)
	}
	// The publisher ends; the watcher gets everything up to the end (its
	// queue holds the rest of the stream), then C is closed.
	finish(t, p)
	lastDTS := first.DTS
	video, audio := 1, 0
	for {
		pkt, ok := recv(t, w, 5*time.Second)
		if !ok {
			break
		}
		switch pkt.Track {
		case w.Video:
			video++
			if pkt.DTS <= lastDTS {
				t.Errorf("video DTS %v after %v", pkt.DTS, lastDTS)
			}
			lastDTS = pkt.DTS
			if len(pkt.AU) == 0 {
				t.Error("video packet without NAL units")
			}
		case w.Audio:
			audio++
			if len(pkt.Data) == 0 {
				t.Error("empty audio packet")
			}
		default:
			t.Fatalf("packet of track %v, not one of the watcher's", pkt.Track)
		}
	}
	wantVideo, wantAudio := 0, 0
	for _, pkt := range pkts[key:] {
		if pkt.Track.Codec == media.CodecH264 {
			wantVideo++
		} else {
			wantAudio++
		}
	}
	if video != wantVideo || audio != wantAudio || w.Dropped() != 0 {
		t.Errorf("watcher got %d video and %d audio packets, dropped %d; want %d and %d",
			video, audio, w.Dropped(), wantVideo, wantAudio)
	}
	if !errors.Is(w.Err(), ErrStreamEnded) {
		t.Errorf("Err() = %v, want ErrStreamEnded", w.Err())
	}
	if _, err := r.Watch(context.Background(), "live/watched"); !errors.Is(err, ErrNoStream) {
		t.Errorf("Watch of an ended stream: %v, want ErrNoStream", err)
	}
}

func TestSlowWatcherDoesNotSlowThePublisher(t *testing.T) {
	tracks, pkts := loadPlays(t, 8) // 16 s, 1240 packets: far more than a watcher's queue
	r := startReceiver(t)
	p := startPublisher(t, r, "slow", tracks)
	key := keyFrameAfter(t, pkts, 3*time.Second)
	push(t, p, pkts[:key])
	// Everything before key must have arrived before the watches begin,
	// or the watchers are offered more than the rest of the stream.
	testutil.WaitFor(t, "the first part is received", 5*time.Second, receivedAll(r, pkts[:key]))
	slow, err := r.Watch(context.Background(), "live/slow")
	if err != nil {
		t.Fatal(err)
	}
	// A second watcher reads.
	fast, err := r.Watch(context.Background(), "live/slow")
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan int, 1)
	go func() { // ends when the stream ends (C closed) or the test times out
		n := 0
		for range fast.C {
			n++
		}
		got <- n
	}()

	began := time.Now()
	push(t, p, pkts[key:])
	finish(t, p)
	testutil.WaitFor(t, "the stream ends", 5*time.Second, ended(r))
	t.Logf("the rest of the stream (%d packets) went through in %v", len(pkts)-key, time.Since(began).Round(time.Millisecond))
	if s := r.Streams()[0]; s.Video.Frames != 8*60 || s.Audio.Frames != 8*95-1 {
		t.Errorf("received %d video and %d audio frames, want %d and %d", s.Video.Frames, s.Audio.Frames, 8*60, 8*95-1)
	}
	if p.Dropped() != 0 {
		t.Errorf("the publisher dropped %d packets", p.Dropped())
	}
	offered := uint64(len(pkts) - key)
	queued := uint64(len(slow.C))
	if queued != watchQueue || slow.Dropped() == 0 || queued+slow.Dropped() != offered {
		t.Errorf("slow watcher: %d queued, %d dropped; want a full queue (%d) and the rest of %d dropped",
			queued, slow.Dropped(), watchQueue, offered)
	}
	select {
	case n := <-got:
		// The whole stream goes through in milliseconds: even a reader
		// may fall behind and lose some, but it gets at least a queue's
		// worth, and every packet is either delivered or counted.
		if uint64(n)+fast.Dropped() != offered || n < watchQueue {
			t.Errorf("fast watcher got %d packets and dropped %d of %d", n, fast.Dropped(), offered)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the fast watcher's channel was not closed at the end of the stream")
	}
	if n := drain(t, slow, 5*time.Second); uint64(n) != queued {
		t.Errorf("slow watcher drained %d packets, had %d queued", n, queued)
	}
	if !errors.Is(slow.Err(), ErrStreamEnded) {
		t.Errorf("slow watcher Err() = %v, want ErrStreamEnded", slow.Err())
	}
}

func TestWatchEnds(t *testing.T) {
	tracks, pkts := loadPlays(t, 2)
	type watch struct {
		w      *Watcher
		cancel context.CancelFunc
	}
	for _, ca := range []struct {
		name string
		end  func(t *testing.T, r *Receiver, w watch)
		want error
	}{
		{"context cancelled", func(_ *testing.T, _ *Receiver, w watch) { w.cancel() }, context.Canceled},
		{"closed", func(_ *testing.T, _ *Receiver, w watch) { w.w.Close(); w.w.Close() }, ErrWatchClosed},
		{"receiver closed", func(_ *testing.T, r *Receiver, _ watch) { r.Close() }, ErrStreamEnded},
		{"format changed", func(_ *testing.T, r *Receiver, _ watch) {
			st := r.activeStream("live/ends")
			st.changeVideo(h264Track(tracks[0].SPS, tracks[0].PPS))
		}, ErrFormatChanged},
	} {
		t.Run(ca.name, func(t *testing.T) {
			r := startReceiver(t)
			p := startPublisher(t, r, "ends", tracks)
			push(t, p, pkts)
			testutil.WaitFor(t, "the stream is received", 5*time.Second, activeStream(r))
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			w, err := r.Watch(ctx, "live/ends")
			if err != nil {
				t.Fatal(err)
			}
			ca.end(t, r, watch{w, cancel})
			drain(t, w, 5*time.Second)
			if !errors.Is(w.Err(), ca.want) {
				t.Errorf("Err() = %v, want %v", w.Err(), ca.want)
			}
			// The stream goes on for the others.
			if ca.want != ErrStreamEnded {
				w2, err := r.Watch(context.Background(), "live/ends")
				if err != nil {
					t.Fatalf("a new watch after the first ended: %v", err)
				}
				w2.Close()
			}
		})
	}
}

func TestWatchRefused(t *testing.T) {
	tracks, pkts := loadPlays(t, 2)
	r := &Receiver{Listen: "127.0.0.1:0", Log: testutil.Logger(), MaxWatchers: 2}
	if err := r.Initialize(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	p := startPublisher(t, r, "cap", tracks)
	push(t, p, pkts)
	testutil.WaitFor(t, "the stream is received", 5*time.Second, activeStream(r))

	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	for _, ca := range []struct {
		name string
		ctx  context.Context
		path string
		want error
	}{
		{"unknown path", context.Background(), "live/other", ErrNoStream},
		{"path without its app", context.Background(), "cap", ErrNoStream},
		{"path with a slash more", context.Background(), "/live/cap", ErrNoStream},
		{"a file", context.Background(), "../../etc/passwd", ErrNoStream},
		{"empty", context.Background(), "", ErrNoStream},
		{"cancelled context", cancelled, "live/cap", context.Canceled},
	} {
		t.Run(ca.name, func(t *testing.T) {
			if w, err := r.Watch(ca.ctx, ca.path); !errors.Is(err, ca.want) {
				t.Errorf("Watch(%q) = %v, %v; want %v", ca.path, w, err, ca.want)
			}
		})
	}

	w1, err := r.Watch(context.Background(), "live/cap")
	if err != nil {
		t.Fatal(err)
	}
	w2, err := r.Watch(context.Background(), "live/cap")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Watch(context.Background(), "live/cap"); !errors.Is(err, ErrTooManyWatchers) {
		t.Fatalf("third watcher: %v, want ErrTooManyWatchers", err)
	}
	w1.Close()
	w3, err := r.Watch(context.Background(), "live/cap")
	if err != nil {
		t.Fatalf("a watcher after one left: %v", err)
	}
	w2.Close()
	w3.Close()
	finish(t, p)
	testutil.WaitFor(t, "the stream ends", 5*time.Second, ended(r))
	if _, err := r.Watch(context.Background(), "live/cap"); !errors.Is(err, ErrNoStream) {
		t.Errorf("Watch of an ended stream: %v, want ErrNoStream", err)
	}
}
