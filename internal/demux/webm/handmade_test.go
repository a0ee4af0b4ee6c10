package webm

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/livegate/livegate/internal/media"
	"github.com/livegate/livegate/internal/testutil"
)

// Hand-built streams.

var (
	testSPS  = []byte{0x67, 0x42, 0xc0, 0x0d, 0xd9, 0x01, 0x41, 0xfb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10, 0x00, 0x00, 0x03, 0x03, 0xc0, 0xf1, 0x42, 0xa4, 0x80}
	testPPS  = []byte{0x68, 0xcb, 0x83, 0xcb, 0x20}
	idr      = []byte{0x65, 0x88, 0x84, 0x21}
	nonIDR   = []byte{0x41, 0x9a, 0x02}
	opusHead = []byte("OpusHead\x01\x02\x38\x01\x80\xbb\x00\x00\x00\x00\x00")
)

// avcc builds an AVCDecoderConfigurationRecord with the given NAL length
// size.
func avcc(lengthSize int) []byte {
	b := []byte{1, 0x42, 0xc0, 0x0d, 0xfc | byte(lengthSize-1), 0xe1, 0, byte(len(testSPS))}
	b = append(b, testSPS...)
	b = append(b, 1, 0, byte(len(testPPS)))
	return append(b, testPPS...)
}

// nalus prefixes NAL units with lengths of lengthSize bytes.
func nalus(lengthSize int, units ...[]byte) []byte {
	var b []byte
	for _, u := range units {
		for i := lengthSize - 1; i >= 0; i-- {
			b = append(b, byte(len(u)>>(8*i)))
		}
		b = append(b, u...)
	}
	return b
}

func vp8Entry(number uint64, extra ...[]byte) []byte {
	return el(idTrackEntry, slices.Concat([][]byte{uintEl(idTrackNumber, number), strEl(idCodecID, codecVP8),
		el(idVideo, uintEl(idPixelWidth, 64), uintEl(idPixelHeight, 48))}, extra)...)
}

func opusEntry(number uint64, extra ...[]byte) []byte {
	return el(idTrackEntry, slices.Concat([][]byte{uintEl(idTrackNumber, number), strEl(idCodecID, codecOpus),
		el(idCodecPrivate, opusHead), el(idAudio, floatEl(idSamplingFrequency, 48000), uintEl(idChannels, 2))}, extra)...)
}

func h264Entry(number uint64, private []byte) []byte {
	parts := [][]byte{uintEl(idTrackNumber, number), strEl(idCodecID, codecH264),
		el(idVideo, uintEl(idPixelWidth, 320), uintEl(idPixelHeight, 240))}
	if private != nil {
		parts = append(parts, el(idCodecPrivate, private))
	}
	return el(idTrackEntry, parts...)
}

func tracksEl(entries ...[]byte) []byte { return el(idTracks, entries...) }

func cluster(ts uint64, blocks ...[]byte) []byte {
	return elUnknown(idCluster, append([][]byte{uintEl(idTimestamp, ts)}, blocks...)...)
}

// live is a stream as browsers write it: Segment of unknown size.
func live(children ...[]byte) []byte {
	return append(ebmlHeader("webm"), elUnknown(idSegment, children...)...)
}

// Opus packets of known durations (RFC 6716, 3.1).
var (
	opus20ms  = []byte{0xfc, 1, 2, 3}    // config 31 (CELT FB 20 ms), code 0
	opus60ms  = []byte{0x0b, 0x03, 7, 7} // config 1 (SILK NB 20 ms), code 3, 3 frames
	opus5ms   = []byte{0x81, 9}          // config 16 (CELT NB 2.5 ms), code 1: 2 frames
	opus40ms  = []byte{0x6a, 5, 5}       // config 13 (Hybrid FB 20 ms), code 2: 2 frames
	frameA    = []byte("frame A")
	frameB    = bytes.Repeat([]byte("B"), 300)
	frameC    = []byte("c")
	frameD    = bytes.Repeat([]byte("D"), 1000)
	keyFlag   = byte(0x80)
	xiph      = byte(lacingXiph << 1)
	fixedLace = byte(lacingFixed << 1)
	ebmlLace  = byte(lacingEBML << 1)
)

type wantPkt struct {
	codec media.Codec
	pts   time.Duration
	key   bool
	data  []byte   // Data
	au    [][]byte // AU
}

func ms(n float64) time.Duration { return time.Duration(n * float64(time.Millisecond)) }

