package fmp4

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/bits"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"

	"github.com/livegate/livegate/internal/media"
)

// Bounds on one moof.
const (
	maxTrafs = 64
	maxTruns = 1024
	// maxTicks bounds decode times, so that sums of them cannot overflow.
	maxTicks = 1 << 62
)

// tfhd flags (ISO 14496-12, 8.8.7.1).
const (
	tfhdBaseDataOffset    = 0x000001
	tfhdSampleDescription = 0x000002
	tfhdDefaultDuration   = 0x000008
	tfhdDefaultSize       = 0x000010
	tfhdDefaultFlags      = 0x000020
	tfhdDefaultBaseIsMoof = 0x020000
)

// trun flags (ISO 14496-12, 8.8.8.1).
const (
	trunDataOffset          = 0x000001
	trunFirstSampleFlags    = 0x000004
	trunSampleDuration      = 0x000100
	trunSampleSize          = 0x000200
	trunSampleFlags         = 0x000400
	trunSampleCompositionTO = 0x000800
)

// Sample flags (ISO 14496-12, 8.8.3.1).
const (
	sampleIsNonSync   = 0x00010000
	sampleDependsMask = 0x03000000
	sampleDependsYes  = 0x01000000 // it depends on others: not an I picture
)

type fragState uint8

const (
	fragNone    fragState = iota
	fragPending           // a moof was read; its mdat has not come yet
	fragActive            // the mdat was read; its samples are being handed out
)

// fragment is one moof and, once it came, the payload of its mdat.
type fragment struct {
	state   fragState
	start   int64 // stream offset of the moof
	trafs   []traf
	samples uint64 // in every trun

	mdat      []byte
	mdatStart int64 // stream offset of mdat[0]
}

// traf is one track fragment, and the cursor on its next sample.
type traf struct {
	t          *track
	flags      uint32 // tfhd flags
	baseOffset int64  // tfhd base_data_offset
	// Sample defaults: the tfhd's, else the trex's.
	duration, size, sflags uint32
	tfdt                   int64
	hasTfdt                bool
	runs                   []trun

	run, i int   // the next sample is runs[run]'s i-th
	pos    int64 // stream offset of the next sample's data
	dts    int64 // decode time of the next sample, in the track's ticks
}

// trun is one track run; entries points into the moof's buffer.
type trun struct {
	version    uint8
	flags      uint32
	count      uint32
	dataOffset int32
	firstFlags uint32
	entrySize  int
	entries    []byte
	pos        int64 // stream offset of the run's first sample (prepare)
}

// parseMoof reads a moof's payload, which starts at stream offset start.
// The sample tables stay in b, which must not change until the fragment
// has been handed out.
func (f *fragment) parseMoof(b []byte, start int64, tracks []*track) error {
	f.state, f.start, f.samples = fragNone, start, 0
	f.trafs = f.trafs[:0]
	f.mdat = nil
	runs := 0
	it := boxIter{b: b}
	for typ, p, ok := it.next(); ok; typ, p, ok = it.next() {
		if typ != typeTraf {
			continue // mfhd, pssh, ...
		}
		if len(f.trafs) == maxTrafs {
			return fmt.Errorf("moof: more than %d trafs", maxTrafs)
		}
		t := f.addTraf()
		haveTfhd := false
		tit := boxIter{b: p}
		for typ, p, ok := tit.next(); ok; typ, p, ok = tit.next() {
			switch typ {
			case typeTfhd:
				if haveTfhd {
					return errors.New("traf with two tfhds")
				}
				if err := t.parseTfhd(p, tracks); err != nil {
					return err
				}
				haveTfhd = true
			case typeTfdt:
				v, _, rest, ok := fullBox(p)
				c := cursor{b: rest}
				var d uint64
				if v == 1 {
					d = c.u64()
				} else {
					d = uint64(c.u32())
				}
				if !ok || c.bad {
					return errors.New("short tfdt")
				}
				if d > maxTicks {
					return fmt.Errorf("tfdt %d out of range", d)
				}
				t.tfdt, t.hasTfdt = int64(d), true
			case typeTrun:
				if !haveTfhd {
					return errors.New("trun before the tfhd")
				}
				if runs++; runs > maxTruns {
					return fmt.Errorf("moof: more than %d truns", maxTruns)
				}
				r, err := parseTrun(p)
				if err != nil {
					return err
				}
				t.runs = append(t.runs, r)
				f.samples += uint64(r.count)
			}
		}
		if tit.err != nil {
			return fmt.Errorf("traf: %w", tit.err)
		}
		if !haveTfhd {
			return errors.New("traf without a tfhd")
		}
	}
	if it.err != nil {
		return fmt.Errorf("moof: %w", it.err)
	}
	f.state = fragPending
	return nil
}

