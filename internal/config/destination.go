package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Destination is one place a broadcast can be published to. It has one of three forms:
//
//   - URL: rtmp[s]://host[:port]/app/key, the server and the stream key in one (Parse sets
//     Preset to "custom" for it);
//   - Preset: a known service (youtube, twitch, facebook) or "custom" with a Server, plus
//     one source of the stream key: Key (given as key:, or read by Load from KeyEnv or
//     KeyFile) or KeyFromClient, the streamer's own key;
//   - Builtin: the built-in receiver.
//
// The stream key is a secret that the operator keeps on the server. String, GoString,
// LogValue and MarshalJSON print the URL with the key hidden (see Redacted), so that a
// Destination can be logged or printed with %v as it is; only Target, RTMPURL and the URL
// and Key fields give the key.
type Destination struct {
	Name        string // its key in Config.Destinations
	URL         string // rtmp[s]://host[:port]/app[/more]/key; empty unless the url: form
	Builtin     bool   // the built-in receiver instead of a URL
	Description string // shown to the streamer; a preset's name when not given

	// Preset is youtube, twitch, facebook or custom. A known service's server is fixed
	// (RTMPS, port 443) and cannot be overridden; custom takes Server.
	Preset string
	// Server is rtmp[s]://host[:port]/app, without the stream key; only for preset custom.
	Server string
	// Key is the stream key of a preset destination: given in the file (key:), or read by
	// Load from the environment variable KeyEnv or the file KeyFile. A secret.
	Key     string
	KeyEnv  string // the environment variable Key was read from (a name, not a secret)
	KeyFile string // the absolute path of the file Key was read from
	// KeyFromClient is set when the streamer brings the stream key: the server and app stay
	// the operator's, and the page must ask for the key (see Target).
	KeyFromClient bool
	// KeyPattern is the Go regular expression a key from the client must match, anchored
	// at both ends by livegate; empty: letters, digits, _ and -, 8..128 of them.
	KeyPattern string

	// Profile, when set, names the profile (in Config.Profiles) every broadcast to this
	// destination is resized to.
	Profile string
	// Profiles are the profiles the streamer may pick from for this destination; empty:
	// the broadcast goes as it is sent.
	Profiles []string
}

// Presets: the known services, whose server is fixed, and custom.
const (
	PresetYouTube  = "youtube"
	PresetTwitch   = "twitch"
	PresetFacebook = "facebook"
	PresetCustom   = "custom"
)

type preset struct {
	server      string // rtmps://host:443/app
	description string // the default description
}

var (
	presets = map[string]preset{
		PresetYouTube:  {"rtmps://a.rtmps.youtube.com:443/live2", "YouTube"},
		PresetTwitch:   {"rtmps://live.twitch.tv:443/app", "Twitch"},
		PresetFacebook: {"rtmps://live-api-s.facebook.com:443/rtmp", "Facebook Live"},
	}
	presetNames = []string{PresetYouTube, PresetTwitch, PresetFacebook, PresetCustom}
)

const (
	redactedKey     = "****"
	builtinRedacted = "(built-in receiver)"
	maxKeyLen       = 256
	keyRule         = "may contain only letters, digits and . _ ~ = + -, at most 256 of them"
)

