// Package fmp4 writes H.264 and AAC packets as fragmented MP4 (ISO
// 14496-12): an init segment, then fragments of a fraction of a second, the
// form Media Source Extensions play. It is the counterpart of
// internal/demux/fmp4; the boxes are written by mediacommon.
package fmp4

import (
	"errors"
	"fmt"
	"time"

	mcfmp4 "github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4/seekablebuffer"
	mp4codecs "github.com/bluenviron/mediacommon/v2/pkg/formats/mp4/codecs"

	"github.com/livegate/livegate/internal/media"
)

const (
	// DefaultFragmentDuration is the media in one fragment when
	// Muxer.FragmentDuration is 0: short, for a low latency.
	DefaultFragmentDuration = 200 * time.Millisecond
	videoTimeScale          = 90000
	aacFrameSamples         = 1024
)

// ErrNoTracks is returned by Initialize without a usable track.
var ErrNoTracks = errors.New("fmp4: no H.264 video or AAC audio track")

// Muxer turns packets into fMP4. Set Video and/or Audio, Initialize, then
// Write packets in arrival order and Flush at the end. A Muxer is used by
// one goroutine.
//
// The first fragment starts at the first video key frame (packets before it
// are skipped); that key frame is time 0 of both tracks, and audio from
// before it is skipped too. A fragment ends before a video key frame, or
// when it holds FragmentDuration of media, whichever comes first. Each
// sample lasts until the next one of its track, so a packet is written one
// packet later. Decode times are continuous: a track's base media decode
// time is the sum of the durations before it, and a gap in the packets
// (lost ones) lengthens the sample before it.
type Muxer struct {
	// Video is an H.264 track with its SPS and PPS; Audio an AAC track
	// with its AudioSpecificConfig. Either may be nil.
	Video, Audio *media.Track
	// FragmentDuration: 0 means DefaultFragmentDuration.
	FragmentDuration time.Duration

	tracks  []*track
	primary *track // video if any: it decides the fragments
	started bool
	zero    time.Duration // DTS of time 0
	seq     uint32
}

type track struct {
	id        int
	timeScale uint32
	media     *media.Track
	isVideo   bool
	limit     uint64 // FragmentDuration in ticks

	// The last packet, waiting for the next one for its duration.
	pending     *mcfmp4.Sample
	pendingTime uint64 // its decode time
	lastDur     uint32

	samples  []*mcfmp4.Sample // complete, for the next fragment
	baseTime uint64           // decode time of samples[0]
	fragDur  uint64           // the sum of their durations
}

// Initialize checks the tracks.
func (m *Muxer) Initialize() error {
	if m.FragmentDuration <= 0 {
		m.FragmentDuration = DefaultFragmentDuration
	}
	if m.Video != nil {
		if m.Video.Codec != media.CodecH264 || len(m.Video.SPS) < 4 || len(m.Video.PPS) == 0 {
			return fmt.Errorf("fmp4: video track %v: want H.264 with its SPS and PPS", m.Video)
		}
		m.tracks = append(m.tracks, &track{media: m.Video, isVideo: true, timeScale: videoTimeScale})
	}
	if m.Audio != nil {
		if m.Audio.Codec != media.CodecAAC || m.Audio.AAC == nil || m.Audio.AAC.SampleRate <= 0 {
			return fmt.Errorf("fmp4: audio track %v: want AAC with its AudioSpecificConfig", m.Audio)
		}
		m.tracks = append(m.tracks, &track{media: m.Audio, timeScale: uint32(m.Audio.AAC.SampleRate)})
	}
	if len(m.tracks) == 0 {
		return ErrNoTracks
	}
	for i, t := range m.tracks {
		t.id = i + 1
		t.limit = ticks(m.FragmentDuration, t.timeScale)
	}
	m.primary = m.tracks[0]
	return nil
}

// MIME is the MIME type with codecs for MediaSource.addSourceBuffer, for
// example `video/mp4; codecs="avc1.42c01f,mp4a.40.2"`.
func (m *Muxer) MIME() string {
	kind := "audio/mp4"
	if m.Video != nil {
		kind = "video/mp4"
	}
	codecs := ""
	for _, t := range m.tracks {
		if codecs != "" {
			codecs += ","
		}
		codecs += t.media.CodecString()
	}
	return fmt.Sprintf("%s; codecs=%q", kind, codecs)
}

