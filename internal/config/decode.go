package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// The file layer mirrors the YAML. Pointers tell "absent" (nil: take the default) from
// "given" (checked, even when it is a zero such as max_sessions: 0).
type fileConfig struct {
	Listen        *string                    `yaml:"listen"`
	TLS           fileTLS                    `yaml:"tls"`
	Auth          fileAuth                   `yaml:"auth"`
	Admin         fileAdmin                  `yaml:"admin"`
	Log           fileLog                    `yaml:"log"`
	FFmpeg        fileFFmpeg                 `yaml:"ffmpeg"`
	Receiver      fileReceiver               `yaml:"receiver"`
	Limits        fileLimits                 `yaml:"limits"`
	ShutdownGrace *duration                  `yaml:"shutdown_grace"`
	Encode        fileEncode                 `yaml:"encode"`
	Profiles      map[string]fileProfile     `yaml:"profiles"`
	Destinations  map[string]fileDestination `yaml:"destinations"`
}

type fileTLS struct {
	Cert       *string `yaml:"cert"`
	Key        *string `yaml:"key"`
	SelfSigned *bool   `yaml:"self_signed"`
	Listen     *string `yaml:"listen"`
}

type fileAuth struct {
	Tokens         []fileToken      `yaml:"tokens"`
	SigningKeys    []fileSigningKey `yaml:"signing_keys"`
	AllowAnonymous *bool            `yaml:"allow_anonymous"`
	AllowedOrigins []string         `yaml:"allowed_origins"`
}

// fileToken is one of auth.tokens. Its lists are pointers: absent allows all, given
// empty is refused.
type fileToken struct {
	Name         *string   `yaml:"name"`
	Hash         *string   `yaml:"hash"`
	Destinations *[]string `yaml:"destinations"`
	Profiles     *[]string `yaml:"profiles"`
	MaxBitrate   *bitrate  `yaml:"max_bitrate"`
}

type fileSigningKey struct {
	ID         string `yaml:"id"`
	SecretEnv  string `yaml:"secret_env"`
	SecretFile string `yaml:"secret_file"`
}

type fileAdmin struct {
	TokenHash *string `yaml:"token_hash"`
}

type fileLog struct {
	Level  *string `yaml:"level"`
	Format *string `yaml:"format"`
}

type fileFFmpeg struct {
	Path *string `yaml:"path"`
}

type fileReceiver struct {
	Enabled *bool   `yaml:"enabled"`
	Listen  *string `yaml:"listen"`
}

type fileLimits struct {
	MaxSessions           *int      `yaml:"max_sessions"`
	MaxSessionsPerAddress *int      `yaml:"max_sessions_per_address"`
	MaxSessionLength      *duration `yaml:"max_session_length"`
	MaxIngestBitrate      *bitrate  `yaml:"max_ingest_bitrate"`
	MaxMessageBytes       *size     `yaml:"max_message_bytes"`
	FirstMediaTimeout     *duration `yaml:"first_media_timeout"`
	IdleTimeout           *duration `yaml:"idle_timeout"`
	ResumeWindow          *duration `yaml:"resume_window"`
}

type fileEncode struct {
	VideoBitrate     *bitrate  `yaml:"video_bitrate"`
	KeyframeInterval *duration `yaml:"keyframe_interval"`
	X264Preset       *string   `yaml:"x264_preset"`
	AudioBitrate     *bitrate  `yaml:"audio_bitrate"`
	AudioSampleRate  *int      `yaml:"audio_sample_rate"`
}

type fileProfile struct {
	Width            *int      `yaml:"width"`
	Height           *int      `yaml:"height"`
	FPS              *int      `yaml:"fps"`
	VideoBitrate     *bitrate  `yaml:"video_bitrate"`
	AudioBitrate     *bitrate  `yaml:"audio_bitrate"`
	KeyframeInterval *duration `yaml:"keyframe_interval"`
}

type fileDestination struct {
	URL           string   `yaml:"url"`
	Preset        string   `yaml:"preset"`
	Server        string   `yaml:"server"`
	Key           string   `yaml:"key"`
	KeyEnv        string   `yaml:"key_env"`
	KeyFile       string   `yaml:"key_file"`
	KeyFromClient bool     `yaml:"key_from_client"`
	KeyPattern    string   `yaml:"key_pattern"`
	Builtin       bool     `yaml:"builtin"`
	Description   string   `yaml:"description"`
	Profile       string   `yaml:"profile"`
	Profiles      []string `yaml:"profiles"`
}