var (
	// segmentRE is what each path segment of a destination URL may hold: the characters
	// stream keys are made of on real services (abcd-efgh-ijkl-mnop, live_123_AbC, FB-1-0-Ab),
	// and nothing that a URL, a shell or a log would read differently.
	segmentRE = regexp.MustCompile(`^[A-Za-z0-9._~=+-]+$`)
	// nameRE is what a destination or profile name may be: the browser sends it, and it
	// shows in URLs, logs and metrics labels.
	nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,31}$`)
	// clientKeyRE is what a stream key from the client may be when the destination sets
	// no key_pattern.
	clientKeyRE = regexp.MustCompile(`^[A-Za-z0-9_-]{8,128}$`)
)

// Target returns where to publish, in the form gortmplib's client expects: the stream key
// in the fragment, and the port explicit (1935 for rtmp, 443 for rtmps).
// rtmp://host/live2/KEY becomes rtmp://host:1935/live2#KEY.
//
// clientKey is the stream key the streamer gave. It must be empty unless KeyFromClient,
// and then it must match the destination's pattern; the errors for a client key unwrap
// to ErrNoClientKey, ErrBadClientKey or ErrUnexpectedClientKey. No error holds a key.
func (d Destination) Target(clientKey string) (*url.URL, error) {
	if d.Builtin {
		if clientKey != "" {
			return nil, &keyError{fmt.Sprintf("destination %q is the built-in receiver, which takes no stream key", d.Name), ErrUnexpectedClientKey}
		}
		return nil, fmt.Errorf("destination %s is the built-in receiver, which has no URL", d.Name)
	}
	if clientKey != "" && (!d.KeyFromClient || d.URL != "") {
		return nil, &keyError{fmt.Sprintf("destination %q does not take a stream key from the client", d.Name), ErrUnexpectedClientKey}
	}
	if d.URL != "" {
		u, err := checkURL(d.URL)
		if err != nil {
			return nil, fmt.Errorf("destination %s: url: %w", d.Name, err)
		}
		i := strings.LastIndex(u.Path, "/")
		return &url.URL{Scheme: u.Scheme, Host: hostPort(u), Path: u.Path[:i], Fragment: u.Path[i+1:]}, nil
	}
	srv, field, err := d.server()
	if err != nil {
		return nil, fmt.Errorf("destination %s: %s: %w", d.Name, field, err)
	}
	key := d.Key
	if d.KeyFromClient {
		if err := d.checkClientKey(clientKey); err != nil {
			return nil, err
		}
		key = clientKey
	} else if err := checkKey(key); err != nil {
		return nil, fmt.Errorf("destination %s: %s: %w", d.Name, d.keyField(), err)
	}
	srv.Fragment = key
	return srv, nil
}

// RTMPURL is Target(""): the URL of a destination whose stream key is the operator's.
func (d Destination) RTMPURL() (*url.URL, error) {
	return d.Target("")
}

// server returns the server of a preset destination as rtmp[s]://host:port/app, and the
// field to blame if it has none.
func (d Destination) server() (*url.URL, string, error) {
	if d.Preset == PresetCustom {
		u, err := checkServer(d.Server)
		if err != nil {
			return nil, "server", err
		}
		if serverHoldsKey(u, d.Key) {
			return nil, "server", errors.New("holds the stream key; write it without the key, rtmp[s]://host[:port]/app, and give the key with key, key_env or key_file")
		}
		return &url.URL{Scheme: u.Scheme, Host: hostPort(u), Path: u.Path}, "", nil
	}
	p, ok := presets[d.Preset]
	switch {
	case d.Preset == "":
		return nil, "url", errors.New("is empty")
	case !ok:
		return nil, "preset", fmt.Errorf("%q is not allowed; use one of %s", d.Preset, strings.Join(presetNames, ", "))
	case d.Server != "":
		return nil, "server", fmt.Errorf("preset %s has its own server, %s; remove server, or use preset: custom", d.Preset, p.server)
	}
	u, _ := url.Parse(p.server)
	return u, "", nil
}

// keyField names the field Key came from.
func (d Destination) keyField() string {
	switch {
	case d.KeyEnv != "":
		return "key_env"
	case d.KeyFile != "":
		return "key_file"
	}
	return "key"
}

// checkClientKey checks a stream key from the client: the rule for every key, then the
// destination's pattern. Its errors never hold the key.
func (d Destination) checkClientKey(key string) error {
	if key == "" {
		return &keyError{fmt.Sprintf("no stream key given for %q, which takes the streamer's key", d.Name), ErrNoClientKey}
	}
	re := clientKeyRE
	if d.KeyPattern != "" {
		var err error
		if re, err = compileKeyPattern(d.KeyPattern); err != nil {
			return fmt.Errorf("destination %s: key_pattern: %w", d.Name, err)
		}
	}
	if checkKey(key) != nil || !re.MatchString(key) {
		return &keyError{fmt.Sprintf("stream key for %q does not match the allowed pattern", d.Name), ErrBadClientKey}
	}
	return nil
}

const maxKeyPatternLen = 1000

// compileKeyPattern compiles a key_pattern, anchored at both ends.
func compileKeyPattern(p string) (*regexp.Regexp, error) {
	if n := len(p); n > maxKeyPatternLen {
		return nil, fmt.Errorf("is %d bytes long; use at most %d", n, maxKeyPatternLen)
	}
	if _, err := regexp.Compile(p); err != nil {
		return nil, fmt.Errorf("is not a Go regular expression (%s)", strings.TrimPrefix(err.Error(), "error parsing regexp: "))
	}
	// Anchored as a whole: "abc|def" must not match "abcdef".
	return regexp.Compile(`^(?:` + p + `)$`)
}

// checkKey checks a stream key against the rule for every key. Its error does not hold it.
func checkKey(key string) error {
	switch {
	case key == "":
		return errors.New("the stream key is empty")
	case len(key) > maxKeyLen || !segmentRE.MatchString(key):
		return errors.New("the stream key " + keyRule)
	}
	return nil
}

// hostPort returns the host of u with its port, the default one if it has none.
func hostPort(u *url.URL) string {
	port := u.Port()
	if port == "" {
		port = "1935"
		if u.Scheme == "rtmps" {
			port = "443"
		}
	}
	return net.JoinHostPort(u.Hostname(), port)
}

// Redacted returns where the destination publishes with the stream key replaced by ****,
// for logs and for the operator's eyes: the URL as written, or a preset's server with its
// scheme and port (rtmps://a.rtmps.youtube.com:443/live2/****). A URL or server that is
// not valid keeps only its scheme and host, or nothing.
func (d Destination) Redacted() string {
	switch {
	case d.Builtin && d.URL == "":
		return builtinRedacted
	case d.URL != "" || d.Preset == "":
		return redactURL(d.URL)
	}
	srv, _, err := d.server()
	if err != nil {
		return redactBroken(d.Server)
	}
	return srv.Scheme + "://" + srv.Host + srv.Path + "/" + redactedKey
}

func redactURL(raw string) string {
	u, err := checkURL(raw)
	if err != nil {
		return redactBroken(raw)
	}
	return u.Scheme + "://" + u.Host + u.Path[:strings.LastIndex(u.Path, "/")+1] + redactedKey
}

// redactBroken redacts a URL that is not valid: the key could be anywhere but in the
// scheme and host.
func redactBroken(raw string) string {
	if pu, err := url.Parse(raw); err == nil && pu.Host != "" && pu.Scheme != "" {
		return (&url.URL{Scheme: pu.Scheme, Host: pu.Host}).String() + "/" + redactedKey
	}
	return redactedKey
}

// String implements fmt.Stringer without the stream key.
func (d Destination) String() string {
	s := d.Name + " " + d.Redacted()
	if d.Builtin && d.URL != "" {
		s += " (builtin)"
	}
	if d.KeyFromClient {
		s += " (key from client)"
	}
	return s
}

// GoString implements fmt.GoStringer, so that %#v does not print the stream key either.
func (d Destination) GoString() string {
	u := d.URL
	if u != "" {
		u = redactURL(u)
	}
	srv := d.Server
	if srv != "" {
		if u, err := checkServer(srv); err != nil || serverHoldsKey(u, d.Key) {
			srv = redactBroken(srv)
		}
	}
	key := d.Key
	if key != "" {
		key = redactedKey
	}
	return fmt.Sprintf("config.Destination{Name:%q, URL:%q, Builtin:%t, Description:%q, "+
		"Preset:%q, Server:%q, Key:%q, KeyEnv:%q, KeyFile:%q, KeyFromClient:%t, KeyPattern:%q, "+
		"Profile:%q, Profiles:%#v}",
		d.Name, u, d.Builtin, d.Description,
		d.Preset, srv, key, d.KeyEnv, d.KeyFile, d.KeyFromClient, d.KeyPattern,
		d.Profile, d.Profiles)
}

// LogValue implements slog.LogValuer, so that slog (text or JSON) does not print the
// stream key.
func (d Destination) LogValue() slog.Value {
	attrs := []slog.Attr{
		slog.String("name", d.Name),
		slog.String("url", d.Redacted()),
		slog.Bool("builtin", d.Builtin),
	}
	if d.Preset != "" {
		attrs = append(attrs, slog.String("preset", d.Preset))
	}
	if d.KeyFromClient {
		attrs = append(attrs, slog.Bool("key_from_client", true))
	}
	if d.Profile != "" {
		attrs = append(attrs, slog.String("profile", d.Profile))
	}
	return slog.GroupValue(attrs...)
}

// MarshalJSON implements json.Marshaler with the stream key hidden, so that a Destination,
// or a Config logged with slog's JSON handler, does not show it either.
func (d Destination) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Name          string   `json:"name"`
		URL           string   `json:"url"`
		Builtin       bool     `json:"builtin,omitempty"`
		Description   string   `json:"description,omitempty"`
		Preset        string   `json:"preset,omitempty"`
		KeyEnv        string   `json:"key_env,omitempty"`
		KeyFile       string   `json:"key_file,omitempty"`
		KeyFromClient bool     `json:"key_from_client,omitempty"`
		KeyPattern    string   `json:"key_pattern,omitempty"`
		Profile       string   `json:"profile,omitempty"`
		Profiles      []string `json:"profiles,omitempty"`
	}{d.Name, d.Redacted(), d.Builtin, d.Description, d.Preset, d.KeyEnv, d.KeyFile, d.KeyFromClient, d.KeyPattern, d.Profile, d.Profiles})
}

// checkURL parses and checks a destination URL (the url: form, which ends in the stream
// key). Its errors never contain the stream key.
func checkURL(raw string) (*url.URL, error) {
	return checkRTMP(raw, true)
}

// checkServer parses and checks the server of a custom preset: a URL like those of
// checkURL, without the stream key. Its errors do not show its path either, in case a key
// was written into it.
func checkServer(raw string) (*url.URL, error) {
	return checkRTMP(raw, false)
}

func checkRTMP(raw string, withKey bool) (*url.URL, error) {
	form, keyHint := "rtmp[s]://host[:port]/app/key", "put the stream key in the path"
	if !withKey {
		form, keyHint = "rtmp[s]://host[:port]/app", "give the stream key with key, key_env, key_file or key_from_client"
	}
	if raw == "" {
		return nil, errors.New("is empty")
	}
	u, err := url.Parse(raw)
	if err != nil {
		// url.Error holds the whole URL, key included: keep only the reason.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("is not a valid URL (%s); use %s", sanitize(err.Error()), form)
	}
	switch {
	case u.Scheme != "rtmp" && u.Scheme != "rtmps":
		if u.Scheme == "" {
			return nil, errors.New("has no scheme; use rtmp:// or rtmps://")
		}
		return nil, fmt.Errorf("scheme %q is not allowed; use rtmp:// or rtmps://", u.Scheme)
	case u.Opaque != "":
		return nil, errors.New("must start with rtmp:// or rtmps://, with the two slashes")
	case u.User != nil:
		return nil, fmt.Errorf("must not hold a user name or password (user:pass@); %s", keyHint)
	case u.RawQuery != "" || u.ForceQuery:
		return nil, fmt.Errorf("must not have a query (?...); %s", keyHint)
	case u.Fragment != "" || strings.Contains(raw, "#"):
		return nil, fmt.Errorf("must not have a fragment (#...); %s", keyHint)
	case u.Hostname() == "":
		return nil, fmt.Errorf("has no host; use %s", form)
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("port %q is not allowed; use 1..65535", p)
		}
	} else if strings.HasSuffix(u.Host, ":") {
		return nil, errors.New("has an empty port after the host; remove the colon or give a port")
	}
	if strings.Contains(raw, "%") {
		if !withKey {
			return nil, errors.New("must not hold escapes (%); the app may contain only letters, digits and . _ ~ = + -")
		}
		return nil, errors.New("must not hold escapes (%); the app and stream key may contain only letters, digits and . _ ~ = + -")
	}
	segs := strings.Split(strings.TrimPrefix(u.Path, "/"), "/")
	switch {
	case withKey && (u.Path == "" || len(segs) < 2):
		return nil, errors.New("needs an app and a stream key in its path; use rtmp[s]://host[:port]/app/key")
	case !withKey && (u.Path == "" || u.Path == "/"):
		return nil, errors.New("needs an app in its path; use rtmp[s]://host[:port]/app")
	}
	for i, s := range segs {
		last := i == len(segs)-1
		switch {
		case s == "" && last && withKey:
			return nil, errors.New("ends with a slash: the stream key is missing; use rtmp[s]://host[:port]/app/key")
		case s == "" && last:
			return nil, errors.New("ends with a slash; use rtmp[s]://host[:port]/app, and give the stream key apart")
		case s == "":
			return nil, fmt.Errorf("has an empty path segment (//); use %s", form)
		case s == "." || s == "..":
			return nil, fmt.Errorf(`has a "." or ".." path segment; use %s`, form)
		case last && withKey && (len(s) > maxKeyLen || !segmentRE.MatchString(s)):
			return nil, errors.New("the stream key (the last path segment) " + keyRule)
		case !segmentRE.MatchString(s) && !withKey:
			return nil, errors.New("the app (the path) may contain only letters, digits and . _ ~ = + -")
		case !segmentRE.MatchString(s):
			return nil, fmt.Errorf("path segment %q is not allowed; the app may contain only letters, digits and . _ ~ = + -", s)
		}
	}
	return u, nil
}

// serverHoldsKey tells whether key is one of the path segments of a custom server.
func serverHoldsKey(u *url.URL, key string) bool {
	return key != "" && slices.Contains(strings.Split(u.Path, "/"), key)
}

// sanitize cuts an error message from net/url before the first quote: what it quotes is a
// piece of the input (such as an invalid escape), which may be part of the stream key.
func sanitize(msg string) string {
	if i := strings.IndexByte(msg, '"'); i >= 0 {
		return strings.TrimSpace(msg[:i])
	}
	return msg
}
