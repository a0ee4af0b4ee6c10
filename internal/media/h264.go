package media

import (
	"errors"
	"fmt"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
)

// ErrBadAVCC is returned for an AVCDecoderConfigurationRecord that cannot be read.
var ErrBadAVCC = errors.New("invalid AVCDecoderConfigurationRecord (avcC)")

// ParseAVCC reads the parameter sets out of an AVCDecoderConfigurationRecord
// (ISO 14496-15, 5.3.3.1). The reserved bits are masked rather than checked:
// Firefox's encoder leaves them unset.
func ParseAVCC(b []byte) (sps, pps []byte, lengthSize int, err error) {
	if len(b) < 7 || b[0] != 1 {
		return nil, nil, 0, ErrBadAVCC
	}
	lengthSize = int(b[4]&0x03) + 1
	n := int(b[5] & 0x1f)
	pos := 6
	for i := 0; i < n; i++ {
		var ps []byte
		ps, pos, err = readParamSet(b, pos)
		if err != nil {
			return nil, nil, 0, err
		}
		if sps == nil {
			sps = ps
		}
	}
	if pos >= len(b) {
		return nil, nil, 0, ErrBadAVCC
	}
	n = int(b[pos])
	pos++
	for i := 0; i < n; i++ {
		var ps []byte
		ps, pos, err = readParamSet(b, pos)
		if err != nil {
			return nil, nil, 0, err
		}
		if pps == nil {
			pps = ps
		}
	}
	if sps == nil || pps == nil {
		return nil, nil, 0, fmt.Errorf("%w: no SPS or no PPS", ErrBadAVCC)
	}
	return sps, pps, lengthSize, nil
}

func readParamSet(b []byte, pos int) ([]byte, int, error) {
	if pos+2 > len(b) {
		return nil, 0, ErrBadAVCC
	}
	l := int(b[pos])<<8 | int(b[pos+1])
	pos += 2
	if l == 0 || pos+l > len(b) {
		return nil, 0, ErrBadAVCC
	}
	return b[pos : pos+l], pos + l, nil
}

// H264Info describes an SPS in words: profile, level and size.
func H264Info(sps []byte) string {
	var s h264.SPS
	if err := s.Unmarshal(sps); err != nil {
		return "unreadable SPS"
	}
	return fmt.Sprintf("%s, level %s, %dx%d", H264ProfileName(&s), H264Level(&s), s.Width(), s.Height())
}

// H264ProfileName names the profile of an SPS as ffprobe does.
func H264ProfileName(s *h264.SPS) string {
	switch s.ProfileIdc {
	case 66:
		if s.ConstraintSet1Flag {
			return "Constrained Baseline"
		}
		return "Baseline"
	case 77:
		return "Main"
	case 88:
		return "Extended"
	case 100:
		return "High"
	case 110:
		return "High 10"
	case 122:
		return "High 4:2:2"
	case 244:
		return "High 4:4:4 Predictive"
	}
	return fmt.Sprintf("profile %d", s.ProfileIdc)
}

// H264Level formats level_idc as "3.1".
func H264Level(s *h264.SPS) string {
	return fmt.Sprintf("%d.%d", s.LevelIdc/10, s.LevelIdc%10)
}

// BuildAVCC makes an AVCDecoderConfigurationRecord (4-byte NAL lengths)
// from one SPS and one PPS, with the reserved bits set as the standard
// says.
func BuildAVCC(sps, pps []byte) []byte {
	if len(sps) < 4 {
		return nil
	}
	b := []byte{1, sps[1], sps[2], sps[3], 0xFC | 3, 0xE0 | 1, byte(len(sps) >> 8), byte(len(sps))}
	b = append(b, sps...)
	b = append(b, 1, byte(len(pps)>>8), byte(len(pps)))
	return append(b, pps...)
}

// AppendAVCC appends an access unit's NAL units with 4-byte length
// prefixes.
func AppendAVCC(b []byte, au [][]byte) []byte {
	for _, n := range au {
		b = append(b, byte(len(n)>>24), byte(len(n)>>16), byte(len(n)>>8), byte(len(n)))
		b = append(b, n...)
	}
	return b
}
