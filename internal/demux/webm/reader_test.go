package webm

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strconv"
	"testing"
	"testing/iotest"
	"time"

	"github.com/livegate/livegate/internal/media"
	"github.com/livegate/livegate/internal/testutil"
)

// recordings are real browser recordings and two ffmpeg-made files
// (testdata/README.md says how each was made), with the tracks livegate
// must find in them (video first).
var recordings = []struct {
	file   string
	tracks []media.Track // Codec, Width, Height, SampleRate, Channels
}{
	{
		file: "chromium-h264-opus.mkv",
		tracks: []media.Track{
			{Codec: media.CodecH264, Width: 1280, Height: 720},
			{Codec: media.CodecOpus, SampleRate: 48000, Channels: 1},
		},
	},
	{
		file: "chromium-vp8-opus.webm",
		tracks: []media.Track{
			{Codec: media.CodecVP8, Width: 640, Height: 480},
			{Codec: media.CodecOpus, SampleRate: 48000, Channels: 1},
		},
	},
	{
		file: "firefox-vp8-opus.webm",
		tracks: []media.Track{
			{Codec: media.CodecVP8, Width: 1280, Height: 720},
			{Codec: media.CodecOpus, SampleRate: 48000, Channels: 1},
		},
	},
	{
		// Known sizes, SeekHead, CRC-32, Void, Cues, Tags, BlockGroups,
		// avcC, B-frames, and a Vorbis track that is left out.
		file: "ffmpeg-h264-bframes.mkv",
		tracks: []media.Track{
			{Codec: media.CodecH264, Width: 320, Height: 240},
			{Codec: media.CodecOpus, SampleRate: 48000, Channels: 2},
		},
	},
	{
		file: "ffmpeg-vp9-av1.webm",
		tracks: []media.Track{
			{Codec: media.CodecVP9, Width: 160, Height: 120},
			{Codec: media.CodecAV1, Width: 160, Height: 120},
		},
	},
}

