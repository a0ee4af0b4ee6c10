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
	maxShutdownGrace     = 10 * time.Minute
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
		if p.path == path || inside(p.path, path) || inside(path, p.path) {
			return true
		}
	}
	return false
}

// inside tells whether the field path is inside the field outer: outer.x or outer[i].
func inside(path, outer string) bool {
	return strings.HasPrefix(path, outer+".") || strings.HasPrefix(path, outer+"[")
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
	c.tlsProblems(add)
	c.authProblems(add)
	c.adminProblems(add)
	check("log.level", oneOf(c.Log.Level, logLevels))
	check("log.format", oneOf(c.Log.Format, logFormats))
	check("ffmpeg.path", checkExecutable(c.FFmpeg.Path))
	check("receiver.listen", checkListen(c.Receiver.Listen))

	l := c.Limits
	if l.MaxSessions < 1 || l.MaxSessions > 10000 {
		add("limits.max_sessions", "%d is out of range; use 1..10000", l.MaxSessions)
	}
	if l.MaxSessionsPerAddress < 0 || l.MaxSessionsPerAddress > 10000 {
		add("limits.max_sessions_per_address", "%d is out of range; use 0 (no bound) or 1..10000", l.MaxSessionsPerAddress)
	}
	if l.MaxSessionLength != 0 {
		check("limits.max_session_length", inRange(l.MaxSessionLength, time.Minute, 168*time.Hour, "0 (no bound) or 1m..168h"))
	}
	if l.MaxIngestBitrate != 0 && (l.MaxIngestBitrate < minIngestBitrate || l.MaxIngestBitrate > maxIngestBitrate) {
		add("limits.max_ingest_bitrate", "%s is out of range; use 0 (no bound) or %s", formatBitrate(l.MaxIngestBitrate), ingestBitrateRange)
	}
	if l.MaxMessageBytes < 64<<10 || l.MaxMessageBytes > 64<<20 {
		add("limits.max_message_bytes", "%s is out of range; use 64KiB..64MiB", formatSize(l.MaxMessageBytes))
	}
	check("limits.first_media_timeout", inRange(l.FirstMediaTimeout, time.Second, 5*time.Minute, "1s..5m"))
	check("limits.idle_timeout", inRange(l.IdleTimeout, time.Second, 5*time.Minute, "1s..5m"))
	if l.ResumeWindow != 0 {
		check("limits.resume_window", inRange(l.ResumeWindow, time.Second, 2*time.Minute, "0 (off) or 1s..2m"))
	}

	check("shutdown_grace", inRange(c.ShutdownGrace, 0, maxShutdownGrace, "0 (end the broadcasts at once) or up to 10m"))

	e := c.Encode
	if e.VideoBitrate < minVideoBitrate || e.VideoBitrate > maxVideoBitrate {
		add("encode.video_bitrate", "%s is out of range; use %s", formatBitrate(e.VideoBitrate), videoBitrateRange)
	}
	check("encode.keyframe_interval", inRange(e.KeyframeInterval, minKeyframeInterval, maxKeyframeInterval, keyframeIntervalRange))
	check("encode.x264_preset", oneOf(e.X264Preset, x264Presets))
	if e.AudioBitrate < minAudioBitrate || e.AudioBitrate > maxAudioBitrate {
		add("encode.audio_bitrate", "%s is out of range; use %s", formatBitrate(e.AudioBitrate), audioBitrateRange)
	}
	if e.AudioSampleRate != 44100 && e.AudioSampleRate != 48000 {
		add("encode.audio_sample_rate", "%d is not allowed; use 44100 or 48000", e.AudioSampleRate)
	}

	if len(c.Profiles) > maxProfiles {
		add("profiles", "%d are configured; at most %d are allowed", len(c.Profiles), maxProfiles)
	}
	for _, name := range c.ProfileNames() {
		profileProblems(name, c.Profiles[name], add)
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
		c.destinationProblems(name, c.Destinations[name], add)
	}
	return probs
}

// keyFields are the fields of a preset destination beyond preset itself.
var keyFields = []string{"server", "key", "key_env", "key_file", "key_from_client", "key_pattern"}

