// Package webm reads a Matroska or WebM byte stream, as browsers'
// MediaRecorder writes it live, into media packets. It reads from an
// io.Reader and needs no seeking, so the way the stream was cut into
// messages cannot change what comes out.
//
// It understands Segments and Clusters of unknown size, SimpleBlocks and
// BlockGroups, every kind of lacing, and the codecs browsers record: H.264
// (length-prefixed with an avcC, or Annex B without one, as Chromium writes
// it), VP8, VP9 and AV1 video, Opus audio. Tracks in other codecs are left
// out. Every size read from the stream is bounded before it is used.
//
// Timestamps are the stream's own, on one clock for every track, less the
// track's CodecDelay as RFC 9559 asks (so Firefox's first Opus packet is
// at -0.5 ms): they can be negative.
package webm

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"

	"github.com/livegate/livegate/internal/media"
)

// Limits on what a stream can make the reader hold.
const (
	// maxElementSize bounds every element but Segment and Cluster: a block
	// is read whole, so this is also the largest frame.
	maxElementSize = 16 << 20
	// maxTrackEntries bounds the TrackEntry elements of a stream.
	maxTrackEntries = 16
	// maxPending and maxPendingBytes bound the packets Tracks keeps while
	// it waits for the parameter sets of an H.264 track that has no
	// CodecPrivate.
	maxPending      = 1024
	maxPendingBytes = 64 << 20
	// maxDepth bounds the nesting of the elements the reader descends into.
	maxDepth = 8
	// bufferSize is the size of the read buffer.
	bufferSize = 16 << 10
	// growStep is the first allocation for an element's data.
	growStep = 16 << 10
)

var _ media.Demuxer = (*Reader)(nil)

// level is a master element the reader is inside of.
type level struct {
	id  uint32
	end int64 // stream offset where it ends; unknownSize when not known
}

// Reader reads packets from a Matroska or WebM stream.
type Reader struct {
	br  *bufio.Reader
	pos int64 // stream offset of the next byte of br

	stack    []level
	segments int   // Segments seen
	scale    int64 // nanoseconds per timestamp tick

	entry       *trackEntry // the TrackEntry being read
	entries     []uint64    // every TrackNumber seen
	tracks      []*track    // the usable tracks
	unusable    []string    // CodecIDs of the tracks left out
	tracksSeen  bool        // a Tracks element has started
	tracksRead  bool        // the first Tracks element has ended
	started     bool        // Tracks has returned: tracks are no longer changed
	trackList   []*media.Track
	clusterTime uint64
	hasTime     bool // the current Cluster's Timestamp has been read

	group blockGroup

	queue []*media.Packet // packets read and not yet returned
	head  int             // index of the next packet of queue

	pendingBytes int // payload bytes queued before Tracks returned

	buf     []byte   // block payload, reused
	sizes   []int    // frame sizes of a block, reused
	scratch [16]byte // block header (up to 10 bytes), numbers
	err     error    // sticky: the stream cannot be read further
}

// blockGroup is the BlockGroup being read.
type blockGroup struct {
	block    bool   // its Block has been read (into Reader.buf)
	skip     bool   // its Block belongs to no usable track
	ref      bool   // it has a ReferenceBlock: not a key frame
	track    *track // the Block's track
	rel      int16
	flags    byte
	dataSize int
}

// NewReader reads and checks the EBML header and returns a Reader. It
// returns ErrNotMatroska for a stream that is not Matroska or WebM, io.EOF
// for an empty one.
func NewReader(r io.Reader) (*Reader, error) {
	rd := &Reader{
		br:    bufio.NewReaderSize(r, bufferSize),
		scale: 1_000_000,
	}
	if err := rd.readEBMLHeader(); err != nil {
		return nil, err
	}
	return rd, nil
}

