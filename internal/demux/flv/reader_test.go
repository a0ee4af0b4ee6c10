package flv

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/livegate/livegate/internal/media"
	"github.com/livegate/livegate/internal/testutil"
)

// testFile was made with
//
//	ffmpeg -f lavfi -i testsrc2=size=320x240:rate=30 -f lavfi -i sine=frequency=440:sample_rate=48000 \
//	  -t 2 -c:v libx264 -profile:v baseline -g 30 -c:a aac -f flv h264-aac.flv
const testFile = "testdata/h264-aac.flv"

func readTestFile(t testing.TB) []byte {
	t.Helper()
	data, err := os.ReadFile(testFile)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// tagEnds returns the offsets at which a tag ends (the header's end first):
// the only places where the stream may be cut cleanly.
func tagEnds(t *testing.T, data []byte) []int {
	t.Helper()
	ends := []int{13}
	for pos := 13; pos < len(data); {
		if pos+11 > len(data) {
			t.Fatalf("test file ends inside a tag header at %d", pos)
		}
		size := int(data[pos+1])<<16 | int(data[pos+2])<<8 | int(data[pos+3])
		pos += 11 + size + 4
		ends = append(ends, pos)
	}
	if ends[len(ends)-1] != len(data) {
		t.Fatalf("test file does not end at a tag boundary")
	}
	return ends
}

func TestTracks(t *testing.T) {
	r, err := NewReader(bytes.NewReader(readTestFile(t)))
	if err != nil {
		t.Fatal(err)
	}
	tracks, err := r.Tracks()
	if err != nil {
		t.Fatal(err)
	}
	if len(tracks) != 2 {
		t.Fatalf("%d tracks, want 2", len(tracks))
	}
	v, a := tracks[0], tracks[1]
	if v.Codec != media.CodecH264 {
		t.Fatalf("first track is %v, want H264", v.Codec)
	}
	if len(v.SPS) == 0 || len(v.PPS) == 0 {
		t.Errorf("SPS %x PPS %x: want both", v.SPS, v.PPS)
	}
	if info := media.H264Info(v.SPS); !strings.Contains(info, "320x240") {
		t.Errorf("SPS says %q, want 320x240", info)
	}
	if a.Codec != media.CodecAAC {
		t.Fatalf("second track is %v, want AAC", a.Codec)
	}
	if a.AAC == nil || a.AAC.SampleRate != 48000 {
		t.Errorf("AAC config %+v, want 48000 Hz", a.AAC)
	}
}

// probePacket is one packet as ffprobe sees it.
type probePacket struct {
	CodecType string `json:"codec_type"`
	PTS       int64  `json:"pts"`
	DTS       int64  `json:"dts"`
	Size      string `json:"size"`
	Flags     string `json:"flags"`
}

func ffprobe(t *testing.T, path string) (counts map[string]int, pkts []probePacket) {
	t.Helper()
	testutil.NeedTool(t, "ffprobe")
	out, err := exec.Command("ffprobe", "-v", "error", "-count_packets",
		"-show_entries", "stream=codec_type,nb_read_packets:packet=codec_type,pts,dts,size,flags",
		"-of", "json", path).Output()
	if err != nil {
		t.Fatalf("ffprobe: %v", err)
	}
	var res struct {
		Streams []struct {
			CodecType     string `json:"codec_type"`
			NbReadPackets string `json:"nb_read_packets"`
		} `json:"streams"`
		Packets []probePacket `json:"packets"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("ffprobe output: %v", err)
	}
	counts = map[string]int{}
	for _, s := range res.Streams {
		n, err := strconv.Atoi(s.NbReadPackets)
		if err != nil {
			t.Fatalf("ffprobe packet count %q: %v", s.NbReadPackets, err)
		}
		counts[s.CodecType] += n
	}
	return counts, res.Packets
}

func TestPacketsMatchFFprobe(t *testing.T) {
	wantCounts, probed := ffprobe(t, testFile)
	_, pkts, err := testutil.ReadAll(bytes.NewReader(readTestFile(t)), NewReader)
	if !errors.Is(err, io.EOF) {
		t.Fatalf("stream ended with %v, want EOF", err)
	}

	counts := map[string]int{}
	lastDTS := map[media.Codec]time.Duration{}
	for i, p := range pkts {
		kind := "audio"
		if p.Track.Codec.IsVideo() {
			kind = "video"
		}
		counts[kind]++
		if last, ok := lastDTS[p.Track.Codec]; ok && p.DTS < last {
			t.Errorf("packet %d (%v): DTS %v after %v", i, p.Track.Codec, p.DTS, last)
		}
		lastDTS[p.Track.Codec] = p.DTS
		switch p.Track.Codec {
		case media.CodecH264:
			if len(p.AU) == 0 || p.Data != nil {
				t.Errorf("packet %d: H.264 with %d NAL units and %d data bytes", i, len(p.AU), len(p.Data))
			}
		case media.CodecAAC:
			if len(p.Data) == 0 || p.AU != nil || !p.Key || p.PTS != p.DTS {
				t.Errorf("packet %d: AAC packet %+v", i, p)
			}
		default:
			t.Errorf("packet %d of codec %v", i, p.Track.Codec)
		}
	}
	if counts["video"] != wantCounts["video"] || counts["audio"] != wantCounts["audio"] {
		t.Errorf("read %d video and %d audio packets, ffprobe counts %d and %d",
			counts["video"], counts["audio"], wantCounts["video"], wantCounts["audio"])
	}
	for i, p := range pkts {
		if p.Track.Codec == media.CodecH264 {
			if !p.Key {
				t.Errorf("first video packet (%d) is not a key frame", i)
			}
			break
		}
	}

	// Packet by packet, in order: the same timestamps, key flags and sizes
	// as ffprobe (which counts the 4-byte length of each NAL unit).
	if len(probed) != len(pkts) {
		t.Fatalf("ffprobe lists %d packets, read %d", len(probed), len(pkts))
	}
	for i, p := range pkts {
		want := probed[i]
		size := p.Size()
		if p.Track.Codec == media.CodecH264 {
			size += 4 * len(p.AU)
		}
		got := probePacket{
			CodecType: map[bool]string{true: "video", false: "audio"}[p.Track.Codec.IsVideo()],
			PTS:       p.PTS.Milliseconds(),
			DTS:       p.DTS.Milliseconds(),
			Size:      strconv.Itoa(size),
			Flags:     map[bool]string{true: "K_", false: "__"}[p.Key],
		}
		if got != want {
			t.Errorf("packet %d: read %+v, ffprobe %+v", i, got, want)
		}
	}
}

func TestReadSizes(t *testing.T) {
	data := readTestFile(t)
	wantTracks, want, err := testutil.ReadAll(bytes.NewReader(data), NewReader)
	if !errors.Is(err, io.EOF) {
		t.Fatal(err)
	}
	for _, ca := range []struct {
		name string
		r    func() io.Reader
	}{
		{name: "one byte", r: func() io.Reader { return iotest.OneByteReader(bytes.NewReader(data)) }},
		{name: "half", r: func() io.Reader { return iotest.HalfReader(bytes.NewReader(data)) }},
		{name: "EOF with data", r: func() io.Reader { return iotest.DataErrReader(bytes.NewReader(data)) }},
		{name: "one byte, EOF with data", r: func() io.Reader { return iotest.DataErrReader(iotest.OneByteReader(bytes.NewReader(data))) }},
	} {
		t.Run(ca.name, func(t *testing.T) {
			tracks, got, err := testutil.ReadAll(ca.r(), NewReader)
			if !errors.Is(err, io.EOF) {
				t.Fatalf("ended with %v, want EOF", err)
			}
			if len(tracks) != len(wantTracks) {
				t.Fatalf("%d tracks, want %d", len(tracks), len(wantTracks))
			}
			for i := range tracks {
				if !reflect.DeepEqual(*tracks[i], *wantTracks[i]) {
					t.Errorf("track %d: %v, want %v", i, tracks[i], wantTracks[i])
				}
			}
			testutil.EqualPackets(t, ca.name, got, want)
		})
	}
}

// TestPayloadsAreOwned: a packet's bytes stay as they were while later tags
// are read (the reader reuses its tag buffer).
func TestPayloadsAreOwned(t *testing.T) {
	data := readTestFile(t)
	_, want, err := testutil.ReadAll(bytes.NewReader(data), NewReader)
	if !errors.Is(err, io.EOF) {
		t.Fatal(err)
	}
	// Deep copies taken as each packet is read.
	kept, copies := testutil.ReadKept(t, bytes.NewReader(data), NewReader)
	testutil.EqualPackets(t, "kept", kept, copies)
	testutil.EqualPackets(t, "kept vs fresh", kept, want)
}

func TestTruncated(t *testing.T) {
	data := readTestFile(t)
	_, want, err := testutil.ReadAll(bytes.NewReader(data), NewReader)
	if !errors.Is(err, io.EOF) {
		t.Fatal(err)
	}
	ends := tagEnds(t, data)
	clean := map[int]bool{}
	for _, e := range ends {
		clean[e] = true
	}
	cuts := []int{0, 1, 3, 5, 9, 12}
	for _, e := range ends[:6] {
		cuts = append(cuts, e, e+1, e+7, e+11, e+12, e+20)
	}
	for c := 13; c < len(data); c += 997 {
		cuts = append(cuts, c)
	}
	cuts = append(cuts, len(data)-4, len(data)-1)
	for _, cut := range cuts {
		t.Run(strconv.Itoa(cut), func(t *testing.T) {
			_, got, err := testutil.ReadAll(bytes.NewReader(data[:cut]), NewReader)
			switch {
			case cut == 0 || clean[cut]:
				if !errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
					t.Errorf("cut at a tag boundary: %v, want EOF", err)
				}
			default:
				if !errors.Is(err, io.ErrUnexpectedEOF) {
					t.Errorf("cut inside a tag: %v, want unexpected EOF", err)
				}
			}
			// What was read is what the whole stream starts with.
			if len(got) > len(want) {
				t.Fatalf("%d packets from a cut stream, %d from the whole", len(got), len(want))
			}
			testutil.EqualPackets(t, "cut", got, want[:len(got)])
		})
	}
}

func TestReadErrorIsKept(t *testing.T) {
	data := readTestFile(t)
	ends := tagEnds(t, data)
	errBroken := errors.New("pipe broken")
	for _, ca := range []struct {
		name string
		cut  int
	}{
		{name: "in the header", cut: 5},
		{name: "at a tag boundary", cut: ends[3]},
		{name: "in a tag header", cut: ends[3] + 4},
		{name: "in a tag body", cut: ends[3] + 20},
		{name: "in the previous tag size", cut: ends[4] - 2},
	} {
		t.Run(ca.name, func(t *testing.T) {
			r := io.MultiReader(bytes.NewReader(data[:ca.cut]), iotest.ErrReader(errBroken))
			_, _, err := testutil.ReadAll(r, NewReader)
			if !errors.Is(err, errBroken) {
				t.Errorf("got %v, want the reader's error", err)
			}
		})
	}
}

func TestNotFLV(t *testing.T) {
	pad := func(s string) []byte { return append([]byte(s), make([]byte, 13)...) }
	for _, ca := range []struct {
		name string
		in   []byte
		want error
	}{
		{name: "matroska", in: pad("\x1a\x45\xdf\xa3"), want: ErrNotFLV},
		{name: "text", in: []byte("hello, world! this is not a video"), want: ErrNotFLV},
		{name: "lower case", in: pad("flv\x01\x05"), want: ErrNotFLV},
		{name: "FL only", in: pad("FLX"), want: ErrNotFLV},
		{name: "zeros", in: make([]byte, 64), want: ErrNotFLV},
		{name: "empty", in: nil, want: io.EOF},
		{name: "short", in: []byte("FLV\x01"), want: io.ErrUnexpectedEOF},
	} {
		t.Run(ca.name, func(t *testing.T) {
			r, err := NewReader(bytes.NewReader(ca.in))
			if !errors.Is(err, ca.want) {
				t.Errorf("got %v, want %v", err, ca.want)
			}
			if r != nil {
				t.Error("returned a reader with the error")
			}
		})
	}
}

// Hand-made streams.

const (
	flagAudio = 0x04
	flagVideo = 0x01
)

func flvHeader(flags byte) []byte {
	return []byte{'F', 'L', 'V', 1, flags, 0, 0, 0, 9, 0, 0, 0, 0}
}

func tag(typ byte, ts uint32, body []byte) []byte {
	n := len(body)
	b := []byte{typ, byte(n >> 16), byte(n >> 8), byte(n), byte(ts >> 16), byte(ts >> 8), byte(ts), byte(ts >> 24), 0, 0, 0}
	b = append(b, body...)
	total := uint32(11 + n)
	return append(b, byte(total>>24), byte(total>>16), byte(total>>8), byte(total))
}

var (
	sps = []byte{0x67, 0x42, 0xc0, 0x0d, 0xd9, 0x01, 0x41, 0xfb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10, 0x00, 0x00, 0x03, 0x03, 0xc0, 0xf1, 0x42, 0xa4, 0x80}
	pps = []byte{0x68, 0xcb, 0x83, 0xcb, 0x20}
)

func avcSeqHeader() []byte {
	b := []byte{0x17, 0, 0, 0, 0, 1, 0x42, 0xc0, 0x0d, 0xff, 0xe1, 0, byte(len(sps))}
	b = append(b, sps...)
	b = append(b, 1, 0, byte(len(pps)))
	return append(b, pps...)
}

func avcFrame(key bool, cts int32, nalus ...[]byte) []byte {
	b := []byte{0x27, 1, byte(cts >> 16), byte(cts >> 8), byte(cts)}
	if key {
		b[0] = 0x17
	}
	for _, n := range nalus {
		b = append(b, byte(len(n)>>24), byte(len(n)>>16), byte(len(n)>>8), byte(len(n)))
		b = append(b, n...)
	}
	return b
}

var (
	aacSeqHeader = []byte{0xaf, 0, 0x11, 0x88} // AAC LC, 48 kHz, mono
	aacFrame     = []byte{0xaf, 1, 0x21, 0x10, 0x04}
	idr          = []byte{0x65, 0x88, 0x84}
	nonIDR       = []byte{0x41, 0x9a, 0x02}
)

func stream(flags byte, tags ...[]byte) []byte {
	b := flvHeader(flags)
	for _, t := range tags {
		b = append(b, t...)
	}
	return b
}

func TestHandMade(t *testing.T) {
	type want struct {
		dts, pts time.Duration
		key      bool
		codec    media.Codec
	}
	script := tag(tagScript, 0, []byte{2, 0, 10, 'o', 'n', 'M', 'e', 't', 'a', 'D', 'a', 't', 'a'})
	for _, ca := range []struct {
		name    string
		in      []byte
		tracks  []media.Codec
		pkts    []want
		wantErr string // empty: ends with EOF
	}{
		{
			name: "video and audio",
			in: stream(flagAudio|flagVideo, script, tag(tagVideo, 0, avcSeqHeader()), tag(tagAudio, 0, aacSeqHeader),
				tag(tagVideo, 0, avcFrame(true, 66, idr)), tag(tagAudio, 21, aacFrame), tag(tagVideo, 33, avcFrame(false, 33, nonIDR))),
			tracks: []media.Codec{media.CodecH264, media.CodecAAC},
			pkts: []want{
				{0, 66 * time.Millisecond, true, media.CodecH264},
				{21 * time.Millisecond, 21 * time.Millisecond, true, media.CodecAAC},
				{33 * time.Millisecond, 66 * time.Millisecond, false, media.CodecH264},
			},
		},
		{
			name: "media before the last config is kept",
			in: stream(flagAudio|flagVideo, tag(tagAudio, 0, aacSeqHeader), tag(tagAudio, 0, aacFrame),
				tag(tagVideo, 0, avcSeqHeader()), tag(tagVideo, 0, avcFrame(true, 0, idr))),
			tracks: []media.Codec{media.CodecH264, media.CodecAAC},
			pkts:   []want{{0, 0, true, media.CodecAAC}, {0, 0, true, media.CodecH264}},
		},
		{
			name:   "audio only",
			in:     stream(flagAudio, tag(tagAudio, 0, aacSeqHeader), tag(tagAudio, 10, aacFrame)),
			tracks: []media.Codec{media.CodecAAC},
			pkts:   []want{{10 * time.Millisecond, 10 * time.Millisecond, true, media.CodecAAC}},
		},
		{
			name:   "video only",
			in:     stream(flagVideo, tag(tagVideo, 0, avcSeqHeader()), tag(tagVideo, 0, avcFrame(true, 0, idr))),
			tracks: []media.Codec{media.CodecH264},
			pkts:   []want{{0, 0, true, media.CodecH264}},
		},
		{
			name:   "extended timestamp",
			in:     stream(flagVideo, tag(tagVideo, 0, avcSeqHeader()), tag(tagVideo, 0x01000010, avcFrame(true, 0, idr))),
			tracks: []media.Codec{media.CodecH264},
			pkts:   []want{{0x01000010 * time.Millisecond, 0x01000010 * time.Millisecond, true, media.CodecH264}},
		},
		{
			name:   "negative composition time",
			in:     stream(flagVideo, tag(tagVideo, 0, avcSeqHeader()), tag(tagVideo, 100, avcFrame(true, -40, idr))),
			tracks: []media.Codec{media.CodecH264},
			pkts:   []want{{100 * time.Millisecond, 60 * time.Millisecond, true, media.CodecH264}},
		},
		{
			name: "IDR in an inter-frame tag is a key frame",
			in: stream(flagVideo, tag(tagVideo, 0, avcSeqHeader()),
				tag(tagVideo, 0, avcFrame(false, 0, []byte{0x09, 0xf0}, idr))),
			tracks: []media.Codec{media.CodecH264},
			pkts:   []want{{0, 0, true, media.CodecH264}},
		},
		{
			name: "end of sequence is skipped",
			in: stream(flagVideo, tag(tagVideo, 0, avcSeqHeader()), tag(tagVideo, 0, avcFrame(true, 0, idr)),
				tag(tagVideo, 0, []byte{0x17, 2, 0, 0, 0})),
			tracks: []media.Codec{media.CodecH264},
			pkts:   []want{{0, 0, true, media.CodecH264}},
		},

		{name: "no tracks announced", in: stream(0, script), wantErr: "neither audio nor video"},
		{name: "announced video never comes", in: stream(flagAudio|flagVideo, tag(tagAudio, 0, aacSeqHeader), tag(tagAudio, 0, aacFrame)), wantErr: "EOF"},
		{name: "unknown tag type", in: stream(flagVideo, tag(7, 0, []byte{1, 2, 3})), wantErr: "unknown FLV tag type 7"},
		{name: "VP6 video", in: stream(flagVideo, tag(tagVideo, 0, []byte{0x14, 0, 0, 0, 0})), wantErr: "not H.264"},
		{name: "short video tag", in: stream(flagVideo, tag(tagVideo, 0, []byte{0x17, 0})), wantErr: "short FLV video tag"},
		{name: "empty video tag", in: stream(flagVideo, tag(tagVideo, 0, nil)), wantErr: "short FLV video tag"},
		{name: "bad avcC", in: stream(flagVideo, tag(tagVideo, 0, []byte{0x17, 0, 0, 0, 0, 1, 2})), wantErr: "avcC"},
		{name: "H.264 before its config", in: stream(flagVideo, tag(tagVideo, 0, avcFrame(true, 0, idr))), wantErr: "before its sequence header"},
		{
			name:    "bad access unit",
			in:      stream(flagVideo, tag(tagVideo, 0, avcSeqHeader()), tag(tagVideo, 0, []byte{0x17, 1, 0, 0, 0, 0, 0, 0, 9, 1})),
			tracks:  []media.Codec{media.CodecH264},
			wantErr: "read H.264 access unit",
		},
		{name: "MP3 audio", in: stream(flagAudio, tag(tagAudio, 0, []byte{0x2f, 0})), wantErr: "not AAC"},
		{name: "short audio tag", in: stream(flagAudio, tag(tagAudio, 0, []byte{0xaf})), wantErr: "short FLV audio tag"},
		{name: "bad AudioSpecificConfig", in: stream(flagAudio, tag(tagAudio, 0, []byte{0xaf, 0})), wantErr: "AudioSpecificConfig"},
		{name: "AAC before its config", in: stream(flagAudio, tag(tagAudio, 0, aacFrame)), wantErr: "before its sequence header"},
	} {
		t.Run(ca.name, func(t *testing.T) {
			tracks, pkts, err := testutil.ReadAll(bytes.NewReader(ca.in), NewReader)
			if ca.wantErr == "" {
				if !errors.Is(err, io.EOF) {
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
				got = append(got, want{p.DTS, p.PTS, p.Key, p.Track.Codec})
			}
			if !reflect.DeepEqual(got, ca.pkts) {
				t.Errorf("packets %+v, want %+v", got, ca.pkts)
			}
		})
	}
}

func FuzzReader(f *testing.F) {
	data, err := os.ReadFile(testFile)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(data)
	for _, n := range []int{13, 100, 300, 400, 1000, len(data) / 2, len(data) - 1} {
		f.Add(data[:n])
	}
	f.Add(stream(flagAudio|flagVideo, tag(tagVideo, 0, avcSeqHeader()), tag(tagAudio, 0, aacSeqHeader),
		tag(tagVideo, 0, avcFrame(true, -40, idr)), tag(tagAudio, 21, aacFrame)))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := NewReader(bytes.NewReader(data))
		if err != nil {
			return
		}
		tracks, err := r.Tracks()
		if err != nil {
			if tracks != nil {
				t.Fatal("tracks returned with an error")
			}
			return
		}
		for _, tr := range tracks {
			if tr.Codec == media.CodecH264 && (len(tr.SPS) == 0 || len(tr.PPS) == 0) {
				t.Fatal("H.264 track without parameter sets")
			}
			if tr.Codec == media.CodecAAC && tr.AAC == nil {
				t.Fatal("AAC track without its config")
			}
		}
		for range 1000 {
			p, err := r.ReadPacket()
			if err != nil {
				return
			}
			if p.Track == nil {
				t.Fatal("packet without a track")
			}
			if p.Size() > len(data) {
				t.Fatalf("a packet of %d bytes from %d bytes of input", p.Size(), len(data))
			}
		}
	})
}

func TestParamsChangeMidStream(t *testing.T) {
	changed := avcSeqHeader()
	changed[len(changed)-1] ^= 0xff // another PPS
	for _, ca := range []struct {
		name    string
		in      []byte
		wantErr error
	}{
		{"same header again", stream(flagVideo, tag(tagVideo, 0, avcSeqHeader()), tag(tagVideo, 0, avcFrame(true, 0, idr)),
			tag(tagVideo, 33, avcSeqHeader()), tag(tagVideo, 33, avcFrame(true, 0, idr))), io.EOF},
		{"changed video header", stream(flagVideo, tag(tagVideo, 0, avcSeqHeader()), tag(tagVideo, 0, avcFrame(true, 0, idr)),
			tag(tagVideo, 33, changed), tag(tagVideo, 33, avcFrame(true, 0, idr))), ErrParamsChanged},
		{"changed audio config", stream(flagAudio, tag(tagAudio, 0, aacSeqHeader), tag(tagAudio, 0, aacFrame),
			tag(tagAudio, 21, []byte{0xaf, 0, 0x12, 0x10}), tag(tagAudio, 21, aacFrame)), ErrParamsChanged},
	} {
		t.Run(ca.name, func(t *testing.T) {
			r, err := NewReader(bytes.NewReader(ca.in))
			if err != nil {
				t.Fatal(err)
			}
			tracks, err := r.Tracks()
			if err != nil {
				t.Fatal(err)
			}
			before := *tracks[0]
			for err == nil {
				_, err = r.ReadPacket()
			}
			if !errors.Is(err, ca.wantErr) {
				t.Fatalf("error %v, want %v", err, ca.wantErr)
			}
			if !bytes.Equal(before.SPS, tracks[0].SPS) || !bytes.Equal(before.PPS, tracks[0].PPS) || before.AAC != tracks[0].AAC {
				t.Error("a track handed out by Tracks was changed in place")
			}
		})
	}
}
