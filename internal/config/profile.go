package config

import (
	"cmp"
	"maps"
	"slices"
	"time"
)

// Profile is one output size livegate can resize a broadcast to on the server: the video
// is scaled to Width x Height at FPS and encoded at VideoBitrate, the audio at
// AudioBitrate.
type Profile struct {
	Name             string        // its key in Config.Profiles
	Width, Height    int           // pixels, even: 160..3840 x 90..2160
	FPS              int           // frames per second, 1..60
	VideoBitrate     int           // bits per second, 100k..50M
	AudioBitrate     int           // bits per second, 32k..320k
	KeyframeInterval time.Duration // longest gap between video key frames, 0.5s..10s
}

const (
	maxProfiles           = 32
	minWidth, maxWidth    = 160, 3840
	minHeight, maxHeight  = 90, 2160
	minFPS, maxFPS        = 1, 60
	widthHint             = "use an even number 160..3840"
	heightHint            = "use an even number 90..2160"
	minVideoBitrate       = 100_000
	maxVideoBitrate       = 50_000_000
	minAudioBitrate       = 32_000
	maxAudioBitrate       = 320_000
	minKeyframeInterval   = 500 * time.Millisecond
	maxKeyframeInterval   = 10 * time.Second
	videoBitrateRange     = "100k..50M"
	audioBitrateRange     = "32k..320k"
	keyframeIntervalRange = "0.5s..10s"
	nameHint              = "use 1..32 of a-z, 0-9, _ and -, starting with a-z or 0-9"
)

// ProfileNames returns the names of the profiles, largest first (by height, then width,
// then frame rate), then by name.
func (c *Config) ProfileNames() []string {
	return slices.SortedFunc(maps.Keys(c.Profiles), func(a, b string) int {
		pa, pb := c.Profiles[a], c.Profiles[b]
		return cmp.Or(
			cmp.Compare(pb.Height, pa.Height),
			cmp.Compare(pb.Width, pa.Width),
			cmp.Compare(pb.FPS, pa.FPS),
			cmp.Compare(a, b),
		)
	})
}

// profileProblems checks one profile; add reports a problem at a field path.
func profileProblems(name string, p Profile, add func(path, format string, args ...any)) {
	path := "profiles." + name
	if !nameRE.MatchString(name) {
		add(path, "the name %q is not allowed; %s", name, nameHint)
	}
	if p.Name != name {
		add(path, "its Name %q differs from its key %q; make them equal", p.Name, name)
	}
	if p.Width < minWidth || p.Width > maxWidth || p.Width%2 != 0 {
		add(path+".width", "%d is not allowed; %s", p.Width, widthHint)
	}
	if p.Height < minHeight || p.Height > maxHeight || p.Height%2 != 0 {
		add(path+".height", "%d is not allowed; %s", p.Height, heightHint)
	}
	if p.FPS < minFPS || p.FPS > maxFPS {
		add(path+".fps", "%d is out of range; use 1..60", p.FPS)
	}
	if p.VideoBitrate < minVideoBitrate || p.VideoBitrate > maxVideoBitrate {
		add(path+".video_bitrate", "%s is out of range; use %s", formatBitrate(p.VideoBitrate), videoBitrateRange)
	}
	if p.AudioBitrate < minAudioBitrate || p.AudioBitrate > maxAudioBitrate {
		add(path+".audio_bitrate", "%s is out of range; use %s", formatBitrate(p.AudioBitrate), audioBitrateRange)
	}
	if err := inRange(p.KeyframeInterval, minKeyframeInterval, maxKeyframeInterval, keyframeIntervalRange); err != nil {
		add(path+".keyframe_interval", "%v", err)
	}
}