// parse is Parse and Load; file, when set, names the file in every message.
func parse(data []byte, file string) (*Config, error) {
	fc, lines, probs := decode(data)
	if fc == nil {
		return nil, joinProblems(probs, file)
	}

	c, applied := fc.apply(lines)
	// A field that could not be decoded kept its default; do not also report what
	// validation says about it or about what contains it. What apply found (a key that
	// could not be read, a profile without a size) is said better than validation would
	// say it about the same field.
	said := map[string]bool{}
	for _, p := range applied {
		if !overlapsAny(p.path, probs) {
			said[p.path] = true
			p.line = lineOf(lines, p.path)
			probs = append(probs, p)
		}
	}
	for _, p := range c.problems() {
		if !overlapsAny(p.path, probs) && !said[p.path] {
			p.line = lineOf(lines, p.path)
			probs = append(probs, p)
		}
	}
	if len(probs) > 0 {
		// In the order of the file; problems without a line (such as a missing
		// destination) last.
		slices.SortStableFunc(probs, func(a, b *problem) int {
			if (a.line == 0) != (b.line == 0) {
				return b.line - a.line
			}
			return a.line - b.line
		})
		return nil, joinProblems(probs, file)
	}
	return c, nil
}

// decode turns the YAML into a fileConfig. It walks the YAML node tree itself, rather than
// leaving it all to yaml.v3, so that every problem is reported at once with its line, its
// field path and what is allowed there. lines maps each field path found to its line.
// fc is nil only when the document could not be read at all.
func decode(data []byte) (fc *fileConfig, lines map[string]int, probs []*problem) {
	fc = &fileConfig{}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) { // empty input, or only comments
			return fc, nil, nil
		}
		return nil, nil, []*problem{yamlProblem(err)}
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, nil, []*problem{{line: extra.Line, msg: "the file holds more than one YAML document (---); keep one"}}
	}

	w := walker{lines: map[string]int{}}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	w.value(root, reflect.ValueOf(fc).Elem(), "")
	if len(w.probs) > 0 {
		return fc, w.lines, w.probs
	}

	// Belt and braces: yaml.v3's own strict decoding must agree that nothing is unknown
	// or mistyped. It only speaks here if the walker above has missed something.
	strict := yaml.NewDecoder(bytes.NewReader(data))
	strict.KnownFields(true)
	if err := strict.Decode(&fileConfig{}); err != nil {
		return nil, nil, []*problem{yamlProblem(err)}
	}
	return fc, w.lines, nil
}

// yamlProblem turns an error from yaml.v3 into a problem, keeping its line if it has one.
func yamlProblem(err error) *problem {
	msg := err.Error()
	var te *yaml.TypeError
	if errors.As(err, &te) {
		msg = strings.Join(te.Errors, "; ")
	}
	msg = strings.TrimPrefix(msg, "yaml: ")
	line := 0
	if n, _ := fmt.Sscanf(msg, "line %d: ", &line); n == 1 {
		msg = msg[strings.Index(msg, ": ")+2:]
	}
	return &problem{line: line, msg: msg}
}

// walker decodes a YAML node tree into the file layer, collecting problems.
type walker struct {
	lines map[string]int
	probs []*problem
}

// fail reports a problem with the mapping at path (an unknown or repeated key).
func (w *walker) fail(n *yaml.Node, path, format string, args ...any) {
	w.probs = append(w.probs, &problem{line: n.Line, path: path, msg: fmt.Sprintf(format, args...)})
}

// bad reports a value at path that could not be decoded: it keeps its default, and what
// validation would say about it is not reported.
func (w *walker) bad(n *yaml.Node, path, format string, args ...any) {
	w.probs = append(w.probs, &problem{line: n.Line, path: path, msg: fmt.Sprintf(format, args...), masks: true})
}

// value decodes n into v, whose field path is path.
func (w *walker) value(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if path != "" {
		if _, seen := w.lines[path]; !seen {
			w.lines[path] = n.Line
		}
	}
	if n.Kind == 0 || (n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null") {
		return // absent: keep the zero value, which means the default
	}
	if v.Kind() == reflect.Pointer {
		elem := reflect.New(v.Type().Elem())
		before := len(w.probs)
		w.value(n, elem.Elem(), path)
		if len(w.probs) == before {
			v.Set(elem)
		}
		return
	}
	if _, custom := v.Addr().Interface().(yaml.Unmarshaler); custom {
		if err := n.Decode(v.Addr().Interface()); err != nil {
			w.bad(n, path, "%v", err)
		}
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		w.structure(n, v, path)
	case reflect.Map:
		w.mapping(n, v, path)
	case reflect.Slice:
		w.sequence(n, v, path)
	case reflect.Int:
		// yaml.v3 would truncate 1.5 to 1: take only integers.
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" || n.Decode(v.Addr().Interface()) != nil {
			w.bad(n, path, "%s", scalarTypeMessage(n, v.Kind()))
		}
	default:
		if err := n.Decode(v.Addr().Interface()); err != nil {
			w.bad(n, path, "%s", scalarTypeMessage(n, v.Kind()))
		}
	}
}

