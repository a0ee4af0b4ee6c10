package webm

import (
	"bytes"
	"io"
	"slices"
	"testing"
	"testing/iotest"
	"time"

	"github.com/livegate/livegate/internal/media"
	"github.com/livegate/livegate/internal/testutil"
)

// FuzzReader: no input makes the reader panic, hang, return an error it
// does not classify, or hand out a packet that breaks the contract; and
// reading byte by byte gives what reading whole does.
func FuzzReader(f *testing.F) {
	f.Add(lacedStream())
	// The recordings' beginnings, and their headers followed by a few
	// small blocks: the fuzzer minimizes each new input it finds in time
	// that grows with the square of its size (it stalls for its whole
	// minimize time on inputs of a few kilobytes). The other tests read the
	// recordings whole, cut and split.
	for _, rec := range recordings {
		data := readTestFile(f, rec.file)
		for _, cut := range []int{60, 150, 300, 1000} {
			f.Add(data[:cut])
		}
		seed, blocks := []byte(nil), 0
		for _, s := range walk(f, data) {
			if s.id != idSimpleBlock && s.id != idBlockGroup {
				continue
			}
			if seed == nil {
				seed = bytes.Clone(data[:s.start])
			}
			if s.end-s.start < 1500 && blocks < 6 {
				seed = append(seed, data[s.start:s.end]...)
				blocks++
			}
		}
		f.Add(seed)
	}
	// The B-frames of the ffmpeg file, each NAL unit cut to the bytes that
	// hold its picture order count: the DTS extractor's input.
	tracks, pkts, err := testutil.ReadAll(bytes.NewReader(readTestFile(f, "ffmpeg-h264-bframes.mkv")), NewReader)
	if err != io.EOF {
		f.Fatal(err)
	}
	priv := slices.Concat([]byte{1, 0x64, 0x00, 0x0d, 0xff, 0xe1, 0, byte(len(tracks[0].SPS))}, tracks[0].SPS,
		[]byte{1, 0, byte(len(tracks[0].PPS))}, tracks[0].PPS)
	bframes := [][]byte{uintEl(idTimestamp, 0)}
	for _, p := range pkts[:20] {
		if p.Track.Codec != media.CodecH264 {
			continue
		}
		var au [][]byte
		for _, n := range p.AU {
			au = append(au, n[:min(len(n), 24)])
		}
		flags := byte(0)
		if p.Key {
			flags = keyFlag
		}
		bframes = append(bframes, simpleBlock(1, int16(p.PTS/time.Millisecond), flags, nalus(4, au...)))
	}
	f.Add(live(tracksEl(h264Entry(1, priv)), elUnknown(idCluster, bframes...)))

	f.Add(live(tracksEl(h264Entry(1, avcc(2))), cluster(0, simpleBlock(1, 0, 0, nalus(2, idr)),
		el(idBlockGroup, el(idBlock, block(1, 0, xiph, nalus(2, nonIDR), nalus(2, nonIDR))), uintEl(idReferenceBlock, 0)))))
	f.Add(live(tracksEl(h264Entry(1, nil), opusEntry(2, uintEl(idCodecDelay, 6_500_000))),
		cluster(0, simpleBlock(2, 0, ebmlLace, opus20ms, opus60ms, opus5ms),
			simpleBlock(1, 0, keyFlag, slices.Concat([]byte{0, 0, 0, 1}, testSPS, []byte{0, 0, 1}, testPPS, []byte{0, 0, 1}, idr)))))
	f.Add(slices.Concat(ebmlHeader("matroska"), el(idSegment, tracksEl(vp8Entry(1, uintEl(idDefaultDuration, 1000))),
		el(idCluster, uintEl(idTimestamp, 5), simpleBlock(1, 0, fixedLace, frameA, frameA)))))

	f.Fuzz(func(t *testing.T, data []byte) {
		tracks, pkts, err := testutil.ReadAll(bytes.NewReader(data), NewReader)
		if classify(err) == errUnclassified {
			t.Fatalf("unclassified error %v", err)
		}
		for i, p := range pkts {
			if !slices.Contains(tracks, p.Track) {
				t.Fatalf("packet %d: track not among Tracks()", i)
			}
			if p.Size() == 0 {
				t.Fatalf("packet %d is empty", i)
			}
			if p.Track.Codec == media.CodecH264 {
				if len(p.AU) == 0 || p.Data != nil {
					t.Fatalf("packet %d: H.264 with %d NAL units, %d bytes of data", i, len(p.AU), len(p.Data))
				}
				for _, n := range p.AU {
					if len(n) == 0 {
						t.Fatalf("packet %d: empty NAL unit", i)
					}
				}
			} else if p.AU != nil || len(p.Data) == 0 {
				t.Fatalf("packet %d: %v with NAL units", i, p.Track.Codec)
			}
		}
		for _, tr := range tracks {
			if tr.Codec == media.CodecH264 && (len(tr.SPS) == 0 || len(tr.PPS) == 0) {
				t.Fatalf("H.264 track without SPS or PPS")
			}
		}
		tracks2, pkts2, err2 := testutil.ReadAll(iotest.OneByteReader(bytes.NewReader(data)), NewReader)
		if classify(err2) != classify(err) || (err == io.EOF) != (err2 == io.EOF) {
			t.Fatalf("whole: %v; byte by byte: %v", err, err2)
		}
		if err2 != nil && err != nil && err2.Error() != err.Error() {
			t.Fatalf("whole: %v; byte by byte: %v", err, err2)
		}
		if len(tracks) != len(tracks2) {
			t.Fatalf("whole: %d tracks; byte by byte: %d", len(tracks), len(tracks2))
		}
		testutil.EqualPackets(t, "byte by byte", pkts2, pkts)
	})
}
