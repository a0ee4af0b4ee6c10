package webm

import (
	"bytes"
	"fmt"
	"slices"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"

	"github.com/livegate/livegate/internal/media"
)

// maxTimestamp bounds timestamps (about 146 years) so that no sum of them
// overflows.
const maxTimestamp = 1 << 62

// Lacing, from a block's flags (RFC 9559, 10.3).
const (
	lacingNone  = 0
	lacingXiph  = 1
	lacingFixed = 2
	lacingEBML  = 3
)

// emit turns a block's frames into packets at the end of the queue. data is
// the block after its header; it is copied.
func (r *Reader) emit(t *track, rel int16, flags byte, key bool, data []byte) error {
	if !r.hasTime {
		return fmt.Errorf("%w: a block before its Cluster's Timestamp", ErrInvalid)
	}
	if r.clusterTime > maxTimestamp {
		return fmt.Errorf("%w: Cluster Timestamp %d is out of range", ErrInvalid, r.clusterTime)
	}
	ticks := int64(r.clusterTime) + int64(rel)
	if ticks > maxTimestamp/r.scale || ticks < -maxTimestamp/r.scale {
		return fmt.Errorf("%w: timestamp %d × %d ns is out of range", ErrInvalid, ticks, r.scale)
	}
	pts := time.Duration(ticks*r.scale) - t.codecDelay

	sizes, hdr, err := splitLaces(data, int(flags>>1)&3, r.sizes[:0])
	r.sizes = sizes
	if err != nil {
		return fmt.Errorf("%w: block of track %d: %w", ErrInvalid, t.number, err)
	}
	// One copy for every frame of the block: the buffer is reused.
	payload := bytes.Clone(data[hdr:])
	start := len(r.queue)
	pos := 0
	for _, n := range sizes {
		frame := payload[pos : pos+n : pos+n]
		pos += n
		framePTS := pts
		if t.t.Codec == media.CodecOpus {
			pts += opusDuration(frame)
		} else {
			pts += t.defaultDuration
		}
		if n == 0 {
			continue
		}
		p := &media.Packet{Track: t.t, PTS: framePTS, DTS: framePTS, Key: key}
		switch {
		case t.t.Codec == media.CodecH264:
			au, err := t.splitH264(frame)
			if err != nil {
				clear(r.queue[start:])
				r.queue = r.queue[:start]
				return fmt.Errorf("%w: H.264 frame of track %d: %w", ErrInvalid, t.number, err)
			}
			if len(au) == 0 {
				continue
			}
			p.AU = au
			p.Key = key || h264.IsRandomAccess(au)
			if !r.started {
				paramsInBand(t.t, au)
			}
			p.DTS = t.dts.dts(au, framePTS, t.t.SPS)
		case t.t.Codec.IsVideo():
			p.Data = frame
		default:
			p.Key = true
			p.Data = frame
		}
		r.queue = append(r.queue, p)
		if !r.started {
			r.pendingBytes += n
		}
	}
	return nil
}

// paramsInBand takes the first SPS and PPS of an H.264 track that has no
// CodecPrivate from its frames (the tracks have not been handed out yet).
func paramsInBand(t *media.Track, au [][]byte) {
	for _, nalu := range au {
		switch h264.NALUType(nalu[0] & 0x1f) {
		case h264.NALUTypeSPS:
			if t.SPS == nil {
				t.SPS = bytes.Clone(nalu)
			}
		case h264.NALUTypePPS:
			if t.PPS == nil {
				t.PPS = bytes.Clone(nalu)
			}
		}
	}
}

