package fmp4

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"

	"github.com/livegate/livegate/internal/media"
)

// maxTracks bounds the trak boxes of one moov.
const maxTracks = 16

// track is one trak of the moov, with what reading its fragments needs.
type track struct {
	id uint32
	// media is what Tracks hands out; nil when the codec is not supported,
	// and then the track's samples are skipped.
	media   *media.Track
	skipWhy string

	timescale  uint32 // ticks per second of the track's timestamps (mdhd)
	lengthSize int    // H.264: bytes in each NAL unit's length prefix (avcC)
	trex       trex   // sample defaults from the moov's mvex

	// The edit list, applied as one shift of every timestamp: the empty
	// edits before the first one that plays (in the movie's timescale) and
	// where that one starts in the media (in the track's).
	emptyEdits uint64
	mediaTime  int64
	shift      time.Duration

	// next is the decode time (in ticks) at which the track's previous
	// fragment ended, where a fragment without a tfdt starts.
	next int64
}

// trex holds a track's sample defaults (ISO 14496-12, 8.8.3).
type trex struct {
	duration, size, flags uint32
}

// parseMoov reads the tracks of a moov box's payload. qt tells that the
// ftyp names QuickTime, whose sound sample entries carry extra fields.
func parseMoov(b []byte, qt bool) ([]*track, error) {
	var (
		tracks     []*track
		trexes     = map[uint32]trex{}
		movieScale uint32
	)
	it := boxIter{b: b}
	for typ, p, ok := it.next(); ok; typ, p, ok = it.next() {
		switch typ {
		case typeMvhd:
			v, _, rest, ok := fullBox(p)
			c := cursor{b: rest}
			c.skipTimes(v)
			movieScale = c.u32()
			if !ok || c.bad {
				return nil, errors.New("moov: short mvhd")
			}
		case typeTrak:
			if len(tracks) == maxTracks {
				return nil, fmt.Errorf("moov: more than %d tracks", maxTracks)
			}
			t, err := parseTrak(p, qt)
			if err != nil {
				return nil, err
			}
			for _, o := range tracks {
				if o.id == t.id {
					return nil, fmt.Errorf("moov: two tracks with ID %d", t.id)
				}
			}
			tracks = append(tracks, t)
		case typeMvex:
			mit := boxIter{b: p}
			for typ, p, ok := mit.next(); ok; typ, p, ok = mit.next() {
				if typ != typeTrex {
					continue
				}
				_, _, rest, ok := fullBox(p)
				c := cursor{b: rest}
				id := c.u32()
				c.u32() // default_sample_description_index
				tr := trex{duration: c.u32(), size: c.u32(), flags: c.u32()}
				if !ok || c.bad {
					return nil, errors.New("moov: short trex")
				}
				trexes[id] = tr
			}
			if mit.err != nil {
				return nil, fmt.Errorf("moov: mvex: %w", mit.err)
			}
		}
	}
	if it.err != nil {
		return nil, fmt.Errorf("moov: %w", it.err)
	}
	for _, t := range tracks {
		t.trex = trexes[t.id]
		var delay time.Duration
		if movieScale != 0 && t.emptyEdits != 0 {
			if t.emptyEdits > math.MaxInt64 {
				return nil, fmt.Errorf("track %d: edit list out of range", t.id)
			}
			d, ok := ticksToDuration(int64(t.emptyEdits), movieScale)
			if !ok {
				return nil, fmt.Errorf("track %d: edit list out of range", t.id)
			}
			delay = d
		}
		start, ok := ticksToDuration(t.mediaTime, t.timescale)
		if !ok {
			return nil, fmt.Errorf("track %d: edit list out of range", t.id)
		}
		t.shift = delay - start
	}
	return tracks, nil
}

func parseTrak(b []byte, qt bool) (*track, error) {
	t := &track{}
	var haveTkhd, haveStsd bool
	it := boxIter{b: b}
	for typ, p, ok := it.next(); ok; typ, p, ok = it.next() {
		switch typ {
		case typeTkhd:
			v, _, rest, ok := fullBox(p)
			c := cursor{b: rest}
			c.skipTimes(v)
			t.id = c.u32()
			if !ok || c.bad {
				return nil, errors.New("moov: short tkhd")
			}
			haveTkhd = true
		case typeEdts:
			if err := t.parseEdts(p); err != nil {
				return nil, err
			}
		case typeMdia:
			var err error
			if haveStsd, err = t.parseMdia(p, qt); err != nil {
				return nil, err
			}
		}
	}
	if it.err != nil {
		return nil, fmt.Errorf("moov: trak: %w", it.err)
	}
	if !haveTkhd {
		return nil, errors.New("moov: trak without a tkhd")
	}
	if t.timescale == 0 {
		return nil, fmt.Errorf("track %d: no mdhd, or a timescale of 0", t.id)
	}
	if !haveStsd {
		return nil, fmt.Errorf("track %d: no sample description (stsd)", t.id)
	}
	return t, nil
}

