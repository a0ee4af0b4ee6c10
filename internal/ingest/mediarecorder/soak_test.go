package mediarecorder

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"go.uber.org/goleak"

	"github.com/livegate/livegate/internal/demux/webm"
	"github.com/livegate/livegate/internal/ingest/webcodecs"
	"github.com/livegate/livegate/internal/media"
	"github.com/livegate/livegate/internal/metrics"
	"github.com/livegate/livegate/internal/testutil"
)

// soakFrames is the recording as WebCodecs messages: the configurations,
// then the video and audio frames in time order.
type soakFrames struct {
	videoConfig, audioConfig []byte
	video                    [][]byte        // H.264, the first a key frame
	both                     [][]byte        // H.264 and Opus, in time order
	bothPTS                  []time.Duration // of each of both
}

// bothLooped is frame k of both played over and over, each play 4 s after
// the one before, and its time.
func (f *soakFrames) bothLooped(k int) ([]byte, time.Duration) {
	m := slices.Clone(f.both[k%len(f.both)])
	pts := f.bothPTS[k%len(f.both)] + time.Duration(k/len(f.both))*4*time.Second
	binary.BigEndian.PutUint64(m[2:10], uint64(pts.Microseconds()))
	return m, pts
}

func loadSoakFrames(t *testing.T) *soakFrames {
	t.Helper()
	tracks, pkts := testutil.Demux(t, "testdata/h264.mkv", webm.NewReader)
	f := &soakFrames{}
	for _, tr := range tracks {
		switch tr.Codec {
		case media.CodecH264:
			f.videoConfig = webcodecs.AppendFrame(nil, webcodecs.TypeVideoConfig, 0, 0, media.BuildAVCC(tr.SPS, tr.PPS))
		case media.CodecOpus:
			f.audioConfig = webcodecs.AppendFrame(nil, webcodecs.TypeAudioConfig, 0, 0, tr.OpusHead)
		}
	}
	for _, p := range pkts {
		if p.PTS < 0 {
			continue
		}
		if p.Track.Codec == media.CodecH264 {
			flags := byte(0)
			if p.Key {
				flags = webcodecs.FlagKey
			}
			m := webcodecs.AppendFrame(nil, webcodecs.TypeVideo, flags, p.PTS, media.AppendAVCC(nil, p.AU))
			f.video = append(f.video, m)
			f.both = append(f.both, m)
		} else {
			f.both = append(f.both, webcodecs.AppendFrame(nil, webcodecs.TypeAudio, webcodecs.FlagKey, p.PTS, p.Data))
		}
		f.bothPTS = append(f.bothPTS, p.PTS)
	}
	if f.videoConfig == nil || f.audioConfig == nil || len(f.video) < 100 || f.video[0][1]&webcodecs.FlagKey == 0 {
		t.Fatal("testdata/h264.mkv did not give H.264 and Opus frames")
	}
	return f
}

// TestSoak: 1000 broadcasts connect, start and go away, most of them
// abruptly and in the middle of their media, four at a time: 900
// WebCodecs H.264 broadcasts (no encoder) ended in five ways, and 100
// with Opus audio (an ffmpeg each) cut off once live. Afterwards no
// goroutine and no ffmpeg is left, and the heap is where it was after the
// first 100.
func TestSoak(t *testing.T) {
	if testing.Short() {
		t.Skip("soak: skipped with -short")
	}
	f := newFixture(t, func(h *Handler) {
		h.Metrics = metrics.New()
		h.MaxSessionsPerAddress = 0
		// Broadcasts whose client left end a moment later: room for them.
		h.MaxSessions = 64
		// A loaded machine may starve a broadcast for seconds: the
		// timeouts are not what this test is about.
		h.FirstMediaTimeout = 10 * time.Second
		h.IdleTimeout = 10 * time.Second
	})
	frames := loadSoakFrames(t)
	url := "ws" + strings.TrimPrefix(f.srv.URL, "http")
	// What runs now (the fixture's server and receiver) may run on.
	running := goleak.IgnoreCurrent()
	goroutines0 := runtime.NumGoroutine()
	began := time.Now()

	const workers, total, firstPhase = 4, 1000, 100
	var (
		mu    sync.Mutex
		kinds = map[string]int{}
		fails []string
	)
	run := func(from, to int) {
		next := make(chan int)
		var wg sync.WaitGroup
		for range workers {
			wg.Go(func() { // ends when next is closed
				for i := range next {
					kind, err := soakCycle(url, frames, i)
					mu.Lock()
					switch {
					case err == nil:
						kinds[kind]++ // the cycles that went as planned
					case len(fails) < 20:
						fails = append(fails, fmt.Sprintf("cycle %d (%s): %v", i, kind, err))
					}
					mu.Unlock()
				}
			})
		}
		for i := from; i < to; i++ {
			next <- i
		}
		close(next)
		wg.Wait()
	}
	// quiet waits until every broadcast has ended and its encoder is gone,
	// and returns the heap in use then.
	quiet := func() uint64 {
		waitFor(t, func() bool { return f.h.Active() == 0 })
		testutil.WaitFor(t, "no ffmpeg child", 10*time.Second, func() bool { return len(testutil.FFmpegChildren(t)) == 0 })
		var ms runtime.MemStats
		runtime.GC()
		runtime.GC()
		runtime.ReadMemStats(&ms)
		return ms.HeapInuse
	}

	run(0, firstPhase)
	heap100 := quiet()
	phase1 := time.Since(began)
	run(firstPhase, total)
	heap1000 := quiet()
	elapsed := time.Since(began)

	for _, fail := range fails {
		t.Error(fail)
	}
	// Every goroutine a broadcast started has ended.
	goleak.VerifyNone(t, running)
	testutil.WaitFor(t, "the goroutines back to their starting count", 10*time.Second, func() bool {
		return runtime.NumGoroutine() <= goroutines0
	})
	started := testutil.MetricValue(t, f.h.Metrics.Handler(), "livegate_sessions_total")
	t.Logf("soak: %d cycles in %v (the first %d in %v): %v; %s broadcasts started; goroutines %d before, %d after; "+
		"heap in use %.1f MiB after %d cycles, %.1f MiB after %d",
		total, elapsed.Round(time.Millisecond), firstPhase, phase1.Round(time.Millisecond), kinds, started,
		goroutines0, runtime.NumGoroutine(), float64(heap100)/(1<<20), firstPhase, float64(heap1000)/(1<<20), total)
	if grown := int64(heap1000) - int64(heap100); grown > 4<<20 {
		t.Errorf("the heap grew by %.1f MiB over %d broadcasts", float64(grown)/(1<<20), total-firstPhase)
	}
	if kinds["opus, cut off live"] != total/10 {
		t.Errorf("%d broadcasts went live with an encoder, want %d", kinds["opus, cut off live"], total/10)
	}
}

