// Package webcodecs reads the frame stream of the webcodecs ingest: the
// browser encodes with WebCodecs (VideoEncoder H.264, AudioEncoder Opus)
// and sends one encoded frame per binary WebSocket message, each behind a
// small fixed header (docs/protocol.md, "WebCodecs frames").
//
// The header carries the payload's length, so the reader works on the
// messages' concatenation like the other demuxers: how the stream was cut
// cannot change what comes out, and a header that lies about its length
// is caught by the next header's checks.
package webcodecs

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"

	"github.com/livegate/livegate/internal/media"
)

// Frame types (the header's first byte).
const (
	TypeVideoConfig = 1 // payload: avcC (VideoEncoder decoderConfig.description)
	TypeAudioConfig = 2 // payload: OpusHead (AudioEncoder decoderConfig.description), may be empty
	TypeVideo       = 3 // payload: one H.264 access unit, AVCC (4-byte lengths) or Annex B
	TypeAudio       = 4 // payload: one Opus packet
)

// Flags (the header's second byte).
const (
	FlagKey    = 0x01 // a key frame
	FlagAnnexB = 0x02 // video payload in Annex B (start codes) rather than AVCC
)

// HeaderSize is the size of a frame header: type, flags, timestamp
// (int64, microseconds), payload length (uint32), big-endian.
const HeaderSize = 1 + 1 + 8 + 4

// MaxPayload bounds one frame.
const MaxPayload = 4 << 20

// Errors.
var (
	ErrBadFrame     = errors.New("invalid WebCodecs frame")
	ErrNoConfig     = errors.New("a frame came before its track's configuration")
	ErrConfigChange = errors.New("a track's configuration changed mid-stream")
)

// Reader reads frames into packets. The tracks it expects are given by
// the start message (video, audio or both); Tracks waits for the
// configuration of each.
type Reader struct {
	r          *bufio.Reader
	wantVideo  bool
	wantAudio  bool
	video      *media.Track
	audio      *media.Track
	pending    []*media.Packet
	started    bool
	hdr        [HeaderSize]byte
	videoFrame int
	preSkip    time.Duration // the Opus encoder's, taken off each audio time
}

// NewReader returns a Reader for a stream with the given tracks.
func NewReader(r io.Reader, video, audio bool) (*Reader, error) {
	if !video && !audio {
		return nil, fmt.Errorf("%w: no track", ErrBadFrame)
	}
	return &Reader{r: bufio.NewReaderSize(r, 64<<10), wantVideo: video, wantAudio: audio}, nil
}

var _ media.Demuxer = (*Reader)(nil)

// Tracks reads until every expected track has its configuration.
func (r *Reader) Tracks() ([]*media.Track, error) {
	for (r.wantVideo && r.video == nil) || (r.wantAudio && r.audio == nil) {
		pkt, err := r.readFrame()
		if err != nil {
			return nil, err
		}
		if pkt != nil {
			if len(r.pending) >= 1024 {
				return nil, fmt.Errorf("%w: no configuration after %d frames", ErrNoConfig, len(r.pending))
			}
			r.pending = append(r.pending, pkt)
		}
	}
	r.started = true
	var out []*media.Track
	if r.video != nil {
		out = append(out, r.video)
	}
	if r.audio != nil {
		out = append(out, r.audio)
	}
	return out, nil
}

// ReadPacket returns the next packet; io.EOF at a clean end.
func (r *Reader) ReadPacket() (*media.Packet, error) {
	if !r.started {
		if _, err := r.Tracks(); err != nil {
			return nil, err
		}
	}
	if len(r.pending) > 0 {
		p := r.pending[0]
		r.pending = r.pending[1:]
		return p, nil
	}
	for {
		p, err := r.readFrame()
		if err != nil || p != nil {
			return p, err
		}
	}
}