// parseEdts keeps where the edit list makes the track start: the empty
// edits before the first edit that plays media, and where that edit starts.
// Later edits are ignored, as players of fragmented files do.
func (t *track) parseEdts(b []byte) error {
	it := boxIter{b: b}
	for typ, p, ok := it.next(); ok; typ, p, ok = it.next() {
		if typ != typeElst {
			continue
		}
		v, _, rest, ok := fullBox(p)
		c := cursor{b: rest}
		n := c.u32()
		size := 12
		if v == 1 {
			size = 20
		}
		if !ok || c.bad || uint64(n)*uint64(size) > uint64(len(c.b)) {
			return fmt.Errorf("track %d: short elst", t.id)
		}
		for range n {
			var dur uint64
			var mt int64
			if v == 1 {
				dur, mt = c.u64(), int64(c.u64())
			} else {
				dur, mt = uint64(c.u32()), int64(int32(c.u32()))
			}
			c.take(4) // media_rate
			if mt == -1 {
				// An empty edit: a delay before the media plays.
				if t.emptyEdits+dur < t.emptyEdits {
					return fmt.Errorf("track %d: edit list out of range", t.id)
				}
				t.emptyEdits += dur
				continue
			}
			t.mediaTime = mt
			break
		}
	}
	if it.err != nil {
		return fmt.Errorf("track %d: edts: %w", t.id, it.err)
	}
	return nil
}

func (t *track) parseMdia(b []byte, qt bool) (haveStsd bool, err error) {
	it := boxIter{b: b}
	for typ, p, ok := it.next(); ok; typ, p, ok = it.next() {
		switch typ {
		case typeMdhd:
			v, _, rest, ok := fullBox(p)
			c := cursor{b: rest}
			c.skipTimes(v)
			t.timescale = c.u32()
			if !ok || c.bad {
				return false, fmt.Errorf("track %d: short mdhd", t.id)
			}
		case typeMinf:
			mit := boxIter{b: p}
			for typ, p, ok := mit.next(); ok; typ, p, ok = mit.next() {
				if typ != typeStbl {
					continue
				}
				if haveStsd, err = t.parseStbl(p, qt); err != nil {
					return false, err
				}
			}
			if mit.err != nil {
				return false, fmt.Errorf("track %d: minf: %w", t.id, mit.err)
			}
		}
	}
	if it.err != nil {
		return false, fmt.Errorf("track %d: mdia: %w", t.id, it.err)
	}
	return haveStsd, nil
}

func (t *track) parseStbl(b []byte, qt bool) (haveStsd bool, err error) {
	it := boxIter{b: b}
	for typ, p, ok := it.next(); ok; typ, p, ok = it.next() {
		switch typ {
		case typeStsd:
			_, _, rest, ok := fullBox(p)
			c := cursor{b: rest}
			if n := c.u32(); !ok || c.bad || n == 0 {
				return false, fmt.Errorf("track %d: empty stsd", t.id)
			}
			// The first sample description; fragments may name another
			// with sample_description_index, which no browser does.
			eit := boxIter{b: c.b}
			typ, entry, ok := eit.next()
			if !ok {
				return false, fmt.Errorf("track %d: stsd: %v", t.id, eit.err)
			}
			if err := t.parseSampleEntry(typ, entry, qt); err != nil {
				return false, err
			}
			haveStsd = true
		case typeStts, typeStsz:
			// A fragmented file's moov lists no samples: they all come in
			// fragments. Samples here mean a progressive MP4.
			_, _, rest, ok := fullBox(p)
			c := cursor{b: rest}
			if typ == typeStsz {
				c.u32() // sample_size
			}
			if n := c.u32(); ok && !c.bad && n != 0 {
				return false, fmt.Errorf("%w: track %d lists %d samples in its moov", ErrNotFragmented, t.id, n)
			}
		}
	}
	if it.err != nil {
		return false, fmt.Errorf("track %d: stbl: %w", t.id, it.err)
	}
	return haveStsd, nil
}

