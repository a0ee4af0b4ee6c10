package load

import (
	"context"
	"io"
	"log/slog"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/gortmplib"
	"github.com/bluenviron/gortmplib/pkg/codecs"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"

	"github.com/livegate/livegate/internal/demux/webm"
	"github.com/livegate/livegate/internal/media"
)

// TestReceiver publishes the Chromium recording's H.264 (and a few AAC
// frames) to the Receiver with gortmplib, as livegate's publisher does, and
// checks what it noted.
func TestReceiver(t *testing.T) {
	r := &Receiver{Listen: "127.0.0.1:0", Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if err := r.Initialize(); err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	log := r.Expect("test-0001")

	_, pkts, err := demuxPositions(mustRead(t, committed().MKV), func(rd io.Reader) (media.Demuxer, error) { return webm.NewReader(rd) })
	if err != nil {
		t.Fatal(err)
	}
	var video *media.Track
	var frames []positioned
	for _, p := range pkts {
		if p.Track.Codec == media.CodecH264 {
			video = p.Track
			frames = append(frames, p)
		}
	}
	u, _ := url.Parse(r.URL() + "#test-0001")
	c := &gortmplib.Client{URL: u, Publish: true}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Initialize(ctx); err != nil {
		t.Fatal(err)
	}
	vt := &gortmplib.Track{Codec: &codecs.H264{SPS: video.SPS, PPS: video.PPS}}
	at := &gortmplib.Track{Codec: &codecs.MPEG4Audio{Config: &mpeg4audio.AudioSpecificConfig{Type: 2, SampleRate: 48000, ChannelConfig: 1}}}
	w := &gortmplib.Writer{Conn: c, Tracks: []*gortmplib.Track{vt, at}}
	if err := w.Initialize(); err != nil {
		t.Fatal(err)
	}
	sent := time.Now()
	for i, f := range frames {
		if err := w.WriteH264(vt, f.PTS+200*time.Millisecond, f.DTS+200*time.Millisecond, f.AU); err != nil {
			t.Fatal(err)
		}
		if i < 10 {
			if err := w.WriteMPEG4Audio(at, f.DTS+200*time.Millisecond, []byte{0x21, 0x10, 0x04}); err != nil {
				t.Fatal(err)
			}
		}
	}
	c.Close()
	deadline := time.Now().Add(5 * time.Second)
	for !log.ended() {
		if time.Now().After(deadline) {
			t.Fatal("the stream did not end at the receiver")
		}
		time.Sleep(10 * time.Millisecond)
	}
	got, audio := log.snapshot()
	if len(got) != len(frames) || audio != 10 {
		t.Fatalf("%d video and %d audio frames noted, want %d and 10", len(got), audio, len(frames))
	}
	for i, g := range got {
		if want := (frames[i].DTS + 200*time.Millisecond).Truncate(time.Millisecond); g.TS != want || g.At.Before(sent) {
			t.Fatalf("frame %d: at %v (arrived %v after the start), want %v", i, g.TS, g.At.Sub(sent), want)
		}
	}
	// A stream nobody expects is refused.
	u2, _ := url.Parse(r.URL() + "#nobody-0001")
	c2 := &gortmplib.Client{URL: u2, Publish: true}
	if err := c2.Initialize(ctx); err == nil {
		w2 := &gortmplib.Writer{Conn: c2, Tracks: []*gortmplib.Track{vt}}
		_ = w2.Initialize()
		c2.Close()
	}
	r.Forget("test-0001")
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestReceiverCloseEndsConnections: Close ends a connection that is still
// publishing, and waits for it.
func TestReceiverCloseEndsConnections(t *testing.T) {
	r := &Receiver{Listen: "127.0.0.1:0", Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if err := r.Initialize(); err != nil {
		t.Fatal(err)
	}
	log := r.Expect("open-0001")
	u, _ := url.Parse(r.URL() + "#open-0001")
	c := &gortmplib.Client{URL: u, Publish: true}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Initialize(ctx); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		w := &gortmplib.Writer{Conn: c, Tracks: []*gortmplib.Track{{Codec: &codecs.MPEG4Audio{Config: &mpeg4audio.AudioSpecificConfig{Type: 2, SampleRate: 48000, ChannelConfig: 1}}}}}
		_ = w.Initialize()
	}()
	wg.Wait()
	deadline := time.Now().Add(5 * time.Second)
	for func() bool { log.mu.Lock(); defer log.mu.Unlock(); return log.open == 0 }() {
		if time.Now().After(deadline) {
			t.Fatal("the connection did not reach the stream")
		}
		time.Sleep(10 * time.Millisecond)
	}
	r.Close()
	if !log.ended() {
		t.Fatal("Close returned with the connection open")
	}
}