// splitLaces returns the sizes of the frames of a block (after its header)
// and the length of the lacing header before them. sizes is appended to
// dst.
func splitLaces(b []byte, lacing int, dst []int) (sizes []int, hdr int, err error) {
	if lacing == lacingNone {
		return append(dst, len(b)), 0, nil
	}
	if len(b) == 0 {
		return dst, 0, fmt.Errorf("laced block without a frame count")
	}
	count := int(b[0]) + 1
	pos := 1
	sizes = slices.Grow(dst, count)[:count]
	total := 0 // of every frame but the last
	switch lacing {
	case lacingXiph:
		for i := range count - 1 {
			n := 0
			for {
				if pos >= len(b) {
					return dst, 0, fmt.Errorf("the Xiph lacing header is cut short")
				}
				v := b[pos]
				pos++
				n += int(v)
				if v != 255 {
					break
				}
			}
			sizes[i] = n
			total += n
		}
	case lacingEBML:
		prev := int64(0)
		for i := range count - 1 {
			v, n, ok := parseVint(b[pos:], false)
			if !ok {
				return dst, 0, fmt.Errorf("bad EBML lacing size")
			}
			pos += n
			size := int64(v)
			if i > 0 { // a signed difference to the previous size
				size = prev + int64(v) - (1<<(7*n-1) - 1)
			}
			if size < 0 || size > int64(len(b)) {
				return dst, 0, fmt.Errorf("EBML lacing size %d out of range", size)
			}
			sizes[i] = int(size)
			total += int(size)
			prev = size
		}
	case lacingFixed:
		rest := len(b) - pos
		if rest%count != 0 {
			return dst, 0, fmt.Errorf("%d bytes do not split into %d equal frames", rest, count)
		}
		for i := range sizes {
			sizes[i] = rest / count
		}
		return sizes, pos, nil
	}
	last := len(b) - pos - total
	if total > len(b) || last < 0 {
		return dst, 0, fmt.Errorf("lacing sizes add up to more than the block")
	}
	sizes[count-1] = last
	return sizes, pos, nil
}

// opusDuration returns the duration of an Opus packet from its TOC byte
// (RFC 6716, 3.1), or 0 for a packet too short to tell.
func opusDuration(p []byte) time.Duration {
	if len(p) == 0 {
		return 0
	}
	config := p[0] >> 3
	var frame time.Duration
	switch {
	case config < 12: // SILK: 10, 20, 40, 60 ms
		frame = [4]time.Duration{10, 20, 40, 60}[config&3] * time.Millisecond
	case config < 16: // Hybrid: 10, 20 ms
		frame = [2]time.Duration{10, 20}[config&1] * time.Millisecond
	default: // CELT: 2.5, 5, 10, 20 ms
		frame = [4]time.Duration{2500, 5000, 10000, 20000}[config&3] * time.Microsecond
	}
	switch p[0] & 3 {
	case 0:
		return frame
	case 1, 2:
		return 2 * frame
	}
	if len(p) < 2 {
		return 0
	}
	return time.Duration(p[1]&0x3f) * frame
}

// splitH264 cuts an H.264 frame into NAL units. With an avcC in the
// CodecPrivate, frames are length-prefixed (AVCC). Without one they may be
// either: Chromium's MediaRecorder writes Annex B (start codes, SPS and PPS
// on key frames) and no CodecPrivate.
func (t *track) splitH264(frame []byte) ([][]byte, error) {
	if t.avcc || !hasStartCode(frame) {
		return splitNALUs(frame, t.lengthSize)
	}
	if frame[2] == 1 {
		// 00 00 01 may also start a 4-byte length of 256 to 511 bytes.
		if au, err := splitNALUs(frame, t.lengthSize); err == nil {
			return au, nil
		}
	}
	return splitAnnexB(frame)
}

// hasStartCode tells whether b starts with an Annex B start code.
func hasStartCode(b []byte) bool {
	return len(b) >= 3 && b[0] == 0 && b[1] == 0 &&
		(b[2] == 1 || (b[2] == 0 && len(b) >= 4 && b[3] == 1))
}

