package media

import (
	"bytes"
	"encoding/hex"
	"errors"
	"testing"
)

// Parameter sets x264 wrote for 320x240 Constrained Baseline (the same as in
// internal/demux/flv/testdata/h264-aac.flv).
var (
	testSPS = unhex("6742c00dd90141fb0110000003001000000303c0f142a480")
	testPPS = unhex("68cb83cb20")
)

func unhex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

// avcc builds an AVCDecoderConfigurationRecord from its parts.
func avcc(lengthByte, spsCountByte byte, sps [][]byte, ppsCount byte, pps [][]byte, tail ...byte) []byte {
	b := []byte{1, 0x42, 0xc0, 0x0d, lengthByte, spsCountByte}
	for _, s := range sps {
		b = append(b, byte(len(s)>>8), byte(len(s)))
		b = append(b, s...)
	}
	b = append(b, ppsCount)
	for _, p := range pps {
		b = append(b, byte(len(p)>>8), byte(len(p)))
		b = append(b, p...)
	}
	return append(b, tail...)
}

func TestParseAVCC(t *testing.T) {
	one := [][]byte{testSPS}
	onePPS := [][]byte{testPPS}
	for _, ca := range []struct {
		name       string
		in         []byte
		sps, pps   []byte // nil: refused
		lengthSize int
	}{
		{
			name: "canonical, as written by x264",
			in:   unhex("0142c00dffe100186742c00dd90141fb0110000003001000000303c0f142a48001000568cb83cb20"),
			sps:  testSPS, pps: testPPS, lengthSize: 4,
		},
		{name: "canonical, built", in: avcc(0xff, 0xe1, one, 1, onePPS), sps: testSPS, pps: testPPS, lengthSize: 4},
		{name: "firefox: reserved bits unset", in: avcc(0x03, 0x01, one, 1, onePPS), sps: testSPS, pps: testPPS, lengthSize: 4},
		{name: "firefox: only the length byte unset", in: avcc(0x03, 0xe1, one, 1, onePPS), sps: testSPS, pps: testPPS, lengthSize: 4},
		{name: "firefox: only the count byte unset", in: avcc(0xff, 0x01, one, 1, onePPS), sps: testSPS, pps: testPPS, lengthSize: 4},
		{name: "one-byte lengths", in: avcc(0xfc, 0xe1, one, 1, onePPS), sps: testSPS, pps: testPPS, lengthSize: 1},
		{name: "two-byte lengths", in: avcc(0xfd, 0xe1, one, 1, onePPS), sps: testSPS, pps: testPPS, lengthSize: 2},
		{
			name: "two of each: the first is used",
			in:   avcc(0xff, 0xe2, [][]byte{testSPS, {0x67, 1}}, 2, [][]byte{testPPS, {0x68, 2}}),
			sps:  testSPS, pps: testPPS, lengthSize: 4,
		},
		{
			name: "high profile extension after the PPS is ignored",
			in:   avcc(0xff, 0xe1, one, 1, onePPS, 0xfd, 0xf8, 0xf8, 0x00),
			sps:  testSPS, pps: testPPS, lengthSize: 4,
		},

		{name: "nil", in: nil},
		{name: "empty", in: []byte{}},
		{name: "short", in: []byte{1, 0x42, 0xc0, 0x0d, 0xff, 0xe1}},
		{name: "version 0", in: append([]byte{0}, avcc(0xff, 0xe1, one, 1, onePPS)[1:]...)},
		{name: "annex-b instead", in: append([]byte{0, 0, 0, 1}, testSPS...)},
		{name: "zero-length SPS", in: avcc(0xff, 0xe1, [][]byte{{}}, 1, onePPS)},
		{name: "zero-length PPS", in: avcc(0xff, 0xe1, one, 1, [][]byte{{}})},
		{name: "no SPS", in: avcc(0xff, 0xe0, nil, 1, onePPS)},
		{name: "no PPS", in: avcc(0xff, 0xe1, one, 0, nil)},
		{name: "SPS count past the end", in: avcc(0xff, 0xe3, one, 1, onePPS)},
		{name: "PPS count past the end", in: avcc(0xff, 0xe1, one, 3, onePPS)},
		{name: "SPS length past the end", in: avcc(0xff, 0xe1, one, 1, onePPS)[:20]},
		{name: "PPS length past the end", in: avcc(0xff, 0xe1, one, 1, onePPS)[:36]},
		{name: "no PPS count", in: avcc(0xff, 0xe1, one, 1, onePPS)[:6+2+len(testSPS)]},
		{name: "SPS length cut", in: []byte{1, 0x42, 0xc0, 0x0d, 0xff, 0xe1, 0x00}},
		{name: "SPS length 0xffff", in: []byte{1, 0x42, 0xc0, 0x0d, 0xff, 0xe1, 0xff, 0xff, 0x67}},
		{name: "31 SPS announced, none there", in: []byte{1, 0x42, 0xc0, 0x0d, 0xff, 0xff, 0x00}},
	} {
		t.Run(ca.name, func(t *testing.T) {
			sps, pps, ls, err := ParseAVCC(ca.in)
			if ca.sps == nil {
				if !errors.Is(err, ErrBadAVCC) {
					t.Fatalf("err = %v, want ErrBadAVCC", err)
				}
				if sps != nil || pps != nil || ls != 0 {
					t.Errorf("returned %x, %x, %d with the error", sps, pps, ls)
				}
				return
			}
			if err != nil {
				t.Fatalf("refused: %v", err)
			}
			if !bytes.Equal(sps, ca.sps) || !bytes.Equal(pps, ca.pps) || ls != ca.lengthSize {
				t.Errorf("got SPS %x PPS %x length %d, want %x %x %d", sps, pps, ls, ca.sps, ca.pps, ca.lengthSize)
			}
		})
	}
}

func TestH264Info(t *testing.T) {
	for _, ca := range []struct {
		name string
		sps  []byte
		want string
	}{
		{name: "x264 baseline", sps: testSPS, want: "Constrained Baseline, level 1.3, 320x240"},
		{name: "empty", sps: nil, want: "unreadable SPS"},
		{name: "junk", sps: []byte{0x67, 0xff}, want: "unreadable SPS"},
	} {
		t.Run(ca.name, func(t *testing.T) {
			if got := H264Info(ca.sps); got != ca.want {
				t.Errorf("H264Info = %q, want %q", got, ca.want)
			}
		})
	}
}

func TestBuildAVCCRoundTrip(t *testing.T) {
	sps := []byte{0x67, 0x42, 0xc0, 0x1f, 0xd9, 0x00}
	pps := []byte{0x68, 0xce, 0x3c, 0x80}
	gotSPS, gotPPS, n, err := ParseAVCC(BuildAVCC(sps, pps))
	if err != nil || !bytes.Equal(gotSPS, sps) || !bytes.Equal(gotPPS, pps) || n != 4 {
		t.Fatalf("round trip: %x %x %d %v", gotSPS, gotPPS, n, err)
	}
	if got := AppendAVCC(nil, [][]byte{{1, 2}, {3}}); !bytes.Equal(got, []byte{0, 0, 0, 2, 1, 2, 0, 0, 0, 1, 3}) {
		t.Fatalf("AppendAVCC = %x", got)
	}
}