// addTraf appends a traf, reusing the run table of an earlier fragment.
func (f *fragment) addTraf() *traf {
	if len(f.trafs) < cap(f.trafs) {
		f.trafs = f.trafs[:len(f.trafs)+1]
		t := &f.trafs[len(f.trafs)-1]
		*t = traf{runs: t.runs[:0]}
		return t
	}
	f.trafs = append(f.trafs, traf{})
	return &f.trafs[len(f.trafs)-1]
}

func (t *traf) parseTfhd(p []byte, tracks []*track) error {
	_, flags, rest, ok := fullBox(p)
	c := cursor{b: rest}
	id := c.u32()
	for _, tr := range tracks {
		if tr.id == id {
			t.t = tr
		}
	}
	if t.t == nil {
		return fmt.Errorf("traf for track %d, which the moov does not have", id)
	}
	t.flags = flags
	t.duration, t.size, t.sflags = t.t.trex.duration, t.t.trex.size, t.t.trex.flags
	if flags&tfhdBaseDataOffset != 0 {
		o := c.u64()
		if o > math.MaxInt64/2 {
			return fmt.Errorf("tfhd base data offset %d out of range", o)
		}
		t.baseOffset = int64(o)
	}
	if flags&tfhdSampleDescription != 0 {
		c.u32()
	}
	if flags&tfhdDefaultDuration != 0 {
		t.duration = c.u32()
	}
	if flags&tfhdDefaultSize != 0 {
		t.size = c.u32()
	}
	if flags&tfhdDefaultFlags != 0 {
		t.sflags = c.u32()
	}
	if !ok || c.bad {
		return errors.New("short tfhd")
	}
	return nil
}

func parseTrun(p []byte) (trun, error) {
	v, flags, rest, ok := fullBox(p)
	c := cursor{b: rest}
	r := trun{version: v, flags: flags, count: c.u32()}
	if flags&trunDataOffset != 0 {
		r.dataOffset = int32(c.u32())
	}
	if flags&trunFirstSampleFlags != 0 {
		r.firstFlags = c.u32()
	}
	if !ok || c.bad {
		return trun{}, errors.New("short trun")
	}
	r.entrySize = 4 * bits.OnesCount32(flags&(trunSampleDuration|trunSampleSize|trunSampleFlags|trunSampleCompositionTO))
	n := uint64(r.count) * uint64(r.entrySize)
	if n > uint64(len(c.b)) {
		return trun{}, fmt.Errorf("trun of %d samples holds %d bytes of entries, not %d", r.count, len(c.b), n)
	}
	r.entries = c.b[:n]
	return r, nil
}

// sample returns the i-th sample of run r: duration, size, flags and
// composition time offset.
func (t *traf) sample(r *trun, i int) (duration, size, flags uint32, cto int64) {
	duration, size, flags = t.duration, t.size, t.sflags
	if i == 0 && r.flags&trunFirstSampleFlags != 0 {
		flags = r.firstFlags
	}
	e := r.entries[i*r.entrySize:]
	if r.flags&trunSampleDuration != 0 {
		duration, e = binary.BigEndian.Uint32(e), e[4:]
	}
	if r.flags&trunSampleSize != 0 {
		size, e = binary.BigEndian.Uint32(e), e[4:]
	}
	if r.flags&trunSampleFlags != 0 {
		flags, e = binary.BigEndian.Uint32(e), e[4:]
	}
	if r.flags&trunSampleCompositionTO != 0 {
		v := binary.BigEndian.Uint32(e)
		if r.version == 0 {
			cto = int64(v)
		} else {
			cto = int64(int32(v))
		}
	}
	return duration, size, flags, cto
}

// prepare places every sample of the fragment, once the mdat that follows
// the moof is known to hold stream offsets [start, end): it checks that
// each sample lies inside it, and sets the cursors and each track's end.
func (f *fragment) prepare(start, end int64) error {
	if f.samples > uint64(end-start) {
		return fmt.Errorf("the moof has %d samples, more than the %d bytes of its mdat", f.samples, end-start)
	}
	prevEnd := f.start
	for k := range f.trafs {
		t := &f.trafs[k]
		// The base data offset (ISO 14496-12, 8.8.7.1).
		var base int64
		switch {
		case t.flags&tfhdBaseDataOffset != 0:
			base = t.baseOffset
		case t.flags&tfhdDefaultBaseIsMoof != 0 || k == 0:
			base = f.start
		default: // where the previous traf's data ended
			base = prevEnd
		}
		dts := t.t.next
		if t.hasTfdt {
			dts = t.tfdt
		}
		t.run, t.i, t.dts = 0, 0, dts
		pos := base
		for j := range t.runs {
			r := &t.runs[j]
			if r.flags&trunDataOffset != 0 {
				pos = base + int64(r.dataOffset)
			}
			r.pos = pos
			for i := range int(r.count) {
				duration, size, _, _ := t.sample(r, i)
				if pos < start || int64(size) > end-pos {
					return fmt.Errorf("track %d: a sample of %d bytes at offset %d is outside the mdat [%d, %d)",
						t.t.id, size, pos, start, end)
				}
				pos += int64(size)
				dts += int64(duration)
			}
		}
		if len(t.runs) > 0 {
			t.pos = t.runs[0].pos
		}
		if dts > maxTicks {
			return fmt.Errorf("track %d: decode time out of range", t.t.id)
		}
		t.t.next = dts
		prevEnd = pos
	}
	return nil
}

