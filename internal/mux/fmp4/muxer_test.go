package fmp4

import (
	"bytes"
	"testing"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
	mcfmp4 "github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"
	mp4codecs "github.com/bluenviron/mediacommon/v2/pkg/formats/mp4/codecs"

	"github.com/livegate/livegate/internal/demux/flv"
	"github.com/livegate/livegate/internal/media"
	"github.com/livegate/livegate/internal/testutil"
)

// testFile is H.264 Constrained Baseline 320x240 at 30 fps (a key frame
// every 30) with AAC 48 kHz, 2 s.
const testFile = "../../demux/flv/testdata/h264-aac.flv"

func loadPackets(t *testing.T) (video, audio *media.Track, pkts []*media.Packet) {
	t.Helper()
	tracks, pkts := testutil.Demux(t, testFile, flv.NewReader)
	for _, tr := range tracks {
		switch tr.Codec {
		case media.CodecH264:
			video = tr
		case media.CodecAAC:
			audio = tr
		}
	}
	return video, audio, pkts
}

// mux writes every packet and returns the init segment and the fragments.
func mux(t *testing.T, m *Muxer, pkts []*media.Packet) ([]byte, [][]byte) {
	t.Helper()
	if err := m.Initialize(); err != nil {
		t.Fatal(err)
	}
	init, err := m.InitSegment()
	if err != nil {
		t.Fatal(err)
	}
	var frags [][]byte
	for _, p := range pkts {
		f, err := m.Write(p)
		if err != nil {
			t.Fatal(err)
		}
		if f != nil {
			frags = append(frags, f)
		}
	}
	f, err := m.Flush()
	if err != nil {
		t.Fatal(err)
	}
	if f != nil {
		frags = append(frags, f)
	}
	return init, frags
}

func TestMuxer(t *testing.T) {
	video, audio, pkts := loadPackets(t)
	m := &Muxer{Video: video, Audio: audio}
	init, frags := mux(t, m, pkts)

	if got, want := m.MIME(), `video/mp4; codecs="avc1.42c00d,mp4a.40.2"`; got != want {
		t.Errorf("MIME() = %s, want %s", got, want)
	}
	var in mcfmp4.Init
	if err := in.Unmarshal(bytes.NewReader(init)); err != nil {
		t.Fatalf("init segment: %v", err)
	}
	if len(in.Tracks) != 2 {
		t.Fatalf("init has %d tracks, want 2", len(in.Tracks))
	}
	h, ok := in.Tracks[0].Codec.(*mp4codecs.H264)
	if !ok || in.Tracks[0].ID != 1 || in.Tracks[0].TimeScale != 90000 || !bytes.Equal(h.SPS, video.SPS) || !bytes.Equal(h.PPS, video.PPS) {
		t.Errorf("video track %+v codec %+v", in.Tracks[0], in.Tracks[0].Codec)
	}
	a, ok := in.Tracks[1].Codec.(*mp4codecs.MPEG4Audio)
	if !ok || in.Tracks[1].ID != 2 || in.Tracks[1].TimeScale != 48000 || a.Config.Type != mpeg4audio.ObjectTypeAACLC || a.Config.SampleRate != 48000 {
		t.Errorf("audio track %+v codec %+v", in.Tracks[1], in.Tracks[1].Codec)
	}

	// The packets from the first key frame on; audio from its time on.
	first := -1
	for i, p := range pkts {
		if p.Track == video && p.Key {
			first = i
			break
		}
	}
	var wantVideo, wantAudio int
	for _, p := range pkts[first:] {
		if p.Track == video {
			wantVideo++
		} else if p.DTS >= pkts[first].DTS {
			wantAudio++
		}
	}

	next := map[uint32]uint64{}
	var gotVideo, gotAudio int
	var nextSeq uint32 = 1
	for i, f := range frags {
		var parts mcfmp4.Parts
		if err := parts.Unmarshal(f); err != nil {
			t.Fatalf("fragment %d: %v", i, err)
		}
		if len(parts) != 1 || parts[0].SequenceNumber != nextSeq {
			t.Fatalf("fragment %d: %d parts, sequence %d; want one, %d", i, len(parts), parts[0].SequenceNumber, nextSeq)
		}
		nextSeq++
		for _, pt := range parts[0].Tracks {
			id := uint32(pt.ID)
			if want, ok := next[id]; ok && pt.BaseTime != want {
				t.Errorf("fragment %d track %d: base time %d, want %d (continuous)", i, id, pt.BaseTime, want)
			}
			var d uint64
			for j, s := range pt.Samples {
				d += uint64(s.Duration)
				if len(s.Payload) == 0 || s.Duration == 0 {
					t.Errorf("fragment %d track %d sample %d: %d bytes, duration %d", i, id, j, len(s.Payload), s.Duration)
				}
				if id == 1 && j > 0 && !s.IsNonSyncSample {
					t.Errorf("fragment %d: key frame at sample %d, want fragments to start at key frames", i, j)
				}
			}
			next[id] = pt.BaseTime + d
			if id == 1 {
				if i == 0 && (pt.BaseTime != 0 || pt.Samples[0].IsNonSyncSample) {
					t.Errorf("first fragment: video starts at %d, sync %v; want a key frame at 0", pt.BaseTime, !pt.Samples[0].IsNonSyncSample)
				}
				if i < len(frags)-1 && (d < 90000/5-3000 || d > 90000/5+3000) {
					t.Errorf("fragment %d holds %d ms of video, want about 200", i, d/90)
				}
				gotVideo += len(pt.Samples)
				// The payload is AVCC: the first NAL unit's length, then
				// the unit.
				if p := pt.Samples[0].Payload; len(p) < 5 {
					t.Errorf("fragment %d: video payload %x", i, p)
				}
			} else {
				gotAudio += len(pt.Samples)
				for _, s := range pt.Samples[:len(pt.Samples)-1] {
					if s.Duration != 1024 {
						t.Errorf("fragment %d: AAC sample of %d, want 1024", i, s.Duration)
					}
				}
			}
		}
	}
	if gotVideo != wantVideo || gotAudio != wantAudio {
		t.Errorf("%d video and %d audio samples, want %d and %d", gotVideo, gotAudio, wantVideo, wantAudio)
	}
	// 2 s of 200 ms fragments.
	if len(frags) < 9 || len(frags) > 12 {
		t.Errorf("%d fragments for 2 s, want about 10", len(frags))
	}
	t.Logf("init %d bytes, %d fragments, %d video and %d audio samples", len(init), len(frags), gotVideo, gotAudio)
}

