package load

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"path/filepath"
	"testing"
	"time"

	"github.com/livegate/livegate/internal/demux/fmp4"
	"github.com/livegate/livegate/internal/demux/webm"
	"github.com/livegate/livegate/internal/ingest/webcodecs"
	"github.com/livegate/livegate/internal/media"
)

// committed are the recordings in the repository (not the cached one).
func committed() Sources {
	root := filepath.Join("..", "..")
	return Sources{
		MKV:     filepath.Join(root, "internal/demux/webm/testdata/chromium-h264-opus.mkv"),
		FMP4:    filepath.Join(root, "internal/demux/fmp4/testdata/chromium-avc1-opus.mp4"),
		Firefox: filepath.Join(root, "internal/demux/webm/testdata/firefox-vp8-opus.webm"),
	}
}

// readAll demuxes a replay's bytes (one loop) back into packets.
func readAll(t *testing.T, r *Replay) []*media.Packet {
	t.Helper()
	var all []byte
	for _, m := range r.Messages {
		all = append(all, m.Data...)
	}
	var d media.Demuxer
	var err error
	switch r.Kind {
	case KindFMP4:
		d, err = fmp4.NewReader(bytes.NewReader(all))
	case KindWebCodecs, KindWebCodecsAnnexB:
		d, err = webcodecs.NewReader(bytes.NewReader(all), true, true)
	default:
		d, err = webm.NewReader(bytes.NewReader(all))
	}
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Tracks(); err != nil {
		t.Fatal(err)
	}
	var pkts []*media.Packet
	for {
		p, err := d.ReadPacket()
		if errors.Is(err, io.EOF) {
			return pkts
		}
		if err != nil {
			t.Fatalf("after %d packets: %v", len(pkts), err)
		}
		pkts = append(pkts, p)
	}
}

func TestLoadReplay(t *testing.T) {
	const slice = 100 * time.Millisecond
	for _, kind := range allKinds {
		t.Run(kind, func(t *testing.T) {
			r, err := LoadReplay(kind, committed(), slice)
			if err != nil {
				t.Fatal(err)
			}
			pkts := readAll(t, r)
			var video int
			for _, p := range pkts {
				if p.Track.Codec.IsVideo() {
					video++
				}
			}
			var listed int
			var last time.Duration
			for i, m := range r.Messages {
				listed += len(m.Video)
				if m.At < last {
					t.Fatalf("message %d at %v, before the one before it (%v)", i, m.At, last)
				}
				last = m.At
				for _, v := range m.Video {
					if v > m.At {
						t.Fatalf("message %d at %v carries a frame of %v: sent before it was recorded", i, m.At, v)
					}
				}
				if r.Ingest == "mediarecorder" && m.At%slice != 0 {
					t.Fatalf("chunk %d at %v, not on the timeslice", i, m.At)
				}
			}
			if listed != video || video == 0 {
				t.Fatalf("%d video frames listed, %d in the stream", listed, video)
			}
			if r.Period < last || r.Period < 4*time.Second || r.Period > 5*time.Second {
				t.Fatalf("a loop of %v (last message at %v)", r.Period, last)
			}
			if r.VideoFPS < 25 || r.VideoFPS > 35 {
				t.Fatalf("%.1f frames a second", r.VideoFPS)
			}
			t.Logf("%s: %d messages, %d video frames, loop %v, %.1f fps", kind, len(r.Messages), video, r.Period, r.VideoFPS)
		})
	}
}

// TestFMP4ChunksAreFragments: a fragmented MP4 goes a whole fragment at a
// time (MediaRecorder hands over complete fragments only).
func TestFMP4ChunksAreFragments(t *testing.T) {
	r, err := LoadReplay(KindFMP4, committed(), 100*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	for i, m := range r.Messages {
		// Walk the top-level boxes: the chunk must end where one ends.
		b := m.Data
		for len(b) >= 8 {
			size := int(binary.BigEndian.Uint32(b))
			if size < 8 || size > len(b) {
				t.Fatalf("chunk %d cuts a box (%q of %d bytes, %d left)", i, b[4:8], size, len(b))
			}
			b = b[size:]
		}
		if len(b) != 0 {
			t.Fatalf("chunk %d ends inside a box header", i)
		}
	}
	if len(r.Messages) > 8 {
		t.Errorf("%d chunks for 4 fragments and the header", len(r.Messages))
	}
}

// TestPaceLoops replays two loops: MediaRecorder restarts the byte stream
// behind a restart message, WebCodecs keeps its timestamps going.
func TestPaceLoops(t *testing.T) {
	for _, kind := range []string{KindMKV, KindWebCodecs} {
		t.Run(kind, func(t *testing.T) {
			r, err := LoadReplay(kind, committed(), 100*time.Millisecond)
			if err != nil {
				t.Fatal(err)
			}
			// Fast: every message at once (its due time has passed).
			p := &publisher{Replay: r}
			var restarts int
			var stream []byte
			d := r.Period + r.Period/2
			t0 := time.Now().Add(-2 * d)
			err = p.pace(context.Background(), t0, d, time.Now().Add(time.Minute), nil,
				func() error { restarts++; return nil },
				func(b []byte) error { stream = append(stream, b...); return nil })
			if err != nil {
				t.Fatal(err)
			}
			if p.scheduled != len(p.sent) || p.scheduled == 0 {
				t.Fatalf("%d frames scheduled, %d sent", p.scheduled, len(p.sent))
			}
			last := p.sent[len(p.sent)-1]
			switch kind {
			case KindMKV:
				if restarts != 1 || last.Seg != 1 {
					t.Fatalf("%d restarts, last stretch %d; want 1 and 1", restarts, last.Seg)
				}
			case KindWebCodecs:
				if restarts != 0 || last.Seg != 0 || last.Rel < r.Period {
					t.Fatalf("%d restarts, last frame at %v of stretch %d; want none, past %v, 0", restarts, last.Rel, last.Seg, r.Period)
				}
				// The frames read back: timestamps go on across the loop.
				pkts := readAll(t, &Replay{Kind: kind, Messages: []sendable{{Data: stream}}})
				var prev time.Duration = -1
				for i, pk := range pkts {
					if pk.Track.Codec.IsVideo() {
						if pk.PTS <= prev {
							t.Fatalf("video frame %d at %v after %v", i, pk.PTS, prev)
						}
						prev = pk.PTS
					}
				}
				if prev < r.Period {
					t.Fatalf("the last frame at %v: the second loop is missing", prev)
				}
			}
			if p.lag < 0 {
				t.Fatal("negative lag")
			}
		})
	}
}
