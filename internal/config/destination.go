package config

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"regexp"
	"strconv"
	"strings"
)

// Destination is one place a broadcast can be published to: an RTMP(S) URL that ends in
// a stream key, or the built-in receiver.
//
// The stream key is a secret that the operator keeps on the server. String, GoString and
// LogValue print the URL with the key hidden (see Redacted), so that a Destination can be
// logged or printed with %v as it is; only RTMPURL and the URL field give the key.
type Destination struct {
	Name        string // its key in Config.Destinations
	URL         string // rtmp[s]://host[:port]/app[/more]/key; empty when Builtin
	Builtin     bool   // the built-in receiver instead of a URL
	Description string // shown to the streamer
}

const (
	redactedKey     = "****"
	builtinRedacted = "(built-in receiver)"
	maxKeyLen       = 256
)

var (
	// segmentRE is what each path segment of a destination URL may hold: the characters
	// stream keys are made of on real services (abcd-efgh-ijkl-mnop, live_123_AbC, FB-1-0-Ab),
	// and nothing that a URL, a shell or a log would read differently.
	segmentRE = regexp.MustCompile(`^[A-Za-z0-9._~=+-]+$`)
	// nameRE is what a destination name may be: the browser sends it, and it shows in URLs,
	// logs and metrics labels.
	nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,31}$`)
)

// RTMPURL returns the URL in the form gortmplib's client expects: the stream key moved
// from the last path segment into the fragment, and the port made explicit (1935 for
// rtmp, 443 for rtmps). rtmp://host/live2/KEY becomes rtmp://host:1935/live2#KEY.
func (d Destination) RTMPURL() (*url.URL, error) {
	if d.Builtin {
		return nil, fmt.Errorf("destination %s is the built-in receiver, which has no URL", d.Name)
	}
	u, err := checkURL(d.URL)
	if err != nil {
		return nil, fmt.Errorf("destination %s: url: %w", d.Name, err)
	}
	i := strings.LastIndex(u.Path, "/")
	port := u.Port()
	if port == "" {
		port = "1935"
		if u.Scheme == "rtmps" {
			port = "443"
		}
	}
	return &url.URL{
		Scheme:   u.Scheme,
		Host:     net.JoinHostPort(u.Hostname(), port),
		Path:     u.Path[:i],
		Fragment: u.Path[i+1:],
	}, nil
}

// Redacted returns the URL with the stream key replaced by ****, for logs and for the
// operator's eyes. A URL that is not valid keeps only its scheme and host, or nothing.
func (d Destination) Redacted() string {
	if d.Builtin && d.URL == "" {
		return builtinRedacted
	}
	return redactURL(d.URL)
}

func redactURL(raw string) string {
	u, err := checkURL(raw)
	if err != nil {
		// Not a valid destination URL: the key could be anywhere but in the scheme and host.
		if pu, perr := url.Parse(raw); perr == nil && pu.Host != "" && pu.Scheme != "" {
			return (&url.URL{Scheme: pu.Scheme, Host: pu.Host}).String() + "/" + redactedKey
		}
		return redactedKey
	}
	return u.Scheme + "://" + u.Host + u.Path[:strings.LastIndex(u.Path, "/")+1] + redactedKey
}

// String implements fmt.Stringer without the stream key.
func (d Destination) String() string {
	s := d.Name + " " + d.Redacted()
	if d.Builtin && d.URL != "" {
		s += " (builtin)"
	}
	return s
}

// GoString implements fmt.GoStringer, so that %#v does not print the stream key either.
func (d Destination) GoString() string {
	u := d.URL
	if u != "" {
		u = redactURL(u)
	}
	return fmt.Sprintf("config.Destination{Name:%q, URL:%q, Builtin:%t, Description:%q}",
		d.Name, u, d.Builtin, d.Description)
}

// LogValue implements slog.LogValuer, so that slog (text or JSON) does not print the
// stream key.
func (d Destination) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("name", d.Name),
		slog.String("url", d.Redacted()),
		slog.Bool("builtin", d.Builtin),
	)
}

// checkURL parses and checks a destination URL. Its errors never contain the stream key.
func checkURL(raw string) (*url.URL, error) {
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
		return nil, fmt.Errorf("is not a valid URL (%s); use rtmp[s]://host[:port]/app/key", sanitize(err.Error()))
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
		return nil, errors.New("must not hold a user name or password (user:pass@); put the stream key in the path")
	case u.RawQuery != "" || u.ForceQuery:
		return nil, errors.New("must not have a query (?...); put the stream key in the path")
	case u.Fragment != "" || strings.Contains(raw, "#"):
		return nil, errors.New("must not have a fragment (#...); put the stream key in the path")
	case u.Hostname() == "":
		return nil, errors.New("has no host; use rtmp[s]://host[:port]/app/key")
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("port %q is not allowed; use 1..65535", p)
		}
	} else if strings.HasSuffix(u.Host, ":") {
		return nil, errors.New("has an empty port after the host; remove the colon or give a port")
	}
	if strings.Contains(raw, "%") {
		return nil, errors.New("must not hold escapes (%); the app and stream key may contain only letters, digits and . _ ~ = + -")
	}
	segs := strings.Split(strings.TrimPrefix(u.Path, "/"), "/")
	if u.Path == "" || len(segs) < 2 {
		return nil, errors.New("needs an app and a stream key in its path; use rtmp[s]://host[:port]/app/key")
	}
	for i, s := range segs {
		last := i == len(segs)-1
		switch {
		case s == "" && last:
			return nil, errors.New("ends with a slash: the stream key is missing; use rtmp[s]://host[:port]/app/key")
		case s == "":
			return nil, errors.New("has an empty path segment (//); use rtmp[s]://host[:port]/app/key")
		case s == "." || s == "..":
			return nil, errors.New(`has a "." or ".." path segment; use rtmp[s]://host[:port]/app/key`)
		case last && (len(s) > maxKeyLen || !segmentRE.MatchString(s)):
			return nil, fmt.Errorf("the stream key (the last path segment) may contain only letters, digits and . _ ~ = + -, at most %d of them", maxKeyLen)
		case !segmentRE.MatchString(s):
			return nil, fmt.Errorf("path segment %q is not allowed; the app may contain only letters, digits and . _ ~ = + -", s)
		}
	}
	return u, nil
}

// sanitize cuts an error message from net/url before the first quote: what it quotes is a
// piece of the input (such as an invalid escape), which may be part of the stream key.
func sanitize(msg string) string {
	if i := strings.IndexByte(msg, '"'); i >= 0 {
		return strings.TrimSpace(msg[:i])
	}
	return msg
}
