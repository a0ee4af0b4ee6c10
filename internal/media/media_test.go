package media

import (
	"testing"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
)

func TestCodecString(t *testing.T) {
	for _, ca := range []struct {
		name  string
		track Track
		want  string
	}{
		{"h264 constrained baseline 1.3", Track{Codec: CodecH264, SPS: testSPS}, "avc1.42c00d"},
		{"h264 high 4.0", Track{Codec: CodecH264, SPS: []byte{0x67, 0x64, 0x00, 0x28}}, "avc1.640028"},
		{"h264 without sps", Track{Codec: CodecH264}, ""},
		{"aac lc", Track{Codec: CodecAAC, AAC: &mpeg4audio.AudioSpecificConfig{Type: mpeg4audio.ObjectTypeAACLC}}, "mp4a.40.2"},
		{"he-aac", Track{Codec: CodecAAC, AAC: &mpeg4audio.AudioSpecificConfig{Type: mpeg4audio.ObjectTypeSBR}}, "mp4a.40.5"},
		{"aac without config", Track{Codec: CodecAAC}, ""},
		{"opus", Track{Codec: CodecOpus}, ""},
	} {
		t.Run(ca.name, func(t *testing.T) {
			if got := ca.track.CodecString(); got != ca.want {
				t.Errorf("CodecString() = %q, want %q", got, ca.want)
			}
		})
	}
}