// scalarTypeMessage says what was wrong with a value given for a plain field.
func scalarTypeMessage(n *yaml.Node, k reflect.Kind) string {
	switch k {
	case reflect.Int:
		if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!int" {
			return fmt.Sprintf("%s is out of range", describe(n))
		}
		if _, err := strconv.Atoi(n.Value); err == nil && n.Kind == yaml.ScalarNode {
			return fmt.Sprintf("%s is quoted, which makes it a string; write %s without quotes", describe(n), n.Value)
		}
		return fmt.Sprintf("%s is not a whole number", describe(n))
	case reflect.Bool:
		if _, err := strconv.ParseBool(n.Value); err == nil && n.Kind == yaml.ScalarNode && n.ShortTag() == "!!str" {
			return fmt.Sprintf("%s is quoted, which makes it a string; write %s without quotes", describe(n), n.Value)
		}
		return fmt.Sprintf("%s is not true or false", describe(n))
	default:
		return fmt.Sprintf("%s is not a string", describe(n))
	}
}

// describe is describe(n) for the value at path, but for a scalar where a token or a
// secret may have been written by mistake: that is not shown.
func (w *walker) describe(n *yaml.Node, path string) string {
	if n.Kind == yaml.ScalarNode && hiddenPathRE.MatchString(path) {
		return "a single value"
	}
	return describe(n)
}

// describe shows a node in a message: a scalar as it was written, otherwise its kind.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.ScalarNode:
		if n.ShortTag() == "!!str" {
			return fmt.Sprintf("%q", n.Value)
		}
		return n.Value
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	default:
		return "this value"
	}
}

// mapKeys walks the key/value pairs of a mapping node, merge keys (<<) first so that keys
// written out override merged ones, as in yaml.v3. It reports keys given twice.
func (w *walker) mapKeys(n *yaml.Node, path string, each func(k, v *yaml.Node)) {
	var merges, pairs [][2]*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.Value == "<<" && k.ShortTag() == "!!merge" {
			merges = append(merges, [2]*yaml.Node{k, v})
		} else {
			pairs = append(pairs, [2]*yaml.Node{k, v})
		}
	}
	for _, m := range merges {
		v := m[1]
		if v.Kind == yaml.AliasNode {
			v = v.Alias
		}
		var sources []*yaml.Node
		switch v.Kind {
		case yaml.MappingNode:
			sources = []*yaml.Node{v}
		case yaml.SequenceNode:
			sources = v.Content
		}
		for _, s := range sources {
			if s.Kind == yaml.AliasNode {
				s = s.Alias
			}
			if s.Kind != yaml.MappingNode {
				w.fail(m[0], path, "a merge (<<) must refer to a mapping or a list of mappings")
				continue
			}
			w.mapKeys(s, path, each)
		}
		if len(sources) == 0 {
			w.fail(m[0], path, "a merge (<<) must refer to a mapping or a list of mappings")
		}
	}
	seen := map[string]int{}
	for _, p := range pairs {
		k := p[0]
		if k.Kind == yaml.AliasNode {
			k = k.Alias
		}
		if k.Kind != yaml.ScalarNode {
			w.fail(k, path, "a key must be a plain name, not %s", describe(k))
			continue
		}
		if first, dup := seen[k.Value]; dup {
			w.fail(k, join(path, k.Value), "given twice (lines %d and %d); keep one", first, k.Line)
			continue
		}
		seen[k.Value] = k.Line
		each(k, p[1])
	}
}