func TestHandMade(t *testing.T) {
	for _, ca := range []struct {
		name   string
		in     []byte
		tracks []media.Codec
		pkts   []wantPkt
	}{
		{
			name: "Xiph lacing: Opus frames timed by their TOC",
			in: live(tracksEl(opusEntry(2)),
				cluster(1000, simpleBlock(2, 0, keyFlag|xiph, opus20ms, opus60ms, opus5ms, opus40ms))),
			tracks: []media.Codec{media.CodecOpus},
			pkts: []wantPkt{
				{media.CodecOpus, ms(1000), true, opus20ms, nil},
				{media.CodecOpus, ms(1020), true, opus60ms, nil},
				{media.CodecOpus, ms(1080), true, opus5ms, nil},
				{media.CodecOpus, ms(1085), true, opus40ms, nil},
			},
		},
		{
			name: "EBML lacing: frames timed by DefaultDuration",
			in: live(tracksEl(vp8Entry(1, uintEl(idDefaultDuration, 33_333_333))),
				cluster(0, simpleBlock(1, 0, keyFlag|ebmlLace, frameA, frameB, frameC, frameD))),
			tracks: []media.Codec{media.CodecVP8},
			pkts: []wantPkt{
				{media.CodecVP8, 0, true, frameA, nil},
				{media.CodecVP8, 33_333_333, true, frameB, nil},
				{media.CodecVP8, 66_666_666, true, frameC, nil},
				{media.CodecVP8, 99_999_999, true, frameD, nil},
			},
		},
		{
			name: "fixed lacing without DefaultDuration: every frame at the block's time",
			in: live(tracksEl(vp8Entry(1)),
				cluster(0, simpleBlock(1, 40, fixedLace, []byte("abcd"), []byte("efgh"), []byte("ijkl")))),
			tracks: []media.Codec{media.CodecVP8},
			pkts: []wantPkt{
				{media.CodecVP8, ms(40), false, []byte("abcd"), nil},
				{media.CodecVP8, ms(40), false, []byte("efgh"), nil},
				{media.CodecVP8, ms(40), false, []byte("ijkl"), nil},
			},
		},
		{
			name: "Xiph lacing of 255 and more bytes, an empty frame skipped",
			in: live(tracksEl(opusEntry(2)),
				cluster(0, simpleBlock(2, 0, xiph, append([]byte{0xfc}, frameB[:254]...), nil, append([]byte{0xfc}, frameB...)))),
			tracks: []media.Codec{media.CodecOpus},
			pkts: []wantPkt{
				{media.CodecOpus, 0, true, append([]byte{0xfc}, frameB[:254]...), nil},
				{media.CodecOpus, ms(20), true, append([]byte{0xfc}, frameB...), nil},
			},
		},
		{
			name: "BlockGroup: no ReferenceBlock is a key frame",
			in: live(tracksEl(vp8Entry(1)),
				cluster(0,
					el(idBlockGroup, el(idBlock, block(1, 0, 0, frameA))),
					el(idBlockGroup, uintEl(0x9B, 33), el(idBlock, block(1, 33, 0, frameB)), el(idReferenceBlock, []byte{0xdf})),
					el(idBlockGroup, el(idReferenceBlock, []byte{0xdf}), el(idBlock, block(1, 66, 0, frameC))))),
			tracks: []media.Codec{media.CodecVP8},
			pkts: []wantPkt{
				{media.CodecVP8, 0, true, frameA, nil},
				{media.CodecVP8, ms(33), false, frameB, nil},
				{media.CodecVP8, ms(66), false, frameC, nil},
			},
		},
		{
			name: "a Cluster of unknown size followed by another",
			in: live(tracksEl(vp8Entry(1), opusEntry(2)),
				cluster(0, simpleBlock(1, 10, keyFlag, frameA), simpleBlock(2, 12, keyFlag, opus20ms)),
				cluster(1000, simpleBlock(1, 10, 0, frameB)),
				cluster(2000)),
			tracks: []media.Codec{media.CodecVP8, media.CodecOpus},
			pkts: []wantPkt{
				{media.CodecVP8, ms(10), true, frameA, nil},
				{media.CodecOpus, ms(12), true, opus20ms, nil},
				{media.CodecVP8, ms(1010), false, frameB, nil},
			},
		},
		{
			name: "known sizes, and the elements around them skipped",
			in: slices.Concat(ebmlHeader("matroska"), el(idSegment,
				el(idSeekHead, el(0x4DBB, uintEl(0x53AC, 100))),
				el(idVoid, make([]byte, 40)),
				el(idInfo, el(idCRC32, []byte{1, 2, 3, 4}), uintEl(idTimestampScale, 1_000_000), floatEl(0x4489, 3000), strEl(0x4D80, "test")),
				tracksEl(opusEntry(2, uintEl(0x83, 2)), vp8Entry(1)),
				el(idCluster, uintEl(idTimestamp, 5), el(idCRC32, []byte{1, 2, 3, 4}), uintEl(0xA7, 0), simpleBlock(1, 0, keyFlag, frameA), el(0xAF, []byte{1})),
				el(idCues, el(0xBB, uintEl(0xB3, 0))),
				el(idCluster, uintEl(idTimestamp, 10), simpleBlock(2, 0, keyFlag, opus20ms)),
				el(idTags, el(0x7373, strEl(0x45A3, "x"))),
				el(idChapters), el(idAttachments),
			), el(idVoid, []byte{0, 0})),
			tracks: []media.Codec{media.CodecVP8, media.CodecOpus},
			pkts: []wantPkt{
				{media.CodecVP8, ms(5), true, frameA, nil},
				{media.CodecOpus, ms(10), true, opus20ms, nil},
			},
		},
		{
			name: "a Cluster of unknown size ends with its known-size Segment",
			in: slices.Concat(ebmlHeader("webm"), el(idSegment, tracksEl(vp8Entry(1)),
				cluster(0, simpleBlock(1, 0, keyFlag, frameA)), cluster(7, simpleBlock(1, 0, keyFlag, frameB)))),
			tracks: []media.Codec{media.CodecVP8},
			pkts: []wantPkt{
				{media.CodecVP8, 0, true, frameA, nil},
				{media.CodecVP8, ms(7), true, frameB, nil},
			},
		},
		{
			name: "TimestampScale of a microsecond, negative relative timestamps",
			in: live(el(idInfo, uintEl(idTimestampScale, 1000)), tracksEl(vp8Entry(1)),
				cluster(100_000, simpleBlock(1, -32768, keyFlag, frameA), simpleBlock(1, 32767, 0, frameB))),
			tracks: []media.Codec{media.CodecVP8},
			pkts: []wantPkt{
				{media.CodecVP8, (100_000 - 32768) * time.Microsecond, true, frameA, nil},
				{media.CodecVP8, (100_000 + 32767) * time.Microsecond, false, frameB, nil},
			},
		},
		{
			name: "CodecDelay is taken off (RFC 9559, 5.1.4.1.27)",
			in: live(tracksEl(opusEntry(2, uintEl(idCodecDelay, 6_500_000))),
				cluster(0, simpleBlock(2, 6, 0, opus20ms), simpleBlock(2, 26, 0, opus20ms))),
			tracks: []media.Codec{media.CodecOpus},
			pkts: []wantPkt{
				{media.CodecOpus, -500 * time.Microsecond, true, opus20ms, nil},
				{media.CodecOpus, ms(19.5), true, opus20ms, nil},
			},
		},
		{
			name: "unknown codecs, undeclared tracks and compressed tracks are left out",
			in: live(tracksEl(
				el(idTrackEntry, uintEl(idTrackNumber, 3), strEl(idCodecID, "A_VORBIS"), el(idCodecPrivate, []byte{2, 1, 1})),
				vp8Entry(1),
				el(idTrackEntry, uintEl(idTrackNumber, 4), strEl(idCodecID, codecVP9), el(idContentEncodings, el(0x6240)))),
				cluster(0, simpleBlock(3, 0, keyFlag, frameD), simpleBlock(1, 0, keyFlag, frameA), simpleBlock(9, 0, keyFlag, frameB),
					simpleBlock(4, 0, keyFlag, frameC), el(idBlockGroup, el(idBlock, block(3, 5, 0, frameC))))),
			tracks: []media.Codec{media.CodecVP8},
			pkts:   []wantPkt{{media.CodecVP8, 0, true, frameA, nil}},
		},
		{
			name: "video first, then audio; VP9 and AV1",
			in: live(tracksEl(opusEntry(1),
				el(idTrackEntry, uintEl(idTrackNumber, 2), strEl(idCodecID, codecVP9)),
				el(idTrackEntry, uintEl(idTrackNumber, 3), strEl(idCodecID, codecAV1))),
				cluster(0, simpleBlock(1, 0, 0, opus20ms), simpleBlock(2, 0, keyFlag, frameA), simpleBlock(3, 0, 0, frameB))),
			tracks: []media.Codec{media.CodecVP9, media.CodecAV1, media.CodecOpus},
			pkts: []wantPkt{
				{media.CodecOpus, 0, true, opus20ms, nil},
				{media.CodecVP9, 0, true, frameA, nil},
				{media.CodecAV1, 0, false, frameB, nil},
			},
		},
		{
			name: "H.264 with avcC, 2-byte NAL lengths; IDR is key without the flag",
			in: live(tracksEl(h264Entry(1, avcc(2))),
				cluster(0, simpleBlock(1, 0, 0, nalus(2, idr)), simpleBlock(1, 33, 0, nalus(2, nonIDR, nonIDR)))),
			tracks: []media.Codec{media.CodecH264},
			pkts: []wantPkt{
				{media.CodecH264, 0, true, nil, [][]byte{idr}},
				{media.CodecH264, ms(33), false, nil, [][]byte{nonIDR, nonIDR}},
			},
		},
		{
			name: "H.264 with avcC, 1-byte NAL lengths, empty NAL units dropped",
			in: live(tracksEl(h264Entry(1, avcc(1))),
				cluster(0, simpleBlock(1, 0, keyFlag, nalus(1, idr, nil, nonIDR)), simpleBlock(1, 1, 0, nalus(1, nil)))),
			tracks: []media.Codec{media.CodecH264},
			pkts:   []wantPkt{{media.CodecH264, 0, true, nil, [][]byte{idr, nonIDR}}},
		},
		{
			name: "H.264 without CodecPrivate: AVCC with in-band SPS and PPS; audio before them kept",
			in: live(tracksEl(h264Entry(1, nil), opusEntry(2)),
				cluster(0, simpleBlock(2, 0, keyFlag, opus20ms),
					simpleBlock(1, 0, keyFlag, nalus(4, testSPS, testPPS, idr)), simpleBlock(1, 33, 0, nalus(4, nonIDR)))),
			tracks: []media.Codec{media.CodecH264, media.CodecOpus},
			pkts: []wantPkt{
				{media.CodecOpus, 0, true, opus20ms, nil},
				{media.CodecH264, 0, true, nil, [][]byte{testSPS, testPPS, idr}},
				{media.CodecH264, ms(33), false, nil, [][]byte{nonIDR}},
			},
		},
		{
			name: "H.264 without CodecPrivate: Annex B as Chromium writes it",
			in: live(tracksEl(h264Entry(1, nil)),
				cluster(0,
					simpleBlock(1, 0, keyFlag, slices.Concat([]byte{0, 0, 0, 1}, testSPS, []byte{0, 0, 0, 1}, testPPS, []byte{0, 0, 1}, idr, []byte{0, 0})),
					simpleBlock(1, 33, 0, slices.Concat([]byte{0, 0, 1}, nonIDR)))),
			tracks: []media.Codec{media.CodecH264},
			pkts: []wantPkt{
				{media.CodecH264, 0, true, nil, [][]byte{testSPS, testPPS, idr}},
				{media.CodecH264, ms(33), false, nil, [][]byte{nonIDR}},
			},
		},
		{
			name: "a second Tracks element is ignored",
			in: live(tracksEl(vp8Entry(1)), tracksEl(opusEntry(2)),
				cluster(0, simpleBlock(1, 0, keyFlag, frameA), simpleBlock(2, 0, 0, opus20ms))),
			tracks: []media.Codec{media.CodecVP8},
			pkts:   []wantPkt{{media.CodecVP8, 0, true, frameA, nil}},
		},
		{
			name: "unknown elements in a Cluster of unknown size are skipped",
			in: live(tracksEl(vp8Entry(1)),
				cluster(0, el(0x4242, el(0x4243, el(0x4244, []byte{1}))), simpleBlock(1, 0, keyFlag, frameA),
					el(idVoid), simpleBlock(1, 1, 0, frameB))),
			tracks: []media.Codec{media.CodecVP8},
			pkts: []wantPkt{
				{media.CodecVP8, 0, true, frameA, nil},
				{media.CodecVP8, ms(1), false, frameB, nil},
			},
		},
		{
			name:   "no media",
			in:     live(tracksEl(vp8Entry(1))),
			tracks: []media.Codec{media.CodecVP8},
		},
	} {
		t.Run(ca.name, func(t *testing.T) {
			tracks, pkts, err := testutil.ReadAll(bytes.NewReader(ca.in), NewReader)
			if err != io.EOF {
				t.Fatalf("ended with %v, want EOF", err)
			}
			var codecs []media.Codec
			for _, tr := range tracks {
				codecs = append(codecs, tr.Codec)
			}
			if !slices.Equal(codecs, ca.tracks) {
				t.Fatalf("tracks %v, want %v", codecs, ca.tracks)
			}
			if len(pkts) != len(ca.pkts) {
				t.Fatalf("%d packets, want %d", len(pkts), len(ca.pkts))
			}
			for i, p := range pkts {
				w := ca.pkts[i]
				if p.Track.Codec != w.codec || p.PTS != w.pts || p.Key != w.key ||
					!bytes.Equal(p.Data, w.data) || !reflect.DeepEqual(p.AU, w.au) {
					t.Errorf("packet %d: %v %v key %v data %q au %x; want %v %v key %v data %q au %x", i,
						p.Track.Codec, p.PTS, p.Key, p.Data, p.AU, w.codec, w.pts, w.key, w.data, w.au)
				}
				if !slices.Contains(tracks, p.Track) {
					t.Errorf("packet %d: track %p is not one of Tracks()", i, p.Track)
				}
				if p.DTS != p.PTS {
					t.Errorf("packet %d: DTS %v PTS %v", i, p.DTS, p.PTS)
				}
			}
			// The tracks as the recordings' tests do not see them.
			for _, tr := range tracks {
				switch tr.Codec {
				case media.CodecH264:
					if !bytes.Equal(tr.SPS, testSPS) || !bytes.Equal(tr.PPS, testPPS) || tr.Width != 320 || tr.Height != 240 {
						t.Errorf("H.264 track %+v", *tr)
					}
				case media.CodecOpus:
					if !bytes.Equal(tr.OpusHead, opusHead) || tr.SampleRate != 48000 || tr.Channels != 2 {
						t.Errorf("Opus track %+v", *tr)
					}
				}
			}
		})
	}
}