// soakCycle is one broadcast: cycle i%10 == 9 sends H.264 and Opus (an
// encoder starts) and is cut off once its destination is live; the others
// send H.264 only and end in one of five ways.
func soakCycle(url string, frames *soakFrames, i int) (kind string, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, url, nil)
	if err != nil {
		return "dial", err
	}
	defer c.CloseNow()
	start := `{"type":"start","version":1,"ingest":"webcodecs","codecs":"avc1.42c01e","destinations":["local"]}`
	if i%10 == 9 {
		start = strings.Replace(start, `avc1.42c01e`, `avc1.42c01e,opus`, 1)
	}
	if err := c.Write(ctx, websocket.MessageText, []byte(start)); err != nil {
		return "start", err
	}
	send := func(msgs ...[]byte) error {
		for _, m := range msgs {
			if err := c.Write(ctx, websocket.MessageBinary, m); err != nil {
				return err
			}
		}
		return nil
	}
	n := 1 + i*7%40 // frames to send, 1..40
	if i%10 == 9 {
		kind = "opus, cut off live"
		if _, err := readUntil(ctx, c, "ready"); err != nil {
			return kind, err
		}
		// The media flows (its first second at once, as a browser's
		// buffer, then at its pace) until the destination is live: the
		// encoder's first output is there. Then the socket is gone.
		done := make(chan struct{})
		sent := make(chan error, 1)
		go func() { // ends when done is closed or the socket fails
			if err := send(frames.videoConfig, frames.audioConfig); err != nil {
				sent <- err
				return
			}
			began := time.Now()
			pace := time.NewTimer(0)
			defer pace.Stop()
			for k := 0; ; k++ {
				m, pts := frames.bothLooped(k)
				pace.Reset(time.Until(began.Add(pts - time.Second)))
				select {
				case <-done:
					sent <- nil
					return
				case <-pace.C:
				}
				if err := send(m); err != nil {
					sent <- err
					return
				}
			}
		}()
		var live error
		for m := map[string]any{}; live == nil && m["state"] != "live"; {
			m, live = readUntil(ctx, c, "destination")
		}
		closed := c.CloseNow()
		close(done)
		<-sent // an error: the socket closed under it
		return kind, errors.Join(live, closed)
	}
	switch i % 5 {
	case 0:
		return "gone before ready", c.CloseNow()
	case 1:
		kind = "gone after ready"
		if _, err := readUntil(ctx, c, "ready"); err != nil {
			return kind, err
		}
		return kind, c.CloseNow()
	case 2:
		kind = "gone mid-media"
		if _, err := readUntil(ctx, c, "ready"); err != nil {
			return kind, err
		}
		return kind, errors.Join(send(append([][]byte{frames.videoConfig}, frames.video[:n]...)...), c.CloseNow())
	case 3:
		kind = "stopped"
		if _, err := readUntil(ctx, c, "ready"); err != nil {
			return kind, err
		}
		if err := send(append([][]byte{frames.videoConfig}, frames.video[:n]...)...); err != nil {
			return kind, err
		}
		if err := c.Write(ctx, websocket.MessageText, []byte(`{"type":"stop"}`)); err != nil {
			return kind, err
		}
		if _, err := readUntil(ctx, c, "never"); websocket.CloseStatus(err) != websocket.StatusNormalClosure {
			return kind, fmt.Errorf("after stop: %w", err)
		}
		return kind, nil
	}
	kind = "refused mid-media"
	if _, err := readUntil(ctx, c, "ready"); err != nil {
		return kind, err
	}
	// A frame of an unknown type: bad_media.
	_ = send(slices.Concat([][]byte{frames.videoConfig}, frames.video[:n], [][]byte{webcodecs.AppendFrame(nil, 9, 0, 0, nil)})...)
	m, err := readUntil(ctx, c, "never")
	if m["code"] != "bad_media" {
		return kind, fmt.Errorf("got %v (%v), want bad_media", m, err)
	}
	return kind, nil
}

// readUntil reads messages until one of type want, or an error message
// (returned with an error), or the socket's end.
func readUntil(ctx context.Context, c *websocket.Conn, want string) (map[string]any, error) {
	for {
		_, data, err := c.Read(ctx)
		if err != nil {
			return nil, err
		}
		var m map[string]any
		if err := json.Unmarshal(data, &m); err != nil {
			return nil, fmt.Errorf("server sent %q", data)
		}
		switch m["type"] {
		case want:
			return m, nil
		case "error":
			return m, fmt.Errorf("error %v: %v", m["code"], m["message"])
		}
	}
}