// structure decodes a mapping into a struct of the file layer, refusing unknown fields.
func (w *walker) structure(n *yaml.Node, v reflect.Value, path string) {
	fields := yamlFields(v.Type())
	if n.Kind != yaml.MappingNode {
		what := "the file"
		if path != "" {
			what = path
		}
		w.bad(n, path, "%s is not a mapping; %s holds the fields %s", w.describe(n, path), what, strings.Join(fieldNames(fields), ", "))
		return
	}
	w.mapKeys(n, path, func(k, val *yaml.Node) {
		i, ok := fields[k.Value]
		if !ok {
			w.fail(k, path, "field %q is not known; allowed fields here: %s", k.Value, strings.Join(fieldNames(fields), ", "))
			return
		}
		p := join(path, k.Value)
		w.lines[p] = k.Line
		w.value(val, v.Field(i), p)
	})
}

// mapping decodes a mapping into a map[string]T (destinations).
func (w *walker) mapping(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		w.bad(n, path, "%s is not a mapping; write one NAME: {...} entry per line", describe(n))
		return
	}
	if v.IsNil() {
		v.Set(reflect.MakeMap(v.Type()))
	}
	w.mapKeys(n, path, func(k, val *yaml.Node) {
		elem := reflect.New(v.Type().Elem()).Elem()
		p := join(path, k.Value)
		w.lines[p] = k.Line
		// "name:" with nothing after it is kept as a destination with nothing set,
		// so that validation says what it lacks.
		w.value(val, elem, p)
		v.SetMapIndex(reflect.ValueOf(k.Value), elem)
	})
}

// sequence decodes a list into a slice; its elements' paths are path[0], path[1]...
func (w *walker) sequence(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.SequenceNode {
		w.bad(n, path, "%s is not a list; write [a, b], or one - a per line", w.describe(n, path))
		return
	}
	s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
	before := len(w.probs)
	for i, el := range n.Content {
		w.value(el, s.Index(i), fmt.Sprintf("%s[%d]", path, i))
	}
	if len(w.probs) == before {
		v.Set(s)
	}
}

// lineOf returns the line of path in the file, or of the closest field that contains it
// (a field that is missing is reported on the line of what should hold it).
func lineOf(lines map[string]int, path string) int {
	for path != "" {
		if l, ok := lines[path]; ok {
			return l
		}
		path = path[:max(strings.LastIndexAny(path, ".["), 0)]
	}
	return 0
}

// yamlFields maps the yaml names of a struct's fields to their indices, in order.
func yamlFields(t reflect.Type) map[string]int {
	fields := make(map[string]int, t.NumField())
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		fields[name] = i
	}
	return fields
}