// InitSegment is the ftyp and moov boxes.
func (m *Muxer) InitSegment() ([]byte, error) {
	init := mcfmp4.Init{}
	for _, t := range m.tracks {
		it := &mcfmp4.InitTrack{ID: t.id, TimeScale: t.timeScale}
		if t.isVideo {
			it.Codec = &mp4codecs.H264{SPS: t.media.SPS, PPS: t.media.PPS}
		} else {
			it.Codec = &mp4codecs.MPEG4Audio{Config: *t.media.AAC}
		}
		init.Tracks = append(init.Tracks, it)
	}
	var buf seekablebuffer.Buffer
	if err := init.Marshal(&buf); err != nil {
		return nil, fmt.Errorf("fmp4: init segment: %w", err)
	}
	return buf.Bytes(), nil
}

// Write takes the next packet. It returns a fragment (moof and mdat) when
// one is complete, and nil otherwise. Packets of other tracks are ignored.
func (m *Muxer) Write(pkt *media.Packet) ([]byte, error) {
	var t *track
	for _, c := range m.tracks {
		if c.media == pkt.Track {
			t = c
		}
	}
	if t == nil {
		return nil, nil
	}
	if !m.started {
		if t != m.primary || (t.isVideo && !pkt.Key) {
			return nil, nil
		}
		m.started = true
		m.zero = pkt.DTS
	}
	if pkt.DTS < m.zero {
		return nil, nil // audio from before the first key frame
	}
	at := ticks(pkt.DTS-m.zero, t.timeScale)

	var frag []byte
	if t.pending != nil {
		d := t.duration(at)
		t.complete(d)
		if t == m.primary && ((t.isVideo && pkt.Key) || t.fragDur >= t.limit) {
			var err error
			if frag, err = m.fragment(); err != nil {
				return nil, err
			}
		}
	} else {
		t.pendingTime = at
		t.baseTime = at
	}

	s := &mcfmp4.Sample{}
	if t.isVideo {
		s.Payload = media.AppendAVCC(make([]byte, 0, pkt.Size()+4*len(pkt.AU)), pkt.AU)
		s.IsNonSyncSample = !pkt.Key
		if pkt.PTS > pkt.DTS {
			s.PTSOffset = int32(ticks(pkt.PTS-m.zero, t.timeScale) - at)
		}
	} else {
		s.Payload = pkt.Data
	}
	t.pending = s
	return frag, nil
}

// Flush returns the last fragment: the samples still held, the last of
// each track lasting as long as the one before it. It returns nil when
// there are none.
func (m *Muxer) Flush() ([]byte, error) {
	for _, t := range m.tracks {
		if t.pending != nil {
			d := uint64(t.lastDur)
			if d == 0 {
				d = uint64(t.nominal())
			}
			t.complete(d)
		}
	}
	return m.fragment()
}

// duration is the pending sample's, given the next one's decode time at.
func (t *track) duration(at uint64) uint64 {
	if at <= t.pendingTime {
		return 1 // timestamps that went back: keep the order, lose no time
	}
	d := at - t.pendingTime
	if !t.isVideo {
		// An AAC frame is 1024 samples; RTMP timestamps are rounded to
		// the millisecond. Keep the exact length unless the timestamps
		// drifted half a frame away (a lost packet, a clock that drifts).
		if n := uint64(t.nominal()); d > n/2 && d < n+n/2 {
			d = n
		}
	}
	return d
}

func (t *track) nominal() uint32 {
	if t.isVideo {
		return videoTimeScale / 30
	}
	return aacFrameSamples
}

func (t *track) complete(d uint64) {
	t.pending.Duration = uint32(min(d, 1<<32-1))
	t.samples = append(t.samples, t.pending)
	t.fragDur += uint64(t.pending.Duration)
	t.pendingTime += uint64(t.pending.Duration)
	t.lastDur = t.pending.Duration
	t.pending = nil
}

// fragment writes the complete samples of every track as one fragment.
func (m *Muxer) fragment() ([]byte, error) {
	part := mcfmp4.Part{}
	for _, t := range m.tracks {
		if len(t.samples) == 0 {
			continue
		}
		part.Tracks = append(part.Tracks, &mcfmp4.PartTrack{ID: t.id, BaseTime: t.baseTime, Samples: t.samples})
		t.baseTime += t.fragDur
		t.samples, t.fragDur = nil, 0
	}
	if len(part.Tracks) == 0 {
		return nil, nil
	}
	m.seq++
	part.SequenceNumber = m.seq
	var buf seekablebuffer.Buffer
	if err := part.Marshal(&buf); err != nil {
		return nil, fmt.Errorf("fmp4: fragment: %w", err)
	}
	return buf.Bytes(), nil
}

// ticks converts a duration (>= 0) to a time scale without overflow.
func ticks(d time.Duration, scale uint32) uint64 {
	return uint64(d/time.Second)*uint64(scale) + uint64(d%time.Second)*uint64(scale)/uint64(time.Second)
}