func readTestFile(t testing.TB, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// probe is what ffprobe reads in a file.
type probe struct {
	Streams []struct {
		Index      int    `json:"index"`
		CodecType  string `json:"codec_type"`
		CodecName  string `json:"codec_name"`
		Width      int    `json:"width"`
		Height     int    `json:"height"`
		SampleRate string `json:"sample_rate"`
		Channels   int    `json:"channels"`
	} `json:"streams"`
	Packets []struct {
		StreamIndex int    `json:"stream_index"`
		PTSTime     string `json:"pts_time"`
		Flags       string `json:"flags"`
	} `json:"packets"`
}

func ffprobe(t *testing.T, path string) probe {
	t.Helper()
	testutil.NeedTool(t, "ffprobe")
	out, err := exec.Command("ffprobe", "-v", "error", "-show_streams", "-show_packets", "-of", "json",
		"-show_entries", "stream=index,codec_type,codec_name,width,height,sample_rate,channels:packet=stream_index,pts_time,flags",
		path).Output()
	if err != nil {
		t.Fatalf("ffprobe %s: %v", path, err)
	}
	var p probe
	if err := json.Unmarshal(out, &p); err != nil {
		t.Fatalf("ffprobe output: %v", err)
	}
	return p
}

var probeCodecs = map[string]media.Codec{
	"h264": media.CodecH264, "vp8": media.CodecVP8, "vp9": media.CodecVP9, "av1": media.CodecAV1, "opus": media.CodecOpus,
}

// TestRecordings: tracks, and for every track the packet count, every
// packet's PTS (±1 ms) and key flag, as ffprobe reads them.
func TestRecordings(t *testing.T) {
	for _, rec := range recordings {
		t.Run(rec.file, func(t *testing.T) {
			path := filepath.Join("testdata", rec.file)
			tracks, pkts, err := testutil.ReadAll(bytes.NewReader(readTestFile(t, rec.file)), NewReader)
			if err != io.EOF {
				t.Fatalf("ended with %v, want EOF", err)
			}
			if len(tracks) != len(rec.tracks) {
				t.Fatalf("%d tracks, want %d", len(tracks), len(rec.tracks))
			}
			for i, tr := range tracks {
				want := rec.tracks[i]
				got := media.Track{Codec: tr.Codec, Width: tr.Width, Height: tr.Height, SampleRate: tr.SampleRate, Channels: tr.Channels}
				if !reflect.DeepEqual(got, want) {
					t.Errorf("track %d: %+v, want %+v", i, got, want)
				}
				if tr.Codec == media.CodecOpus && !bytes.HasPrefix(tr.OpusHead, []byte("OpusHead")) {
					t.Errorf("track %d: OpusHead %q", i, tr.OpusHead)
				}
			}

			// Pair ffprobe's streams with the tracks: in stream order per
			// codec; streams in other codecs have no track.
			p := ffprobe(t, path)
			byStream := map[int]*media.Track{}
			used := map[*media.Track]bool{}
			for _, s := range p.Streams {
				codec, ok := probeCodecs[s.CodecName]
				if !ok {
					continue
				}
				for _, tr := range tracks {
					if tr.Codec == codec && !used[tr] {
						used[tr], byStream[s.Index] = true, tr
						break
					}
				}
				tr := byStream[s.Index]
				if tr == nil {
					t.Fatalf("ffprobe stream %d (%s) has no track", s.Index, s.CodecName)
				}
				rate, _ := strconv.Atoi(s.SampleRate)
				if tr.Width != s.Width || tr.Height != s.Height || tr.SampleRate != rate || tr.Channels != s.Channels {
					t.Errorf("track %v: %dx%d %d Hz %d ch; ffprobe %dx%d %d Hz %d ch", tr, tr.Width, tr.Height,
						tr.SampleRate, tr.Channels, s.Width, s.Height, rate, s.Channels)
				}
			}
			if len(used) != len(tracks) {
				t.Fatalf("ffprobe sees %d of the %d tracks", len(used), len(tracks))
			}

			for _, tr := range tracks {
				var mine []*media.Packet
				for _, pk := range pkts {
					if pk.Track == tr {
						mine = append(mine, pk)
					}
				}
				type probed struct {
					pts time.Duration
					key bool
				}
				var theirs []probed
				for _, pp := range p.Packets {
					if byStream[pp.StreamIndex] != tr {
						continue
					}
					sec, err := strconv.ParseFloat(pp.PTSTime, 64)
					if err != nil {
						t.Fatalf("ffprobe pts_time %q", pp.PTSTime)
					}
					theirs = append(theirs, probed{time.Duration(math.Round(sec * 1e9)), len(pp.Flags) > 0 && pp.Flags[0] == 'K'})
				}
				if len(mine) != len(theirs) {
					t.Fatalf("track %v: %d packets, ffprobe %d", tr, len(mine), len(theirs))
				}
				keys := 0
				for i, pk := range mine {
					if d := pk.PTS - theirs[i].pts; d < -time.Millisecond || d > time.Millisecond {
						t.Errorf("track %v packet %d: PTS %v, ffprobe %v", tr, i, pk.PTS, theirs[i].pts)
					}
					if pk.Key != theirs[i].key {
						t.Errorf("track %v packet %d: key %v, ffprobe %v", tr, i, pk.Key, theirs[i].key)
					}
					if pk.Key {
						keys++
					}
					if pk.Size() == 0 {
						t.Errorf("track %v packet %d is empty", tr, i)
					}
					if (tr.Codec == media.CodecH264) != (pk.AU != nil) || (pk.AU != nil) == (pk.Data != nil) {
						t.Errorf("track %v packet %d: %d NAL units and %d bytes of data", tr, i, len(pk.AU), len(pk.Data))
					}
				}
				if !mine[0].Key {
					t.Errorf("track %v starts without a key frame", tr)
				}
				t.Logf("%v: %d packets, %d key, PTS %v to %v", tr, len(mine), keys, mine[0].PTS, mine[len(mine)-1].PTS)
			}
		})
	}
}

// annexB splits what ffmpeg writes as raw H.264 (independently of the
// reader's own splitter).
func annexB(b []byte) [][]byte {
	var out [][]byte
	for _, part := range bytes.Split(b, []byte{0, 0, 1}) {
		part = bytes.TrimRight(part, "\x00")
		if len(part) > 0 {
			out = append(out, part)
		}
	}
	return out
}

// TestParameterSets: the SPS and PPS of each H.264 track are those ffmpeg
// finds (from the avcC, or in-band for Chromium).
func TestParameterSets(t *testing.T) {
	testutil.NeedTool(t, "ffmpeg")
	for _, rec := range recordings {
		if rec.tracks[0].Codec != media.CodecH264 {
			continue
		}
		t.Run(rec.file, func(t *testing.T) {
			out, err := exec.Command("ffmpeg", "-v", "error", "-i", filepath.Join("testdata", rec.file),
				"-map", "0:v:0", "-c:v", "copy", "-bsf:v", "h264_mp4toannexb", "-frames:v", "1", "-f", "h264", "-").Output()
			if err != nil {
				t.Fatalf("ffmpeg: %v", err)
			}
			var sps, pps []byte
			for _, n := range annexB(out) {
				switch n[0] & 0x1f {
				case 7:
					sps = n
				case 8:
					pps = n
				}
			}
			if sps == nil || pps == nil {
				t.Fatalf("ffmpeg's first frame has no SPS or PPS: %x", out[:min(len(out), 64)])
			}
			tracks, _, err := testutil.ReadAll(bytes.NewReader(readTestFile(t, rec.file)), NewReader)
			if err != io.EOF {
				t.Fatal(err)
			}
			if !bytes.Equal(tracks[0].SPS, sps) || !bytes.Equal(tracks[0].PPS, pps) {
				t.Errorf("SPS %x PPS %x, ffmpeg %x %x", tracks[0].SPS, tracks[0].PPS, sps, pps)
			}
			t.Logf("%v", tracks[0])
		})
	}
}

// TestH264DTS: DTS never goes back and never passes PTS; without B-frames
// (Chromium) it is PTS.
func TestH264DTS(t *testing.T) {
	for _, ca := range []struct {
		file      string
		reordered bool
	}{
		{file: "chromium-h264-opus.mkv"},
		{file: "ffmpeg-h264-bframes.mkv", reordered: true},
	} {
		t.Run(ca.file, func(t *testing.T) {
			_, pkts, err := testutil.ReadAll(bytes.NewReader(readTestFile(t, ca.file)), NewReader)
			if err != io.EOF {
				t.Fatal(err)
			}
			last := time.Duration(math.MinInt64)
			differ := 0
			for i, p := range pkts {
				if p.Track.Codec != media.CodecH264 {
					if p.DTS != p.PTS {
						t.Errorf("packet %d (%v): DTS %v PTS %v", i, p.Track.Codec, p.DTS, p.PTS)
					}
					continue
				}
				if p.DTS < last || p.DTS > p.PTS {
					t.Errorf("packet %d: DTS %v after %v, PTS %v", i, p.DTS, last, p.PTS)
				}
				if p.DTS != p.PTS {
					differ++
				}
				last = p.DTS
			}
			if (differ > 0) != ca.reordered {
				t.Errorf("%d frames with DTS before PTS", differ)
			}
		})
	}
}

// lacedStream is a hand-built stream with every kind of lacing, for the
// split and truncation tests (browsers do not lace).
func lacedStream() []byte {
	f := func(n int, c byte) []byte { return bytes.Repeat([]byte{c}, n) }
	opus := func(n int) []byte { return append([]byte{0xfc}, f(n, 1)...) } // CELT 20 ms, code 0
	return slices.Concat(
		ebmlHeader("webm"),
		elUnknown(idSegment,
			el(idInfo, uintEl(idTimestampScale, 1_000_000)),
			el(idTracks,
				el(idTrackEntry, uintEl(idTrackNumber, 1), strEl(idCodecID, codecVP8), uintEl(idDefaultDuration, 33_333_333),
					el(idVideo, uintEl(idPixelWidth, 64), uintEl(idPixelHeight, 48))),
				el(idTrackEntry, uintEl(idTrackNumber, 2), strEl(idCodecID, codecOpus), el(idCodecPrivate, []byte("OpusHead\x01\x01\x38\x01\x80\xbb\x00\x00\x00\x00\x00")),
					el(idAudio, floatEl(idSamplingFrequency, 48000), uintEl(idChannels, 1)))),
			elUnknown(idCluster, uintEl(idTimestamp, 0),
				simpleBlock(1, 0, 0x80|lacingXiph<<1, f(300, 2), f(10, 3), f(600, 4)),
				simpleBlock(2, 0, 0x80|lacingEBML<<1, opus(50), opus(300), opus(20), opus(700)),
				simpleBlock(2, 80, 0x80|lacingFixed<<1, opus(40), opus(40), opus(40))),
			elUnknown(idCluster, uintEl(idTimestamp, 200),
				simpleBlock(1, 0, lacingEBML<<1, f(5, 5), f(1000, 6)),
				el(idBlockGroup, el(idBlock, block(1, 33, lacingXiph<<1, f(255, 7), f(256, 8), f(1, 9))), uintEl(idReferenceBlock, 0))),
		),
	)
}

// interestingCuts are offsets inside the EBML header, the Tracks element,
// block headers and lacing headers.
func interestingCuts(t testing.TB, data []byte) []int {
	var cuts []int
	blocks := 0
	for _, s := range walk(t, data) {
		switch s.id {
		case idEBML:
			cuts = append(cuts, s.start+2, s.data+3)
		case idTracks:
			cuts = append(cuts, s.start+2, s.data, s.data+5, (s.data+s.end)/2)
		case idSimpleBlock, idBlockGroup:
			if blocks++; blocks > 50 {
				continue
			}
			for _, d := range []int{1, 2, 3, 4, 5, 6, 7} {
				if s.data+d < s.end {
					cuts = append(cuts, s.data+d)
				}
			}
		}
	}
	return cuts
}

// writes cuts data into pieces: 50 patterns, some cut at every interesting
// offset, some into single bytes, the rest into random sizes.
func splitPattern(t testing.TB, data []byte, pattern int) [][]byte {
	rng := rand.New(rand.NewPCG(uint64(pattern), 0x77656263))
	cuts := map[int]bool{}
	switch {
	case pattern == 0: // one byte at a time through the first 64 KiB
		for i := 1; i < min(len(data), 64<<10); i++ {
			cuts[i] = true
		}
	case pattern == 1: // every interesting offset
		for _, c := range interestingCuts(t, data) {
			cuts[c] = true
		}
	default:
		interesting := interestingCuts(t, data)
		for _, c := range interesting {
			if rng.IntN(3) == 0 {
				cuts[c] = true
			}
		}
		maxStep := []int{2, 16, 300, 5000, 70000}[pattern%5]
		for pos := 0; pos < len(data); {
			pos += 1 + rng.IntN(maxStep)
			cuts[pos] = true
		}
	}
	var pieces [][]byte
	last := 0
	for _, c := range slices.Sorted(func(yield func(int) bool) {
		for c := range cuts {
			if c > 0 && c < len(data) && !yield(c) {
				return
			}
		}
	}) {
		pieces = append(pieces, data[last:c])
		last = c
	}
	return append(pieces, data[last:])
}

// readPiecewise writes the pieces into an io.Pipe from another goroutine
// and reads the stream from the pipe.
func readPiecewise(pieces [][]byte) ([]*media.Track, []*media.Packet, error) {
	pr, pw := io.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for _, p := range pieces {
			if _, err := pw.Write(p); err != nil {
				return
			}
		}
		pw.Close()
	}()
	tracks, pkts, err := testutil.ReadAll(pr, NewReader)
	pr.Close() // the writer stops if the reader stopped early
	<-done
	return tracks, pkts, err
}