// destinationProblems checks one destination; add reports a problem at a field path.
func (c *Config) destinationProblems(name string, d Destination, add func(path, format string, args ...any)) {
	path := "destinations." + name
	if !nameRE.MatchString(name) {
		add(path, "the name %q is not allowed; %s", name, nameHint)
	}
	if d.Name != name {
		add(path, "its Name %q differs from its key %q; make them equal", d.Name, name)
	}

	// The form: url, builtin or preset. url with preset custom is one form, the one
	// Parse gives for url:.
	var forms []string
	if d.URL != "" {
		forms = append(forms, "url")
	}
	if d.Builtin {
		forms = append(forms, "builtin: true")
	}
	if d.Preset != "" && (d.Preset != PresetCustom || d.URL == "") {
		forms = append(forms, "preset")
	}
	// The preset fields given, which only a preset destination takes.
	var given []string
	for i, set := range []bool{d.Server != "", d.Key != "", d.KeyEnv != "", d.KeyFile != "", d.KeyFromClient, d.KeyPattern != ""} {
		if set {
			given = append(given, keyFields[i])
		}
	}
	switch {
	case len(forms) == 2:
		add(path, "has both %s; keep one", andList(forms))
	case len(forms) > 2:
		add(path, "has %s; keep one", andList(forms))
	case len(forms) == 0:
		add(path, "has none of url, preset and builtin: true; give one")
	case d.Builtin:
		if !c.Receiver.Enabled {
			add(path+".builtin", "the built-in receiver is disabled; enable it (receiver.enabled: true) or give this destination a url or a preset")
		}
		for _, f := range given {
			add(path+"."+f, "the built-in receiver takes no server or stream key; remove %s", f)
		}
	case d.URL != "":
		if _, err := checkURL(d.URL); err != nil {
			add(path+".url", "%v", err)
		}
		for _, f := range given {
			add(path+"."+f, "url already holds the server and the stream key; remove %s, or replace url with preset: custom, server and a key", f)
		}
	default:
		presetProblems(path, d, add)
	}

	if n := utf8.RuneCountInString(d.Description); n > maxDescriptionLength {
		add(path+".description", "is %d characters long; use at most %d", n, maxDescriptionLength)
	}
	if strings.ContainsFunc(d.Description, unicode.IsControl) || !utf8.ValidString(d.Description) {
		add(path+".description", "must be one line of text, without control characters")
	}

	if d.Profile != "" && len(d.Profiles) > 0 {
		add(path, "has both profile (always used) and profiles (the streamer picks one); keep one")
	}
	if d.Profile != "" {
		if _, ok := c.Profiles[d.Profile]; !ok {
			add(path+".profile", "%s", c.unknownProfile(d.Profile))
		}
	}
	for i, p := range d.Profiles {
		pp := fmt.Sprintf("%s.profiles[%d]", path, i)
		switch {
		case slices.Index(d.Profiles, p) < i:
			add(pp, "%q is listed twice; keep one", p)
		case !mapHas(c.Profiles, p):
			add(pp, "%s", c.unknownProfile(p))
		}
	}
}

// presetProblems checks a destination given as a preset and a source of its stream key.
func presetProblems(path string, d Destination, add func(path, format string, args ...any)) {
	p, known := presets[d.Preset]
	switch {
	case !known && d.Preset != PresetCustom:
		add(path+".preset", "%q is not allowed; use one of %s", d.Preset, strings.Join(presetNames, ", "))
	case known && d.Server != "":
		// A service's server is RTMPS; it cannot be replaced, by mistake, by an rtmp:// one.
		add(path+".server", "preset %s has its own server, %s; remove server, or use preset: custom", d.Preset, p.server)
	case d.Server == "" && !known:
		add(path+".server", "is missing; preset custom needs server: rtmp[s]://host[:port]/app")
	case !known:
		if u, err := checkServer(d.Server); err != nil {
			add(path+".server", "%v", err)
		} else if serverHoldsKey(u, d.Key) {
			add(path+".server", "holds the stream key; write it without the key, rtmp[s]://host[:port]/app, and give the key with key, key_env or key_file")
		}
	}

	var sources []string
	if d.Key != "" && d.KeyEnv == "" && d.KeyFile == "" {
		sources = append(sources, "key")
	}
	if d.KeyEnv != "" {
		sources = append(sources, "key_env")
	}
	if d.KeyFile != "" {
		sources = append(sources, "key_file")
	}
	if d.KeyFromClient {
		sources = append(sources, "key_from_client")
	}
	switch {
	case len(sources) > 1:
		add(path, "has both %s; give exactly one of key, key_env, key_file or key_from_client: true", andList(sources))
	case len(sources) == 0:
		add(path, "has no stream key; give one of key, key_env, key_file or key_from_client: true")
	case d.KeyFromClient:
		if d.KeyPattern != "" {
			if _, err := compileKeyPattern(d.KeyPattern); err != nil {
				add(path+".key_pattern", "%v", err)
			}
		}
	case d.KeyFile != "" && !filepath.IsAbs(d.KeyFile):
		add(path+".key_file", "%q is a relative path; use an absolute path", d.KeyFile)
	case d.Key == "":
		src := d.KeyEnv
		if src == "" {
			src = d.KeyFile
		}
		add(path+"."+d.keyField(), "%s was not read into Key: Load and Parse read it; in code, set Key too", src)
	case checkKey(d.Key) != nil:
		switch d.keyField() {
		case "key_env":
			add(path+".key_env", "the stream key in %s %s", d.KeyEnv, keyRule)
		case "key_file":
			add(path+".key_file", "the stream key in %s %s", d.KeyFile, keyRule)
		default:
			add(path+".key", "the stream key %s", keyRule)
		}
	}
	if d.KeyPattern != "" && !d.KeyFromClient {
		add(path+".key_pattern", "is only for a key from the client (key_from_client: true); remove it")
	}
}

// unknownProfile says that name is not a profile, and which are.
func (c *Config) unknownProfile(name string) string {
	if len(c.Profiles) == 0 {
		return fmt.Sprintf("%q is not a profile; none are configured (profiles:)", name)
	}
	return fmt.Sprintf("%q is not a profile; use one of %s", name, strings.Join(c.ProfileNames(), ", "))
}

func mapHas[V any](m map[string]V, k string) bool {
	_, ok := m[k]
	return ok
}

// andList writes a, b and c.
func andList(items []string) string {
	if len(items) < 2 {
		return strings.Join(items, "")
	}
	return strings.Join(items[:len(items)-1], ", ") + " and " + items[len(items)-1]
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