func TestHandMadeErrors(t *testing.T) {
	big := func(id uint32, size uint64) []byte { return append(idBytes(id), vintBytes(size, 8)...) }
	manyTracks := make([][]byte, 17)
	for i := range manyTracks {
		manyTracks[i] = vp8Entry(uint64(i + 1))
	}
	knownSegment := el(idSegment, tracksEl(vp8Entry(1)), el(idVoid, []byte{1, 2, 3}))
	noParams := [][]byte{uintEl(idTimestamp, 0)}
	for range maxPending + 1 {
		noParams = append(noParams, simpleBlock(2, 0, 0, opus20ms), simpleBlock(1, 0, 0, nalus(4, nonIDR)))
	}
	for _, ca := range []struct {
		name string
		in   []byte
		want error  // what classify returns, or a sentinel errors.Is finds
		text string // in the message
	}{
		{name: "HTTP", in: []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), want: ErrNotMatroska},
		{name: "FLV", in: []byte("FLV\x01\x05\x00\x00\x00\x09"), want: ErrNotMatroska},
		{name: "zeros", in: make([]byte, 64), want: ErrNotMatroska},
		{name: "MP4", in: []byte("\x00\x00\x00\x20ftypisom"), want: ErrNotMatroska},
		{name: "empty", in: nil, want: io.EOF},
		{name: "EBML ID only", in: []byte{0x1a, 0x45}, want: io.ErrUnexpectedEOF},
		{name: "DocType mp4", in: ebmlHeader("mp4"), want: ErrNotMatroska, text: `"mp4"`},
		{name: "no DocType", in: el(idEBML, uintEl(0x4286, 1)), want: ErrNotMatroska},
		{name: "EBML header of unknown size", in: elUnknown(idEBML, strEl(idDocType, "webm")), want: ErrNotMatroska},
		{name: "EBMLMaxSizeLength 9", in: el(idEBML, uintEl(idEBMLMaxSizeLength, 9), strEl(idDocType, "webm")), want: ErrNotMatroska},
		{name: "EBML header cut", in: ebmlHeader("webm")[:20], want: io.ErrUnexpectedEOF},

		{name: "oversize element", in: live(big(idTags, maxElementSize+1)), want: ErrTooLarge, text: "Tags of 16777217 bytes"},
		{
			name: "oversize SimpleBlock",
			in:   live(tracksEl(vp8Entry(1)), cluster(0), big(idSimpleBlock, maxElementSize+1)),
			want: ErrTooLarge,
		},
		{name: "oversize CodecID", in: live(tracksEl(el(idTrackEntry, strEl(idCodecID, strings.Repeat("V", 300))))), want: ErrTooLarge},
		{name: "Tracks of unknown size", in: live(elUnknown(idTracks, vp8Entry(1))), want: ErrInvalid, text: "unknown size"},
		{
			name: "BlockGroup of unknown size",
			in:   live(tracksEl(vp8Entry(1)), cluster(0, elUnknown(idBlockGroup, el(idBlock, block(1, 0, 0, frameA))))),
			want: ErrInvalid, text: "BlockGroup of unknown size",
		},
		{name: "Void of unknown size", in: live(elUnknown(idVoid)), want: ErrInvalid},
		{name: "bad element ID", in: live([]byte{0x00, 0x81, 0x00}), want: ErrInvalid, text: "bad element ID"},
		{name: "bad element size", in: live([]byte{0xEC, 0x00}), want: ErrInvalid, text: "bad element size"},
		{name: "element past its parent", in: live(el(idTracks, el(idTrackEntry)[:1], []byte{0x85, 1})), want: ErrInvalid, text: "past the end"},
		{name: "stream ends between children of a known-size Segment", in: slices.Concat(ebmlHeader("webm"), knownSegment[:len(knownSegment)-5]), want: io.ErrUnexpectedEOF},

		{name: "no usable track", in: live(tracksEl(el(idTrackEntry, uintEl(idTrackNumber, 1), strEl(idCodecID, "A_AAC")))), want: ErrNoUsableTrack, text: "A_AAC"},
		{name: "empty Tracks", in: live(tracksEl()), want: ErrNoUsableTrack},
		{name: "no Tracks at all", in: live(cluster(0)), want: ErrInvalid, text: "Cluster before the Tracks"},
		{name: "17 tracks", in: live(tracksEl(manyTracks...)), want: ErrInvalid, text: "more than 16 tracks"},
		{name: "two tracks numbered 1", in: live(tracksEl(vp8Entry(1), opusEntry(1))), want: ErrInvalid, text: "two tracks numbered 1"},
		{name: "no TrackNumber", in: live(tracksEl(el(idTrackEntry, strEl(idCodecID, codecVP8)))), want: ErrInvalid},
		{name: "bad avcC", in: live(tracksEl(h264Entry(1, []byte{1, 2, 3}))), want: media.ErrBadAVCC},
		{name: "NAL length size 3", in: live(tracksEl(h264Entry(1, append(avcc(3)[:4:4], append([]byte{0xfe}, avcc(3)[5:]...)...)))), want: ErrInvalid, text: "length size 3"},
		{name: "Opus with 0 channels", in: live(tracksEl(opusEntry(1, el(idAudio, uintEl(idChannels, 0))))), want: ErrInvalid},
		{name: "TimestampScale 0", in: live(el(idInfo, uintEl(idTimestampScale, 0))), want: ErrInvalid},
		{name: "TrackNumber of 9 bytes", in: live(tracksEl(el(idTrackEntry, el(idTrackNumber, make([]byte, 9))))), want: ErrInvalid},
		{name: "H.264 without SPS and PPS", in: live(tracksEl(h264Entry(1, nil), opusEntry(2)), elUnknown(idCluster, noParams...)), want: ErrInvalid, text: "after 1025 packets"},

		{name: "block before the Timestamp", in: live(tracksEl(vp8Entry(1)), elUnknown(idCluster, simpleBlock(1, 0, 0, frameA))), want: ErrInvalid, text: "before its Cluster's Timestamp"},
		{name: "Timestamp out of range", in: live(tracksEl(vp8Entry(1)), cluster(1<<63, simpleBlock(1, 0, 0, frameA))), want: ErrInvalid, text: "out of range"},
		{name: "block too short", in: live(tracksEl(vp8Entry(1)), cluster(0, el(idSimpleBlock, []byte{0x81, 0}))), want: ErrInvalid, text: "bad header"},
		{name: "Xiph sizes past the block", in: live(tracksEl(vp8Entry(1)), cluster(0, el(idSimpleBlock, []byte{0x81, 0, 0, xiph, 1, 200, 1, 2}))), want: ErrInvalid, text: "lacing"},
		{name: "Xiph header cut", in: live(tracksEl(vp8Entry(1)), cluster(0, el(idSimpleBlock, []byte{0x81, 0, 0, xiph, 1, 255, 255}))), want: ErrInvalid, text: "Xiph"},
		{name: "fixed lacing uneven", in: live(tracksEl(vp8Entry(1)), cluster(0, el(idSimpleBlock, []byte{0x81, 0, 0, fixedLace, 1, 1, 2, 3}))), want: ErrInvalid, text: "equal frames"},
		{name: "EBML lacing negative size", in: live(tracksEl(vp8Entry(1)), cluster(0, el(idSimpleBlock, []byte{0x81, 0, 0, ebmlLace, 2, 0x82, 0x80, 1, 2, 3}))), want: ErrInvalid, text: "EBML lacing"},
		{name: "EBML lacing bad size", in: live(tracksEl(vp8Entry(1)), cluster(0, el(idSimpleBlock, []byte{0x81, 0, 0, ebmlLace, 1, 0, 1}))), want: ErrInvalid, text: "EBML lacing"},
		{name: "laced block without count", in: live(tracksEl(vp8Entry(1)), cluster(0, el(idSimpleBlock, []byte{0x81, 0, 0, xiph}))), want: ErrInvalid},
		{name: "NAL unit past the frame", in: live(tracksEl(h264Entry(1, avcc(4))), cluster(0, simpleBlock(1, 0, keyFlag, []byte{0, 0, 0, 9, 0x65}))), want: ErrInvalid, text: "NAL unit"},
		{name: "NAL length cut", in: live(tracksEl(h264Entry(1, avcc(4))), cluster(0, simpleBlock(1, 0, keyFlag, []byte{0, 0, 0, 1, 0x65, 0}))), want: ErrInvalid, text: "NAL unit"},
		{name: "too many NAL units", in: live(tracksEl(h264Entry(1, avcc(1))), cluster(0, simpleBlock(1, 0, keyFlag, bytes.Repeat([]byte{1, 0x41}, 51)))), want: ErrInvalid, text: "NAL units"},
		{name: "BlockGroup with two Blocks", in: live(tracksEl(vp8Entry(1)), cluster(0, el(idBlockGroup, el(idBlock, block(1, 0, 0, frameA)), el(idBlock, block(1, 0, 0, frameA))))), want: ErrInvalid, text: "two Blocks"},
		{name: "BlockGroup without Block", in: live(tracksEl(vp8Entry(1)), cluster(0, el(idBlockGroup, uintEl(idReferenceBlock, 0)))), want: ErrInvalid, text: "without a Block"},
		{name: "a second Segment", in: slices.Concat(ebmlHeader("webm"), el(idSegment, tracksEl(vp8Entry(1))), el(idSegment)), want: ErrInvalid, text: "second Segment"},
		{name: "a second EBML header", in: slices.Concat(live(tracksEl(vp8Entry(1)), cluster(0)), ebmlHeader("webm")), want: ErrInvalid, text: "second EBML header"},
		{name: "junk after the Segment", in: slices.Concat(ebmlHeader("webm"), el(idSegment, tracksEl(vp8Entry(1))), el(idCluster)), want: ErrInvalid, text: "outside the Segment"},
	} {
		t.Run(ca.name, func(t *testing.T) {
			_, _, err := testutil.ReadAll(bytes.NewReader(ca.in), NewReader)
			if classify(err) != ca.want && !errors.Is(err, ca.want) {
				t.Fatalf("got %v, want %v", err, ca.want)
			}
			if classify(err) == errUnclassified {
				t.Errorf("error %v is neither EOF, unexpected EOF, ErrNotMatroska nor ErrInvalid", err)
			}
			if !strings.Contains(err.Error(), ca.text) {
				t.Errorf("error %q does not say %q", err, ca.text)
			}
			t.Log(err)
		})
	}
}

