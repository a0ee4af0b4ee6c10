package fmp4

import (
	"bytes"
	"crypto/md5"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"

	"go.uber.org/goleak"

	"github.com/livegate/livegate/internal/media"
	"github.com/livegate/livegate/internal/testutil"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testFile is one recording under testdata (see testdata/README.md).
type testFile struct {
	path         string
	video, audio media.Codec
	sampleRate   int
	channels     int
	preSkip      int // Opus
}

var testFiles = []testFile{
	{path: "testdata/chromium-avc1-opus.mp4", video: media.CodecH264, audio: media.CodecOpus, sampleRate: 48000, channels: 1, preSkip: 3840},
	{path: "testdata/safari-like.mp4", video: media.CodecH264, audio: media.CodecAAC, sampleRate: 44100, channels: 1},
	{path: "testdata/safari-like-base-offset.mp4", video: media.CodecH264, audio: media.CodecAAC, sampleRate: 44100, channels: 1},
	{path: "testdata/safari-like-editlist.mp4", video: media.CodecH264, audio: media.CodecAAC, sampleRate: 44100, channels: 1},
}

func forEachFile(t *testing.T, fn func(t *testing.T, f testFile, data []byte)) {
	for _, f := range testFiles {
		t.Run(strings.TrimSuffix(strings.TrimPrefix(f.path, "testdata/"), ".mp4"), func(t *testing.T) {
			data, err := os.ReadFile(f.path)
			if err != nil {
				t.Fatal(err)
			}
			fn(t, f, data)
		})
	}
}

func mustReadAll(t testing.TB, data []byte) ([]*media.Track, []*media.Packet) {
	t.Helper()
	tracks, pkts, err := testutil.ReadAll(bytes.NewReader(data), NewReader)
	if !errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("stream ended with %v, want EOF", err)
	}
	return tracks, pkts
}

// topBoxes returns the offsets and types of a file's top-level boxes.
func topBoxes(t *testing.T, data []byte) (starts []int, types []string) {
	t.Helper()
	for pos := 0; pos < len(data); {
		if pos+8 > len(data) {
			t.Fatalf("test file ends inside a box header at %d", pos)
		}
		size := int(binary.BigEndian.Uint32(data[pos:]))
		if size < 8 {
			t.Fatalf("box of size %d at %d", size, pos)
		}
		starts, types = append(starts, pos), append(types, string(data[pos+4:pos+8]))
		pos += size
	}
	return starts, types
}

// findAvcC returns the payload of the first avcC box in the file.
func findAvcC(t *testing.T, data []byte) []byte {
	t.Helper()
	i := bytes.Index(data, []byte("avcC"))
	if i < 4 {
		t.Fatal("no avcC in the test file")
	}
	size := int(binary.BigEndian.Uint32(data[i-4:]))
	return data[i+4 : i-4+size]
}

func TestTracks(t *testing.T) {
	forEachFile(t, func(t *testing.T, f testFile, data []byte) {
		tracks, _ := mustReadAll(t, data)
		if len(tracks) != 2 {
			t.Fatalf("%d tracks, want 2", len(tracks))
		}
		v, a := tracks[0], tracks[1]
		if v.Codec != f.video || a.Codec != f.audio {
			t.Fatalf("tracks %v, %v; want %v, %v", v.Codec, a.Codec, f.video, f.audio)
		}
		sps, pps, _, err := media.ParseAVCC(findAvcC(t, data))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(v.SPS, sps) || !bytes.Equal(v.PPS, pps) {
			t.Errorf("SPS %x PPS %x, the avcC has %x %x", v.SPS, v.PPS, sps, pps)
		}
		probe := ffprobeStreams(t, f.path)
		if v.Width != probe.video.Width || v.Height != probe.video.Height {
			t.Errorf("video %dx%d, ffprobe %dx%d", v.Width, v.Height, probe.video.Width, probe.video.Height)
		}
		if info := media.H264Info(v.SPS); !strings.Contains(info, fmt.Sprintf("%dx%d", v.Width, v.Height)) {
			t.Errorf("SPS says %q, the sample entry %dx%d", info, v.Width, v.Height)
		}
		if a.SampleRate != f.sampleRate || a.Channels != f.channels {
			t.Errorf("audio %d Hz %d ch, want %d %d", a.SampleRate, a.Channels, f.sampleRate, f.channels)
		}
		if strconv.Itoa(a.SampleRate) != probe.audio.SampleRate || a.Channels != probe.audio.Channels {
			t.Errorf("audio %d Hz %d ch, ffprobe %s %d", a.SampleRate, a.Channels, probe.audio.SampleRate, probe.audio.Channels)
		}
		switch a.Codec {
		case media.CodecAAC:
			if a.AAC == nil || a.AAC.SampleRate != f.sampleRate || int(a.AAC.ChannelConfig) != f.channels {
				t.Errorf("AAC config %+v, want %d Hz %d ch", a.AAC, f.sampleRate, f.channels)
			}
		case media.CodecOpus:
			h := a.OpusHead
			if len(h) != 19 || string(h[:8]) != "OpusHead" || h[8] != 1 || int(h[9]) != f.channels ||
				int(binary.LittleEndian.Uint16(h[10:])) != f.preSkip || binary.LittleEndian.Uint32(h[12:]) != 48000 {
				t.Errorf("OpusHead %x: want version 1, %d channels, pre-skip %d, 48000 Hz", h, f.channels, f.preSkip)
			}
			// ffmpeg turns dOps into the same OpusHead.
			if !bytes.Equal(h, probe.audio.extradata) {
				t.Errorf("OpusHead %x, ffprobe's extradata %x", h, probe.audio.extradata)
			}
		}
	})
}

