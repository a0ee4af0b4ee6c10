package fmp4

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/livegate/livegate/internal/media"
	"github.com/livegate/livegate/internal/testutil"
)

// Hand-made streams: boxes built field by field.

func be16(v uint16) []byte { return binary.BigEndian.AppendUint16(nil, v) }
func be32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }
func be64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func box(typ string, parts ...[]byte) []byte {
	body := cat(parts...)
	return cat(be32(uint32(8+len(body))), []byte(typ), body)
}

func full(typ string, version byte, flags uint32, parts ...[]byte) []byte {
	return box(typ, append([]byte{version, byte(flags >> 16), byte(flags >> 8), byte(flags)}, cat(parts...)...))
}

func unhex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

// Parameter sets x264 wrote for 320x240 Constrained Baseline.
var (
	testSPS = unhex("6742c00dd90141fb0110000003001000000303c0f142a480")
	testPPS = unhex("68cb83cb20")
)

func avcC(lengthSize int) []byte {
	return cat([]byte{1, 0x42, 0xc0, 0x0d, 0xfc | byte(lengthSize-1), 0xe1}, be16(uint16(len(testSPS))), testSPS,
		[]byte{1}, be16(uint16(len(testPPS))), testPPS)
}

func avc1(avcc []byte) []byte {
	return box("avc1", make([]byte, 24), be16(320), be16(240), make([]byte, 50), box("avcC", avcc))
}

func audioEntry(typ string, rate uint32, children ...[]byte) []byte {
	return box(typ, make([]byte, 16), be16(2), be16(16), make([]byte, 4), be32(rate<<16), cat(children...))
}

func dOps(channels byte, preSkip uint16) []byte {
	return cat([]byte{0, channels}, be16(preSkip), be32(48000), be16(0), []byte{0})
}

// descr writes an ISO 14496-1 descriptor with a 4-byte size, as ffmpeg does.
func descr(tag byte, parts ...[]byte) []byte {
	body := cat(parts...)
	n := len(body)
	return cat([]byte{tag, 0x80 | byte(n>>21), 0x80 | byte(n>>14), 0x80 | byte(n>>7), byte(n & 0x7f)}, body)
}

func esds(oti byte, asc []byte) []byte {
	return full("esds", 0, 0, descr(3, be16(1), []byte{0},
		descr(4, []byte{oti, 0x15}, make([]byte, 11), descr(5, asc)), descr(6, []byte{2})))
}

var ascLC44100Mono = []byte{0x12, 0x08}

type trackSpec struct {
	id, timescale uint32
	entry         []byte
	trex          [3]uint32 // default duration, size, flags
	edts          []byte
	samples       uint32 // in stsz: a progressive file
}

var (
	opusTrack = trackSpec{id: 1, timescale: 48000, entry: audioEntry("Opus", 48000, box("dOps", dOps(2, 312))), trex: [3]uint32{960, 0, 0}}
	h264Track = trackSpec{id: 2, timescale: 1000, entry: avc1(avcC(4)), trex: [3]uint32{33, 0, 0x01010000}}
	aacTrack  = trackSpec{id: 3, timescale: 44100, entry: audioEntry("mp4a", 44100, esds(0x40, ascLC44100Mono)), trex: [3]uint32{1024, 0, 0}}
	textTrack = trackSpec{id: 4, timescale: 1000, entry: box("tx3g", make([]byte, 40))}
)

func ftyp() []byte { return box("ftyp", []byte("isom"), be32(0x200), []byte("isomiso6mp41")) }

func moov(tracks ...trackSpec) []byte {
	var traks, trexs [][]byte
	for _, t := range tracks {
		stbl := box("stbl", full("stsd", 0, 0, be32(1), t.entry), full("stts", 0, 0, be32(0)),
			full("stsc", 0, 0, be32(0)), full("stsz", 0, 0, be32(0), be32(t.samples)), full("stco", 0, 0, be32(0)))
		mdia := box("mdia", full("mdhd", 0, 0, be32(0), be32(0), be32(t.timescale), be32(0), be16(0x55c4), be16(0)),
			full("hdlr", 0, 0, be32(0), []byte("vide"), make([]byte, 13)), box("minf", stbl))
		tkhd := full("tkhd", 0, 3, be32(0), be32(0), be32(t.id), be32(0), be32(0), make([]byte, 60))
		traks = append(traks, box("trak", tkhd, t.edts, mdia))
		trexs = append(trexs, full("trex", 0, 0, be32(t.id), be32(1), be32(t.trex[0]), be32(t.trex[1]), be32(t.trex[2])))
	}
	mvhd := full("mvhd", 0, 0, be32(0), be32(0), be32(1000), be32(0), make([]byte, 80))
	return box("moov", mvhd, cat(traks...), box("mvex", trexs...))
}

func elst(entries ...[2]int64) []byte {
	var b [][]byte
	for _, e := range entries {
		b = append(b, be32(uint32(e[0])), be32(uint32(int32(e[1]))), be32(0x10000))
	}
	return box("edts", full("elst", 0, 0, be32(uint32(len(entries))), cat(b...)))
}

// smp is one sample: its entry fields and its payload.
type smp struct {
	dur, flags uint32
	cto        int32
	data       []byte
}