// Tracks reads until every track is known (the Tracks element, and for an
// H.264 track without CodecPrivate its first SPS and PPS) and returns them:
// video first, then audio, each in stream order. Media read meanwhile is
// kept for ReadPacket.
func (r *Reader) Tracks() ([]*media.Track, error) {
	for !r.started {
		if r.ready() {
			r.started = true
			break
		}
		if r.err != nil {
			if r.err == io.EOF {
				return nil, fmt.Errorf("the stream ended before its tracks were known: %w", io.EOF)
			}
			return nil, r.err
		}
		if err := r.next(); err != nil {
			r.err = err
			continue
		}
		if len(r.queue)-r.head > maxPending || r.pendingBytes > maxPendingBytes {
			r.err = fmt.Errorf("%w: no SPS and PPS for the H.264 track after %d packets (%d bytes)",
				ErrInvalid, len(r.queue)-r.head, r.pendingBytes)
		}
	}
	return slices.Clone(r.trackList), nil
}

// ready tells whether every track is known.
func (r *Reader) ready() bool {
	if !r.tracksRead {
		return false
	}
	for _, t := range r.tracks {
		if t.t.Codec == media.CodecH264 && (t.t.SPS == nil || t.t.PPS == nil) {
			return false
		}
	}
	return true
}

// ReadPacket returns the next packet, in stream order: io.EOF when the
// stream ends where an element may end, an error that wraps
// io.ErrUnexpectedEOF when it ends inside one.
func (r *Reader) ReadPacket() (*media.Packet, error) {
	if !r.started {
		if _, err := r.Tracks(); err != nil {
			return nil, err
		}
	}
	for r.head == len(r.queue) {
		if r.err != nil {
			return nil, r.err
		}
		if err := r.next(); err != nil {
			r.err = err
		}
	}
	p := r.queue[r.head]
	r.queue[r.head] = nil
	r.head++
	if r.head == len(r.queue) {
		r.queue, r.head = r.queue[:0], 0
	}
	return p, nil
}

// next reads one element header and what it needs of the element.
func (r *Reader) next() error {
	if err := r.closeEnded(); err != nil {
		return err
	}
	id, size, err := r.readHeader()
	if err != nil {
		if err == io.EOF {
			return r.atEOF()
		}
		return err
	}
	// An element of unknown size ends where an element that cannot be its
	// child begins.
	for len(r.stack) > 0 {
		top := r.stack[len(r.stack)-1]
		if top.end != unknownSize {
			break
		}
		if top.id == idSegment && id != idEBML && id != idSegment {
			break
		}
		if top.id == idCluster && !isSegmentLevel(id) {
			break
		}
		if err := r.pop(); err != nil {
			return err
		}
	}
	if size == unknownSize {
		if id != idSegment && id != idCluster {
			return fmt.Errorf("%w: %s of unknown size (only Segment and Cluster may have one)", ErrInvalid, elementName(id))
		}
	} else {
		if size > maxElementSize && id != idSegment && id != idCluster {
			return fmt.Errorf("%w: %w: %s of %d bytes (limit %d)", ErrInvalid, ErrTooLarge, elementName(id), size, maxElementSize)
		}
		if end := r.limit(); end != unknownSize && r.pos+size > end {
			return fmt.Errorf("%w: %s of %d bytes at offset %d runs past the end of its parent", ErrInvalid, elementName(id), size, r.pos)
		}
	}
	return r.element(id, size)
}

// limit returns where the innermost element of known size ends.
func (r *Reader) limit() int64 {
	for i := len(r.stack) - 1; i >= 0; i-- {
		if r.stack[i].end != unknownSize {
			return r.stack[i].end
		}
	}
	return unknownSize
}

// closeEnded leaves the elements that end here: an element of known size,
// and with it every element inside it (an unknown-size Cluster inside a
// Segment of known size).
func (r *Reader) closeEnded() error {
	for i, l := range r.stack {
		if l.end != unknownSize && r.pos >= l.end {
			for len(r.stack) > i {
				if err := r.pop(); err != nil {
					return err
				}
			}
			return nil
		}
	}
	return nil
}

// atEOF decides what the end of the stream at an element boundary means.
func (r *Reader) atEOF() error {
	for _, l := range r.stack {
		if l.end != unknownSize {
			return fmt.Errorf("the stream ended inside %s: %w", elementName(l.id), io.ErrUnexpectedEOF)
		}
	}
	for len(r.stack) > 0 {
		if err := r.pop(); err != nil {
			return err
		}
	}
	return io.EOF
}