// TestErrorIsSticky: after an error, every call returns it again.
func TestErrorIsSticky(t *testing.T) {
	in := live(tracksEl(vp8Entry(1)), cluster(0, simpleBlock(1, 0, keyFlag, frameA), el(idSimpleBlock, []byte{0x81, 0}), simpleBlock(1, 0, keyFlag, frameA)))
	r, err := NewReader(bytes.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.ReadPacket(); err != nil { // Tracks is called for us
		t.Fatal(err)
	}
	_, err1 := r.ReadPacket()
	_, err2 := r.ReadPacket()
	if !errors.Is(err1, ErrInvalid) || err1 != err2 {
		t.Errorf("errors %v then %v", err1, err2)
	}
	if _, err := r.Tracks(); err != nil {
		t.Errorf("Tracks after the error: %v (the tracks were known)", err)
	}
}

// TestSkipDoesNotAllocate: an element that is skipped is read through the
// buffer, not into memory of its size.
func TestSkipDoesNotAllocate(t *testing.T) {
	in := live(el(idVoid, make([]byte, maxElementSize)), el(idTags, make([]byte, maxElementSize)), tracksEl(vp8Entry(1)),
		cluster(0, el(idVoid, make([]byte, maxElementSize-100)), simpleBlock(5, 0, 0, make([]byte, 1<<20))))
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, _, err := testutil.ReadAll(bytes.NewReader(in), NewReader)
	runtime.ReadMemStats(&after)
	if err != io.EOF {
		t.Fatal(err)
	}
	if n := after.TotalAlloc - before.TotalAlloc; n > 1<<20 {
		t.Errorf("skipping 49 MiB allocated %d bytes", n)
	}
}

func TestOpusDuration(t *testing.T) {
	for _, ca := range []struct {
		toc  []byte
		want time.Duration
	}{
		{nil, 0},
		{[]byte{0 << 3}, ms(10)}, {[]byte{1 << 3}, ms(20)}, {[]byte{2 << 3}, ms(40)}, {[]byte{3 << 3}, ms(60)},
		{[]byte{11 << 3}, ms(60)}, {[]byte{12 << 3}, ms(10)}, {[]byte{13 << 3}, ms(20)}, {[]byte{15 << 3}, ms(20)},
		{[]byte{16 << 3}, ms(2.5)}, {[]byte{17 << 3}, ms(5)}, {[]byte{18 << 3}, ms(10)}, {[]byte{31 << 3}, ms(20)},
		{[]byte{31<<3 | 1}, ms(40)}, {[]byte{31<<3 | 2}, ms(40)},
		{[]byte{31<<3 | 3}, 0}, {[]byte{31<<3 | 3, 3}, ms(60)}, {[]byte{16<<3 | 3, 0xc0 | 48}, ms(120)},
		{opus20ms, ms(20)}, {opus60ms, ms(60)}, {opus5ms, ms(5)}, {opus40ms, ms(40)},
	} {
		if got := opusDuration(ca.toc); got != ca.want {
			t.Errorf("opusDuration(%x) = %v, want %v", ca.toc, got, ca.want)
		}
	}
}

func TestMayReorder(t *testing.T) {
	for _, ca := range []struct {
		name string
		sps  []byte
		want bool
	}{
		{name: "unreadable", sps: []byte{0x67}, want: false},
		{name: "x264 baseline: max_num_reorder_frames 0", sps: testSPS, want: false},
	} {
		if got := mayReorder(ca.sps); got != ca.want {
			t.Errorf("%s: %v, want %v", ca.name, got, ca.want)
		}
	}
	for _, ca := range []struct {
		file string
		want bool
	}{
		{file: "chromium-h264-opus.mkv", want: false}, // POC type 0, max_num_reorder_frames 0
		{file: "ffmpeg-h264-bframes.mkv", want: true},
	} {
		tracks, _, err := testutil.ReadAll(bytes.NewReader(readTestFile(t, ca.file)), NewReader)
		if err != io.EOF {
			t.Fatal(err)
		}
		if got := mayReorder(tracks[0].SPS); got != ca.want {
			t.Errorf("%s: %v, want %v", ca.file, got, ca.want)
		}
	}
}

// TestPendingBytes: while Tracks waits for an H.264 track's parameter
// sets, it keeps no more than maxPendingBytes of media.
func TestPendingBytes(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a 70 MB stream")
	}
	frame := make([]byte, 14<<20)
	frame[0] = 0xfc
	children := [][]byte{uintEl(idTimestamp, 0)}
	for range 5 {
		children = append(children, simpleBlock(2, 0, 0, frame))
	}
	in := live(tracksEl(h264Entry(1, nil), opusEntry(2)), elUnknown(idCluster, children...))
	_, _, err := testutil.ReadAll(bytes.NewReader(in), NewReader)
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "after 5 packets") {
		t.Errorf("got %v, want the pending limit", err)
	}
}

// TestTracksTwice: Tracks can be called again, and ReadPacket calls it when
// it was not.
func TestTracksTwice(t *testing.T) {
	in := live(tracksEl(vp8Entry(1), opusEntry(2)), cluster(0, simpleBlock(2, 0, 0, opus20ms)))
	r, err := NewReader(bytes.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	p, err := r.ReadPacket()
	if err != nil || p.Track.Codec != media.CodecOpus {
		t.Fatalf("first packet %v, %v", p, err)
	}
	t1, err1 := r.Tracks()
	t2, err2 := r.Tracks()
	if err1 != nil || err2 != nil || len(t1) != 2 || !slices.Equal(t1, t2) || t1[1] != p.Track {
		t.Errorf("Tracks: %v %v, then %v %v", t1, err1, t2, err2)
	}
	if _, err := r.ReadPacket(); err != io.EOF {
		t.Errorf("then %v, want EOF", err)
	}
}