// nextPacket returns the fragment's next packet in decode order, or nil
// when the fragment is over.
func (r *Reader) nextPacket() (*media.Packet, error) {
	f := &r.frag
	for {
		var best *traf
		var bestDTS int64 // nanoseconds, with the track's edit list applied
		for k := range f.trafs {
			t := &f.trafs[k]
			for t.run < len(t.runs) && t.i >= int(t.runs[t.run].count) {
				t.run, t.i = t.run+1, 0
				if t.run < len(t.runs) {
					t.pos = t.runs[t.run].pos
				}
			}
			if t.run == len(t.runs) || t.t.media == nil {
				continue
			}
			d, ok := ticksToDuration(t.dts, t.t.timescale)
			if !ok {
				return nil, fmt.Errorf("track %d: decode time out of range", t.t.id)
			}
			if d := int64(d + t.t.shift); best == nil || d < bestDTS {
				best, bestDTS = t, d
			}
		}
		if best == nil {
			f.state, f.mdat = fragNone, nil
			r.trimBuffers()
			return nil, nil
		}
		p, err := f.take(best)
		if p != nil || err != nil {
			return p, err
		}
	}
}

// take hands out a traf's next sample; nil for an empty sample.
func (f *fragment) take(t *traf) (*media.Packet, error) {
	duration, size, flags, cto := t.sample(&t.runs[t.run], t.i)
	dts, pos := t.dts, t.pos
	t.i++
	t.dts += int64(duration)
	t.pos += int64(size)
	if size == 0 {
		return nil, nil
	}
	tr := t.t
	p := &media.Packet{Track: tr.media, Key: true}
	d, ok1 := ticksToDuration(dts, tr.timescale)
	c, ok2 := ticksToDuration(dts+cto, tr.timescale)
	if !ok1 || !ok2 {
		return nil, fmt.Errorf("track %d: timestamp out of range", tr.id)
	}
	p.DTS, p.PTS = d+tr.shift, c+tr.shift
	// prepare checked that the sample lies inside the mdat. Copy: the
	// mdat's buffer is reused.
	data := append([]byte(nil), f.mdat[pos-f.mdatStart:pos-f.mdatStart+int64(size)]...)
	if tr.media.Codec.IsVideo() {
		// As ffmpeg reads sample flags: a sample that is not a sync sample,
		// or depends on others, is not a key frame.
		p.Key = flags&sampleIsNonSync == 0 && flags&sampleDependsMask != sampleDependsYes
	}
	if tr.media.Codec != media.CodecH264 {
		p.Data = data
		return p, nil
	}
	au, err := splitNALUs(data, tr.lengthSize)
	if err != nil {
		return nil, fmt.Errorf("track %d: read H.264 access unit: %w", tr.id, err)
	}
	p.AU = au
	p.Key = p.Key || h264.IsRandomAccess(au)
	return p, nil
}

// splitNALUs splits an access unit in the length-prefixed format of ISO
// 14496-15 into its NAL units, which alias b. Empty NAL units are dropped.
func splitNALUs(b []byte, lengthSize int) ([][]byte, error) {
	n := 0
	for p := b; len(p) > 0; {
		l, rest, err := naluLength(p, lengthSize)
		if err != nil {
			return nil, err
		}
		if l > 0 {
			n++
		}
		p = rest[l:]
	}
	if n == 0 {
		return nil, errors.New("no NAL units")
	}
	au := make([][]byte, 0, n)
	for p := b; len(p) > 0; {
		l, rest, _ := naluLength(p, lengthSize)
		if l > 0 {
			au = append(au, rest[:l])
		}
		p = rest[l:]
	}
	return au, nil
}

func naluLength(p []byte, lengthSize int) (int, []byte, error) {
	if len(p) < lengthSize {
		return 0, nil, fmt.Errorf("%d stray bytes after the last NAL unit", len(p))
	}
	l := 0
	for _, c := range p[:lengthSize] {
		l = l<<8 | int(c)
	}
	p = p[lengthSize:]
	if l > len(p) {
		return 0, nil, fmt.Errorf("NAL unit of %d bytes with %d left", l, len(p))
	}
	return l, p, nil
}