func TestMuxerFragmentsEndAtKeyFrames(t *testing.T) {
	video, _, pkts := loadPackets(t)
	m := &Muxer{Video: video, FragmentDuration: time.Hour}
	_, frags := mux(t, m, pkts)
	// Key frames every 30 of 60 frames: one fragment per GOP.
	if len(frags) != 2 {
		t.Fatalf("%d fragments with an hour's limit, want one per GOP (2)", len(frags))
	}
	if got, want := m.MIME(), `video/mp4; codecs="avc1.42c00d"`; got != want {
		t.Errorf("MIME() = %s, want %s", got, want)
	}
}

func TestMuxerAudioOnly(t *testing.T) {
	_, audio, pkts := loadPackets(t)
	m := &Muxer{Audio: audio}
	init, frags := mux(t, m, pkts)
	var in mcfmp4.Init
	if err := in.Unmarshal(bytes.NewReader(init)); err != nil || len(in.Tracks) != 1 || in.Tracks[0].ID != 1 {
		t.Fatalf("init: %v %+v", err, in.Tracks)
	}
	if got, want := m.MIME(), `audio/mp4; codecs="mp4a.40.2"`; got != want {
		t.Errorf("MIME() = %s, want %s", got, want)
	}
	n := 0
	for _, f := range frags {
		var parts mcfmp4.Parts
		if err := parts.Unmarshal(f); err != nil {
			t.Fatal(err)
		}
		n += len(parts[0].Tracks[0].Samples)
	}
	if n != 95 {
		t.Errorf("%d audio samples, want 95", n)
	}
}

func TestAudioDurations(t *testing.T) {
	for _, ca := range []struct {
		name string
		gaps []time.Duration // between packets
		want []uint32
	}{
		{"millisecond timestamps", []time.Duration{21, 22, 21, 21}, []uint32{1024, 1024, 1024, 1024, 1024}},
		{"a lost frame", []time.Duration{21, 43, 21}, []uint32{1024, 2048, 1024, 1024}},
		{"timestamps that go back", []time.Duration{21, -5, 21}, []uint32{1024, 1, 1024, 1024}},
	} {
		t.Run(ca.name, func(t *testing.T) {
			tr := &track{timeScale: 48000}
			var d time.Duration
			var got []uint32
			tr.pending = &mcfmp4.Sample{}
			for _, g := range ca.gaps {
				d += g * time.Millisecond
				tr.complete(tr.duration(ticks(max(d, 0), 48000)))
				got = append(got, tr.lastDur)
				tr.pending = &mcfmp4.Sample{}
			}
			tr.complete(uint64(tr.lastDur))
			got = append(got, tr.lastDur)
			if len(got) != len(ca.want) {
				t.Fatalf("durations %v, want %v", got, ca.want)
			}
			for i := range got {
				if got[i] != ca.want[i] {
					t.Fatalf("durations %v, want %v", got, ca.want)
				}
			}
		})
	}
}

func TestInitializeErrors(t *testing.T) {
	video, audio, _ := loadPackets(t)
	for _, ca := range []struct {
		name         string
		video, audio *media.Track
	}{
		{"nothing", nil, nil},
		{"video without sps", &media.Track{Codec: media.CodecH264}, nil},
		{"vp8", &media.Track{Codec: media.CodecVP8}, audio},
		{"opus", video, &media.Track{Codec: media.CodecOpus}},
		{"aac without config", nil, &media.Track{Codec: media.CodecAAC}},
	} {
		t.Run(ca.name, func(t *testing.T) {
			m := &Muxer{Video: ca.video, Audio: ca.audio}
			if err := m.Initialize(); err == nil {
				t.Error("Initialize accepted the tracks")
			}
		})
	}
}

func TestTicks(t *testing.T) {
	for _, ca := range []struct {
		d     time.Duration
		scale uint32
		want  uint64
	}{
		{time.Second, 90000, 90000},
		{33 * time.Millisecond, 90000, 2970},
		{21333 * time.Microsecond, 48000, 1023},
		{1000 * time.Hour, 90000, 1000 * 3600 * 90000},
	} {
		if got := ticks(ca.d, ca.scale); got != ca.want {
			t.Errorf("ticks(%v, %d) = %d, want %d", ca.d, ca.scale, got, ca.want)
		}
	}
}