type runSpec struct {
	version      byte
	flags        uint32 // the per-sample fields; data offset and first flags as below
	noDataOffset bool
	first        *uint32
	samples      []smp
}

type trafSpec struct {
	id        uint32
	tfhdFlags uint32 // besides default-base-is-moof, added unless plainBase
	plainBase bool
	base      uint64    // base_data_offset, when tfhdFlags has it
	rebase    int32     // taken off every data offset: base is that far after the moof
	def       [3]uint32 // tfhd defaults, written when tfhdFlags has them
	tfdt      int64     // < 0: no tfdt
	runs      []runSpec
}

const (
	perDur   = trunSampleDuration
	perSize  = trunSampleSize
	perFlags = trunSampleFlags
	perCTO   = trunSampleCompositionTO
)

// frag builds a moof and its mdat, the samples of each traf one after the
// other; each run's data offset points at its samples.
func frag(trafs ...trafSpec) []byte {
	build := func(offsets []int32) []byte {
		var tbs [][]byte
		n := 0
		for _, tf := range trafs {
			flags := tf.tfhdFlags
			if !tf.plainBase {
				flags |= tfhdDefaultBaseIsMoof
			}
			fields := be32(tf.id)
			if flags&tfhdBaseDataOffset != 0 {
				fields = cat(fields, be64(tf.base))
			}
			for i, f := range []uint32{tfhdDefaultDuration, tfhdDefaultSize, tfhdDefaultFlags} {
				if flags&f != 0 {
					fields = cat(fields, be32(tf.def[i]))
				}
			}
			parts := [][]byte{full("tfhd", 0, flags, fields)}
			if tf.tfdt >= 0 {
				parts = append(parts, full("tfdt", 1, 0, be64(uint64(tf.tfdt))))
			}
			for _, r := range tf.runs {
				rflags := r.flags
				if !r.noDataOffset {
					rflags |= trunDataOffset
				}
				if r.first != nil {
					rflags |= trunFirstSampleFlags
				}
				fields := be32(uint32(len(r.samples)))
				if rflags&trunDataOffset != 0 {
					fields = cat(fields, be32(uint32(offsets[n]-tf.rebase)))
				}
				n++
				if r.first != nil {
					fields = cat(fields, be32(*r.first))
				}
				for _, s := range r.samples {
					if rflags&perDur != 0 {
						fields = cat(fields, be32(s.dur))
					}
					if rflags&perSize != 0 {
						fields = cat(fields, be32(uint32(len(s.data))))
					}
					if rflags&perFlags != 0 {
						fields = cat(fields, be32(s.flags))
					}
					if rflags&perCTO != 0 {
						fields = cat(fields, be32(uint32(s.cto)))
					}
				}
				parts = append(parts, full("trun", r.version, rflags, fields))
			}
			tbs = append(tbs, box("traf", parts...))
		}
		return box("moof", full("mfhd", 0, 0, be32(1)), cat(tbs...))
	}
	var offsets []int32
	var payload [][]byte
	for _, tf := range trafs {
		for _, r := range tf.runs {
			offsets = append(offsets, 0)
			for _, s := range r.samples {
				payload = append(payload, s.data)
			}
		}
	}
	moof := build(offsets)
	at := len(moof) + 8
	n := 0
	for _, tf := range trafs {
		for _, r := range tf.runs {
			offsets[n] = int32(at)
			n++
			for _, s := range r.samples {
				at += len(s.data)
			}
		}
	}
	return cat(build(offsets), box("mdat", payload...))
}

func u32p(v uint32) *uint32 { return &v }

// Samples.
var (
	idr    = []byte{0, 0, 0, 3, 0x65, 0x88, 0x84}
	nonIDR = []byte{0, 0, 0, 3, 0x41, 0x9a, 0x02}
)

func opusFrame(b byte) []byte { return []byte{0xfc, b, b} }

func stream(parts ...[]byte) []byte { return cat(parts...) }

type want struct {
	codec    media.Codec
	dts, pts time.Duration
	key      bool
	size     int
}

const ms = time.Millisecond

// opusAt is an Opus packet of 3 bytes at t.
func opusAt(t time.Duration) want { return want{media.CodecOpus, t, t, true, 3} }

