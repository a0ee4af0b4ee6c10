package config

import (
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Allowed values, in the order the messages list them.
var (
	logLevels   = []string{"debug", "info", "warn", "error"}
	logFormats  = []string{"text", "json"}
	x264Presets = []string{"ultrafast", "superfast", "veryfast", "faster", "fast", "medium"}
)

const (
	maxDestinations      = 64
	maxDescriptionLength = 200
)

// problem is one thing wrong with a configuration. Its message reads
// "config[ FILE]: [line N: ][PATH: ]MSG", one line, so that a list of them reads well
// and each can be found in the file.
type problem struct {
	file string
	line int
	path string // field path such as limits.max_sessions; empty for the file as a whole
	msg  string
	// masks is set when the value at path could not be decoded, so that what validation
	// says about the default it kept, or about what contains it, is not reported too.
	masks bool
}

func (p *problem) Error() string {
	var b strings.Builder
	b.WriteString("config")
	if p.file != "" {
		b.WriteString(" " + p.file)
	}
	b.WriteString(": ")
	if p.line > 0 {
		fmt.Fprintf(&b, "line %d: ", p.line)
	}
	if p.path != "" {
		b.WriteString(p.path + ": ")
	}
	b.WriteString(p.msg)
	return b.String()
}

func joinProblems(probs []*problem, file string) error {
	errs := make([]error, len(probs))
	for i, p := range probs {
		p.file = file
		errs[i] = p
	}
	return errors.Join(errs...)
}

// overlapsAny tells whether path is, contains or is inside the path of one of probs that
// masks.
func overlapsAny(path string, probs []*problem) bool {
	for _, p := range probs {
		if !p.masks {
			continue
		}
		if p.path == path || strings.HasPrefix(p.path, path+".") || strings.HasPrefix(path, p.path+".") {
			return true
		}
	}
	return false
}

// Validate checks the configuration and reports every problem it finds, joined with
// errors.Join. Parse and Load call it; call it yourself after changing a Config in code.
func (c *Config) Validate() error {
	return joinProblems(c.problems(), "")
}

func (c *Config) problems() []*problem {
	var probs []*problem
	add := func(path, format string, args ...any) {
		probs = append(probs, &problem{path: path, msg: fmt.Sprintf(format, args...)})
	}
	check := func(path string, err error) {
		if err != nil {
			add(path, "%v", err)
		}
	}

	check("listen", checkListen(c.Listen))
	check("log.level", oneOf(c.Log.Level, logLevels))
	check("log.format", oneOf(c.Log.Format, logFormats))
	check("ffmpeg.path", checkExecutable(c.FFmpeg.Path))
	check("receiver.listen", checkListen(c.Receiver.Listen))

	l := c.Limits
	if l.MaxSessions < 1 || l.MaxSessions > 10000 {
		add("limits.max_sessions", "%d is out of range; use 1..10000", l.MaxSessions)
	}
	if l.MaxMessageBytes < 64<<10 || l.MaxMessageBytes > 64<<20 {
		add("limits.max_message_bytes", "%s is out of range; use 64KiB..64MiB", formatSize(l.MaxMessageBytes))
	}
	check("limits.first_media_timeout", inRange(l.FirstMediaTimeout, time.Second, 5*time.Minute, "1s..5m"))
	check("limits.idle_timeout", inRange(l.IdleTimeout, time.Second, 5*time.Minute, "1s..5m"))

	e := c.Encode
	if e.VideoBitrate < 100_000 || e.VideoBitrate > 50_000_000 {
		add("encode.video_bitrate", "%s is out of range; use 100k..50M", formatBitrate(e.VideoBitrate))
	}
	check("encode.keyframe_interval", inRange(e.KeyframeInterval, 500*time.Millisecond, 10*time.Second, "0.5s..10s"))
	check("encode.x264_preset", oneOf(e.X264Preset, x264Presets))
	if e.AudioBitrate < 32_000 || e.AudioBitrate > 320_000 {
		add("encode.audio_bitrate", "%s is out of range; use 32k..320k", formatBitrate(e.AudioBitrate))
	}
	if e.AudioSampleRate != 44100 && e.AudioSampleRate != 48000 {
		add("encode.audio_sample_rate", "%d is not allowed; use 44100 or 48000", e.AudioSampleRate)
	}

	switch {
	case len(c.Destinations) == 0 && c.Receiver.Enabled:
		add("destinations", "none are configured; add one (for the built-in receiver: %s: {builtin: true})", builtinName)
	case len(c.Destinations) == 0:
		add("destinations", "none are configured and the built-in receiver is disabled; add a destination, or enable the receiver (receiver.enabled: true)")
	case len(c.Destinations) > maxDestinations:
		add("destinations", "%d are configured; at most %d are allowed", len(c.Destinations), maxDestinations)
	}
	for _, name := range c.DestinationNames() {
		d := c.Destinations[name]
		path := "destinations." + name
		if !nameRE.MatchString(name) {
			add(path, "the name %q is not allowed; use 1..32 of a-z, 0-9, _ and -, starting with a-z or 0-9", name)
		}
		if d.Name != name {
			add(path, "its Name %q differs from its key %q; make them equal", d.Name, name)
		}
		switch {
		case d.Builtin && d.URL != "":
			add(path, "has both url and builtin: true; keep one")
		case d.Builtin && !c.Receiver.Enabled:
			add(path+".builtin", "the built-in receiver is disabled; enable it (receiver.enabled: true) or give this destination a url")
		case !d.Builtin && d.URL == "":
			add(path, "has neither url nor builtin: true; give one")
		case !d.Builtin:
			if _, err := checkURL(d.URL); err != nil {
				add(path+".url", "%v", err)
			}
		}
		if n := utf8.RuneCountInString(d.Description); n > maxDescriptionLength {
			add(path+".description", "is %d characters long; use at most %d", n, maxDescriptionLength)
		}
		if strings.ContainsFunc(d.Description, unicode.IsControl) || !utf8.ValidString(d.Description) {
			add(path+".description", "must be one line of text, without control characters")
		}
	}
	return probs
}

// checkListen checks a listen address: host:port with a numeric port 0..65535.
func checkListen(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q is not host:port; use for example 127.0.0.1:8080, [::1]:8080 or :8080 (all interfaces)", addr)
	}
	if strings.ContainsFunc(host, unicode.IsSpace) {
		return fmt.Errorf("host %q holds a space; use a host name or an IP address", host)
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || n > 65535 {
		return fmt.Errorf("port %q is not allowed; use a number 0..65535", port)
	}
	return nil
}

// checkExecutable checks ffmpeg.path: a command name looked up in PATH, or an absolute
// path. A relative path with a slash is refused, because it would depend on the
// directory livegate happens to be started from.
func checkExecutable(p string) error {
	switch {
	case p == "":
		return errors.New("is empty; use a command name such as ffmpeg or an absolute path")
	case strings.ContainsFunc(p, unicode.IsControl):
		return errors.New("holds a control character; use a command name such as ffmpeg or an absolute path")
	case filepath.IsAbs(p):
		return nil
	case strings.ContainsRune(p, '/') || strings.ContainsRune(p, filepath.Separator):
		return fmt.Errorf("%q is a relative path; use a command name such as ffmpeg or an absolute path", p)
	}
	return nil
}

func oneOf(v string, allowed []string) error {
	if slices.Contains(allowed, v) {
		return nil
	}
	return fmt.Errorf("%q is not allowed; use one of %s", v, strings.Join(allowed, ", "))
}

func inRange(d, lo, hi time.Duration, allowed string) error {
	if d < lo || d > hi {
		return fmt.Errorf("%s is out of range; use %s", formatDuration(d), allowed)
	}
	return nil
}