// splitAnnexB cuts a frame of NAL units behind start codes (H.264 Annex B)
// into NAL units that alias it. Zero bytes before a start code belong to it
// (zero_byte, trailing_zero_8bits): a NAL unit never ends with one.
func splitAnnexB(b []byte) ([][]byte, error) {
	count := 0
	err := eachAnnexB(b, func(int, int) error {
		count++
		if count > h264.MaxNALUsPerAccessUnit {
			return fmt.Errorf("over %d NAL units in one frame", h264.MaxNALUsPerAccessUnit)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	au := make([][]byte, 0, count)
	_ = eachAnnexB(b, func(start, end int) error {
		au = append(au, b[start:end:end])
		return nil
	})
	return au, nil
}

// eachAnnexB calls f with the bounds of every non-empty NAL unit of b,
// which starts with a start code.
func eachAnnexB(b []byte, f func(start, end int) error) error {
	startCode := []byte{0, 0, 1}
	i := bytes.Index(b, startCode) // 0 or 1: b starts with a start code
	for i >= 0 {
		start := i + 3
		next := bytes.Index(b[start:], startCode)
		end := len(b)
		if next >= 0 {
			end = start + next
			i = end
		} else {
			i = -1
		}
		for end > start && b[end-1] == 0 {
			end--
		}
		if end > start {
			if err := f(start, end); err != nil {
				return err
			}
		}
	}
	return nil
}

// splitNALUs cuts an H.264 frame made of length-prefixed NAL units (AVCC)
// into NAL units that alias it. Empty NAL units are dropped.
func splitNALUs(b []byte, lengthSize int) ([][]byte, error) {
	count := 0
	for pos := 0; pos < len(b); {
		n, next, err := naluAt(b, pos, lengthSize)
		if err != nil {
			return nil, err
		}
		if n > 0 {
			count++
		}
		pos = next
	}
	if count > h264.MaxNALUsPerAccessUnit {
		return nil, fmt.Errorf("%d NAL units in one frame (limit %d)", count, h264.MaxNALUsPerAccessUnit)
	}
	au := make([][]byte, 0, count)
	for pos := 0; pos < len(b); {
		n, next, _ := naluAt(b, pos, lengthSize)
		if n > 0 {
			au = append(au, b[next-n:next:next])
		}
		pos = next
	}
	return au, nil
}

// naluAt reads the length prefix at pos and returns the NAL unit's length
// and where the next prefix starts.
func naluAt(b []byte, pos, lengthSize int) (n, next int, err error) {
	if len(b)-pos < lengthSize {
		return 0, 0, fmt.Errorf("NAL unit length cut short")
	}
	var l uint64
	for _, c := range b[pos : pos+lengthSize] {
		l = l<<8 | uint64(c)
	}
	pos += lengthSize
	if l > uint64(len(b)-pos) {
		return 0, 0, fmt.Errorf("NAL unit of %d bytes in %d", l, len(b)-pos)
	}
	return int(l), pos + int(l), nil
}

// dtsState computes an H.264 track's decoding timestamps: Matroska stores
// presentation timestamps only.
type dtsState struct {
	sps     []byte // the SPS the state was set up for
	reorder bool   // that SPS allows frames out of presentation order
	ext     h264.DTSExtractor
	fed     bool // ext has been given the SPS
	prev    time.Duration
	hasPrev bool
}

// dts returns the DTS of an access unit. trackSPS is the SPS from the
// CodecPrivate, used until one comes in-band.
func (s *dtsState) dts(au [][]byte, pts time.Duration, trackSPS []byte) time.Duration {
	sps, inBand := trackSPS, false
	for _, nalu := range au {
		if h264.NALUType(nalu[0]&0x1f) == h264.NALUTypeSPS {
			sps, inBand = nalu, true
			break
		}
	}
	if sps == nil {
		return s.keep(pts)
	}
	if !bytes.Equal(sps, s.sps) {
		s.sps = sps
		s.reorder = mayReorder(sps)
		s.ext = h264.DTSExtractor{}
		s.ext.Initialize()
		s.fed = false
	}
	if !s.reorder {
		return s.keep(pts)
	}
	in := au
	if !inBand && !s.fed {
		in = append([][]byte{s.sps}, au...)
	}
	s.fed = true
	d, err := s.ext.Extract(in, int64(pts))
	if err != nil {
		// The extractor cannot tell (no IDR yet, an unsupported POC
		// type...): presentation order, kept monotonic.
		dts := pts
		if s.hasPrev && dts < s.prev {
			dts = s.prev
		}
		return s.keep(dts)
	}
	return s.keep(time.Duration(d))
}

func (s *dtsState) keep(dts time.Duration) time.Duration {
	s.prev, s.hasPrev = dts, true
	return dts
}

// mayReorder tells whether an SPS allows frames to be decoded in another
// order than they are shown in.
func mayReorder(sps []byte) bool {
	var s h264.SPS
	if err := s.Unmarshal(sps); err != nil {
		return false // nothing better to go by
	}
	if s.PicOrderCntType == 2 { // output order is decoding order
		return false
	}
	if s.VUI != nil && s.VUI.BitstreamRestriction != nil && s.VUI.BitstreamRestriction.MaxNumReorderFrames == 0 {
		return false
	}
	return true
}