func TestHandMade(t *testing.T) {
	init := stream(ftyp(), moov(opusTrack))
	initAV := stream(ftyp(), moov(h264Track, opusTrack))
	opusRun := func(n int) runSpec {
		var s []smp
		for i := range n {
			s = append(s, smp{data: opusFrame(byte(i))})
		}
		return runSpec{flags: perSize, samples: s}
	}
	for _, ca := range []struct {
		name    string
		in      []byte
		tracks  []media.Codec
		pkts    []want
		wantErr string // empty: ends with EOF
	}{
		{
			name:   "durations from trex",
			in:     stream(init, frag(trafSpec{id: 1, tfdt: 0, runs: []runSpec{opusRun(3)}})),
			tracks: []media.Codec{media.CodecOpus},
			pkts:   []want{opusAt(0), opusAt(20 * ms), opusAt(40 * ms)},
		},
		{
			name: "durations and sizes from tfhd",
			in: stream(init, frag(trafSpec{
				id: 1, tfdt: 4800, tfhdFlags: tfhdDefaultDuration | tfhdDefaultSize, def: [3]uint32{480, 3, 0},
				runs: []runSpec{{samples: []smp{{data: opusFrame(1)}, {data: opusFrame(2)}}}},
			})),
			tracks: []media.Codec{media.CodecOpus},
			pkts:   []want{opusAt(100 * ms), opusAt(110 * ms)},
		},
		{
			name: "durations per sample",
			in: stream(init, frag(trafSpec{id: 1, tfdt: 0, runs: []runSpec{{flags: perDur | perSize, samples: []smp{
				{dur: 2880, data: opusFrame(1)}, {dur: 960, data: opusFrame(2)}, {dur: 1, data: opusFrame(3)},
			}}}})),
			tracks: []media.Codec{media.CodecOpus},
			pkts:   []want{opusAt(0), opusAt(60 * ms), opusAt(80 * ms)},
		},
		{
			name: "no tfdt: the next fragment continues where the previous ended",
			in: stream(init,
				frag(trafSpec{id: 1, tfdt: 48000, runs: []runSpec{opusRun(2)}}),
				frag(trafSpec{id: 1, tfdt: -1, runs: []runSpec{opusRun(2)}})),
			tracks: []media.Codec{media.CodecOpus},
			pkts:   []want{opusAt(1000 * ms), opusAt(1020 * ms), opusAt(1040 * ms), opusAt(1060 * ms)},
		},
		{
			name:   "no tfdt in the first fragment: it starts at 0",
			in:     stream(init, frag(trafSpec{id: 1, tfdt: -1, runs: []runSpec{opusRun(2)}})),
			tracks: []media.Codec{media.CodecOpus},
			pkts:   []want{opusAt(0), opusAt(20 * ms)},
		},
		{
			name: "version 1: negative composition offsets",
			in: stream(ftyp(), moov(h264Track), frag(trafSpec{id: 2, tfdt: 1000, runs: []runSpec{{
				version: 1, flags: perSize | perCTO, first: u32p(0x02000000),
				samples: []smp{{cto: 0, data: idr}, {cto: 66, data: nonIDR}, {cto: -33, data: nonIDR}, {cto: -33, data: nonIDR}},
			}}})),
			tracks: []media.Codec{media.CodecH264},
			pkts: []want{
				{media.CodecH264, 1000 * ms, 1000 * ms, true, 3},
				{media.CodecH264, 1033 * ms, 1099 * ms, false, 3},
				{media.CodecH264, 1066 * ms, 1033 * ms, false, 3},
				{media.CodecH264, 1099 * ms, 1066 * ms, false, 3},
			},
		},
		{
			name: "version 0: composition offsets are unsigned",
			in: stream(ftyp(), moov(h264Track), frag(trafSpec{id: 2, tfdt: 0, runs: []runSpec{{
				flags: perSize | perCTO | perFlags, samples: []smp{{cto: -1, data: idr}},
			}}})),
			tracks: []media.Codec{media.CodecH264},
			pkts:   []want{{media.CodecH264, 0, 0xffffffff * ms, true, 3}},
		},
		{
			name: "key frames from the sample flags",
			in: stream(ftyp(), moov(h264Track), frag(trafSpec{id: 2, tfdt: 0, runs: []runSpec{{
				flags: perSize | perFlags, samples: []smp{
					{flags: 0x02000000, data: nonIDR}, // sync, depends on nothing
					{flags: 0x01010000, data: nonIDR}, // not sync
					{flags: 0x00000000, data: nonIDR}, // no flags: sync
					{flags: 0x01000000, data: nonIDR}, // sync bit clear but depends on others
					{flags: 0x00010000, data: nonIDR}, // not sync
					{flags: 0x01010000, data: idr},    // flagged not sync, but an IDR
				},
			}}})),
			tracks: []media.Codec{media.CodecH264},
			pkts: []want{
				{media.CodecH264, 0, 0, true, 3}, {media.CodecH264, 33 * ms, 33 * ms, false, 3},
				{media.CodecH264, 66 * ms, 66 * ms, true, 3}, {media.CodecH264, 99 * ms, 99 * ms, false, 3},
				{media.CodecH264, 132 * ms, 132 * ms, false, 3}, {media.CodecH264, 165 * ms, 165 * ms, true, 3},
			},
		},
		{
			name: "first_sample_flags, then tfhd default flags",
			in: stream(ftyp(), moov(h264Track), frag(trafSpec{
				id: 2, tfdt: 0, tfhdFlags: tfhdDefaultFlags, def: [3]uint32{0, 0, 0x00010000},
				runs: []runSpec{{flags: perSize, first: u32p(0), samples: []smp{{data: nonIDR}, {data: nonIDR}}}},
			})),
			tracks: []media.Codec{media.CodecH264},
			pkts:   []want{{media.CodecH264, 0, 0, true, 3}, {media.CodecH264, 33 * ms, 33 * ms, false, 3}},
		},
		{
			name: "tracks interleaved by DTS, video first on a tie",
			in: stream(initAV, frag(
				trafSpec{id: 2, tfdt: 0, runs: []runSpec{{flags: perSize, first: u32p(0), samples: []smp{{data: idr}, {data: nonIDR}, {data: nonIDR}}}}},
				trafSpec{id: 1, tfdt: 0, runs: []runSpec{opusRun(4)}},
			)),
			tracks: []media.Codec{media.CodecH264, media.CodecOpus},
			pkts: []want{
				{media.CodecH264, 0, 0, true, 3}, opusAt(0), opusAt(20 * ms),
				{media.CodecH264, 33 * ms, 33 * ms, false, 3}, opusAt(40 * ms), opusAt(60 * ms),
				{media.CodecH264, 66 * ms, 66 * ms, false, 3},
			},
		},
		{
			name: "base data offset in the tfhd",
			in: stream(init, frag(trafSpec{
				id: 1, tfdt: 0, plainBase: true, tfhdFlags: tfhdBaseDataOffset, base: uint64(len(init)),
				runs: []runSpec{opusRun(2)},
			})),
			tracks: []media.Codec{media.CodecOpus},
			pkts:   []want{opusAt(0), opusAt(20 * ms)},
		},
		{
			name: "base data offset past the moof",
			in: stream(init, frag(trafSpec{
				id: 1, tfdt: 0, plainBase: true, tfhdFlags: tfhdBaseDataOffset, base: uint64(len(init) + 1000), rebase: 1000,
				runs: []runSpec{opusRun(2)},
			})),
			tracks: []media.Codec{media.CodecOpus},
			pkts:   []want{opusAt(0), opusAt(20 * ms)},
		},
		{
			name: "no base flags: the second traf's data follows the first's",
			in: stream(initAV, frag(
				trafSpec{id: 2, tfdt: 0, plainBase: true, runs: []runSpec{{flags: perSize, first: u32p(0), samples: []smp{{data: idr}}}}},
				trafSpec{id: 1, tfdt: 0, plainBase: true, runs: []runSpec{{flags: perSize, noDataOffset: true, samples: []smp{{data: opusFrame(1)}}}}},
			)),
			tracks: []media.Codec{media.CodecH264, media.CodecOpus},
			pkts:   []want{{media.CodecH264, 0, 0, true, 3}, opusAt(0)},
		},
		{
			name: "a run without data offset follows the previous run",
			in: stream(init, frag(trafSpec{id: 1, tfdt: 0, runs: []runSpec{
				opusRun(1), {flags: perSize, noDataOffset: true, samples: []smp{{data: opusFrame(9)}}},
			}})),
			tracks: []media.Codec{media.CodecOpus},
			pkts:   []want{opusAt(0), opusAt(20 * ms)},
		},
		{
			name:   "edit list: the track starts at media time 66 ms",
			in:     stream(ftyp(), moov(withEdts(h264Track, elst([2]int64{1000, 66}))), frag(trafSpec{id: 2, tfdt: 0, runs: []runSpec{{flags: perSize, first: u32p(0), samples: []smp{{data: idr}, {data: nonIDR}}}}})),
			tracks: []media.Codec{media.CodecH264},
			pkts:   []want{{media.CodecH264, -66 * ms, -66 * ms, true, 3}, {media.CodecH264, -33 * ms, -33 * ms, false, 3}},
		},
		{
			name:   "edit list: an empty edit delays the track",
			in:     stream(ftyp(), moov(withEdts(h264Track, elst([2]int64{500, -1}, [2]int64{1000, 0}))), frag(trafSpec{id: 2, tfdt: 0, runs: []runSpec{{flags: perSize, first: u32p(0), samples: []smp{{data: idr}}}}})),
			tracks: []media.Codec{media.CodecH264},
			pkts:   []want{{media.CodecH264, 500 * ms, 500 * ms, true, 3}},
		},
		{
			name: "NAL length size 2",
			in: stream(ftyp(), moov(trackSpec{id: 2, timescale: 1000, entry: avc1(avcC(2))}), frag(trafSpec{id: 2, tfdt: 0, runs: []runSpec{{
				flags: perSize, samples: []smp{{data: []byte{0, 2, 0x09, 0xf0, 0, 3, 0x65, 0x88, 0x84}}},
			}}})),
			tracks: []media.Codec{media.CodecH264},
			pkts:   []want{{media.CodecH264, 0, 0, true, 5}},
		},
		{
			name:   "AAC",
			in:     stream(ftyp(), moov(aacTrack), frag(trafSpec{id: 3, tfdt: 44100, runs: []runSpec{{flags: perSize, samples: []smp{{data: []byte{0x21, 0x10, 0x04}}}}}})),
			tracks: []media.Codec{media.CodecAAC},
			pkts:   []want{{media.CodecAAC, time.Second, time.Second, true, 3}},
		},
		{
			name: "a track in an unsupported codec is skipped",
			in: stream(ftyp(), moov(textTrack, opusTrack), frag(
				trafSpec{id: 4, tfdt: 0, runs: []runSpec{{flags: perSize, samples: []smp{{data: []byte("hello")}}}}},
				trafSpec{id: 1, tfdt: 0, runs: []runSpec{opusRun(1)}},
			)),
			tracks: []media.Codec{media.CodecOpus},
			pkts:   []want{opusAt(0)},
		},
		{
			name: "VP9 and AV1 are recognised",
			in: stream(ftyp(), moov(
				trackSpec{id: 5, timescale: 1000, entry: box("vp09", make([]byte, 24), be16(640), be16(480), make([]byte, 50), full("vpcC", 1, 0, make([]byte, 8)))},
				trackSpec{id: 6, timescale: 1000, entry: box("av01", make([]byte, 24), be16(640), be16(480), make([]byte, 50), box("av1C", []byte{0x81, 0, 0, 0})), trex: [3]uint32{33, 0, 0x01010000}},
			), frag(trafSpec{id: 6, tfdt: 0, runs: []runSpec{{flags: perSize, first: u32p(0), samples: []smp{{data: []byte{0x12, 0, 0x0a}}, {data: []byte{0x12, 0, 0x32}}}}}})),
			tracks: []media.Codec{media.CodecVP9, media.CodecAV1},
			pkts:   []want{{media.CodecAV1, 0, 0, true, 3}, {media.CodecAV1, 33 * ms, 33 * ms, false, 3}},
		},
		{
			name: "boxes between and around fragments are skipped",
			in: stream(ftyp(), box("free", make([]byte, 10)), moov(opusTrack), box("skip"),
				box("styp", []byte("msdh"), be32(0)), full("sidx", 1, 0, make([]byte, 40)), full("prft", 1, 0, make([]byte, 16)),
				frag(trafSpec{id: 1, tfdt: 0, runs: []runSpec{opusRun(1)}}),
				full("emsg", 0, 0, []byte("urn:x\x00\x00"), make([]byte, 16)), box("uuid", make([]byte, 16)),
				box("mdat", []byte("an mdat without a moof")),
				frag(trafSpec{id: 1, tfdt: -1, runs: []runSpec{opusRun(1)}}), box("mfra", full("mfro", 0, 0, be32(16)))),
			tracks: []media.Codec{media.CodecOpus},
			pkts:   []want{opusAt(0), opusAt(20 * ms)},
		},
		{
			name:   "a 64-bit box size",
			in:     stream(init, largeMdat(frag(trafSpec{id: 1, tfdt: 0, runs: []runSpec{opusRun(1)}}))),
			tracks: []media.Codec{media.CodecOpus},
			pkts:   []want{opusAt(0)},
		},
		{
			name:   "the same moov again",
			in:     stream(init, frag(trafSpec{id: 1, tfdt: 0, runs: []runSpec{opusRun(1)}}), moov(opusTrack), frag(trafSpec{id: 1, tfdt: -1, runs: []runSpec{opusRun(1)}})),
			tracks: []media.Codec{media.CodecOpus},
			pkts:   []want{opusAt(0), opusAt(20 * ms)},
		},
		{
			name:   "a moof without samples, then the end",
			in:     stream(init, box("moof", full("mfhd", 0, 0, be32(1)))),
			tracks: []media.Codec{media.CodecOpus},
		},
		{
			name: "an empty sample is no packet",
			in: stream(init, frag(trafSpec{id: 1, tfdt: 0, runs: []runSpec{{flags: perSize, samples: []smp{
				{data: opusFrame(1)}, {data: nil}, {data: opusFrame(2)},
			}}}})),
			tracks: []media.Codec{media.CodecOpus},
			pkts:   []want{opusAt(0), opusAt(40 * ms)},
		},

		// Refused.
		{
			name:    "trun with more samples than the mdat holds",
			in:      stream(init, hugeTrun(4000000000)),
			tracks:  []media.Codec{media.CodecOpus},
			wantErr: "more than the 100 bytes of its mdat",
		},
		{
			name:    "a sample past the end of the mdat",
			in:      stream(init, shortMdat(frag(trafSpec{id: 1, tfdt: 0, runs: []runSpec{opusRun(2)}}))),
			tracks:  []media.Codec{media.CodecOpus},
			wantErr: "outside the mdat",
		},
		{
			name: "a data offset into the moof",
			in: stream(init, frag(trafSpec{id: 1, tfdt: 0, plainBase: true, tfhdFlags: tfhdBaseDataOffset, base: uint64(len(init) - 20),
				runs: []runSpec{opusRun(1)}})),
			tracks:  []media.Codec{media.CodecOpus},
			wantErr: "outside the mdat",
		},
		{
			name:    "a moof without its mdat at the end",
			in:      stream(init, withoutMdat(frag(trafSpec{id: 1, tfdt: 0, runs: []runSpec{opusRun(1)}}))),
			tracks:  []media.Codec{media.CodecOpus},
			wantErr: "between a moof and its mdat: unexpected EOF",
		},
		{
			name: "two moofs without an mdat",
			in: stream(init, withoutMdat(frag(trafSpec{id: 1, tfdt: 0, runs: []runSpec{opusRun(1)}})),
				frag(trafSpec{id: 1, tfdt: 0, runs: []runSpec{opusRun(1)}})),
			tracks:  []media.Codec{media.CodecOpus},
			wantErr: "moof without an mdat",
		},
		{
			name:    "traf of a track the moov does not have",
			in:      stream(init, frag(trafSpec{id: 9, tfdt: 0, runs: []runSpec{opusRun(1)}})),
			tracks:  []media.Codec{media.CodecOpus},
			wantErr: "track 9, which the moov does not have",
		},
		{
			name:    "moof before the moov",
			in:      stream(ftyp(), frag(trafSpec{id: 1, tfdt: 0, runs: []runSpec{opusRun(1)}}), moov(opusTrack)),
			wantErr: "moof before the moov",
		},
		{
			name:    "a box over 64 MiB",
			in:      stream(init, be32(64<<20+1), []byte("mdat"), make([]byte, 100)),
			tracks:  []media.Codec{media.CodecOpus},
			wantErr: "MP4 box too large: mdat box of 67108865 bytes",
		},
		{
			name:    "a 64-bit size over 64 MiB",
			in:      stream(init, be32(1), []byte("mdat"), be64(1<<40), make([]byte, 100)),
			tracks:  []media.Codec{media.CodecOpus},
			wantErr: "MP4 box too large",
		},
		{
			name:    "garbage after the moov",
			in:      stream(init, []byte("this is garbage, not a box")),
			tracks:  []media.Codec{media.CodecOpus},
			wantErr: "MP4 box too large",
		},
		{
			name:    "a box smaller than its header",
			in:      stream(init, be32(7), []byte("free")),
			tracks:  []media.Codec{media.CodecOpus},
			wantErr: "less than its header",
		},
		{
			name:    "a box to the end of the stream",
			in:      stream(init, be32(0), []byte("mdat"), make([]byte, 10)),
			tracks:  []media.Codec{media.CodecOpus},
			wantErr: "size 0",
		},
		{
			name:    "a different moov",
			in:      stream(init, frag(trafSpec{id: 1, tfdt: 0, runs: []runSpec{opusRun(1)}}), moov(aacTrack)),
			tracks:  []media.Codec{media.CodecOpus},
			pkts:    []want{opusAt(0)},
			wantErr: ErrParamsChanged.Error(),
		},
		{
			name:    "a progressive MP4",
			in:      stream(ftyp(), moov(trackSpec{id: 1, timescale: 48000, entry: opusTrack.entry, samples: 5})),
			wantErr: "not a fragmented MP4: track 1 lists 5 samples",
		},
		{
			name:    "no track in a supported codec",
			in:      stream(ftyp(), moov(textTrack)),
			wantErr: "no track with a supported codec ([track 4: codec tx3g is not supported])",
		},
		{
			name:    "MP3 in mp4a",
			in:      stream(ftyp(), moov(trackSpec{id: 3, timescale: 44100, entry: audioEntry("mp4a", 44100, esds(0x6b, nil))})),
			wantErr: "mp4a object type 0x6b is not AAC",
		},
		{
			name:    "no tracks",
			in:      stream(ftyp(), moov()),
			wantErr: "the moov has no tracks",
		},
		{
			name:    "17 tracks",
			in:      stream(ftyp(), moov(manyTracks(17)...)),
			wantErr: "more than 16 tracks",
		},
		{
			name:    "two tracks with one ID",
			in:      stream(ftyp(), moov(opusTrack, opusTrack)),
			wantErr: "two tracks with ID 1",
		},
		{
			name:    "dOps version 1",
			in:      stream(ftyp(), moov(trackSpec{id: 1, timescale: 48000, entry: audioEntry("Opus", 48000, box("dOps", append([]byte{1}, dOps(2, 312)[1:]...)))})),
			wantErr: "dOps version 1",
		},
		{
			name:    "short dOps channel mapping",
			in:      stream(ftyp(), moov(trackSpec{id: 1, timescale: 48000, entry: audioEntry("Opus", 48000, box("dOps", append(dOps(2, 312)[:10], 1, 1, 1, 0)))})),
			wantErr: "short dOps channel mapping",
		},
		{
			name:    "bad avcC",
			in:      stream(ftyp(), moov(trackSpec{id: 2, timescale: 1000, entry: avc1([]byte{1, 0x42, 0xc0})})),
			wantErr: "avcC",
		},
		{
			name:    "avc1 without avcC",
			in:      stream(ftyp(), moov(trackSpec{id: 2, timescale: 1000, entry: box("avc1", make([]byte, 78))})),
			wantErr: "without avcC",
		},
		{
			name:    "timescale 0",
			in:      stream(ftyp(), moov(trackSpec{id: 1, entry: opusTrack.entry})),
			wantErr: "timescale of 0",
		},
		{
			name:    "bad access unit",
			in:      stream(ftyp(), moov(h264Track), frag(trafSpec{id: 2, tfdt: 0, runs: []runSpec{{flags: perSize, samples: []smp{{data: []byte{0, 0, 0, 9, 0x65}}}}}})),
			tracks:  []media.Codec{media.CodecH264},
			wantErr: "read H.264 access unit",
		},
		{
			name:    "timestamp out of range",
			in:      stream(ftyp(), moov(trackSpec{id: 1, timescale: 1, entry: opusTrack.entry}), frag(trafSpec{id: 1, tfdt: 1 << 61, runs: []runSpec{opusRun(1)}})),
			tracks:  []media.Codec{media.CodecOpus},
			wantErr: "out of range",
		},
		{
			name:    "a tfdt out of range",
			in:      stream(init, frag(trafSpec{id: 1, tfdt: 1<<62 + 1, runs: []runSpec{opusRun(1)}})),
			tracks:  []media.Codec{media.CodecOpus},
			wantErr: "tfdt 4611686018427387905 out of range",
		},
		{
			name:    "a trun longer than its box",
			in:      stream(init, box("moof", box("traf", full("tfhd", 0, 0, be32(1)), full("trun", 0, perSize, be32(5), be32(3))))),
			tracks:  []media.Codec{media.CodecOpus},
			wantErr: "trun of 5 samples holds 4 bytes of entries, not 20",
		},
		{
			name:    "a trun before its tfhd",
			in:      stream(init, box("moof", box("traf", full("trun", 0, 0, be32(0)), full("tfhd", 0, 0, be32(1))))),
			tracks:  []media.Codec{media.CodecOpus},
			wantErr: "trun before the tfhd",
		},
		{
			name:    "a child box past its parent's end",
			in:      stream(ftyp(), box("moov", be32(100), []byte("trak"))),
			wantErr: "moov: trak box: size 100 does not fit the 8 bytes left",
		},
	} {
		t.Run(ca.name, func(t *testing.T) {
			tracks, pkts, err := testutil.ReadAll(bytes.NewReader(ca.in), NewReader)
			if ca.wantErr == "" {
				if !errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
					t.Fatalf("ended with %v, want EOF", err)
				}
			} else if err == nil || !strings.Contains(err.Error(), ca.wantErr) {
				t.Fatalf("ended with %v, want an error saying %q", err, ca.wantErr)
			}
			var codecs []media.Codec
			for _, tr := range tracks {
				codecs = append(codecs, tr.Codec)
			}
			if !reflect.DeepEqual(codecs, ca.tracks) {
				t.Errorf("tracks %v, want %v", codecs, ca.tracks)
			}
			var got []want
			for _, p := range pkts {
				got = append(got, want{p.Track.Codec, p.DTS, p.PTS, p.Key, p.Size()})
			}
			if !reflect.DeepEqual(got, ca.pkts) {
				t.Errorf("packets\n%+v\nwant\n%+v", got, ca.pkts)
			}
		})
	}
}

