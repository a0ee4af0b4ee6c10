package webm

import (
	"bytes"
	"fmt"
	"strings"
	"time"

	"github.com/livegate/livegate/internal/media"
)

// Codec IDs (RFC 9559 and the Matroska codec mappings).
const (
	codecH264 = "V_MPEG4/ISO/AVC"
	codecVP8  = "V_VP8"
	codecVP9  = "V_VP9"
	codecAV1  = "V_AV1"
	codecOpus = "A_OPUS"
)

// opusSampleRate is the rate Opus always decodes at (RFC 7845, 5.1).
// Matroska's SamplingFrequency is not read: for Opus it only tells the
// input's rate (Firefox writes 44100 there).
const opusSampleRate = 48000

// Plausibility bounds for what a TrackEntry says.
const (
	maxPixels     = 1 << 16
	maxChannels   = 255
	maxSampleRate = 1_000_000
	maxCodecDelay = time.Minute
)

// trackEntry is what a TrackEntry says, as it is read.
type trackEntry struct {
	number          uint64
	codecID         string
	private         []byte
	width, height   uint64
	channels        uint64
	defaultDuration uint64
	codecDelay      uint64
	encoded         bool // has ContentEncodings: compressed or encrypted
}

// track is a usable track and what reading its blocks needs.
type track struct {
	t               *media.Track
	number          uint64
	avcc            bool          // H.264: CodecPrivate has an avcC
	lengthSize      int           // H.264: bytes of a NAL unit's length prefix
	defaultDuration time.Duration // 0 when not given
	codecDelay      time.Duration
	dts             dtsState // H.264
}

// trackElement handles a child of TrackEntry, Video or Audio.
func (r *Reader) trackElement(id uint32, size int64) error {
	e := r.entry
	var err error
	switch id {
	case idTrackNumber:
		e.number, err = r.readUint(id, size)
	case idCodecID:
		var b []byte
		b, err = r.readBytes(id, size, maxCodecIDLength)
		e.codecID = string(bytes.TrimRight(b, "\x00"))
	case idCodecPrivate:
		e.private, err = r.readBytes(id, size, maxElementSize)
	case idDefaultDuration:
		e.defaultDuration, err = r.readUint(id, size)
	case idCodecDelay:
		e.codecDelay, err = r.readUint(id, size)
	case idContentEncodings:
		e.encoded = true
		err = r.skip(id, size)
	case idVideo, idAudio:
		if r.stack[len(r.stack)-1].id != idTrackEntry {
			return r.skip(id, size)
		}
		return r.push(id, size)
	case idPixelWidth, idPixelHeight:
		var v uint64
		v, err = r.readUint(id, size)
		if id == idPixelWidth {
			e.width = v
		} else {
			e.height = v
		}
	case idChannels:
		e.channels, err = r.readUint(id, size)
	default:
		err = r.skip(id, size)
	}
	return err
}

// addTrack checks a TrackEntry that has ended and keeps it when livegate
// can use its codec.
func (r *Reader) addTrack(e *trackEntry) error {
	if e.number == 0 {
		return fmt.Errorf("%w: a TrackEntry without TrackNumber", ErrInvalid)
	}
	for _, n := range r.entries {
		if n == e.number {
			return fmt.Errorf("%w: two tracks numbered %d", ErrInvalid, e.number)
		}
	}
	r.entries = append(r.entries, e.number)
	if e.encoded {
		r.unusable = append(r.unusable, e.codecID+" (with ContentEncodings)")
		return nil
	}
	t := &track{number: e.number}
	mt := &media.Track{}
	switch e.codecID {
	case codecH264:
		mt.Codec = media.CodecH264
		t.lengthSize = 4 // what a stream without avcC uses
		if len(e.private) > 0 {
			sps, pps, ls, err := media.ParseAVCC(e.private)
			if err != nil {
				return fmt.Errorf("%w: track %d CodecPrivate: %w", ErrInvalid, e.number, err)
			}
			if ls == 3 {
				return fmt.Errorf("%w: track %d: H.264 NAL length size 3", ErrInvalid, e.number)
			}
			mt.SPS, mt.PPS, t.lengthSize, t.avcc = bytes.Clone(sps), bytes.Clone(pps), ls, true
		}
	case codecVP8:
		mt.Codec = media.CodecVP8
	case codecVP9:
		mt.Codec = media.CodecVP9
	case codecAV1:
		mt.Codec = media.CodecAV1
	case codecOpus:
		mt.Codec = media.CodecOpus
		mt.OpusHead = e.private
		mt.SampleRate = opusSampleRate
		if e.channels == 0 || e.channels > maxChannels {
			return fmt.Errorf("%w: track %d: %d channels", ErrInvalid, e.number, e.channels)
		}
		mt.Channels = int(e.channels)
	default:
		id := e.codecID
		if id == "" {
			id = "a track without CodecID"
		}
		r.unusable = append(r.unusable, id)
		return nil
	}
	if mt.Codec.IsVideo() {
		if e.width > maxPixels || e.height > maxPixels {
			return fmt.Errorf("%w: track %d: %dx%d pixels", ErrInvalid, e.number, e.width, e.height)
		}
		mt.Width, mt.Height = int(e.width), int(e.height)
	}
	if e.defaultDuration > uint64(time.Hour) {
		return fmt.Errorf("%w: track %d: DefaultDuration %d ns", ErrInvalid, e.number, e.defaultDuration)
	}
	t.defaultDuration = time.Duration(e.defaultDuration)
	if e.codecDelay > uint64(maxCodecDelay) {
		return fmt.Errorf("%w: track %d: CodecDelay %d ns", ErrInvalid, e.number, e.codecDelay)
	}
	t.codecDelay = time.Duration(e.codecDelay)
	t.t = mt
	r.tracks = append(r.tracks, t)
	return nil
}

// endTracks orders the usable tracks when the Tracks element ends.
func (r *Reader) endTracks() error {
	if r.entry != nil { // cannot happen: TrackEntry has a known size
		return fmt.Errorf("%w: Tracks ended inside a TrackEntry", ErrInvalid)
	}
	r.tracksRead = true
	if len(r.tracks) == 0 {
		if len(r.unusable) == 0 {
			return fmt.Errorf("%w: %w: the Tracks element is empty", ErrInvalid, ErrNoUsableTrack)
		}
		return fmt.Errorf("%w: %w (the stream has %s)", ErrInvalid, ErrNoUsableTrack, strings.Join(r.unusable, ", "))
	}
	for _, video := range []bool{true, false} {
		for _, t := range r.tracks {
			if t.t.Codec.IsVideo() == video {
				r.trackList = append(r.trackList, t.t)
			}
		}
	}
	return nil
}