// Sample entry layouts (ISO 14496-12, 12.1.3 and 12.2.3): the fields before
// the child boxes.
const (
	visualEntrySize = 78
	audioEntrySize  = 28
)

func (t *track) parseSampleEntry(typ boxType, p []byte, qt bool) error {
	switch typ {
	case typeAvc1, typeAvc3, typeVp09, typeAv01:
		if len(p) < visualEntrySize {
			return fmt.Errorf("track %d: short %v sample entry", t.id, typ)
		}
		w, h := int(binary.BigEndian.Uint16(p[24:])), int(binary.BigEndian.Uint16(p[26:]))
		switch typ {
		case typeVp09:
			t.media = &media.Track{Codec: media.CodecVP9, Width: w, Height: h}
			return nil
		case typeAv01:
			t.media = &media.Track{Codec: media.CodecAV1, Width: w, Height: h}
			return nil
		}
		avcC := findChild(p[visualEntrySize:], typeAvcC)
		if avcC == nil {
			return fmt.Errorf("track %d: %v sample entry without avcC", t.id, typ)
		}
		sps, pps, lengthSize, err := media.ParseAVCC(avcC)
		if err != nil {
			return fmt.Errorf("track %d: %w", t.id, err)
		}
		t.lengthSize = lengthSize
		t.media = &media.Track{
			Codec: media.CodecH264,
			// Copies: the moov's buffer is reused.
			SPS:   append([]byte(nil), sps...),
			PPS:   append([]byte(nil), pps...),
			Width: w, Height: h,
		}
		return nil

	case typeMp4a, typeOpus:
		if len(p) < audioEntrySize {
			return fmt.Errorf("track %d: short %v sample entry", t.id, typ)
		}
		version := binary.BigEndian.Uint16(p[8:])
		channels := int(binary.BigEndian.Uint16(p[16:]))
		children := p[audioEntrySize:]
		if qt && (version == 1 || version == 2) {
			// QuickTime sound sample description version 1 or 2.
			extra := 16
			if version == 2 {
				extra = 36
			}
			if len(children) < extra {
				return fmt.Errorf("track %d: short %v sample entry", t.id, typ)
			}
			children = children[extra:]
		}
		if typ == typeOpus {
			dOps := findChild(children, typeDOps)
			if dOps == nil {
				return fmt.Errorf("track %d: Opus sample entry without dOps", t.id)
			}
			head, ch, err := opusHead(dOps)
			if err != nil {
				return fmt.Errorf("track %d: %w", t.id, err)
			}
			t.media = &media.Track{Codec: media.CodecOpus, OpusHead: head, SampleRate: 48000, Channels: ch}
			return nil
		}
		esds := findChild(children, typeEsds)
		if esds == nil {
			if wave := findChild(children, typeWave); wave != nil {
				esds = findChild(wave, typeEsds)
			}
		}
		if esds == nil {
			return fmt.Errorf("track %d: mp4a sample entry without esds", t.id)
		}
		oti, dsi, err := parseESDS(esds)
		if err != nil {
			return fmt.Errorf("track %d: %w", t.id, err)
		}
		switch oti {
		case 0x40, 0x66, 0x67, 0x68: // MPEG-4 Audio; MPEG-2 AAC Main, LC, SSR
		default:
			t.skipWhy = fmt.Sprintf("mp4a object type 0x%02x is not AAC", oti)
			return nil
		}
		var conf mpeg4audio.AudioSpecificConfig
		if err := conf.Unmarshal(dsi); err != nil {
			return fmt.Errorf("track %d: read AudioSpecificConfig: %w", t.id, err)
		}
		switch {
		case conf.ChannelConfig >= 1 && conf.ChannelConfig <= 6:
			channels = int(conf.ChannelConfig)
		case conf.ChannelConfig == 7:
			channels = 8
		}
		t.media = &media.Track{Codec: media.CodecAAC, AAC: &conf, SampleRate: conf.SampleRate, Channels: channels}
		return nil
	}
	t.skipWhy = fmt.Sprintf("codec %v is not supported", typ)
	return nil
}

// findChild returns the payload of the first child box of that type, or nil.
func findChild(b []byte, want boxType) []byte {
	it := boxIter{b: b}
	for typ, p, ok := it.next(); ok; typ, p, ok = it.next() {
		if typ == want {
			return p
		}
	}
	return nil
}

