package transcode

import (
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"time"

	"github.com/livegate/livegate/internal/media"
)

// mkvWriter writes packets as a live Matroska stream: the pipe format into
// ffmpeg. Matroska is chosen because it carries every codec a browser sends
// (Opus, VP8, VP9, AV1) with millisecond timestamps and ffmpeg reads it
// without probing; the stream is written with unknown sizes, one block per
// packet, and needs no seeking.
type mkvWriter struct {
	w       io.Writer
	tracks  []*media.Track
	cluster time.Duration // timestamp of the open cluster
	open    bool
	buf     []byte
}

// Matroska element IDs (RFC 9559).
const (
	idEBML               = 0x1A45DFA3
	idEBMLVersion        = 0x4286
	idEBMLReadVersion    = 0x42F7
	idEBMLMaxIDLength    = 0x42F2
	idEBMLMaxSizeLength  = 0x42F3
	idDocType            = 0x4282
	idDocTypeVersion     = 0x4287
	idDocTypeReadVersion = 0x4285
	idSegment            = 0x18538067
	idInfo               = 0x1549A966
	idTimestampScale     = 0x2AD7B1
	idMuxingApp          = 0x4D80
	idWritingApp         = 0x5741
	idTracks             = 0x1654AE6B
	idTrackEntry         = 0xAE
	idTrackNumber        = 0xD7
	idTrackUID           = 0x73C5
	idTrackType          = 0x83
	idCodecID            = 0x86
	idCodecPrivate       = 0x63A2
	idVideo              = 0xE0
	idPixelWidth         = 0xB0
	idPixelHeight        = 0xBA
	idAudio              = 0xE1
	idSamplingFrequency  = 0xB5
	idChannels           = 0x9F
	idCluster            = 0x1F43B675
	idTimestamp          = 0xE7
	idSimpleBlock        = 0xA3
)

// unknownSize is the 8-byte "size unknown" marker for live elements.
var unknownSize = []byte{0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF}

func codecID(c media.Codec) (string, error) {
	switch c {
	case media.CodecOpus:
		return "A_OPUS", nil
	case media.CodecH264:
		return "V_MPEG4/ISO/AVC", nil
	case media.CodecVP8:
		return "V_VP8", nil
	case media.CodecVP9:
		return "V_VP9", nil
	case media.CodecAV1:
		return "V_AV1", nil
	}
	return "", fmt.Errorf("transcode: %v cannot be sent to the encoder", c)
}

// writeHeader writes the EBML header, the Segment start and the Tracks.
func (m *mkvWriter) writeHeader() error {
	var b []byte
	b = appendElement(b, idEBML, func(b []byte) []byte {
		b = appendUint(b, idEBMLVersion, 1)
		b = appendUint(b, idEBMLReadVersion, 1)
		b = appendUint(b, idEBMLMaxIDLength, 4)
		b = appendUint(b, idEBMLMaxSizeLength, 8)
		b = appendString(b, idDocType, "matroska")
		b = appendUint(b, idDocTypeVersion, 4)
		return appendUint(b, idDocTypeReadVersion, 2)
	})
	b = appendID(b, idSegment)
	b = append(b, unknownSize...)
	b = appendElement(b, idInfo, func(b []byte) []byte {
		b = appendUint(b, idTimestampScale, 1_000_000) // milliseconds
		b = appendString(b, idMuxingApp, "livegate")
		return appendString(b, idWritingApp, "livegate")
	})
	var err error
	b = appendElement(b, idTracks, func(b []byte) []byte {
		for i, t := range m.tracks {
			var id string
			id, err = codecID(t.Codec)
			if err != nil {
				return b
			}
			b = appendElement(b, idTrackEntry, func(b []byte) []byte {
				b = appendUint(b, idTrackNumber, uint64(i+1))
				b = appendUint(b, idTrackUID, uint64(i+1))
				if t.Codec.IsVideo() {
					b = appendUint(b, idTrackType, 1)
				} else {
					b = appendUint(b, idTrackType, 2)
				}
				b = appendString(b, idCodecID, id)
				if t.Codec == media.CodecOpus && len(t.OpusHead) > 0 {
					b = appendBytes(b, idCodecPrivate, t.OpusHead)
				}
				if t.Codec == media.CodecH264 {
					b = appendBytes(b, idCodecPrivate, media.BuildAVCC(t.SPS, t.PPS))
				}
				if t.Codec.IsVideo() && t.Width > 0 && t.Height > 0 {
					b = appendElement(b, idVideo, func(b []byte) []byte {
						b = appendUint(b, idPixelWidth, uint64(t.Width))
						return appendUint(b, idPixelHeight, uint64(t.Height))
					})
				}
				if !t.Codec.IsVideo() {
					rate, ch := t.SampleRate, t.Channels
					if rate == 0 {
						rate = 48000
					}
					if ch == 0 {
						ch = opusChannels(t.OpusHead)
					}
					b = appendElement(b, idAudio, func(b []byte) []byte {
						b = appendFloat(b, idSamplingFrequency, float64(rate))
						return appendUint(b, idChannels, uint64(ch))
					})
				}
				return b
			})
		}
		return b
	})
	if err != nil {
		return err
	}
	_, err = m.w.Write(b)
	return err
}

