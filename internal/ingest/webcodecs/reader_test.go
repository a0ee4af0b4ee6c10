package webcodecs

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/livegate/livegate/internal/demux/webm"
	"github.com/livegate/livegate/internal/media"
	"github.com/livegate/livegate/internal/testutil"
)

// frameStream turns a real Chromium recording into what the webcodecs
// page sends: configurations, then one frame per packet.
func frameStream(t testing.TB) ([]byte, []*media.Packet) {
	t.Helper()
	tracks, pkts := testutil.Demux(t, "../../demux/webm/testdata/chromium-h264-opus.mkv", webm.NewReader)
	var want []*media.Packet
	for _, p := range pkts {
		if p.PTS >= 0 {
			want = append(want, p)
		}
	}
	return Frames(tracks, pkts), want
}

// readAll reads a whole frame stream; a clean end (io.EOF) is no error.
func readAll(t testing.TB, r io.Reader) ([]*media.Track, []*media.Packet, error) {
	t.Helper()
	tracks, pkts, err := testutil.ReadAll(r, func(r io.Reader) (*Reader, error) { return NewReader(r, true, true) })
	if errors.Is(err, io.EOF) {
		err = nil
	}
	return tracks, pkts, err
}

func TestReadsWhatTheBrowserSent(t *testing.T) {
	stream, want := frameStream(t)
	tracks, got, err := readAll(t, bytes.NewReader(stream))
	if err != nil {
		t.Fatal(err)
	}
	if len(tracks) != 2 || tracks[0].Codec != media.CodecH264 || tracks[0].Width != 1280 || tracks[1].Codec != media.CodecOpus {
		t.Fatalf("tracks %v", tracks)
	}
	if len(got) != len(want) {
		t.Fatalf("%d packets, want %d", len(got), len(want))
	}
	for i := range got {
		w := want[i]
		if got[i].PTS != w.PTS.Truncate(time.Microsecond) || got[i].Key != w.Key || got[i].Size() != w.Size() || got[i].Track.Codec != w.Track.Codec {
			t.Fatalf("packet %d: %v %v %d, want %v %v %d", i, got[i].PTS, got[i].Key, got[i].Size(), w.PTS, w.Key, w.Size())
		}
	}
}

// TestSplitInvariance: however the messages are cut (they arrive as one
// stream through a pipe), the packets are the same.
func TestSplitInvariance(t *testing.T) {
	stream, _ := frameStream(t)
	_, whole, err := readAll(t, bytes.NewReader(stream))
	if err != nil {
		t.Fatal(err)
	}
	for seed := uint64(0); seed < 20; seed++ {
		pr, pw := io.Pipe()
		go func() { // ends when the stream is written; the reader reads it all
			rng := rand.New(rand.NewPCG(seed, 7))
			rest := stream
			for len(rest) > 0 {
				n := min(len(rest), 1+rng.IntN(int(seed)*500+3))
				_, _ = pw.Write(rest[:n])
				rest = rest[n:]
			}
			_ = pw.Close()
		}()
		_, got, err := readAll(t, pr)
		if err != nil {
			t.Fatal(err)
		}
		testutil.EqualPackets(t, "split", got, whole)
	}
}

func TestBadFrames(t *testing.T) {
	stream, _ := frameStream(t)
	cfg := stream[:0:0]
	// The two configuration frames of the recording.
	for len(cfg) < 2*HeaderSize {
		cfg = stream[:HeaderSize+int(be32(stream[10:14]))]
		cfg = stream[:len(cfg)+HeaderSize+int(be32(stream[len(cfg)+10:len(cfg)+14]))]
	}
	key := AppendFrame(nil, TypeVideo, FlagKey, 0, []byte{0, 0, 0, 2, 0x65, 0x88})
	for _, ca := range []struct {
		name  string
		in    []byte
		video bool
		want  error
	}{
		{"empty", nil, true, io.EOF},
		{"unknown type", AppendFrame(nil, 9, 0, 0, nil), true, ErrBadFrame},
		{"unknown flag", AppendFrame(nil, TypeVideo, 0x80, 0, nil), true, ErrBadFrame},
		{"length that lies (too big)", append([]byte{TypeAudio, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff}, 1, 2, 3), true, ErrBadFrame},
		{"length that lies (past the end)", AppendFrame(nil, TypeAudioConfig, 0, 0, make([]byte, 100))[:50], true, ErrBadFrame},
		{"cut header", []byte{TypeVideo, 0, 0}, true, ErrBadFrame},
		{"negative time", AppendFrame(nil, TypeAudio, 0, -time.Second, []byte{1}), true, ErrBadFrame},
		{"frame before configuration", key, true, ErrNoConfig},
		{"audio config not an OpusHead", AppendFrame(nil, TypeAudioConfig, 0, 0, []byte("hello, this is not opus")), true, ErrBadFrame},
		{"video config is garbage", AppendFrame(nil, TypeVideoConfig, 0, 0, []byte{7, 7, 7}), true, ErrBadFrame},
		{"video in an audio-only stream", AppendFrame(nil, TypeVideoConfig, 0, 0, nil), false, ErrBadFrame},
		{"first video frame not a key frame", append(append([]byte(nil), cfg...), AppendFrame(nil, TypeVideo, 0, 0, []byte{0, 0, 0, 2, 0x41, 0x9a})...), true, ErrBadFrame},
		{"empty Opus packet", append(append([]byte(nil), cfg...), AppendFrame(nil, TypeAudio, FlagKey, 0, nil)...), true, ErrBadFrame},
	} {
		t.Run(ca.name, func(t *testing.T) {
			r, err := NewReader(bytes.NewReader(ca.in), ca.video, true)
			if err != nil {
				t.Fatal(err)
			}
			for err == nil {
				_, err = r.ReadPacket()
			}
			if !errors.Is(err, ca.want) {
				t.Fatalf("error %v, want %v", err, ca.want)
			}
		})
	}
}

func be32(b []byte) uint32 {
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

func FuzzReader(f *testing.F) {
	stream, _ := frameStream(f)
	f.Add(stream[:min(len(stream), 4096)])
	f.Add(AppendFrame(nil, TypeAudio, 0, 0, []byte{1}))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := NewReader(bytes.NewReader(data), true, true)
		if err != nil {
			return
		}
		for i := 0; i < 1000; i++ {
			if _, err := r.ReadPacket(); err != nil {
				return
			}
		}
	})
}

// TestOpusPreSkip: the browser stamps an Opus chunk after the encoder's
// pre-skip; the reader moves it back so that a decoder that drops the
// pre-skip puts the sound at the right time.
func TestOpusPreSkip(t *testing.T) {
	head := []byte("OpusHead\x01\x01\x38\x01\x80\xbb\x00\x00\x00\x00\x00") // pre_skip 312
	var b []byte
	b = AppendFrame(b, TypeAudioConfig, 0, 0, head)
	b = AppendFrame(b, TypeAudio, FlagKey, time.Second, []byte{0xfc, 0xff, 0xfe})
	r, err := NewReader(bytes.NewReader(b), false, true)
	if err != nil {
		t.Fatal(err)
	}
	p, err := r.ReadPacket()
	if err != nil {
		t.Fatal(err)
	}
	if want := time.Second - 6500*time.Microsecond; p.PTS != want || p.DTS != want {
		t.Errorf("PTS %v DTS %v, want %v", p.PTS, p.DTS, want)
	}
}
