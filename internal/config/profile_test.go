package config

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseProfiles(t *testing.T) {
	for _, ca := range []struct {
		name  string
		in    string
		want  map[string]Profile
		names []string // ProfileNames()
	}{
		{"absent: the defaults", "listen: 127.0.0.1:1", defaultProfiles(), []string{"1080p", "720p", "480p"}},
		{"null: the defaults", "profiles:\n", defaultProfiles(), []string{"1080p", "720p", "480p"}},
		{"empty: none", "profiles: {}", map[string]Profile{}, []string{}},
		{
			"given: replaces the defaults",
			"profiles:\n  720p: {width: 1280, height: 720, fps: 60, video_bitrate: 4500k, audio_bitrate: 160k, keyframe_interval: 1s}\n",
			map[string]Profile{
				"720p": {Name: "720p", Width: 1280, Height: 720, FPS: 60, VideoBitrate: 4_500_000, AudioBitrate: 160_000, KeyframeInterval: time.Second},
			},
			[]string{"720p"},
		},
		{
			"absent fields from encode, fps 30",
			"encode: {video_bitrate: 1M, audio_bitrate: 64k, keyframe_interval: 4s}\nprofiles:\n  small: {width: 640, height: 360}\n",
			map[string]Profile{
				"small": {Name: "small", Width: 640, Height: 360, FPS: 30, VideoBitrate: 1_000_000, AudioBitrate: 64_000, KeyframeInterval: 4 * time.Second},
			},
			[]string{"small"},
		},
		{
			"bounds",
			"profiles:\n  tiny: {width: 160, height: 90, fps: 1, video_bitrate: 100k, audio_bitrate: 32k, keyframe_interval: 0.5s}\n" +
				"  uhd: {width: 3840, height: 2160, fps: 60, video_bitrate: 50M, audio_bitrate: 320k, keyframe_interval: 10s}\n",
			map[string]Profile{
				"tiny": {Name: "tiny", Width: 160, Height: 90, FPS: 1, VideoBitrate: 100_000, AudioBitrate: 32_000, KeyframeInterval: 500 * time.Millisecond},
				"uhd":  {Name: "uhd", Width: 3840, Height: 2160, FPS: 60, VideoBitrate: 50_000_000, AudioBitrate: 320_000, KeyframeInterval: 10 * time.Second},
			},
			[]string{"uhd", "tiny"},
		},
		{
			"names ordered by size, then name",
			"profiles:\n  b: {width: 640, height: 360}\n  a: {width: 640, height: 360}\n  wide: {width: 854, height: 360}\n  fast: {width: 640, height: 360, fps: 60}\n  tall: {width: 360, height: 640}\n",
			map[string]Profile{
				"a":    {Name: "a", Width: 640, Height: 360, FPS: 30, VideoBitrate: 2_500_000, AudioBitrate: 128_000, KeyframeInterval: 2 * time.Second},
				"b":    {Name: "b", Width: 640, Height: 360, FPS: 30, VideoBitrate: 2_500_000, AudioBitrate: 128_000, KeyframeInterval: 2 * time.Second},
				"wide": {Name: "wide", Width: 854, Height: 360, FPS: 30, VideoBitrate: 2_500_000, AudioBitrate: 128_000, KeyframeInterval: 2 * time.Second},
				"fast": {Name: "fast", Width: 640, Height: 360, FPS: 60, VideoBitrate: 2_500_000, AudioBitrate: 128_000, KeyframeInterval: 2 * time.Second},
				"tall": {Name: "tall", Width: 360, Height: 640, FPS: 30, VideoBitrate: 2_500_000, AudioBitrate: 128_000, KeyframeInterval: 2 * time.Second},
			},
			[]string{"tall", "wide", "fast", "a", "b"},
		},
		{"32 profiles", "profiles:\n" + manyProfiles(32), nil, nil},
	} {
		t.Run(ca.name, func(t *testing.T) {
			c, err := Parse([]byte(ca.in))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if ca.want == nil {
				return
			}
			if !reflect.DeepEqual(c.Profiles, ca.want) {
				t.Fatalf("Profiles =\n%#v\nwant\n%#v", c.Profiles, ca.want)
			}
			if got := c.ProfileNames(); !slices.Equal(got, ca.names) {
				t.Fatalf("ProfileNames() = %v, want %v", got, ca.names)
			}
		})
	}
}