func (r *Reader) push(id uint32, size int64) error {
	if len(r.stack) >= maxDepth {
		return fmt.Errorf("%w: elements nested deeper than %d", ErrInvalid, maxDepth)
	}
	end := int64(unknownSize)
	if size != unknownSize {
		end = r.pos + size
	}
	r.stack = append(r.stack, level{id: id, end: end})
	return nil
}

// pop leaves the innermost element and acts on its end.
func (r *Reader) pop() error {
	l := r.stack[len(r.stack)-1]
	r.stack = r.stack[:len(r.stack)-1]
	switch l.id {
	case idTrackEntry:
		e := r.entry
		r.entry = nil
		return r.addTrack(e)
	case idTracks:
		return r.endTracks()
	case idCluster:
		r.hasTime = false
	case idBlockGroup:
		g := r.group
		r.group = blockGroup{}
		if !g.block {
			return fmt.Errorf("%w: BlockGroup without a Block", ErrInvalid)
		}
		if g.skip {
			return nil
		}
		return r.emit(g.track, g.rel, g.flags, !g.ref, r.buf[:g.dataSize])
	}
	return nil
}

// element handles an element whose header has been read, inside the
// innermost element of the stack.
func (r *Reader) element(id uint32, size int64) error {
	parent := uint32(0)
	if len(r.stack) > 0 {
		parent = r.stack[len(r.stack)-1].id
	}
	switch parent {
	case 0:
		switch id {
		case idSegment:
			if r.segments > 0 {
				return fmt.Errorf("%w: a second Segment (chained streams are not supported)", ErrInvalid)
			}
			r.segments++
			return r.push(id, size)
		case idEBML:
			return fmt.Errorf("%w: a second EBML header (chained streams are not supported)", ErrInvalid)
		case idVoid, idCRC32:
			return r.skip(id, size)
		}
		return fmt.Errorf("%w: %s outside the Segment", ErrInvalid, elementName(id))

	case idSegment:
		switch id {
		case idInfo:
			return r.push(id, size)
		case idTracks:
			if r.tracksSeen {
				return r.skip(id, size) // only the first one counts
			}
			r.tracksSeen = true
			return r.push(id, size)
		case idCluster:
			if !r.tracksRead {
				return fmt.Errorf("%w: a Cluster before the Tracks element", ErrInvalid)
			}
			r.hasTime = false
			return r.push(id, size)
		}

	case idInfo:
		if id == idTimestampScale {
			v, err := r.readUint(id, size)
			if err != nil {
				return err
			}
			if v == 0 || v > math.MaxInt64 {
				return fmt.Errorf("%w: TimestampScale %d", ErrInvalid, v)
			}
			r.scale = int64(v)
			return nil
		}

	case idTracks:
		if id == idTrackEntry {
			if len(r.entries) >= maxTrackEntries {
				return fmt.Errorf("%w: more than %d tracks", ErrInvalid, maxTrackEntries)
			}
			r.entry = &trackEntry{channels: 1}
			return r.push(id, size)
		}

	case idTrackEntry, idVideo, idAudio:
		return r.trackElement(id, size)

	case idCluster:
		switch id {
		case idTimestamp:
			v, err := r.readUint(id, size)
			if err != nil {
				return err
			}
			r.clusterTime, r.hasTime = v, true
			return nil
		case idSimpleBlock:
			return r.readBlock(id, size)
		case idBlockGroup:
			r.group = blockGroup{}
			return r.push(id, size)
		}

	case idBlockGroup:
		switch id {
		case idBlock:
			if r.group.block {
				return fmt.Errorf("%w: a BlockGroup with two Blocks", ErrInvalid)
			}
			return r.readBlock(id, size)
		case idReferenceBlock:
			r.group.ref = true
		}
	}
	return r.skip(id, size)
}

