package webm

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"reflect"
	"testing"

	"go.uber.org/goleak"

	"github.com/livegate/livegate/internal/media"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func equalTracks(t *testing.T, name string, got, want []*media.Track) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d tracks, want %d", name, len(got), len(want))
	}
	for i := range got {
		if !reflect.DeepEqual(*got[i], *want[i]) {
			t.Fatalf("%s: track %d is %+v, want %+v", name, i, *got[i], *want[i])
		}
	}
}

// Building streams by hand.

// el encodes an element of known size.
func el(id uint32, body ...[]byte) []byte {
	data := bytes.Join(body, nil)
	return append(append(idBytes(id), sizeBytes(uint64(len(data)))...), data...)
}

// elUnknown encodes an element of unknown size.
func elUnknown(id uint32, body ...[]byte) []byte {
	b := append(idBytes(id), 0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)
	return append(b, bytes.Join(body, nil)...)
}

func idBytes(id uint32) []byte {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], id)
	i := 0
	for i < 3 && b[i] == 0 {
		i++
	}
	return b[i:]
}

// sizeBytes encodes a size in the fewest bytes.
func sizeBytes(v uint64) []byte {
	n := 1
	for v >= 1<<(7*n)-1 {
		n++
	}
	return vintBytes(v, n)
}

func vintBytes(v uint64, n int) []byte {
	b := make([]byte, n)
	for i := n - 1; i >= 0; i-- {
		b[i] = byte(v)
		v >>= 8
	}
	b[0] |= 0x80 >> (n - 1)
	return b
}

func uintEl(id uint32, v uint64) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], v)
	i := 0
	for i < 7 && b[i] == 0 {
		i++
	}
	return el(id, b[i:])
}

func floatEl(id uint32, v float64) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], math.Float64bits(v))
	return el(id, b[:])
}

func strEl(id uint32, s string) []byte { return el(id, []byte(s)) }

func ebmlHeader(docType string) []byte {
	return el(idEBML, uintEl(0x4286, 1), uintEl(idEBMLReadVersion, 1), uintEl(idEBMLMaxIDLength, 4),
		uintEl(idEBMLMaxSizeLength, 8), strEl(idDocType, docType), uintEl(0x4287, 4), uintEl(0x4285, 2))
}

// block encodes the body of a SimpleBlock or Block: track number, relative
// timestamp, flags and frames, laced as the flags say.
func block(track uint64, rel int16, flags byte, frames ...[]byte) []byte {
	b := append(sizeBytes(track), byte(uint16(rel)>>8), byte(rel), flags)
	switch (flags >> 1) & 3 {
	case lacingXiph:
		b = append(b, byte(len(frames)-1))
		for _, f := range frames[:len(frames)-1] {
			n := len(f)
			for ; n >= 255; n -= 255 {
				b = append(b, 255)
			}
			b = append(b, byte(n))
		}
	case lacingFixed:
		b = append(b, byte(len(frames)-1))
	case lacingEBML:
		b = append(b, byte(len(frames)-1))
		for i, f := range frames[:len(frames)-1] {
			if i == 0 {
				b = append(b, sizeBytes(uint64(len(f)))...)
				continue
			}
			diff := int64(len(f)) - int64(len(frames[i-1]))
			n := 1
			for diff <= -(1<<(7*n-1)-1) || diff >= 1<<(7*n-1)-1 {
				n++
			}
			b = append(b, vintBytes(uint64(diff+(1<<(7*n-1)-1)), n)...)
		}
	}
	return append(b, bytes.Join(frames, nil)...)
}

func simpleBlock(track uint64, rel int16, flags byte, frames ...[]byte) []byte {
	return el(idSimpleBlock, block(track, rel, flags, frames...))
}

// Element boundaries of a stream, for cutting it at the right places.

// span is one element of a stream.
type span struct {
	id    uint32
	start int  // header
	data  int  // first byte of the data
	end   int  // where it ends
	clean bool // the stream may end at end: only unknown sizes are open then

	unknown bool // of unknown size
}

// walk lists the elements of a stream that the reader descends into, and
// their children. An unknown size ends where its parent does.
func walk(t testing.TB, b []byte) []span {
	t.Helper()
	var out []span
	// allUnknown: every element open around [start, end) has an unknown size.
	var rec func(start, end int, allUnknown bool)
	rec = func(start, end int, allUnknown bool) {
		pos := start
		for pos < end {
			id, n, ok := parseVint(b[pos:], true)
			if !ok {
				t.Fatalf("bad ID at %d", pos)
			}
			sz, m, ok := parseVint(b[pos+n:], false)
			if !ok {
				t.Fatalf("bad size at %d", pos+n)
			}
			data := pos + n + m
			unknown := isAllOnes(sz, m)
			elEnd := data + int(sz)
			if unknown {
				elEnd = end
			}
			s := span{id: uint32(id), start: pos, data: data, end: elEnd, unknown: unknown}
			idx := len(out)
			out = append(out, s)
			switch uint32(id) {
			case idSegment, idCluster, idTracks, idTrackEntry, idBlockGroup, idInfo:
				if unknown && uint32(id) == idCluster {
					// An unknown-size Cluster ends at the next Cluster.
					next := data
					for next < end {
						cid, cn, _ := parseVint(b[next:], true)
						if isSegmentLevel(uint32(cid)) {
							break
						}
						csz, cm, _ := parseVint(b[next+cn:], false)
						next += cn + cm + int(csz)
					}
					elEnd = next
					out[idx].end = elEnd
				}
				rec(data, elEnd, allUnknown && unknown)
			}
			out[idx].clean = allUnknown
			pos = elEnd
		}
	}
	rec(0, len(b), true)
	return out
}

// cleanEnds returns the offsets at which the stream may end with io.EOF:
// the end of an element when only elements of unknown size are open.
func cleanEnds(t testing.TB, b []byte) map[int]bool {
	ends := map[int]bool{}
	for _, s := range walk(t, b) {
		if s.clean {
			ends[s.end] = true
			if s.unknown { // an unknown size may also end empty
				ends[s.data] = true
			}
		}
	}
	return ends
}

var errUnclassified = errors.New("unclassified error")

// classify maps a reader's error to what a caller tells apart.
func classify(err error) error {
	switch {
	case err == io.EOF:
		return io.EOF
	case errors.Is(err, io.ErrUnexpectedEOF):
		return io.ErrUnexpectedEOF
	case errors.Is(err, ErrNotMatroska):
		return ErrNotMatroska
	case errors.Is(err, ErrInvalid):
		return ErrInvalid
	case errors.Is(err, io.EOF):
		return io.EOF
	}
	return errUnclassified
}