func manyProfiles(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "  p%02d: {width: 640, height: 360}\n", i)
	}
	return b.String()
}

// TestProfileErrors checks that each bad profile is refused with one message that names
// the field, its line and what is allowed.
func TestProfileErrors(t *testing.T) {
	for _, ca := range []struct {
		name string
		in   string
		want string
	}{
		{"width odd", "profiles:\n  p:\n    width: 1281\n    height: 720\n", "config: line 3: profiles.p.width: 1281 is not allowed; use an even number 160..3840"},
		{"width small", "profiles: {p: {width: 158, height: 90}}", "config: line 1: profiles.p.width: 158 is not allowed; use an even number 160..3840"},
		{"width large", "profiles: {p: {width: 3842, height: 90}}", "profiles.p.width: 3842 is not allowed; use an even number 160..3840"},
		{"width negative", "profiles: {p: {width: -640, height: 360}}", "profiles.p.width: -640 is not allowed"},
		{"width zero", "profiles: {p: {width: 0, height: 360}}", "profiles.p.width: 0 is not allowed"},
		{"height odd", "profiles: {p: {width: 640, height: 361}}", "profiles.p.height: 361 is not allowed; use an even number 90..2160"},
		{"height small", "profiles: {p: {width: 640, height: 88}}", "profiles.p.height: 88 is not allowed; use an even number 90..2160"},
		{"height large", "profiles: {p: {width: 640, height: 2162}}", "profiles.p.height: 2162 is not allowed; use an even number 90..2160"},
		{"width missing", "profiles:\n  p:\n    height: 360\n", "config: line 2: profiles.p.width: is missing; use an even number 160..3840"},
		{"height missing", "profiles:\n  p: {width: 640}\n", "config: line 2: profiles.p.height: is missing; use an even number 90..2160"},
		{"width quoted", `profiles: {p: {width: "640", height: 360}}`, `profiles.p.width: "640" is quoted, which makes it a string; write 640 without quotes`},
		{"width with unit", "profiles: {p: {width: 640px, height: 360}}", `profiles.p.width: "640px" is not a whole number`},
		{"fps zero", "profiles: {p: {width: 640, height: 360, fps: 0}}", "profiles.p.fps: 0 is out of range; use 1..60"},
		{"fps high", "profiles: {p: {width: 640, height: 360, fps: 61}}", "profiles.p.fps: 61 is out of range; use 1..60"},
		{"fps fraction", "profiles: {p: {width: 640, height: 360, fps: 29.97}}", "profiles.p.fps: 29.97 is not a whole number"},
		{"video bitrate low", "profiles: {p: {width: 640, height: 360, video_bitrate: 99k}}", "profiles.p.video_bitrate: 99k is out of range; use 100k..50M"},
		{"video bitrate high", "profiles: {p: {width: 640, height: 360, video_bitrate: 51M}}", "profiles.p.video_bitrate: 51M is out of range; use 100k..50M"},
		{"video bitrate unit", "profiles: {p: {width: 640, height: 360, video_bitrate: 2Mbps}}", `profiles.p.video_bitrate: "2Mbps" is not a bitrate`},
		{"audio bitrate low", "profiles: {p: {width: 640, height: 360, audio_bitrate: 31k}}", "profiles.p.audio_bitrate: 31k is out of range; use 32k..320k"},
		{"audio bitrate high", "profiles: {p: {width: 640, height: 360, audio_bitrate: 321k}}", "profiles.p.audio_bitrate: 321k is out of range; use 32k..320k"},
		{"keyframe short", "profiles: {p: {width: 640, height: 360, keyframe_interval: 400ms}}", "profiles.p.keyframe_interval: 400ms is out of range; use 0.5s..10s"},
		{"keyframe long", "profiles: {p: {width: 640, height: 360, keyframe_interval: 11s}}", "profiles.p.keyframe_interval: 11s is out of range; use 0.5s..10s"},
		{"keyframe frames", "profiles: {p: {width: 640, height: 360, keyframe_interval: 60}}", "profiles.p.keyframe_interval: 60 has no unit"},
		{"name upper case", "profiles: {HD: {width: 1280, height: 720}}", `config: line 1: profiles.HD: the name "HD" is not allowed; use 1..32 of a-z, 0-9, _ and -, starting with a-z or 0-9`},
		{"name dot", "profiles: {hd.1: {width: 1280, height: 720}}", `profiles.hd.1: the name "hd.1" is not allowed`},
		{"too many", "profiles:\n" + manyProfiles(33), "config: line 1: profiles: 33 are configured; at most 32 are allowed"},
		{"unknown field", "profiles:\n  p:\n    width: 640\n    heigth: 360\n    height: 360\n", `config: line 4: profiles.p: field "heigth" is not known; allowed fields here: width, height, fps, video_bitrate, audio_bitrate, keyframe_interval`},
		{"list", "profiles: [720p]", "config: line 1: profiles: a list is not a mapping; write one NAME: {...} entry per line"},
		{"profile scalar", "profiles: {p: 720}", "profiles.p: 720 is not a mapping; profiles.p holds the fields width, height, fps, video_bitrate, audio_bitrate, keyframe_interval"},
		{"video bitrate just below", "encode: {video_bitrate: 100k}\nprofiles: {p: {width: 640, height: 360, video_bitrate: 99999}}", "profiles.p.video_bitrate: 99999 is out of range"},
		{
			"none, and a destination names one",
			"profiles: {}\ndestinations:\n  yt:\n    preset: youtube\n    key: k\n    profile: 720p\n",
			`config: line 6: destinations.yt.profile: "720p" is not a profile; none are configured (profiles:)`,
		},
	} {
		t.Run(ca.name, func(t *testing.T) {
			c, err := Parse([]byte(ca.in))
			if err == nil {
				t.Fatalf("Parse(%q) = %+v, want an error", ca.in, c)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, ca.want) && !strings.Contains(msg, ": "+ca.want) {
				t.Errorf("error\n%s\ndoes not contain\n%s", msg, ca.want)
			}
			if n := strings.Count(msg, "\n") + 1; n != 1 {
				t.Errorf("want one problem, got %d:\n%s", n, msg)
			}
		})
	}

	// Both sizes missing: both said, on the profile's line.
	_, err := Parse([]byte("listen: 127.0.0.1:1\nprofiles:\n  p: {fps: 25}\n"))
	want := "config: line 3: profiles.p.width: is missing; use an even number 160..3840\n" +
		"config: line 3: profiles.p.height: is missing; use an even number 90..2160"
	if err == nil || err.Error() != want {
		t.Errorf("error\n%v\nwant\n%s", err, want)
	}
}

func TestValidateProfilesInCode(t *testing.T) {
	c := Default()
	c.Profiles["odd"] = Profile{Name: "other", Width: 641, Height: 360, FPS: 30, VideoBitrate: 1_000_000, AudioBitrate: 128_000, KeyframeInterval: time.Second}
	c.Profiles["zero"] = Profile{Name: "zero"}
	err := c.Validate()
	if err == nil {
		t.Fatal("Validate: no error")
	}
	want := []string{
		`config: profiles.odd: its Name "other" differs from its key "odd"; make them equal`,
		`config: profiles.odd.width: 641 is not allowed; use an even number 160..3840`,
		`config: profiles.zero.width: 0 is not allowed; use an even number 160..3840`,
		`config: profiles.zero.height: 0 is not allowed; use an even number 90..2160`,
		`config: profiles.zero.fps: 0 is out of range; use 1..60`,
		`config: profiles.zero.video_bitrate: 0 is out of range; use 100k..50M`,
		`config: profiles.zero.audio_bitrate: 0 is out of range; use 32k..320k`,
		`config: profiles.zero.keyframe_interval: 0s is out of range; use 0.5s..10s`,
	}
	if got := strings.Split(err.Error(), "\n"); !slices.Equal(got, want) {
		t.Fatalf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