func (r *Reader) readFrame() (*media.Packet, error) {
	if _, err := io.ReadFull(r.r, r.hdr[:]); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("%w: cut in a header: %w", ErrBadFrame, io.ErrUnexpectedEOF)
		}
		return nil, err
	}
	typ, flags := r.hdr[0], r.hdr[1]
	ts := time.Duration(int64(binary.BigEndian.Uint64(r.hdr[2:10]))) * time.Microsecond
	size := binary.BigEndian.Uint32(r.hdr[10:14])
	if typ < TypeVideoConfig || typ > TypeAudio {
		return nil, fmt.Errorf("%w: unknown type %d", ErrBadFrame, typ)
	}
	if flags&^(FlagKey|FlagAnnexB) != 0 {
		return nil, fmt.Errorf("%w: unknown flags %#x", ErrBadFrame, flags)
	}
	if size > MaxPayload {
		return nil, fmt.Errorf("%w: a frame of %d bytes (at most %d)", ErrBadFrame, size, MaxPayload)
	}
	if ts < 0 || ts > 100*365*24*time.Hour {
		return nil, fmt.Errorf("%w: timestamp %v out of range", ErrBadFrame, ts)
	}
	payload := make([]byte, size)
	if _, err := io.ReadFull(r.r, payload); err != nil {
		return nil, fmt.Errorf("%w: cut in a payload: %w", ErrBadFrame, io.ErrUnexpectedEOF)
	}
	switch typ {
	case TypeVideoConfig:
		return nil, r.videoConfig(payload)
	case TypeAudioConfig:
		return nil, r.audioConfig(payload)
	case TypeVideo:
		return r.videoFrameOf(payload, flags, ts)
	}
	return r.audioFrame(payload, ts)
}

func (r *Reader) videoConfig(avcc []byte) error {
	if !r.wantVideo {
		return fmt.Errorf("%w: video configuration for a stream announced without video", ErrBadFrame)
	}
	// ParseAVCC masks the reserved bits Firefox leaves unset.
	sps, pps, n, err := media.ParseAVCC(avcc)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrBadFrame, err)
	}
	if n != 4 {
		return fmt.Errorf("%w: NAL length size %d (send 4-byte lengths)", ErrBadFrame, n)
	}
	return r.setVideo(sps, pps)
}

func (r *Reader) setVideo(sps, pps []byte) error {
	if r.video != nil {
		if string(r.video.SPS) == string(sps) && string(r.video.PPS) == string(pps) {
			return nil
		}
		if r.started {
			return fmt.Errorf("%w: H.264 parameter sets", ErrConfigChange)
		}
	}
	var s h264.SPS
	if err := s.Unmarshal(sps); err != nil {
		return fmt.Errorf("%w: unreadable SPS: %w", ErrBadFrame, err)
	}
	r.video = &media.Track{Codec: media.CodecH264, SPS: sps, PPS: pps, Width: s.Width(), Height: s.Height()}
	return nil
}

func (r *Reader) audioConfig(head []byte) error {
	if !r.wantAudio {
		return fmt.Errorf("%w: audio configuration for a stream announced without audio", ErrBadFrame)
	}
	if len(head) > 0 && (len(head) < 19 || string(head[:8]) != "OpusHead") {
		return fmt.Errorf("%w: the audio configuration is not an OpusHead", ErrBadFrame)
	}
	if r.audio != nil {
		if string(r.audio.OpusHead) == string(head) {
			return nil
		}
		if r.started {
			return fmt.Errorf("%w: Opus head", ErrConfigChange)
		}
	}
	ch := 1
	if len(head) >= 10 {
		ch = int(head[9])
	}
	r.audio = &media.Track{Codec: media.CodecOpus, OpusHead: head, SampleRate: 48000, Channels: ch}
	r.preSkip = 0
	if len(head) >= 12 {
		r.preSkip = time.Duration(binary.LittleEndian.Uint16(head[10:12])) * time.Second / 48000
	}
	return nil
}