func withEdts(t trackSpec, edts []byte) trackSpec {
	t.edts = edts
	return t
}

func manyTracks(n int) []trackSpec {
	var ts []trackSpec
	for i := range n {
		t := opusTrack
		t.id = uint32(i + 1)
		ts = append(ts, t)
	}
	return ts
}

// splitFrag splits frag's output into the moof and the mdat.
func splitFrag(f []byte) (moof, mdat []byte) {
	n := binary.BigEndian.Uint32(f)
	return f[:n], f[n:]
}

func withoutMdat(f []byte) []byte {
	moof, _ := splitFrag(f)
	return moof
}

// largeMdat rewrites the fragment's mdat header with a 64-bit size; the
// data offsets grow by the 8 bytes this adds.
func largeMdat(f []byte) []byte {
	moof, mdat := splitFrag(f)
	moof = bytes.Clone(moof)
	i := bytes.Index(moof, []byte("trun"))
	off := binary.BigEndian.Uint32(moof[i+12:])
	binary.BigEndian.PutUint32(moof[i+12:], off+8)
	return cat(moof, be32(1), []byte("mdat"), be64(uint64(len(mdat)+8)), mdat[8:])
}

// shortMdat cuts the last byte of the fragment's mdat, and says so in the
// mdat's size: its last sample no longer fits.
func shortMdat(f []byte) []byte {
	moof, mdat := splitFrag(f)
	mdat = bytes.Clone(mdat[:len(mdat)-1])
	binary.BigEndian.PutUint32(mdat, uint32(len(mdat)))
	return cat(moof, mdat)
}