// readBlock reads a SimpleBlock, or the Block of a BlockGroup (RFC 9559,
// 10.1 and 10.2): track number, relative timestamp, flags, frames.
func (r *Reader) readBlock(id uint32, size int64) error {
	first, err := r.readByte()
	if err != nil {
		return r.inside(id, err)
	}
	n := vintLength(first)
	if n == 0 || int64(n)+3 > size {
		return fmt.Errorf("%w: %s of %d bytes with a bad header", ErrInvalid, elementName(id), size)
	}
	h := r.scratch[:n+2]
	h[0] = first
	if err := r.readFull(h[1:]); err != nil {
		return r.inside(id, err)
	}
	number, _, _ := parseVint(h[:n], false)
	rel := int16(uint16(h[n])<<8 | uint16(h[n+1]))
	flags, err := r.readByte()
	if err != nil {
		return r.inside(id, err)
	}
	rest := size - int64(n) - 3
	t := r.track(number)
	if id == idBlock {
		r.group.block = true
		if t == nil {
			r.group.skip = true
			return r.discard(id, rest)
		}
	} else if t == nil {
		return r.discard(id, rest) // a track left out, or none declared
	}
	data, err := r.readGrowing(id, r.buf[:0], rest)
	r.buf = data
	if err != nil {
		return err
	}
	if id == idBlock {
		r.group.track, r.group.rel, r.group.flags, r.group.dataSize = t, rel, flags, len(data)
		return nil
	}
	return r.emit(t, rel, flags, flags&0x80 != 0, data)
}

// track returns the usable track with this number, or nil.
func (r *Reader) track(number uint64) *track {
	for _, t := range r.tracks {
		if t.number == number {
			return t
		}
	}
	return nil
}

// readEBMLHeader reads the EBML header and checks the DocType.
func (r *Reader) readEBMLHeader() error {
	for i, want := range [4]byte{0x1A, 0x45, 0xDF, 0xA3} {
		b, err := r.br.ReadByte()
		if err != nil {
			if err == io.EOF && i > 0 {
				err = io.ErrUnexpectedEOF
			}
			if err == io.EOF {
				return err
			}
			return fmt.Errorf("read EBML header: %w", err)
		}
		r.pos++
		if b != want {
			return ErrNotMatroska
		}
	}
	size, err := r.readSize()
	if err != nil {
		return r.inside(idEBML, err)
	}
	if size == unknownSize {
		return fmt.Errorf("%w: EBML header of unknown size", ErrNotMatroska)
	}
	if size > maxEBMLHeaderSize {
		return fmt.Errorf("%w: EBML header of %d bytes", ErrNotMatroska, size)
	}
	body := make([]byte, size)
	if err := r.readFull(body); err != nil {
		return r.inside(idEBML, err)
	}
	docType := ""
	for len(body) > 0 {
		id, n, ok := parseVint(body, true)
		if !ok || n > maxIDLength {
			return fmt.Errorf("%w: bad EBML header", ErrNotMatroska)
		}
		body = body[n:]
		v, m, ok := parseVint(body, false)
		if !ok || v > uint64(len(body)-m) {
			return fmt.Errorf("%w: bad EBML header", ErrNotMatroska)
		}
		val := body[m : m+int(v)]
		body = body[m+int(v):]
		switch id {
		case idDocType:
			docType = string(bytes.TrimRight(val, "\x00"))
		case idEBMLReadVersion:
			if u := beUint(val); u > 1 {
				return fmt.Errorf("%w: EBMLReadVersion %d is not supported", ErrNotMatroska, u)
			}
		case idEBMLMaxIDLength:
			if u := beUint(val); u > maxIDLength {
				return fmt.Errorf("%w: EBMLMaxIDLength %d is not supported", ErrNotMatroska, u)
			}
		case idEBMLMaxSizeLength:
			if u := beUint(val); u > maxSizeLength {
				return fmt.Errorf("%w: EBMLMaxSizeLength %d is not supported", ErrNotMatroska, u)
			}
		}
	}
	if docType != "webm" && docType != "matroska" {
		return fmt.Errorf("%w: DocType %q", ErrNotMatroska, docType)
	}
	return nil
}

// beUint reads a big-endian unsigned integer of up to 8 bytes (more are
// cut from the front).
func beUint(b []byte) uint64 {
	var v uint64
	for _, c := range b {
		v = v<<8 | uint64(c)
	}
	return v
}

