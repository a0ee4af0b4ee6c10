// Package fmp4 reads a fragmented MP4 byte stream (ISO 14496-12), as
// MediaRecorder writes it in Chromium (H.264 and Opus) and Safari (H.264 and
// AAC), into media packets, as the bytes arrive.
//
// It holds one top-level box in memory at a time (and the moof whose
// samples the following mdat carries): the way the stream was cut into
// messages cannot change what comes out, and memory stays bounded.
package fmp4

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/livegate/livegate/internal/media"
)

// MaxBoxSize bounds one top-level box. A fragment of a live stream holds
// a second or two of media; 64 MiB is far more than that at any bitrate a
// browser sends.
const MaxBoxSize = 64 << 20

// keepBuffer is the largest box buffer kept for the next box; a larger one
// is let go after use, so that one large fragment does not pin its memory
// for the rest of the stream.
const keepBuffer = 4 << 20

// Reader reads packets from a fragmented MP4 stream.
type Reader struct {
	br      *bufio.Reader
	pos     int64 // stream offset of the next byte from br
	started bool  // the first box header has been read
	qt      bool  // the ftyp names QuickTime

	moov   []byte   // the moov's payload, once it came
	tracks []*track // every trak of the moov
	out    []*media.Track

	frag    fragment
	buf     []byte // payload of the last moov, ftyp or mdat
	moofBuf []byte // payload of the last moof: the fragment's truns point into it
	err     error  // sticky: every later call returns it
}

var _ media.Demuxer = (*Reader)(nil)

// NewReader reads the stream's first top-level box, which must be an ftyp,
// an styp or a moov, and returns a Reader. An empty stream gives io.EOF.
func NewReader(r io.Reader) (*Reader, error) {
	rd := &Reader{br: bufio.NewReaderSize(r, 64<<10)}
	if err := rd.step(); err != nil {
		return nil, err
	}
	return rd, nil
}

// Tracks reads until the moov and returns its tracks in a codec this
// package reads: video first, then audio, each in the moov's order.
func (r *Reader) Tracks() ([]*media.Track, error) {
	for r.moov == nil {
		if r.err != nil {
			return nil, r.err
		}
		if err := r.step(); err != nil {
			r.err = err
			return nil, err
		}
	}
	return slices.Clone(r.out), nil
}

// ReadPacket returns the next packet. The packets of one fragment come in
// decode order across tracks (by DTS; in the fragment's order for equal
// DTS). It returns io.EOF when the stream ends between two boxes, and an
// error wrapping io.ErrUnexpectedEOF when it ends inside one (or between a
// moof and its mdat).
func (r *Reader) ReadPacket() (*media.Packet, error) {
	for {
		if r.err != nil {
			return nil, r.err
		}
		if r.frag.state == fragActive {
			p, err := r.nextPacket()
			if err != nil {
				r.err = err
				return nil, err
			}
			if p != nil {
				return p, nil
			}
			continue // the fragment is over
		}
		if err := r.step(); err != nil {
			r.err = err
			return nil, err
		}
	}
}

// step reads one top-level box and acts on it.
func (r *Reader) step() error {
	typ, size, start, err := r.readHeader()
	if err != nil {
		if errors.Is(err, io.EOF) && r.frag.state == fragPending && r.frag.samples > 0 {
			return fmt.Errorf("stream ended between a moof and its mdat: %w", io.ErrUnexpectedEOF)
		}
		return err
	}
	switch typ {
	case typeFtyp:
		if r.buf, err = r.readBody(r.buf, typ, size); err != nil {
			return err
		}
		r.qt = hasBrand(r.buf, brandQT)
		return nil

	case typeMoov:
		if r.buf, err = r.readBody(r.buf, typ, size); err != nil {
			return err
		}
		defer r.trimBuffers()
		if r.moov != nil {
			if bytes.Equal(r.buf, r.moov) {
				return nil // repeated, unchanged
			}
			return ErrParamsChanged
		}
		return r.setMoov(r.buf)

	case typeMoof:
		if r.moov == nil {
			return errors.New("moof before the moov")
		}
		if r.frag.state == fragPending && r.frag.samples > 0 {
			return errors.New("moof without an mdat after the previous moof")
		}
		if r.moofBuf, err = r.readBody(r.moofBuf, typ, size); err != nil {
			return err
		}
		return r.frag.parseMoof(r.moofBuf, start, r.tracks)

	case typeMdat:
		if r.frag.state != fragPending || r.frag.samples == 0 {
			r.frag.state = fragNone
			return r.discard(typ, size)
		}
		payload := r.pos
		if err := r.frag.prepare(payload, payload+size); err != nil {
			return err
		}
		if r.buf, err = r.readBody(r.buf, typ, size); err != nil {
			return err
		}
		r.frag.mdat, r.frag.mdatStart = r.buf, payload
		r.frag.state = fragActive
		return nil
	}
	// styp, sidx, free, skip, prft, emsg, uuid and anything else: not
	// needed to read the media.
	return r.discard(typ, size)
}

