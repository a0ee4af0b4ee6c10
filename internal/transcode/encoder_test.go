package transcode

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/livegate/livegate/internal/demux/webm"
	"github.com/livegate/livegate/internal/media"
	"github.com/livegate/livegate/internal/testutil"
)

// collector gathers an encoder's output.
type collector struct {
	mu   sync.Mutex
	pkts []*media.Packet
}

func (c *collector) add(p *media.Packet) { c.mu.Lock(); c.pkts = append(c.pkts, p); c.mu.Unlock() }
func (c *collector) count(codec media.Codec) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, p := range c.pkts {
		if p.Track.Codec == codec {
			n++
		}
	}
	return n
}

func newEncoder(t *testing.T, inputs []*media.Track, out *collector) *Encoder {
	t.Helper()
	e := &Encoder{Path: "ffmpeg", Inputs: inputs, Log: testutil.Logger(), OnPacket: out.add,
		Options: Options{VideoBitrate: 1_000_000, KeyframeInterval: time.Second, X264Preset: "ultrafast", AudioBitrate: 128_000, AudioSampleRate: 48000}}
	if err := e.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	return e
}

func TestEncoderOpusToAAC(t *testing.T) {
	tracks, pkts := testutil.Demux(t, "../demux/webm/testdata/chromium-h264-opus.mkv", webm.NewReader)
	var opus *media.Track
	for _, tr := range tracks {
		if tr.Codec == media.CodecOpus {
			opus = tr
		}
	}
	out := &collector{}
	e := newEncoder(t, []*media.Track{opus}, out)
	var first, last time.Duration
	n := 0
	for _, p := range pkts {
		if p.Track != opus {
			continue
		}
		if n == 0 {
			first = p.PTS
		}
		last = p.PTS
		n++
		if err := e.WritePacket(p); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	outTracks, err := e.Tracks(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(outTracks) != 1 || outTracks[0].Codec != media.CodecAAC || outTracks[0].AAC.SampleRate != 48000 {
		t.Fatalf("output tracks %v", outTracks)
	}
	e.Finish(5 * time.Second)
	// AAC frames are 1024 samples: as many as the input's duration holds.
	want := int((last - first + 60*time.Millisecond).Seconds() * 48000 / 1024)
	got := out.count(media.CodecAAC)
	if got < want-3 || got > want+3 {
		t.Errorf("%d AAC frames, want about %d", got, want)
	}
	out.mu.Lock()
	defer out.mu.Unlock()
	if d := out.pkts[0].PTS - first; d < -50*time.Millisecond || d > 50*time.Millisecond {
		t.Errorf("first AAC packet at %v, input began at %v: the clocks differ", out.pkts[0].PTS, first)
	}
	for i := 1; i < len(out.pkts); i++ {
		if out.pkts[i].DTS <= out.pkts[i-1].DTS {
			t.Fatalf("AAC timestamps not increasing at %d: %v after %v", i, out.pkts[i].DTS, out.pkts[i-1].DTS)
		}
	}
	if e.CPUTime() <= 0 {
		t.Error("no CPU time recorded")
	}
}

func TestEncoderRestartsAfterKill(t *testing.T) {
	// The session runs one encoder per track; here, Firefox's audio.
	tracks, all := testutil.Demux(t, "../demux/webm/testdata/firefox-vp8-opus.webm", webm.NewReader)
	var opus *media.Track
	for _, tr := range tracks {
		if tr.Codec == media.CodecOpus {
			opus = tr
		}
	}
	var pkts []*media.Packet
	for _, p := range all {
		if p.Track == opus {
			pkts = append(pkts, p)
		}
	}
	out := &collector{}
	e := newEncoder(t, []*media.Track{opus}, out)
	half := len(pkts) / 2
	for _, p := range pkts[:half] {
		if err := e.WritePacket(p); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := e.Tracks(ctx); err != nil {
		t.Fatal(err)
	}
	pid := e.PID()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for e.Restarts() == 0 || e.PID() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the encoder was not restarted")
		}
		time.Sleep(10 * time.Millisecond)
	}
	before := out.count(media.CodecAAC)
	for _, p := range pkts[half:] {
		if err := e.WritePacket(p); err != nil {
			t.Fatal(err)
		}
	}
	e.Finish(5 * time.Second)
	if after := out.count(media.CodecAAC); after <= before {
		t.Errorf("no output after the restart (%d AAC frames before, %d after)", before, after)
	}
	if e.Err() != nil {
		t.Errorf("encoder error %v", e.Err())
	}
}

func TestEncoderVP8ToH264Profile(t *testing.T) {
	tracks, all := testutil.Demux(t, "../demux/webm/testdata/firefox-vp8-opus.webm", webm.NewReader)
	var vp8 *media.Track
	for _, tr := range tracks {
		if tr.Codec == media.CodecVP8 {
			vp8 = tr
		}
	}
	out := &collector{}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	e := &Encoder{Path: "ffmpeg", Inputs: []*media.Track{vp8}, Log: log, OnPacket: out.add,
		Options: Options{Width: 854, Height: 480, FPS: 30, VideoBitrate: 1_000_000, KeyframeInterval: time.Second, X264Preset: "ultrafast"}}
	if err := e.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	in := 0
	for _, p := range all {
		if p.Track == vp8 {
			in++
			if err := e.WritePacket(p); err != nil {
				t.Fatal(err)
			}
		}
	}
	e.Finish(10 * time.Second)
	ot := e.OutputTracks()
	if len(ot) != 1 || ot[0].Codec != media.CodecH264 {
		t.Fatalf("output tracks %v", ot)
	}
	// (x264 signals the lowest profile its settings need: ultrafast here
	// makes Constrained Baseline, veryfast High.)
	if info := media.H264Info(ot[0].SPS); !strings.Contains(info, "854x480") {
		t.Errorf("output %s, want 854x480", info)
	}
	if got := out.count(media.CodecH264); got < in*9/10 {
		t.Errorf("%d H.264 frames out for %d VP8 frames in", got, in)
	}
}