// hugeTrun is a moof whose one trun announces n samples of one byte each,
// with no per-sample fields, and an mdat of 100 bytes.
func hugeTrun(n uint32) []byte {
	tfhd := full("tfhd", 0, tfhdDefaultBaseIsMoof|tfhdDefaultSize, be32(1), be32(1))
	moofLen := 8 + 16 + 8 + len(tfhd) + 20
	trun := full("trun", 0, trunDataOffset, be32(n), be32(uint32(moofLen+8)))
	return cat(box("moof", full("mfhd", 0, 0, be32(1)), box("traf", tfhd, trun)), box("mdat", make([]byte, 100)))
}

// handMadeSeeds are streams for the fuzzer to start from.
func handMadeSeeds() [][]byte {
	initAV := stream(ftyp(), moov(withEdts(h264Track, elst([2]int64{500, -1}, [2]int64{1000, 0})), opusTrack, aacTrack))
	return [][]byte{
		stream(initAV,
			frag(
				trafSpec{id: 2, tfdt: 0, runs: []runSpec{{version: 1, flags: perSize | perCTO, first: u32p(0), samples: []smp{{cto: 33, data: idr}, {cto: -33, data: nonIDR}}}}},
				trafSpec{id: 1, tfdt: -1, runs: []runSpec{{flags: perSize, samples: []smp{{data: opusFrame(1)}}}}},
				trafSpec{id: 3, tfdt: 0, plainBase: true, runs: []runSpec{{flags: perSize | perDur, noDataOffset: true, samples: []smp{{dur: 1024, data: []byte{1, 2}}}}}},
			),
			box("free"),
			frag(trafSpec{id: 1, tfdt: 9600, tfhdFlags: tfhdDefaultDuration | tfhdDefaultSize | tfhdDefaultFlags, def: [3]uint32{960, 3, 0},
				runs: []runSpec{{samples: []smp{{data: opusFrame(2)}}}}})),
		hugeTrun(1000),
	}
}

