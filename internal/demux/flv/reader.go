// Package flv reads an FLV byte stream (as ffmpeg writes it to a pipe) into
// media packets. It understands what livegate's encoder produces: H.264 video
// and AAC audio; script data is skipped.
package flv

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"

	"github.com/livegate/livegate/internal/media"
)

// maxTagSize bounds one tag so that a corrupt length cannot make us
// allocate without limit. 16 MiB is the largest an FLV tag can say anyway.
const maxTagSize = 1<<24 - 1

// ErrNotFLV is returned when the stream does not start with an FLV header.
var ErrNotFLV = errors.New("not an FLV stream")

// ErrParamsChanged is returned when a track's decoder configuration changes
// after Tracks returned it: the tracks are shared with the publishers, so
// they are never changed in place.
var ErrParamsChanged = errors.New("a track's decoder configuration changed mid-stream")

// maxPending bounds the media kept while Tracks waits for the configuration
// of every announced track.
const maxPending = 1024

const (
	tagAudio  = 8
	tagVideo  = 9
	tagScript = 18

	codecAVC = 7
	codecAAC = 10
)

// Reader reads packets from an FLV stream.
type Reader struct {
	r        *bufio.Reader
	hasAudio bool
	hasVideo bool
	video    *media.Track
	audio    *media.Track
	pending  []*media.Packet
	started  bool // Tracks has returned: tracks are no longer changed
	hdr      [15]byte
	buf      []byte
}

// NewReader reads the FLV header and returns a Reader.
func NewReader(r io.Reader) (*Reader, error) {
	br := bufio.NewReaderSize(r, 64*1024)
	var h [13]byte // header (9) + PreviousTagSize0 (4)
	if _, err := io.ReadFull(br, h[:]); err != nil {
		return nil, fmt.Errorf("read FLV header: %w", err)
	}
	if h[0] != 'F' || h[1] != 'L' || h[2] != 'V' {
		return nil, ErrNotFLV
	}
	return &Reader{
		r:        br,
		hasAudio: h[4]&0x04 != 0,
		hasVideo: h[4]&0x01 != 0,
	}, nil
}

// Tracks reads until every track announced in the header has its decoder
// configuration, and returns them (video first). Media read meanwhile is kept
// for ReadPacket.
func (r *Reader) Tracks() ([]*media.Track, error) {
	for (r.hasVideo && r.video == nil) || (r.hasAudio && r.audio == nil) {
		pkt, err := r.readTag()
		if err != nil {
			return nil, err
		}
		if pkt != nil {
			if len(r.pending) >= maxPending {
				return nil, fmt.Errorf("no decoder configuration for an announced track after %d packets", maxPending)
			}
			r.pending = append(r.pending, pkt)
		}
	}
	r.started = true
	var tracks []*media.Track
	if r.video != nil {
		tracks = append(tracks, r.video)
	}
	if r.audio != nil {
		tracks = append(tracks, r.audio)
	}
	if len(tracks) == 0 {
		return nil, errors.New("FLV stream announces neither audio nor video")
	}
	return tracks, nil
}

// ReadPacket returns the next media packet.
func (r *Reader) ReadPacket() (*media.Packet, error) {
	if len(r.pending) > 0 {
		p := r.pending[0]
		r.pending = r.pending[1:]
		return p, nil
	}
	for {
		pkt, err := r.readTag()
		if err != nil {
			return nil, err
		}
		if pkt != nil {
			return pkt, nil
		}
	}
}