// opusHead turns an Opus Specific Box (dOps, "Encapsulation of Opus in ISO
// Base Media File Format" 4.3.2) into the identification header of RFC 7845
// 5.1 that decoders take. The fields are the same but for the magic, the
// version (0 in dOps, 1 in OpusHead) and the byte order (big-endian in
// dOps, little-endian in OpusHead).
func opusHead(b []byte) (head []byte, channels int, err error) {
	c := cursor{b: b}
	version := c.u8()
	ch := c.u8()
	preSkip := c.u16()
	rate := c.u32()
	gain := c.u16()
	family := c.u8()
	if c.bad {
		return nil, 0, errors.New("short dOps")
	}
	if version != 0 {
		return nil, 0, fmt.Errorf("dOps version %d", version)
	}
	if ch == 0 {
		return nil, 0, errors.New("dOps with 0 channels")
	}
	head = make([]byte, 0, 21+int(ch))
	head = append(head, "OpusHead"...)
	head = append(head, 1, ch)
	head = binary.LittleEndian.AppendUint16(head, preSkip)
	head = binary.LittleEndian.AppendUint32(head, rate)
	head = binary.LittleEndian.AppendUint16(head, gain)
	head = append(head, family)
	if family != 0 {
		streams, coupled := c.u8(), c.u8()
		mapping := c.take(int(ch))
		if c.bad {
			return nil, 0, errors.New("short dOps channel mapping")
		}
		head = append(head, streams, coupled)
		head = append(head, mapping...)
	}
	return head, int(ch), nil
}

// parseESDS finds the object type and the decoder specific information in
// an ES descriptor box (ISO 14496-1, 7.2.6.5 and 7.2.6.6; 14496-14, 5.6).
func parseESDS(b []byte) (oti byte, dsi []byte, err error) {
	_, _, rest, ok := fullBox(b)
	if !ok {
		return 0, nil, errors.New("short esds")
	}
	tag, body, _, ok := descriptor(rest)
	if !ok || tag != 0x03 { // ES_DescrTag
		return 0, nil, errors.New("esds without an ES descriptor")
	}
	c := cursor{b: body}
	c.u16() // ES_ID
	flags := c.u8()
	if flags&0x80 != 0 { // streamDependenceFlag
		c.u16()
	}
	if flags&0x40 != 0 { // URL_Flag
		c.take(int(c.u8()))
	}
	if flags&0x20 != 0 { // OCRstreamFlag
		c.u16()
	}
	if c.bad {
		return 0, nil, errors.New("short ES descriptor")
	}
	for sub := c.b; len(sub) > 0; {
		tag, body, sub, ok = descriptor(sub)
		if !ok {
			break
		}
		if tag != 0x04 || len(body) < 13 { // DecoderConfigDescrTag
			continue
		}
		oti = body[0]
		for dsub := body[13:]; len(dsub) > 0; {
			tag, body, dsub, ok = descriptor(dsub)
			if !ok {
				break
			}
			if tag == 0x05 { // DecSpecificInfoTag
				return oti, body, nil
			}
		}
		return oti, nil, errors.New("esds without decoder specific information")
	}
	return 0, nil, errors.New("esds without a decoder configuration")
}

// descriptor splits one ISO 14496-1 descriptor off b: its tag, its body and
// what follows it.
func descriptor(b []byte) (tag byte, body, rest []byte, ok bool) {
	if len(b) < 2 {
		return 0, nil, nil, false
	}
	tag = b[0]
	size, i := 0, 1
	for n := 0; ; n++ {
		if n == 4 || i >= len(b) {
			return 0, nil, nil, false
		}
		v := b[i]
		i++
		size = size<<7 | int(v&0x7f)
		if v&0x80 == 0 {
			break
		}
	}
	if size > len(b)-i {
		return 0, nil, nil, false
	}
	return tag, b[i : i+size], b[i+size:], true
}

// maxSeconds bounds timestamps (about 73 years) so that a timestamp plus
// an edit list's shift stays within what time.Duration holds.
const maxSeconds = (1 << 61) / int64(time.Second)

// ticksToDuration converts a timestamp in 1/scale units into a Duration,
// exactly (to the nanosecond below): timestamps are computed from ticks
// each time, so rounding never accumulates.
func ticksToDuration(ticks int64, scale uint32) (time.Duration, bool) {
	s := int64(scale)
	sec, rem := ticks/s, ticks%s
	if sec > maxSeconds || sec < -maxSeconds {
		return 0, false
	}
	return time.Duration(sec)*time.Second + time.Duration(rem*int64(time.Second)/s), true
}