func TestOpusHead(t *testing.T) {
	for _, ca := range []struct {
		name string
		dOps []byte
		want []byte // nil: refused
	}{
		{
			name: "mono, as Chromium writes it",
			dOps: unhex("00010f000000bb80000000"),
			want: unhex("4f707573486561640101000f80bb0000000000"),
		},
		{
			name: "stereo, pre-skip 312, gain -1 dB",
			dOps: unhex("00020138" + "0000ac44" + "ff00" + "00"),
			want: unhex("4f70757348656164" + "0102" + "3801" + "44ac0000" + "00ff" + "00"),
		},
		{
			name: "family 1 with its channel mapping",
			dOps: unhex("0003013800000bb8000001" + "0201" + "000201"),
			want: unhex("4f70757348656164" + "0103" + "3801" + "b80b0000" + "0000" + "01" + "0201" + "000201"),
		},
		{name: "empty", dOps: nil},
		{name: "short", dOps: unhex("00010f000000bb800000")},
		{name: "version 1", dOps: unhex("01010f000000bb80000000")},
		{name: "no channels", dOps: unhex("00000f000000bb80000000")},
		{name: "family 1 without its mapping", dOps: unhex("0003013800000bb8000001")},
		{name: "family 1 with a short mapping", dOps: unhex("0003013800000bb8000001020100")},
	} {
		t.Run(ca.name, func(t *testing.T) {
			head, ch, err := opusHead(ca.dOps)
			if ca.want == nil {
				if err == nil {
					t.Fatalf("accepted: %x", head)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(head, ca.want) || ch != int(ca.want[9]) {
				t.Errorf("OpusHead %x, %d channels; want %x", head, ch, ca.want)
			}
		})
	}
}

func TestQuickTimeSoundEntry(t *testing.T) {
	// A QuickTime sound sample description version 1 (16 more bytes), with
	// the esds inside a wave box, as QuickTime writers do.
	entry := box("mp4a", make([]byte, 8), be16(1), make([]byte, 6), be16(2), be16(16), make([]byte, 4), be32(44100<<16),
		make([]byte, 16), box("wave", box("frma", []byte("mp4a")), esds(0x40, ascLC44100Mono)))
	in := stream(box("ftyp", []byte("qt  "), be32(0), []byte("qt  ")), moov(trackSpec{id: 3, timescale: 44100, entry: entry}))
	tracks, _, err := testutil.ReadAll(bytes.NewReader(in), NewReader)
	if !errors.Is(err, io.EOF) {
		t.Fatal(err)
	}
	if len(tracks) != 1 || tracks[0].Codec != media.CodecAAC || tracks[0].AAC.SampleRate != 44100 || tracks[0].Channels != 1 {
		t.Fatalf("tracks %v", tracks)
	}
	// Without the QuickTime brand, the 16 bytes are not skipped and the
	// entry has no esds where it should.
	in = stream(ftyp(), moov(trackSpec{id: 3, timescale: 44100, entry: entry}))
	if _, _, err := testutil.ReadAll(bytes.NewReader(in), NewReader); err == nil {
		t.Fatal("read a QuickTime entry in an ISO file")
	}
}

func TestTracksBeforeMoov(t *testing.T) {
	// ReadPacket works without Tracks, and Tracks after packets returns the
	// same tracks.
	in := stream(ftyp(), moov(h264Track, opusTrack), frag(
		trafSpec{id: 2, tfdt: 0, runs: []runSpec{{flags: perSize, first: u32p(0), samples: []smp{{data: idr}}}}},
		trafSpec{id: 1, tfdt: 0, runs: []runSpec{{flags: perSize, samples: []smp{{data: opusFrame(1)}}}}},
	))
	r, err := NewReader(bytes.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	p, err := r.ReadPacket()
	if err != nil {
		t.Fatal(err)
	}
	tracks, err := r.Tracks()
	if err != nil {
		t.Fatal(err)
	}
	if len(tracks) != 2 || p.Track != tracks[0] {
		t.Fatalf("tracks %v, first packet of %v", tracks, p.Track)
	}
	tracks[0] = nil // the caller's copy
	if again, _ := r.Tracks(); again[0] == nil {
		t.Fatal("Tracks returned its own slice")
	}
}

func TestLargeBoxArrivesSlowly(t *testing.T) {
	// A header that claims a large box costs memory as its bytes come, not
	// at once.
	in := stream(ftyp(), moov(opusTrack), be32(60<<20), []byte("moof"), make([]byte, 1000))
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range 10 {
		if _, _, err := testutil.ReadAll(bytes.NewReader(in), NewReader); !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("got %v, want unexpected EOF", err)
		}
	}
	runtime.ReadMemStats(&after)
	if perRun := (after.TotalAlloc - before.TotalAlloc) / 10; perRun > 1<<20 {
		t.Errorf("%d bytes allocated per read of a 2 KB stream", perRun)
	}
}