type probeStream struct {
	CodecType  string `json:"codec_type"`
	Width      int    `json:"width"`
	Height     int    `json:"height"`
	SampleRate string `json:"sample_rate"`
	Channels   int    `json:"channels"`
	Extradata  string `json:"extradata"`
	extradata  []byte
}

type probeStreamsResult struct {
	video, audio probeStream
}

func ffprobeStreams(t *testing.T, path string) probeStreamsResult {
	t.Helper()
	out := ffprobe(t, "-show_streams", "-show_data", path)
	var res struct {
		Streams []probeStream `json:"streams"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("ffprobe output: %v", err)
	}
	var r probeStreamsResult
	for _, s := range res.Streams {
		// The hex dump: "00000000: 4f70 7573 4865 6164 0101 000f 80bb 0000  OpusHead........"
		for line := range strings.SplitSeq(s.Extradata, "\n") {
			_, rest, ok := strings.Cut(line, ": ")
			if !ok {
				continue
			}
			hexPart, _, _ := strings.Cut(rest, "  ")
			b, err := hex.DecodeString(strings.ReplaceAll(hexPart, " ", ""))
			if err != nil {
				t.Fatalf("ffprobe extradata %q: %v", line, err)
			}
			s.extradata = append(s.extradata, b...)
		}
		switch s.CodecType {
		case "video":
			r.video = s
		case "audio":
			r.audio = s
		}
	}
	return r
}

func ffprobe(t *testing.T, args ...string) []byte {
	t.Helper()
	testutil.NeedTool(t, "ffprobe")
	out, err := exec.Command("ffprobe", append([]string{"-v", "error", "-of", "json"}, args...)...).Output()
	if err != nil {
		t.Fatalf("ffprobe: %v", err)
	}
	return out
}

// probePacket is one packet as ffprobe sees it.
type probePacket struct {
	StreamIndex int    `json:"stream_index"`
	PTSTime     string `json:"pts_time"`
	DTSTime     string `json:"dts_time"`
	Size        string `json:"size"`
	Flags       string `json:"flags"`
	DataHash    string `json:"data_hash"`
}

func TestPacketsMatchFFprobe(t *testing.T) {
	forEachFile(t, func(t *testing.T, f testFile, data []byte) {
		out := ffprobe(t, "-show_data_hash", "MD5",
			"-show_entries", "stream=index,codec_type:packet=stream_index,pts_time,dts_time,size,flags,data_hash", f.path)
		var res struct {
			Streams []struct {
				Index     int    `json:"index"`
				CodecType string `json:"codec_type"`
			} `json:"streams"`
			Packets []probePacket `json:"packets"`
		}
		if err := json.Unmarshal(out, &res); err != nil {
			t.Fatalf("ffprobe output: %v", err)
		}
		kinds := map[int]string{}
		for _, s := range res.Streams {
			kinds[s.Index] = s.CodecType
		}
		want := map[string][]probePacket{}
		for _, p := range res.Packets {
			want[kinds[p.StreamIndex]] = append(want[kinds[p.StreamIndex]], p)
		}

		_, pkts := mustReadAll(t, data)
		got := map[string][]*media.Packet{}
		for _, p := range pkts {
			kind := "audio"
			if p.Track.Codec.IsVideo() {
				kind = "video"
			}
			got[kind] = append(got[kind], p)
		}
		for _, kind := range []string{"video", "audio"} {
			if len(got[kind]) != len(want[kind]) || len(got[kind]) == 0 {
				t.Fatalf("%d %s packets, ffprobe %d", len(got[kind]), kind, len(want[kind]))
			}
			for i, p := range got[kind] {
				w := want[kind][i]
				size := p.Size()
				if p.Track.Codec == media.CodecH264 {
					size += 4 * len(p.AU) // ffprobe counts the length prefixes
				}
				flags := map[bool]string{true: "K", false: "_"}[p.Key]
				if !near(p.DTS, w.DTSTime) || !near(p.PTS, w.PTSTime) || strconv.Itoa(size) != w.Size || flags != w.Flags[:1] {
					t.Errorf("%s packet %d: DTS %v PTS %v size %d key %v; ffprobe %s %s %s %s",
						kind, i, p.DTS, p.PTS, size, p.Key, w.DTSTime, w.PTSTime, w.Size, w.Flags)
				}
				// The payload, byte for byte (H.264 as stored: with 4-byte lengths).
				payload := p.Data
				for _, n := range p.AU {
					payload = binary.BigEndian.AppendUint32(payload, uint32(len(n)))
					payload = append(payload, n...)
				}
				if h := fmt.Sprintf("MD5:%x", md5.Sum(payload)); h != w.DataHash {
					t.Errorf("%s packet %d: payload hash %s, ffprobe %s", kind, i, h, w.DataHash)
				}
			}
		}
		if !got["video"][0].Key {
			t.Error("the first video packet is not a key frame")
		}
	})
}

// near tells whether d is within a millisecond of ffprobe's seconds.
func near(d time.Duration, seconds string) bool {
	s, err := strconv.ParseFloat(seconds, 64)
	if err != nil {
		return false
	}
	return math.Abs(d.Seconds()-s) <= 0.001
}

// TestDecodeOrder: packets come in DTS order across tracks within a
// fragment, and each track's DTS never goes back.
func TestDecodeOrder(t *testing.T) {
	forEachFile(t, func(t *testing.T, f testFile, data []byte) {
		_, pkts := mustReadAll(t, data)
		last := map[*media.Track]time.Duration{}
		swaps := 0
		for i, p := range pkts {
			if d, ok := last[p.Track]; ok && p.DTS < d {
				t.Errorf("packet %d (%v): DTS %v after %v", i, p.Track.Codec, p.DTS, d)
			}
			last[p.Track] = p.DTS
			if i > 0 && p.Track != pkts[i-1].Track {
				swaps++
			}
		}
		if swaps < len(pkts)/10 {
			t.Errorf("only %d track changes in %d packets: not interleaved", swaps, len(pkts))
		}
	})
}

func equalTracks(t *testing.T, got, want []*media.Track) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d tracks, want %d", len(got), len(want))
	}
	for i := range got {
		if !reflect.DeepEqual(*got[i], *want[i]) {
			t.Errorf("track %d: %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestReadSizes(t *testing.T) {
	forEachFile(t, func(t *testing.T, f testFile, data []byte) {
		wantTracks, want := mustReadAll(t, data)
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
				equalTracks(t, tracks, wantTracks)
				testutil.EqualPackets(t, ca.name, got, want)
			})
		}
	})
}

// writeCuts returns where one pattern cuts the stream into writes: at
// random, in runs of one-byte writes, and inside and around box headers.
func writeCuts(rng *rand.Rand, n int, boxStarts []int) []int {
	cuts := map[int]bool{}
	for range 20 + rng.IntN(200) {
		cuts[rng.IntN(n)] = true
	}
	for _, s := range boxStarts {
		if rng.IntN(3) == 0 {
			for _, d := range []int{-1, 0, 1, 3, 4, 5, 7, 8, 9, 15, 16} {
				if rng.IntN(2) == 0 {
					cuts[s+d] = true
				}
			}
		}
	}
	for range rng.IntN(4) { // a run of one-byte writes
		at, l := rng.IntN(n), rng.IntN(300)
		for i := at; i < at+l; i++ {
			cuts[i] = true
		}
	}
	var out []int
	for c := range cuts {
		if c > 0 && c < n {
			out = append(out, c)
		}
	}
	return append(out, n)
}

// TestSplitInvariance: however the stream is cut into writes, the same
// packets come out.
func TestSplitInvariance(t *testing.T) {
	forEachFile(t, func(t *testing.T, f testFile, data []byte) {
		wantTracks, want := mustReadAll(t, data)
		starts, _ := topBoxes(t, data)
		for pattern := range 50 {
			rng := rand.New(rand.NewPCG(uint64(pattern), 7))
			cuts := writeCuts(rng, len(data), starts)
			if pattern == 0 { // one-byte writes through the first 20 KB
				cuts = cuts[:0]
				for i := 1; i < 20000; i++ {
					cuts = append(cuts, i)
				}
				cuts = append(cuts, len(data))
			}
			slices.Sort(cuts)
			pr, pw := io.Pipe()
			var wg sync.WaitGroup
			wg.Go(func() {
				prev := 0
				for _, c := range cuts {
					if c <= prev {
						continue
					}
					if _, err := pw.Write(data[prev:c]); err != nil {
						return // the reader gave up
					}
					prev = c
				}
				pw.Close()
			})
			tracks, got, err := testutil.ReadAll(pr, NewReader)
			pr.Close()
			wg.Wait()
			if !errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("pattern %d: ended with %v, want EOF", pattern, err)
			}
			equalTracks(t, tracks, wantTracks)
			testutil.EqualPackets(t, fmt.Sprintf("pattern %d", pattern), got, want)
		}
	})
}

// TestPayloadsAreOwned: a packet's bytes stay as they were while later
// boxes are read (the reader reuses its box buffers).
func TestPayloadsAreOwned(t *testing.T) {
	forEachFile(t, func(t *testing.T, f testFile, data []byte) {
		_, want := mustReadAll(t, data)
		kept, copies := testutil.ReadKept(t, bytes.NewReader(data), NewReader)
		testutil.EqualPackets(t, "kept", kept, copies)
		testutil.EqualPackets(t, "kept vs fresh", kept, want)
	})
}

func TestTruncated(t *testing.T) {
	forEachFile(t, func(t *testing.T, f testFile, data []byte) {
		_, want := mustReadAll(t, data)
		starts, types := topBoxes(t, data)
		clean := map[int]bool{len(data): true}
		for i, s := range starts {
			// Between a moof and its mdat, the fragment is incomplete.
			clean[s] = i == 0 || types[i-1] != "moof"
		}
		cuts := []int{0, 1, 4, 7, 8, 9, 20}
		for _, s := range starts {
			cuts = append(cuts, s, s+1, s+4, s+7, s+8, s+9, s+20)
		}
		for c := 0; c < len(data); c += 997 {
			cuts = append(cuts, c)
		}
		cuts = append(cuts, len(data)-1)
		for _, cut := range cuts {
			if cut > len(data) {
				continue
			}
			_, got, err := testutil.ReadAll(bytes.NewReader(data[:cut]), NewReader)
			switch isClean, atStart := clean[cut], slices.Contains(starts, cut) || cut == len(data); {
			case isClean:
				if !errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
					t.Errorf("cut at %d, a box boundary: %v, want EOF", cut, err)
				}
			case atStart: // after a moof
				if !errors.Is(err, io.ErrUnexpectedEOF) {
					t.Errorf("cut at %d, after a moof: %v, want unexpected EOF", cut, err)
				}
			default:
				if !errors.Is(err, io.ErrUnexpectedEOF) {
					t.Errorf("cut at %d, inside a box: %v, want unexpected EOF", cut, err)
				}
			}
			// What was read is what the whole stream starts with.
			if len(got) > len(want) {
				t.Fatalf("cut at %d: %d packets from a cut stream, %d from the whole", cut, len(got), len(want))
			}
			testutil.EqualPackets(t, fmt.Sprintf("cut at %d", cut), got, want[:len(got)])
		}
	})
}

func TestReadErrorIsKept(t *testing.T) {
	data, err := os.ReadFile(testFiles[0].path)
	if err != nil {
		t.Fatal(err)
	}
	starts, _ := topBoxes(t, data)
	errBroken := errors.New("pipe broken")
	for _, ca := range []struct {
		name string
		cut  int
	}{
		{name: "in the first header", cut: 5},
		{name: "at a box boundary", cut: starts[2]},
		{name: "in a box header", cut: starts[2] + 4},
		{name: "in a moof", cut: starts[2] + 100},
		{name: "in an mdat", cut: starts[3] + 100},
		{name: "between moof and mdat", cut: starts[3]},
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

func TestErrorIsSticky(t *testing.T) {
	data, err := os.ReadFile(testFiles[0].path)
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewReader(bytes.NewReader(data[:5000]))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Tracks(); err != nil {
		t.Fatal(err)
	}
	var first error
	for first == nil {
		_, first = r.ReadPacket()
	}
	for range 3 {
		if _, err := r.ReadPacket(); !errors.Is(err, first) {
			t.Fatalf("then %v, want %v again", err, first)
		}
	}
}

func TestNotMP4(t *testing.T) {
	for _, ca := range []struct {
		name string
		in   []byte
		want error
	}{
		{name: "matroska", in: []byte("\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\xf7\x81"), want: ErrNotMP4},
		{name: "flv", in: []byte("FLV\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00"), want: ErrNotMP4},
		{name: "text", in: []byte("hello, world! this is not a video"), want: ErrNotMP4},
		{name: "zeros", in: make([]byte, 64), want: ErrNotMP4},
		{name: "mdat first", in: box("mdat", make([]byte, 8)), want: ErrNotMP4},
		{name: "moof first", in: box("moof"), want: ErrNotMP4},
		{name: "empty", in: nil, want: io.EOF},
		{name: "short", in: []byte("\x00\x00\x00\x20ft"), want: io.ErrUnexpectedEOF},
		{name: "ftyp cut", in: box("ftyp", []byte("isom\x00\x00\x02\x00isomiso6"))[:20], want: io.ErrUnexpectedEOF},
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

func FuzzReader(f *testing.F) {
	for _, tf := range testFiles {
		data, err := os.ReadFile(tf.path)
		if err != nil {
			f.Fatal(err)
		}
		// Whole files are large for a fuzzer: the init segment and the first
		// fragment, and cuts of them.
		end := len(data)
		if end > 200000 {
			end = secondMoof(data)
		}
		f.Add(data[:end])
		for _, n := range []int{8, 36, 500, 1221, 1500, 2000, end / 2, end - 1} {
			if n < end {
				f.Add(data[:n])
			}
		}
	}
	for _, s := range handMadeSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := NewReader(bytes.NewReader(data))
		if err != nil {
			if r != nil {
				t.Fatal("reader returned with an error")
			}
			return
		}
		tracks, err := r.Tracks()
		if err != nil {
			if tracks != nil {
				t.Fatal("tracks returned with an error")
			}
			return
		}
		if len(tracks) == 0 || len(tracks) > maxTracks {
			t.Fatalf("%d tracks", len(tracks))
		}
		for _, tr := range tracks {
			if tr.Codec == media.CodecH264 && (len(tr.SPS) == 0 || len(tr.PPS) == 0) {
				t.Fatal("H.264 track without parameter sets")
			}
			if tr.Codec == media.CodecAAC && tr.AAC == nil {
				t.Fatal("AAC track without its config")
			}
			if tr.Codec == media.CodecOpus && len(tr.OpusHead) < 19 {
				t.Fatal("Opus track without its head")
			}
		}
		total := 0
		for {
			p, err := r.ReadPacket()
			if err != nil {
				if p != nil {
					t.Fatal("packet returned with an error")
				}
				return
			}
			if p.Track == nil || !slices.Contains(tracks, p.Track) {
				t.Fatal("packet of a track Tracks did not return")
			}
			if p.Size() == 0 {
				t.Fatal("empty packet")
			}
			if total += p.Size(); total > len(data) {
				t.Fatalf("%d bytes of packets from %d bytes of input", total, len(data))
			}
		}
	})
}

// secondMoof returns the offset of a file's second moof: the end of its
// first fragment.
func secondMoof(data []byte) int {
	n := 0
	for pos := 0; pos+8 <= len(data); {
		size := int(binary.BigEndian.Uint32(data[pos:]))
		if string(data[pos+4:pos+8]) == "moof" {
			if n++; n == 2 {
				return pos
			}
		}
		if size < 8 {
			break
		}
		pos += size
	}
	return len(data)
}

func BenchmarkReader(b *testing.B) {
	for _, tf := range testFiles[:2] {
		data, err := os.ReadFile(tf.path)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(strings.TrimSuffix(strings.TrimPrefix(tf.path, "testdata/"), ".mp4"), func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				r, err := NewReader(bytes.NewReader(data))
				if err != nil {
					b.Fatal(err)
				}
				if _, err := r.Tracks(); err != nil {
					b.Fatal(err)
				}
				for {
					if _, err := r.ReadPacket(); err != nil {
						if !errors.Is(err, io.EOF) {
							b.Fatal(err)
						}
						break
					}
				}
			}
		})
	}
}
