package media

import (
	"bytes"
	"errors"
	"testing"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
)

// FuzzParseAVCC: the avcC a browser sends (a WebCodecs video
// configuration, a Matroska CodecPrivate, an MP4 avcC box, an FLV
// sequence header) never panics the parser or the SPS reading that
// follows it (H264Info, and the receiver's profile, level and size); what
// it accepts is made of the input's own bytes and goes back through
// BuildAVCC unchanged.
func FuzzParseAVCC(f *testing.F) {
	f.Add(BuildAVCC(testSPS, testPPS))
	f.Add(avcc(0xff, 0xe1, [][]byte{testSPS}, 1, [][]byte{testPPS}))
	f.Add(avcc(0xfc, 0xe2, [][]byte{testSPS, testSPS[:4]}, 2, [][]byte{testPPS, {0x68}}))
	f.Add([]byte{1, 0x42, 0xc0, 0x0d, 0xff, 0xe1, 0, 0})
	f.Add([]byte{1, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		sps, pps, n, err := ParseAVCC(b)
		if err != nil {
			if !errors.Is(err, ErrBadAVCC) {
				t.Fatalf("error %v does not wrap ErrBadAVCC", err)
			}
			return
		}
		if n < 1 || n > 4 || len(sps) == 0 || len(pps) == 0 || len(sps) > len(b) || len(pps) > len(b) {
			t.Fatalf("accepted: length size %d, SPS of %d bytes, PPS of %d, from %d bytes", n, len(sps), len(pps), len(b))
		}
		if !bytes.Contains(b, sps) || !bytes.Contains(b, pps) {
			t.Fatal("the parameter sets are not the input's bytes")
		}
		_ = H264Info(sps)
		var s h264.SPS
		if s.Unmarshal(sps) == nil {
			_, _ = H264ProfileName(&s), H264Level(&s)
			if w, h := s.Width(), s.Height(); w < 0 || h < 0 {
				t.Fatalf("SPS gives a size of %dx%d", w, h)
			}
		}
		if len(sps) >= 4 {
			sps2, pps2, n2, err := ParseAVCC(BuildAVCC(sps, pps))
			if err != nil || !bytes.Equal(sps2, sps) || !bytes.Equal(pps2, pps) || n2 != 4 {
				t.Fatalf("BuildAVCC then ParseAVCC: %v", err)
			}
		}
	})
}
