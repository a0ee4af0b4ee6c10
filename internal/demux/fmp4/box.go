package fmp4

import (
	"encoding/binary"
	"fmt"
)

// boxType is a box's four-character code, big-endian in a uint32 as it is
// on the wire.
type boxType uint32

func (t boxType) String() string {
	b := []byte{byte(t >> 24), byte(t >> 16), byte(t >> 8), byte(t)}
	for _, c := range b {
		if c < 0x20 || c > 0x7e {
			return fmt.Sprintf("0x%08x", uint32(t))
		}
	}
	return string(b)
}

// Box types that this package reads (ISO 14496-12 unless said otherwise).
const (
	typeFtyp boxType = 'f'<<24 | 't'<<16 | 'y'<<8 | 'p'
	typeStyp boxType = 's'<<24 | 't'<<16 | 'y'<<8 | 'p'
	typeMoov boxType = 'm'<<24 | 'o'<<16 | 'o'<<8 | 'v'
	typeMoof boxType = 'm'<<24 | 'o'<<16 | 'o'<<8 | 'f'
	typeMdat boxType = 'm'<<24 | 'd'<<16 | 'a'<<8 | 't'

	typeMvhd boxType = 'm'<<24 | 'v'<<16 | 'h'<<8 | 'd'
	typeTrak boxType = 't'<<24 | 'r'<<16 | 'a'<<8 | 'k'
	typeTkhd boxType = 't'<<24 | 'k'<<16 | 'h'<<8 | 'd'
	typeEdts boxType = 'e'<<24 | 'd'<<16 | 't'<<8 | 's'
	typeElst boxType = 'e'<<24 | 'l'<<16 | 's'<<8 | 't'
	typeMdia boxType = 'm'<<24 | 'd'<<16 | 'i'<<8 | 'a'
	typeMdhd boxType = 'm'<<24 | 'd'<<16 | 'h'<<8 | 'd'
	typeMinf boxType = 'm'<<24 | 'i'<<16 | 'n'<<8 | 'f'
	typeStbl boxType = 's'<<24 | 't'<<16 | 'b'<<8 | 'l'
	typeStsd boxType = 's'<<24 | 't'<<16 | 's'<<8 | 'd'
	typeStts boxType = 's'<<24 | 't'<<16 | 't'<<8 | 's'
	typeStsz boxType = 's'<<24 | 't'<<16 | 's'<<8 | 'z'
	typeMvex boxType = 'm'<<24 | 'v'<<16 | 'e'<<8 | 'x'
	typeTrex boxType = 't'<<24 | 'r'<<16 | 'e'<<8 | 'x'

	typeAvc1 boxType = 'a'<<24 | 'v'<<16 | 'c'<<8 | '1'
	typeAvc3 boxType = 'a'<<24 | 'v'<<16 | 'c'<<8 | '3'
	typeAvcC boxType = 'a'<<24 | 'v'<<16 | 'c'<<8 | 'C'
	typeVp09 boxType = 'v'<<24 | 'p'<<16 | '0'<<8 | '9'
	typeAv01 boxType = 'a'<<24 | 'v'<<16 | '0'<<8 | '1'
	typeMp4a boxType = 'm'<<24 | 'p'<<16 | '4'<<8 | 'a'
	typeEsds boxType = 'e'<<24 | 's'<<16 | 'd'<<8 | 's'
	typeWave boxType = 'w'<<24 | 'a'<<16 | 'v'<<8 | 'e' // QuickTime
	typeOpus boxType = 'O'<<24 | 'p'<<16 | 'u'<<8 | 's' // Opus in ISOBMFF
	typeDOps boxType = 'd'<<24 | 'O'<<16 | 'p'<<8 | 's' // Opus in ISOBMFF

	typeMfhd boxType = 'm'<<24 | 'f'<<16 | 'h'<<8 | 'd'
	typeTraf boxType = 't'<<24 | 'r'<<16 | 'a'<<8 | 'f'
	typeTfhd boxType = 't'<<24 | 'f'<<16 | 'h'<<8 | 'd'
	typeTfdt boxType = 't'<<24 | 'f'<<16 | 'd'<<8 | 't'
	typeTrun boxType = 't'<<24 | 'r'<<16 | 'u'<<8 | 'n'
)

// brandQT is the ftyp brand of QuickTime files, whose sound sample entries
// of version 1 and 2 carry extra fields.
const brandQT = "qt  "

// boxIter walks the boxes laid out one after another in a buffer: the
// children of a container box.
type boxIter struct {
	b   []byte
	err error
}

// next returns the next box's type and payload; false at the end of the
// buffer or at a malformed box (then err says why).
func (it *boxIter) next() (boxType, []byte, bool) {
	if it.err != nil || len(it.b) == 0 {
		return 0, nil, false
	}
	b := it.b
	if len(b) < 8 {
		it.err = fmt.Errorf("%d stray bytes where a box header should be", len(b))
		return 0, nil, false
	}
	typ := boxType(binary.BigEndian.Uint32(b[4:]))
	size, hdr := uint64(binary.BigEndian.Uint32(b)), uint64(8)
	switch size {
	case 0: // to the end of the enclosing box
		size = uint64(len(b))
	case 1:
		if len(b) < 16 {
			it.err = fmt.Errorf("%v box: truncated 64-bit size", typ)
			return 0, nil, false
		}
		size, hdr = binary.BigEndian.Uint64(b[8:]), 16
	}
	if size < hdr || size > uint64(len(b)) {
		it.err = fmt.Errorf("%v box: size %d does not fit the %d bytes left", typ, size, len(b))
		return 0, nil, false
	}
	it.b = b[size:]
	return typ, b[hdr:size], true
}

// fullBox splits a FullBox payload into its version, flags and the rest.
func fullBox(b []byte) (version uint8, flags uint32, rest []byte, ok bool) {
	if len(b) < 4 {
		return 0, 0, nil, false
	}
	return b[0], binary.BigEndian.Uint32(b) & 0xffffff, b[4:], true
}

// cursor reads big-endian fields from a box payload; reading past the end
// sets bad instead of panicking, so a parser checks once at the end.
type cursor struct {
	b   []byte
	bad bool
}

// skipTimes skips the creation and modification times that open mvhd,
// tkhd and mdhd: 64-bit in version 1, 32-bit otherwise.
func (c *cursor) skipTimes(version uint8) {
	if version == 1 {
		c.take(16)
	} else {
		c.take(8)
	}
}

func (c *cursor) take(n int) []byte {
	if c.bad || n > len(c.b) {
		c.bad = true
		return nil
	}
	v := c.b[:n]
	c.b = c.b[n:]
	return v
}

func (c *cursor) u8() uint8 {
	if v := c.take(1); v != nil {
		return v[0]
	}
	return 0
}

func (c *cursor) u16() uint16 {
	if v := c.take(2); v != nil {
		return binary.BigEndian.Uint16(v)
	}
	return 0
}

func (c *cursor) u32() uint32 {
	if v := c.take(4); v != nil {
		return binary.BigEndian.Uint32(v)
	}
	return 0
}

func (c *cursor) u64() uint64 {
	if v := c.take(8); v != nil {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}