// opusChannels reads the channel count from an OpusHead, 1 when absent.
func opusChannels(head []byte) int {
	if len(head) >= 10 && head[9] > 0 {
		return int(head[9])
	}
	return 1
}

// writePacket writes one packet of track index ti as a SimpleBlock, opening
// a new cluster when the block's offset would not fit in 16 bits or after
// a second, so that a reader never waits long for a cluster to end.
func (m *mkvWriter) writePacket(ti int, pts time.Duration, key bool, data []byte) error {
	ms := pts.Milliseconds()
	if ms < 0 {
		return fmt.Errorf("transcode: negative timestamp %v", pts)
	}
	rel := ms - m.cluster.Milliseconds()
	if !m.open || rel > 1000 || rel < math.MinInt16 {
		m.buf = appendID(m.buf[:0], idCluster)
		m.buf = append(m.buf, unknownSize...)
		m.buf = appendUint(m.buf, idTimestamp, uint64(ms))
		if _, err := m.w.Write(m.buf); err != nil {
			return err
		}
		m.cluster, m.open, rel = time.Duration(ms)*time.Millisecond, true, 0
	}
	// SimpleBlock: track number (vint), int16 relative timestamp, flags.
	flags := byte(0)
	if key {
		flags |= 0x80
	}
	size := 1 + 2 + 1 + len(data)
	m.buf = appendID(m.buf[:0], idSimpleBlock)
	m.buf = appendSize(m.buf, uint64(size))
	m.buf = append(m.buf, 0x80|byte(ti+1))
	m.buf = binary.BigEndian.AppendUint16(m.buf, uint16(int16(rel)))
	m.buf = append(m.buf, flags)
	if _, err := m.w.Write(m.buf); err != nil {
		return err
	}
	_, err := m.w.Write(data)
	return err
}

// EBML encoding helpers.

func appendID(b []byte, id uint32) []byte {
	switch {
	case id >= 1<<24:
		return append(b, byte(id>>24), byte(id>>16), byte(id>>8), byte(id))
	case id >= 1<<16:
		return append(b, byte(id>>16), byte(id>>8), byte(id))
	case id >= 1<<8:
		return append(b, byte(id>>8), byte(id))
	}
	return append(b, byte(id))
}

// appendSize writes an EBML variable-length size in 8 bytes at most.
func appendSize(b []byte, n uint64) []byte {
	for l := 1; l <= 8; l++ {
		if n < 1<<(7*l)-1 {
			for i := l - 1; i >= 0; i-- {
				v := byte(n >> (8 * i))
				if i == l-1 {
					v |= 0x80 >> (l - 1)
				}
				b = append(b, v)
			}
			return b
		}
	}
	panic("transcode: element too large") // sizes here are bounded far below 2^56
}

func appendElement(b []byte, id uint32, body func([]byte) []byte) []byte {
	inner := body(nil)
	b = appendID(b, id)
	b = appendSize(b, uint64(len(inner)))
	return append(b, inner...)
}

func appendUint(b []byte, id uint32, v uint64) []byte {
	n := 1
	for n < 8 && v>>(8*n) != 0 {
		n++
	}
	b = appendID(b, id)
	b = appendSize(b, uint64(n))
	for i := n - 1; i >= 0; i-- {
		b = append(b, byte(v>>(8*i)))
	}
	return b
}

func appendFloat(b []byte, id uint32, f float64) []byte {
	b = appendID(b, id)
	b = appendSize(b, 8)
	return binary.BigEndian.AppendUint64(b, math.Float64bits(f))
}

func appendString(b []byte, id uint32, s string) []byte { return appendBytes(b, id, []byte(s)) }

func appendBytes(b []byte, id uint32, v []byte) []byte {
	b = appendID(b, id)
	b = appendSize(b, uint64(len(v)))
	return append(b, v...)
}