// fieldNames returns the names of fields in the order the struct declares them, which is
// the order of the schema in the documentation.
func fieldNames(fields map[string]int) []string {
	names := make([]string, len(fields))
	for name, i := range fields {
		names[i] = name
	}
	return names
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

// apply returns the defaults overridden by what the file gives. It reads the stream keys
// given with key_env and key_file, and reports what it could not read.
// lines, the line of each field path, tells which of two key sources comes first.
func (fc *fileConfig) apply(lines map[string]int) (*Config, []*problem) {
	var probs []*problem
	add := func(path, format string, args ...any) {
		probs = append(probs, &problem{path: path, msg: fmt.Sprintf(format, args...)})
	}

	c := defaultsWithoutDestinations()
	set(&c.Listen, fc.Listen)
	tlsProbs := fc.TLS.apply(&c.TLS)
	authProbs := fc.Auth.apply(&c.Auth, lines)
	set(&c.Admin.TokenHash, fc.Admin.TokenHash)
	if fc.Admin.TokenHash != nil && *fc.Admin.TokenHash == "" {
		add("admin.token_hash", "is empty; give the hash of the admin token (livegate token new prints one), or remove admin: to turn the admin API off")
	}
	set(&c.Log.Level, fc.Log.Level)
	set(&c.Log.Format, fc.Log.Format)
	set(&c.FFmpeg.Path, fc.FFmpeg.Path)
	set(&c.Receiver.Enabled, fc.Receiver.Enabled)
	set(&c.Receiver.Listen, fc.Receiver.Listen)
	set(&c.Limits.MaxSessions, fc.Limits.MaxSessions)
	set(&c.Limits.MaxSessionsPerAddress, fc.Limits.MaxSessionsPerAddress)
	if fc.Limits.MaxSessionLength != nil {
		c.Limits.MaxSessionLength = time.Duration(*fc.Limits.MaxSessionLength)
	}
	if fc.Limits.MaxIngestBitrate != nil {
		c.Limits.MaxIngestBitrate = int(*fc.Limits.MaxIngestBitrate)
	}
	if fc.Limits.MaxMessageBytes != nil {
		c.Limits.MaxMessageBytes = int64(*fc.Limits.MaxMessageBytes)
	}
	if fc.Limits.FirstMediaTimeout != nil {
		c.Limits.FirstMediaTimeout = time.Duration(*fc.Limits.FirstMediaTimeout)
	}
	if fc.Limits.IdleTimeout != nil {
		c.Limits.IdleTimeout = time.Duration(*fc.Limits.IdleTimeout)
	}
	if fc.Limits.ResumeWindow != nil {
		c.Limits.ResumeWindow = time.Duration(*fc.Limits.ResumeWindow)
	}
	if fc.ShutdownGrace != nil {
		c.ShutdownGrace = time.Duration(*fc.ShutdownGrace)
	}
	if fc.Encode.VideoBitrate != nil {
		c.Encode.VideoBitrate = int(*fc.Encode.VideoBitrate)
	}
	if fc.Encode.KeyframeInterval != nil {
		c.Encode.KeyframeInterval = time.Duration(*fc.Encode.KeyframeInterval)
	}
	set(&c.Encode.X264Preset, fc.Encode.X264Preset)
	if fc.Encode.AudioBitrate != nil {
		c.Encode.AudioBitrate = int(*fc.Encode.AudioBitrate)
	}
	set(&c.Encode.AudioSampleRate, fc.Encode.AudioSampleRate)

	// profiles: replaces the default profiles when it is given, even as {}.
	if fc.Profiles != nil {
		c.Profiles = make(map[string]Profile, len(fc.Profiles))
		for name, fp := range fc.Profiles {
			c.Profiles[name] = fp.apply(name, c.Encode, add)
		}
	}

	c.Destinations = make(map[string]Destination, len(fc.Destinations))
	for name, fd := range fc.Destinations {
		c.Destinations[name] = fd.apply(name, lines, add)
	}
	if len(c.Destinations) == 0 && c.Receiver.Enabled {
		c.Destinations[builtinName] = builtinDestination()
	}
	return c, slices.Concat(probs, tlsProbs, authProbs)
}

// apply sets t from the file and reads the certificate and key it names. A path given
// empty is refused rather than taken as absent: "cert: $CERT" with CERT unset must not
// quietly turn HTTPS off.
func (ft fileTLS) apply(t *TLS) []*problem {
	var probs []*problem
	for _, f := range []struct {
		field, msg string
		v          *string
	}{
		{"cert", "is empty; give the absolute path of the certificate chain's PEM file, or remove tls.cert", ft.Cert},
		{"key", "is empty; give the absolute path of the private key's PEM file, or remove tls.key", ft.Key},
		{"listen", "is empty; give host:port to serve HTTPS there, or remove tls.listen to serve HTTPS on listen", ft.Listen},
	} {
		if f.v != nil && *f.v == "" {
			probs = append(probs, &problem{path: "tls." + f.field, msg: f.msg})
		}
	}
	set(&t.Cert, ft.Cert)
	set(&t.Key, ft.Key)
	set(&t.SelfSigned, ft.SelfSigned)
	set(&t.Listen, ft.Listen)

	// Validation says what is wrong with a pair that cannot be read as it stands.
	if t.SelfSigned || t.Cert == "" || t.Key == "" || !filepath.IsAbs(t.Cert) || !filepath.IsAbs(t.Key) {
		return probs
	}
	cert, loadProbs := loadKeyPair(t.Cert, t.Key, time.Now())
	t.Certificate = cert
	return append(probs, loadProbs...)
}

// apply returns the profile the file gives. What it does not give is taken from encode:,
// and the frame rate is 30; a profile must give its size.
func (fp fileProfile) apply(name string, e Encode, add func(path, format string, args ...any)) Profile {
	p := Profile{
		Name:             name,
		FPS:              defaultProfileFPS,
		VideoBitrate:     e.VideoBitrate,
		AudioBitrate:     e.AudioBitrate,
		KeyframeInterval: e.KeyframeInterval,
	}
	path := "profiles." + name
	if fp.Width == nil {
		add(path+".width", "is missing; %s", widthHint)
	}
	if fp.Height == nil {
		add(path+".height", "is missing; %s", heightHint)
	}
	set(&p.Width, fp.Width)
	set(&p.Height, fp.Height)
	set(&p.FPS, fp.FPS)
	if fp.VideoBitrate != nil {
		p.VideoBitrate = int(*fp.VideoBitrate)
	}
	if fp.AudioBitrate != nil {
		p.AudioBitrate = int(*fp.AudioBitrate)
	}
	if fp.KeyframeInterval != nil {
		p.KeyframeInterval = time.Duration(*fp.KeyframeInterval)
	}
	return p
}

// apply returns the destination the file gives. Of two sources of the stream key, it
// keeps the first in the file and reports the other; it reads the key from the
// environment or a file for a preset destination.
func (fd fileDestination) apply(name string, lines map[string]int, add func(path, format string, args ...any)) Destination {
	d := Destination{
		Name:        name,
		URL:         fd.URL,
		Builtin:     fd.Builtin,
		Description: fd.Description,
		Preset:      fd.Preset,
		Server:      fd.Server,
		KeyPattern:  fd.KeyPattern,
		Profile:     fd.Profile,
	}
	if len(fd.Profiles) > 0 {
		d.Profiles = fd.Profiles
	}
	if d.URL != "" && d.Preset == "" && !d.Builtin {
		d.Preset = PresetCustom
	}
	if p, ok := presets[d.Preset]; ok && d.Description == "" {
		d.Description = p.description
	}

	path := "destinations." + name
	type source struct {
		field string
		given bool
		take  func()
	}
	sources := []source{
		{"key", fd.Key != "", func() { d.Key = fd.Key }},
		{"key_env", fd.KeyEnv != "", func() { d.KeyEnv = fd.KeyEnv }},
		{"key_file", fd.KeyFile != "", func() { d.KeyFile = fd.KeyFile }},
		{"key_from_client", fd.KeyFromClient, func() { d.KeyFromClient = true }},
	}
	slices.SortStableFunc(sources, func(a, b source) int {
		return lines[path+"."+a.field] - lines[path+"."+b.field]
	})
	first := ""
	for _, src := range sources {
		switch {
		case !src.given:
		case first != "":
			add(path+"."+src.field, "the stream key is already given by %s; give exactly one of key, key_env, key_file or key_from_client: true", first)
		default:
			first = src.field
			src.take()
		}
	}

	// Keys are read only for a preset destination; validation says what is wrong with
	// the others.
	if d.Preset == "" || d.URL != "" || d.Builtin {
		return d
	}
	switch {
	case d.KeyEnv != "":
		key, err := readKeyEnv(d.KeyEnv)
		if err != nil {
			add(path+".key_env", "%v", err)
		}
		d.Key = key
	case d.KeyFile != "" && filepath.IsAbs(d.KeyFile):
		key, err := readKeyFile(d.KeyFile)
		if err != nil {
			add(path+".key_file", "%v", err)
		}
		d.Key = key
	}
	return d
}

// envNameRE is what an environment variable name may be.
var envNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// readKeyEnv reads a stream key from an environment variable, trimmed of white space.
// Its errors name the variable, never its value.
func readKeyEnv(name string) (string, error) {
	if !envNameRE.MatchString(name) {
		// Not shown: it may be a stream key written in the wrong field.
		return "", errors.New("is not an environment variable name; use letters, digits and _, not starting with a digit")
	}
	v, ok := os.LookupEnv(name)
	switch {
	case !ok:
		return "", fmt.Errorf("the environment variable %s is not set; set it to the stream key", name)
	case strings.TrimSpace(v) == "":
		return "", fmt.Errorf("the environment variable %s is empty; set it to the stream key", name)
	}
	return strings.TrimSpace(v), nil
}

// maxKeyFileBytes bounds a key_file: it holds one stream key.
const maxKeyFileBytes = 4 << 10

// readKeyFile reads a stream key from a file, trimmed of white space. Its errors name the
// file, never what it holds.
func readKeyFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("cannot read %s: %w", path, pathErr(err))
	}
	defer f.Close()
	// Not a FIFO or a device, which could block the start or never end.
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return "", fmt.Errorf("%s is not a regular file; write the stream key in a file", path)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFileBytes+1))
	switch {
	case err != nil:
		return "", fmt.Errorf("cannot read %s: %w", path, pathErr(err))
	case len(data) > maxKeyFileBytes:
		return "", fmt.Errorf("%s is larger than %s; it must hold only the stream key", path, formatSize(maxKeyFileBytes))
	case len(bytes.TrimSpace(data)) == 0:
		return "", fmt.Errorf("%s is empty; write the stream key in it", path)
	}
	return string(bytes.TrimSpace(data)), nil
}

// pathErr drops the path from an *os.PathError, which the message already names.
func pathErr(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

func set[T any](dst *T, src *T) {
	if src != nil {
		*dst = *src
	}
}