func (r *Reader) videoFrameOf(payload []byte, flags byte, ts time.Duration) (*media.Packet, error) {
	if !r.wantVideo {
		return nil, fmt.Errorf("%w: video in a stream announced without video", ErrBadFrame)
	}
	var au [][]byte
	if flags&FlagAnnexB != 0 {
		var a h264.AnnexB
		if err := a.Unmarshal(payload); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrBadFrame, err)
		}
		au = a
		// Annex B carries the parameter sets in-band on key frames.
		var sps, pps []byte
		for _, n := range au {
			switch h264.NALUType(n[0] & 0x1f) {
			case h264.NALUTypeSPS:
				sps = n
			case h264.NALUTypePPS:
				pps = n
			}
		}
		if sps != nil && pps != nil {
			if err := r.setVideo(sps, pps); err != nil {
				return nil, err
			}
		}
	} else {
		var a h264.AVCC
		if err := a.Unmarshal(payload); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrBadFrame, err)
		}
		au = a
	}
	if r.video == nil {
		return nil, fmt.Errorf("%w: video", ErrNoConfig)
	}
	key := flags&FlagKey != 0 || h264.IsRandomAccess(au)
	if r.videoFrame == 0 && !key {
		return nil, fmt.Errorf("%w: the first video frame is not a key frame", ErrBadFrame)
	}
	r.videoFrame++
	// WebCodecs' H.264 (realtime, baseline) has no B-frames: DTS = PTS.
	return &media.Packet{Track: r.video, PTS: ts, DTS: ts, Key: key, AU: au}, nil
}

func (r *Reader) audioFrame(payload []byte, ts time.Duration) (*media.Packet, error) {
	if !r.wantAudio {
		return nil, fmt.Errorf("%w: audio in a stream announced without audio", ErrBadFrame)
	}
	if r.audio == nil {
		return nil, fmt.Errorf("%w: audio", ErrNoConfig)
	}
	if len(payload) == 0 {
		return nil, fmt.Errorf("%w: an empty Opus packet", ErrBadFrame)
	}
	// A browser stamps an Opus chunk with the time of its first sample
	// after the encoder's pre-skip; a decoder (ffmpeg) takes the stamp as
	// the packet's start and drops the pre-skip from it. Without this the
	// sound would come out pre_skip (6.5 ms in Chromium) late, as RFC 7845
	// and the WebM demuxer's CodecDelay handle it.
	ts -= r.preSkip
	return &media.Packet{Track: r.audio, PTS: ts, DTS: ts, Key: true, Data: payload}, nil
}

// AppendFrame appends one frame (header and payload) to b: the format the
// browser sends, for tests and tools.
func AppendFrame(b []byte, typ, flags byte, ts time.Duration, payload []byte) []byte {
	b = append(b, typ, flags)
	b = binary.BigEndian.AppendUint64(b, uint64(ts.Microseconds()))
	b = binary.BigEndian.AppendUint32(b, uint32(len(payload)))
	return append(b, payload...)
}

// Frames turns packets (H.264 and Opus, say from a recording) into the
// frame stream a browser's webcodecs client sends: each track's
// configuration, then one frame per packet. Packets before time zero
// (Opus pre-roll) are left out. For tests and the load generator.
func Frames(tracks []*media.Track, pkts []*media.Packet) []byte {
	var b []byte
	for _, tr := range tracks {
		switch tr.Codec {
		case media.CodecH264:
			b = AppendFrame(b, TypeVideoConfig, 0, 0, media.BuildAVCC(tr.SPS, tr.PPS))
		case media.CodecOpus:
			b = AppendFrame(b, TypeAudioConfig, 0, 0, tr.OpusHead)
		}
	}
	var avcc []byte
	for _, p := range pkts {
		if p.PTS < 0 {
			continue
		}
		switch p.Track.Codec {
		case media.CodecH264:
			flags := byte(0)
			if p.Key {
				flags = FlagKey
			}
			avcc = media.AppendAVCC(avcc[:0], p.AU)
			b = AppendFrame(b, TypeVideo, flags, p.PTS, avcc)
		case media.CodecOpus:
			b = AppendFrame(b, TypeAudio, FlagKey, p.PTS, p.Data)
		}
	}
	return b
}