func testFiles(t testing.TB) map[string][]byte {
	files := map[string][]byte{"laced (hand-built)": lacedStream()}
	for _, rec := range recordings {
		files[rec.file] = readTestFile(t, rec.file)
	}
	return files
}

// TestSplitInvariance: however the stream is cut into writes, the same
// packets come out.
func TestSplitInvariance(t *testing.T) {
	for name, data := range testFiles(t) {
		t.Run(name, func(t *testing.T) {
			wantTracks, want, err := testutil.ReadAll(bytes.NewReader(data), NewReader)
			if err != io.EOF {
				t.Fatalf("whole: %v", err)
			}
			for pattern := range 50 {
				pieces := splitPattern(t, data, pattern)
				tracks, got, err := readPiecewise(pieces)
				if err != io.EOF {
					t.Fatalf("pattern %d (%d writes): %v", pattern, len(pieces), err)
				}
				equalTracks(t, fmt.Sprintf("pattern %d", pattern), tracks, wantTracks)
				testutil.EqualPackets(t, fmt.Sprintf("pattern %d", pattern), got, want)
			}
		})
	}
}

func TestReaders(t *testing.T) {
	for name, data := range testFiles(t) {
		t.Run(name, func(t *testing.T) {
			wantTracks, want, err := testutil.ReadAll(bytes.NewReader(data), NewReader)
			if err != io.EOF {
				t.Fatal(err)
			}
			for _, ca := range []struct {
				name string
				r    func() io.Reader
			}{
				{name: "one byte", r: func() io.Reader { return iotest.OneByteReader(bytes.NewReader(data)) }},
				{name: "half", r: func() io.Reader { return iotest.HalfReader(bytes.NewReader(data)) }},
				{name: "EOF with data", r: func() io.Reader { return iotest.DataErrReader(bytes.NewReader(data)) }},
			} {
				tracks, got, err := testutil.ReadAll(ca.r(), NewReader)
				if err != io.EOF {
					t.Fatalf("%s: ended with %v, want EOF", ca.name, err)
				}
				equalTracks(t, ca.name, tracks, wantTracks)
				testutil.EqualPackets(t, ca.name, got, want)
			}
		})
	}
}

