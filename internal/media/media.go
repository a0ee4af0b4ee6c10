// Package media holds the one currency inside livegate: tracks and packets.
// Every stage of the pipeline (demuxers, transcoder, publishers, receiver)
// speaks these types, so a stage can be replaced without touching the others.
package media

import (
	"fmt"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
)

// Codec names a codec livegate knows.
type Codec uint8

// Codecs.
const (
	CodecUnknown Codec = iota
	CodecH264
	CodecAAC
	CodecOpus
	CodecVP8
	CodecVP9
	CodecAV1
)

func (c Codec) String() string {
	switch c {
	case CodecH264:
		return "H264"
	case CodecAAC:
		return "AAC"
	case CodecOpus:
		return "Opus"
	case CodecVP8:
		return "VP8"
	case CodecVP9:
		return "VP9"
	case CodecAV1:
		return "AV1"
	}
	return "unknown"
}

// IsVideo tells whether the codec carries pictures.
func (c Codec) IsVideo() bool {
	switch c {
	case CodecH264, CodecVP8, CodecVP9, CodecAV1:
		return true
	}
	return false
}

// Track describes one elementary stream and the parameters a decoder needs.
// A Track is shared by every stage once handed out: never change it in
// place; a new configuration is a new Track.
type Track struct {
	Codec Codec

	// H.264: parameter sets, without start codes or length prefixes.
	SPS []byte
	PPS []byte

	// AAC: the AudioSpecificConfig.
	AAC *mpeg4audio.AudioSpecificConfig

	// Opus: the identification header (RFC 7845 "OpusHead"), from
	// Matroska's CodecPrivate or MP4's dOps, when the container has it.
	OpusHead []byte

	// Video size and audio format, as the container states them (0 when
	// it does not).
	Width, Height        int
	SampleRate, Channels int
}

func (t *Track) String() string {
	switch t.Codec {
	case CodecH264:
		return fmt.Sprintf("H264 (%s)", H264Info(t.SPS))
	case CodecAAC:
		if t.AAC != nil {
			return fmt.Sprintf("AAC %d Hz %d ch", t.AAC.SampleRate, t.AAC.ChannelConfig)
		}
	}
	return t.Codec.String()
}

// Packet is one access unit of one track. Timestamps of every track of a
// stream are on one clock.
type Packet struct {
	Track *Track
	PTS   time.Duration
	DTS   time.Duration
	// Key is true when a decoder can start at this packet.
	Key bool
	// AU holds the NAL units of an H.264 access unit (no prefixes).
	AU [][]byte
	// Data holds the payload of codecs that are not NAL-based (AAC, Opus...).
	Data []byte
	// Arrived is when the bytes that completed the packet (or, for an
	// encoder's output, its input) reached livegate; zero if unknown. The
	// publishers measure the server's delay from it.
	Arrived time.Time
}

// Size is the number of payload bytes in the packet.
func (p *Packet) Size() int {
	n := len(p.Data)
	for _, nalu := range p.AU {
		n += len(nalu)
	}
	return n
}

// CodecString is the track's codec as RFC 6381 writes it in a MIME type's
// codecs parameter, as Media Source Extensions expect it: "avc1.42c01f"
// (profile_idc, the constraint flags and level_idc of the SPS, in hex) for
// H.264, "mp4a.40.2" (the audio object type) for AAC. It is "" for other
// codecs and for a track without its parameters.
func (t *Track) CodecString() string {
	switch t.Codec {
	case CodecH264:
		if len(t.SPS) >= 4 {
			return fmt.Sprintf("avc1.%02x%02x%02x", t.SPS[1], t.SPS[2], t.SPS[3])
		}
	case CodecAAC:
		if t.AAC != nil && t.AAC.Type > 0 {
			return fmt.Sprintf("mp4a.40.%d", int(t.AAC.Type))
		}
	}
	return ""
}