// setMoov reads the tracks out of the moov's payload.
func (r *Reader) setMoov(b []byte) error {
	tracks, err := parseMoov(b, r.qt)
	if err != nil {
		return err
	}
	var video, audio []*media.Track
	var skipped []string
	for _, t := range tracks {
		switch {
		case t.media == nil:
			skipped = append(skipped, fmt.Sprintf("track %d: %s", t.id, t.skipWhy))
		case t.media.Codec.IsVideo():
			video = append(video, t.media)
		default:
			audio = append(audio, t.media)
		}
	}
	if len(video)+len(audio) == 0 {
		if len(skipped) == 0 {
			return fmt.Errorf("%w: the moov has no tracks", ErrNoTracks)
		}
		return fmt.Errorf("%w (%v)", ErrNoTracks, skipped)
	}
	r.moov = bytes.Clone(b)
	r.tracks = tracks
	r.out = append(video, audio...)
	return nil
}

// readHeader reads a top-level box header. It returns the box's payload
// size and the stream offset of the box's first byte.
func (r *Reader) readHeader() (typ boxType, size, start int64, err error) {
	start = r.pos
	var h [16]byte
	n, err := io.ReadFull(r.br, h[:8])
	r.pos += int64(n)
	if err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return 0, 0, 0, fmt.Errorf("read box header: %w", err)
		}
		return 0, 0, 0, err // io.EOF at a box boundary, or the reader's error
	}
	typ = boxType(binary.BigEndian.Uint32(h[4:]))
	if !r.started {
		r.started = true
		if typ != typeFtyp && typ != typeStyp && typ != typeMoov {
			return 0, 0, 0, ErrNotMP4
		}
	}
	total, hdr := uint64(binary.BigEndian.Uint32(h[:])), uint64(8)
	switch total {
	case 0:
		return 0, 0, 0, fmt.Errorf("%v box: size 0 (to the end of the stream) is not supported", typ)
	case 1:
		n, err := io.ReadFull(r.br, h[8:])
		r.pos += int64(n)
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return 0, 0, 0, fmt.Errorf("read box header: %w", err)
		}
		total, hdr = binary.BigEndian.Uint64(h[8:]), 16
	}
	if total < hdr {
		return 0, 0, 0, fmt.Errorf("%v box: size %d is less than its header", typ, total)
	}
	if total > MaxBoxSize {
		return 0, 0, 0, fmt.Errorf("%w: %v box of %d bytes (at most %d)", ErrBoxTooLarge, typ, total, MaxBoxSize)
	}
	return typ, int64(total - hdr), start, nil
}

// readBody reads a box's payload into buf, growing it as the bytes arrive:
// a header that claims a large box costs memory only once its bytes came.
func (r *Reader) readBody(buf []byte, typ boxType, size int64) ([]byte, error) {
	buf = buf[:0]
	for int64(len(buf)) < size {
		n := int(min(size-int64(len(buf)), int64(max(len(buf), 64<<10))))
		buf = slices.Grow(buf, n)
		m, err := io.ReadFull(r.br, buf[len(buf):len(buf)+n])
		buf = buf[:len(buf)+m]
		r.pos += int64(m)
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return buf, fmt.Errorf("read %v box: %w", typ, err)
		}
	}
	return buf, nil
}

// discard skips a box's payload.
func (r *Reader) discard(typ boxType, size int64) error {
	n, err := r.br.Discard(int(size))
	r.pos += int64(n)
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return fmt.Errorf("skip %v box: %w", typ, err)
	}
	return nil
}

// trimBuffers lets go of a large box buffer once it is used.
func (r *Reader) trimBuffers() {
	if cap(r.buf) > keepBuffer {
		r.buf = nil
	}
	if cap(r.moofBuf) > keepBuffer {
		r.moofBuf = nil
	}
}

// hasBrand tells whether an ftyp payload names the brand, as its major
// brand or as a compatible one.
func hasBrand(ftyp []byte, brand string) bool {
	for i := 0; i+4 <= len(ftyp); i += 4 {
		if i == 4 {
			continue // minor_version
		}
		if string(ftyp[i:i+4]) == brand {
			return true
		}
	}
	return false
}