// readTag reads one tag; it returns a nil packet for tags that carry no media.
func (r *Reader) readTag() (*media.Packet, error) {
	// tag header (11) + ... + PreviousTagSize (4) after the body.
	if _, err := io.ReadFull(r.r, r.hdr[:11]); err != nil {
		return nil, err
	}
	typ := r.hdr[0] & 0x1f
	size := int(r.hdr[1])<<16 | int(r.hdr[2])<<8 | int(r.hdr[3])
	ts := int64(r.hdr[4])<<16 | int64(r.hdr[5])<<8 | int64(r.hdr[6]) | int64(r.hdr[7])<<24
	if size > maxTagSize {
		return nil, fmt.Errorf("FLV tag of %d bytes is too large", size)
	}
	if cap(r.buf) < size+4 {
		r.buf = make([]byte, size+4)
	}
	body := r.buf[:size+4]
	if _, err := io.ReadFull(r.r, body); err != nil {
		if errors.Is(err, io.EOF) { // the stream ended inside the tag
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("read FLV tag body: %w", err)
	}
	body = body[:size]
	dts := time.Duration(ts) * time.Millisecond

	switch typ {
	case tagVideo:
		return r.videoTag(body, dts)
	case tagAudio:
		return r.audioTag(body, dts)
	case tagScript:
		return nil, nil
	}
	return nil, fmt.Errorf("unknown FLV tag type %d", typ)
}

func (r *Reader) videoTag(b []byte, dts time.Duration) (*media.Packet, error) {
	if len(b) < 5 {
		return nil, errors.New("short FLV video tag")
	}
	if b[0]&0x0f != codecAVC {
		return nil, fmt.Errorf("FLV video codec %d is not H.264", b[0]&0x0f)
	}
	key := b[0]>>4 == 1
	cts := int32(uint32(b[2])<<16|uint32(b[3])<<8|uint32(b[4])) << 8 >> 8 // sign-extend 24 bits
	payload := b[5:]
	switch b[1] {
	case 0: // AVC sequence header
		sps, pps, lengthSize, err := media.ParseAVCC(payload)
		if err != nil {
			return nil, err
		}
		if lengthSize != 4 {
			// ffmpeg always writes 4; the NAL unit reader assumes it.
			return nil, fmt.Errorf("H.264 NAL length size %d is not supported", lengthSize)
		}
		if r.video == nil {
			r.video = &media.Track{Codec: media.CodecH264}
		} else if r.started {
			if bytes.Equal(sps, r.video.SPS) && bytes.Equal(pps, r.video.PPS) {
				return nil, nil // repeated, unchanged
			}
			return nil, fmt.Errorf("%w: H.264 parameter sets", ErrParamsChanged)
		}
		// Copy: the tag buffer is reused.
		r.video.SPS = append([]byte(nil), sps...)
		r.video.PPS = append([]byte(nil), pps...)
		return nil, nil
	case 1:
		if r.video == nil {
			return nil, errors.New("H.264 data before its sequence header")
		}
		// Copy first: the tag buffer is reused, and the NAL units alias what
		// they are read from.
		var au h264.AVCC
		if err := au.Unmarshal(append([]byte(nil), payload...)); err != nil {
			return nil, fmt.Errorf("read H.264 access unit: %w", err)
		}
		return &media.Packet{
			Track: r.video,
			DTS:   dts,
			PTS:   dts + time.Duration(cts)*time.Millisecond,
			Key:   key || h264.IsRandomAccess(au),
			AU:    au,
		}, nil
	}
	return nil, nil // end of sequence
}

func (r *Reader) audioTag(b []byte, dts time.Duration) (*media.Packet, error) {
	if len(b) < 2 {
		return nil, errors.New("short FLV audio tag")
	}
	if b[0]>>4 != codecAAC {
		return nil, fmt.Errorf("FLV audio codec %d is not AAC", b[0]>>4)
	}
	switch b[1] {
	case 0:
		var conf mpeg4audio.AudioSpecificConfig
		if err := conf.Unmarshal(b[2:]); err != nil {
			return nil, fmt.Errorf("read AudioSpecificConfig: %w", err)
		}
		if r.audio == nil {
			r.audio = &media.Track{Codec: media.CodecAAC}
		} else if r.started {
			if r.audio.AAC != nil && *r.audio.AAC == conf {
				return nil, nil
			}
			return nil, fmt.Errorf("%w: AAC configuration", ErrParamsChanged)
		}
		r.audio.AAC = &conf
		return nil, nil
	case 1:
		if r.audio == nil {
			return nil, errors.New("AAC data before its sequence header")
		}
		return &media.Packet{
			Track: r.audio,
			DTS:   dts,
			PTS:   dts,
			Key:   true,
			Data:  append([]byte(nil), b[2:]...),
		}, nil
	}
	return nil, nil
}