// TestTruncated: a stream cut anywhere ends with io.EOF where an element
// may end, with io.ErrUnexpectedEOF elsewhere, never with a panic; what was
// read before the cut is what the whole stream starts with.
func TestTruncated(t *testing.T) {
	for name, data := range testFiles(t) {
		t.Run(name, func(t *testing.T) {
			_, want, err := testutil.ReadAll(bytes.NewReader(data), NewReader)
			if err != io.EOF {
				t.Fatal(err)
			}
			clean := cleanEnds(t, data)
			cuts := map[int]bool{0: true, len(data) - 1: true}
			for c := 1; c < 80 && c < len(data); c++ {
				cuts[c] = true
			}
			for i, s := range walk(t, data) {
				if i < 60 || i%17 == 0 {
					for _, c := range []int{s.start + 1, s.data - 1, s.data, s.data + 1, s.data + 4, s.end - 1, s.end} {
						if c >= 0 && c <= len(data) {
							cuts[c] = true
						}
					}
				}
			}
			for c := 0; c < len(data); c += 4999 {
				cuts[c] = true
			}
			for cut := range cuts {
				_, got, err := testutil.ReadAll(bytes.NewReader(data[:cut]), NewReader)
				wantErr := io.ErrUnexpectedEOF
				if clean[cut] || cut == 0 {
					wantErr = io.EOF
				}
				if classify(err) != wantErr {
					t.Errorf("cut at %d: %v, want %v", cut, err, wantErr)
				}
				if len(got) > len(want) {
					t.Fatalf("cut at %d: %d packets from a cut stream, %d from the whole", cut, len(got), len(want))
				}
				testutil.EqualPackets(t, fmt.Sprintf("cut at %d", cut), got, want[:len(got)])
			}
			t.Logf("%d cuts", len(cuts))
		})
	}
}