// readHeader reads an element's ID and size. It returns io.EOF, alone,
// when the stream ends before the header's first byte.
func (r *Reader) readHeader() (id uint32, size int64, err error) {
	first, err := r.readByte()
	if err != nil {
		return 0, 0, err
	}
	n := vintLength(first)
	if n == 0 || n > maxIDLength {
		return 0, 0, fmt.Errorf("%w: bad element ID 0x%02X at offset %d", ErrInvalid, first, r.pos-1)
	}
	v := uint32(first)
	for range n - 1 {
		b, err := r.readByte()
		if err != nil {
			return 0, 0, r.inside(0, err)
		}
		v = v<<8 | uint32(b)
	}
	size, err = r.readSize()
	if err != nil {
		return 0, 0, r.inside(v, err)
	}
	return v, size, nil
}

// readSize reads an element's data size: unknownSize for the reserved
// all-ones value.
func (r *Reader) readSize() (int64, error) {
	first, err := r.readByte()
	if err != nil {
		return 0, err
	}
	n := vintLength(first)
	if n == 0 {
		return 0, fmt.Errorf("%w: bad element size 0x00 at offset %d", ErrInvalid, r.pos-1)
	}
	v := uint64(first) & (0xff >> n)
	for range n - 1 {
		b, err := r.readByte()
		if err != nil {
			return 0, err
		}
		v = v<<8 | uint64(b)
	}
	if isAllOnes(v, n) {
		return unknownSize, nil
	}
	return int64(v), nil // at most 2^56-2
}

// inside turns the end of the stream inside an element into
// io.ErrUnexpectedEOF, and says where.
func (r *Reader) inside(id uint32, err error) error {
	if errors.Is(err, ErrInvalid) {
		return err
	}
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	what := "an element header"
	if id != 0 {
		what = elementName(id)
	}
	return fmt.Errorf("read %s: %w", what, err)
}

func (r *Reader) readByte() (byte, error) {
	b, err := r.br.ReadByte()
	if err == nil {
		r.pos++
	}
	return b, err
}

func (r *Reader) readFull(b []byte) error {
	n, err := io.ReadFull(r.br, b)
	r.pos += int64(n)
	return err
}

// skip reads past the data of an element of known size.
func (r *Reader) skip(id uint32, size int64) error {
	if size == unknownSize { // cannot happen: next refuses it
		return fmt.Errorf("%w: %s of unknown size", ErrInvalid, elementName(id))
	}
	return r.discard(id, size)
}

// discard reads and drops n bytes through the read buffer, without
// allocating.
func (r *Reader) discard(id uint32, n int64) error {
	for n > 0 {
		step := min(n, bufferSize)
		m, err := r.br.Discard(int(step))
		r.pos += int64(m)
		n -= int64(m)
		if err != nil {
			return r.inside(id, err)
		}
	}
	return nil
}

// readUint reads an unsigned integer element.
func (r *Reader) readUint(id uint32, size int64) (uint64, error) {
	if size > 8 {
		return 0, fmt.Errorf("%w: %s of %d bytes", ErrInvalid, elementName(id), size)
	}
	b := r.scratch[:size]
	if err := r.readFull(b); err != nil {
		return 0, r.inside(id, err)
	}
	return beUint(b), nil
}

// readBytes reads a binary or string element into new memory.
func (r *Reader) readBytes(id uint32, size, limit int64) ([]byte, error) {
	if size > limit {
		return nil, fmt.Errorf("%w: %w: %s of %d bytes (limit %d)", ErrInvalid, ErrTooLarge, elementName(id), size, limit)
	}
	return r.readGrowing(id, nil, size)
}

// readGrowing appends n bytes to b. It grows b as the bytes arrive, not
// to n at once, so that a size that the bytes do not follow costs no more
// memory than the bytes that came.
func (r *Reader) readGrowing(id uint32, b []byte, n int64) ([]byte, error) {
	want := len(b) + int(n)
	for len(b) < want {
		if len(b) == cap(b) {
			b = slices.Grow(b, min(want-len(b), max(cap(b), growStep)))
		}
		chunk := b[len(b):min(cap(b), want)]
		err := r.readFull(chunk)
		b = b[:len(b)+len(chunk)]
		if err != nil {
			return b, r.inside(id, err)
		}
	}
	return b, nil
}