// TestPayloadsAreOwned: a packet's bytes stay as they were while later
// blocks are read into the reused buffer.
func TestPayloadsAreOwned(t *testing.T) {
	data := readTestFile(t, "chromium-h264-opus.mkv")
	kept, copies := testutil.ReadKept(t, bytes.NewReader(data), NewReader)
	testutil.EqualPackets(t, "kept", kept, copies)
}

func TestReadErrorIsKept(t *testing.T) {
	data := readTestFile(t, "chromium-vp8-opus.webm")
	errBroken := errors.New("pipe broken")
	for _, cut := range []int{2, 20, 100, 300, 5000, 50000} {
		r := io.MultiReader(bytes.NewReader(data[:cut]), iotest.ErrReader(errBroken))
		_, _, err := testutil.ReadAll(r, NewReader)
		if !errors.Is(err, errBroken) {
			t.Errorf("cut at %d: got %v, want the reader's error", cut, err)
		}
	}
}

// TestTimestampsStart documents where the browsers' timestamps start.
func TestTimestampsStart(t *testing.T) {
	for _, rec := range recordings[:3] {
		_, pkts, err := testutil.ReadAll(bytes.NewReader(readTestFile(t, rec.file)), NewReader)
		if err != io.EOF {
			t.Fatal(err)
		}
		first := map[media.Codec]time.Duration{}
		for _, p := range pkts {
			if _, ok := first[p.Track.Codec]; !ok {
				first[p.Track.Codec] = p.PTS
			}
		}
		t.Logf("%s: first PTS %v", rec.file, first)
	}
}

func BenchmarkReader(b *testing.B) {
	data := readTestFile(b, "chromium-h264-opus.mkv")
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	packets := 0
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for b.Loop() {
		r, err := NewReader(bytes.NewReader(data))
		if err != nil {
			b.Fatal(err)
		}
		if _, err := r.Tracks(); err != nil {
			b.Fatal(err)
		}
		for {
			_, err := r.ReadPacket()
			if err != nil {
				if err != io.EOF {
					b.Fatal(err)
				}
				break
			}
			packets++
		}
	}
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(after.Mallocs-before.Mallocs)/float64(packets), "allocs/pkt")
}
