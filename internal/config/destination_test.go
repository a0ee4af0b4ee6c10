package config

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func TestRTMPURL(t *testing.T) {
	for _, ca := range []struct {
		name string
		url  string
		want string // the URL as a string
		host string
		path string
		key  string
	}{
		{"youtube", "rtmp://a.rtmp.youtube.com/live2/KEY", "rtmp://a.rtmp.youtube.com:1935/live2#KEY", "a.rtmp.youtube.com:1935", "/live2", "KEY"},
		{"rtmps default port", "rtmps://live-api-s.facebook.com/rtmp/FB-1-0-Ab", "rtmps://live-api-s.facebook.com:443/rtmp#FB-1-0-Ab", "live-api-s.facebook.com:443", "/rtmp", "FB-1-0-Ab"},
		{"explicit port kept", "rtmp://h:1936/app/k", "rtmp://h:1936/app#k", "h:1936", "/app", "k"},
		{"rtmps explicit port", "rtmps://h:8443/app/k", "rtmps://h:8443/app#k", "h:8443", "/app", "k"},
		{"app with several segments", "rtmp://h/app/inner/more/k-1", "rtmp://h:1935/app/inner/more#k-1", "h:1935", "/app/inner/more", "k-1"},
		{"ipv6", "rtmp://[::1]/live/k", "rtmp://[::1]:1935/live#k", "[::1]:1935", "/live", "k"},
		{"ipv6 with port", "rtmp://[2001:db8::1]:1940/live/k", "rtmp://[2001:db8::1]:1940/live#k", "[2001:db8::1]:1940", "/live", "k"},
		{"scheme upper case", "RTMP://h/app/k", "rtmp://h:1935/app#k", "h:1935", "/app", "k"},
		{"key with every allowed character", "rtmp://h/app/aZ09._~=+-", "rtmp://h:1935/app#aZ09._~=+-", "h:1935", "/app", "aZ09._~=+-"},
		{"twitch", "rtmp://live.twitch.tv/app/live_123456_AbCdEf", "rtmp://live.twitch.tv:1935/app#live_123456_AbCdEf", "live.twitch.tv:1935", "/app", "live_123456_AbCdEf"},
	} {
		t.Run(ca.name, func(t *testing.T) {
			u, err := Destination{Name: "d", URL: ca.url}.RTMPURL()
			if err != nil {
				t.Fatalf("RTMPURL: %v", err)
			}
			if u.String() != ca.want {
				t.Errorf("RTMPURL() = %s, want %s", u, ca.want)
			}
			if u.Host != ca.host || u.Path != ca.path || u.Fragment != ca.key {
				t.Errorf("host, path, fragment = %q, %q, %q; want %q, %q, %q", u.Host, u.Path, u.Fragment, ca.host, ca.path, ca.key)
			}
			if u.RawQuery != "" || u.User != nil {
				t.Errorf("RTMPURL() has a query or user: %s", u)
			}
		})
	}
}

func TestRTMPURLErrors(t *testing.T) {
	for _, ca := range []struct {
		name string
		d    Destination
		want string
	}{
		{"builtin", Destination{Name: "local", Builtin: true}, "destination local is the built-in receiver, which has no URL"},
		{"empty", Destination{Name: "x"}, "destination x: url: is empty"},
		{"no key", Destination{Name: "x", URL: "rtmp://h/app"}, "destination x: url: needs an app and a stream key in its path"},
		{"bad scheme", Destination{Name: "x", URL: "srt://h/app/key"}, `destination x: url: scheme "srt" is not allowed; use rtmp:// or rtmps://`},
	} {
		t.Run(ca.name, func(t *testing.T) {
			u, err := ca.d.RTMPURL()
			if err == nil {
				t.Fatalf("RTMPURL() = %s, want an error", u)
			}
			if !strings.HasPrefix(err.Error(), ca.want) {
				t.Fatalf("error %q, want prefix %q", err, ca.want)
			}
		})
	}
}

// TestDestinationURLErrors checks each rule on destination URLs, and that no error shows
// the stream key, which always contains SECRET here.
func TestDestinationURLErrors(t *testing.T) {
	for _, ca := range []struct {
		name string
		url  string
		want string
	}{
		{"http", "http://h/app/SECRET", `scheme "http" is not allowed; use rtmp:// or rtmps://`},
		{"rtmpt", "rtmpt://h/app/SECRET", `scheme "rtmpt" is not allowed; use rtmp:// or rtmps://`},
		{"no scheme", "h/app/SECRET", "has no scheme; use rtmp:// or rtmps://"},
		{"no scheme with host", "//h/app/SECRET", "has no scheme; use rtmp:// or rtmps://"},
		{"opaque", "rtmp:h/app/SECRET", "must start with rtmp:// or rtmps://, with the two slashes"},
		{"one slash", "rtmp:/app/SECRET", "has no host"},
		{"no host", "rtmp:///app/SECRET", "has no host; use rtmp[s]://host[:port]/app/key"},
		{"user info", "rtmp://user:SECRET@h/app/k", "must not hold a user name or password (user:pass@); put the stream key in the path"},
		{"user only", "rtmp://SECRET@h/app/k", "must not hold a user name or password"},
		{"query", "rtmp://h/app/k?SECRET", "must not have a query (?...); put the stream key in the path"},
		{"query on key", "rtmp://h/app/SECRET?a=b", "must not have a query"},
		{"empty query", "rtmp://h/app/SECRET?", "must not have a query"},
		{"fragment", "rtmp://h/app/k#SECRET", "must not have a fragment (#...); put the stream key in the path"},
		{"empty fragment", "rtmp://h/app/SECRET#", "must not have a fragment"},
		{"port zero", "rtmp://h:0/app/SECRET", `port "0" is not allowed; use 1..65535`},
		{"port too big", "rtmp://h:65536/app/SECRET", `port "65536" is not allowed; use 1..65535`},
		{"port not a number", "rtmp://h:x/app/SECRET", "is not a valid URL (invalid port"},
		{"empty port", "rtmp://h:/app/SECRET", "has an empty port after the host"},
		{"no path", "rtmp://h", "needs an app and a stream key in its path"},
		{"root path", "rtmp://h/", "needs an app and a stream key in its path"},
		{"key only", "rtmp://h/SECRET", "needs an app and a stream key in its path"},
		{"trailing slash", "rtmp://h/app/SECRET/", "ends with a slash: the stream key is missing"},
		{"app only trailing slash", "rtmp://h/app/", "ends with a slash"},
		{"double slash", "rtmp://h/app//SECRET", "has an empty path segment (//)"},
		{"leading double slash", "rtmp://h//app/SECRET", "has an empty path segment (//)"},
		{"dot dot", "rtmp://h/app/../SECRET", `has a "." or ".." path segment`},
		{"dot key", "rtmp://h/app/.", `has a "." or ".." path segment`},
		{"percent escape", "rtmp://h/app/SECRET%41", "must not hold escapes (%)"},
		{"percent slash", "rtmp://h/app/SECRET%2Fmore", "must not hold escapes (%)"},
		{"bad escape", "rtmp://h/app/SECRET%zz", "is not a valid URL (invalid URL escape); use rtmp[s]://host[:port]/app/key"},
		{"space in key", "rtmp://h/app/SEC RET", "the stream key (the last path segment) may contain only letters, digits and . _ ~ = + -, at most 256 of them"},
		{"newline in key", "rtmp://h/app/SECRET\n", "is not a valid URL (net/url: invalid control character in URL)"},
		{"tab in key", "rtmp://h/app/SEC\tRET", "is not a valid URL"},
		{"non-ascii key", "rtmp://h/app/SECRETé", "the stream key (the last path segment) may contain only"},
		{"semicolon key", "rtmp://h/app/SECRET;x", "the stream key (the last path segment) may contain only"},
		{"key too long", "rtmp://h/app/SECRET" + strings.Repeat("a", 251), "at most 256 of them"},
		{"app with space", "rtmp://h/my app/SECRET", `path segment "my app" is not allowed; the app may contain only letters, digits and . _ ~ = + -`},
		{"space in host", "rtmp://h h/app/SECRET", "is not a valid URL (invalid character"},
	} {
		t.Run(ca.name, func(t *testing.T) {
			_, err := checkURL(ca.url)
			if err == nil {
				t.Fatal("checkURL: no error")
			}
			if !strings.Contains(err.Error(), ca.want) {
				t.Errorf("error %q does not contain %q", err, ca.want)
			}
			if strings.Contains(err.Error(), "SECRET") {
				t.Errorf("error %q shows the stream key", err)
			}

			// Through Parse, the message names the field, and still not the key.
			in := fmt.Sprintf("destinations:\n  yt:\n    url: %q\n", ca.url)
			_, err = Parse([]byte(in))
			if err == nil {
				t.Fatal("Parse: no error")
			}
			if !strings.HasPrefix(err.Error(), "config: line 3: destinations.yt.url: ") {
				t.Errorf("Parse error %q does not name the field", err)
			}
			if strings.Contains(err.Error(), "SECRET") {
				t.Errorf("Parse error %q shows the stream key", err)
			}
		})
	}

	// The longest key allowed.
	if _, err := checkURL("rtmp://h/app/" + strings.Repeat("k", 256)); err != nil {
		t.Errorf("256-character key: %v", err)
	}
}

func TestRedacted(t *testing.T) {
	for _, ca := range []struct {
		name string
		d    Destination
		want string
	}{
		{"youtube", Destination{URL: "rtmp://a.rtmp.youtube.com/live2/SECRET"}, "rtmp://a.rtmp.youtube.com/live2/****"},
		{"port and deep app", Destination{URL: "rtmps://h:443/app/inner/SECRET"}, "rtmps://h:443/app/inner/****"},
		{"ipv6", Destination{URL: "rtmp://[::1]:1935/live/SECRET"}, "rtmp://[::1]:1935/live/****"},
		{"builtin", Destination{Builtin: true}, "(built-in receiver)"},
		{"builtin with a url", Destination{Builtin: true, URL: "rtmp://h/app/SECRET"}, "rtmp://h/app/****"},
		// URLs that are not valid still never show what might be the key.
		{"empty", Destination{}, "****"},
		{"query", Destination{URL: "rtmp://h/app/k?key=SECRET"}, "rtmp://h/****"},
		{"fragment", Destination{URL: "rtmp://h/app#SECRET"}, "rtmp://h/****"},
		{"user info", Destination{URL: "rtmp://SECRET:SECRET@h/app/k"}, "rtmp://h/****"},
		{"trailing slash", Destination{URL: "rtmp://h/app/SECRET/"}, "rtmp://h/****"},
		{"key only", Destination{URL: "rtmp://h/SECRET"}, "rtmp://h/****"},
		{"http", Destination{URL: "http://h/app/SECRET"}, "http://h/****"},
		{"unparsable", Destination{URL: "rtmp://h/app/SECRET%zz"}, "****"},
		{"no host", Destination{URL: "rtmp:/app/SECRET"}, "****"},
		{"no scheme", Destination{URL: "h/app/SECRET"}, "****"},
		{"control", Destination{URL: "rtmp://h/app/SECRET\n"}, "****"},
	} {
		t.Run(ca.name, func(t *testing.T) {
			if got := ca.d.Redacted(); got != ca.want {
				t.Fatalf("Redacted() = %q, want %q", got, ca.want)
			}
		})
	}
}

// TestStreamKeyNeverPrinted prints destinations and configurations every way the rest of
// livegate might (fmt verbs, slog text and JSON) and checks that the key never shows.
func TestStreamKeyNeverPrinted(t *testing.T) {
	const key = "SECRET-abcd-efgh"
	for _, d := range []Destination{
		{Name: "yt", URL: "rtmp://a.rtmp.youtube.com/live2/" + key, Description: "YouTube"},
		{Name: "fb", URL: "rtmps://h:443/app/inner/" + key},
		{Name: "bad", URL: "rtmp://h/app/" + key + "?x=1"},
		{Name: "bad2", URL: "rtmp://" + key + "@h/app/k"},
		{Name: "both", URL: "rtmp://h/app/" + key, Builtin: true},
	} {
		t.Run(d.Name, func(t *testing.T) {
			c := Default()
			c.Destinations[d.Name] = d
			ptr := &d

			var logs bytes.Buffer
			slog.New(slog.NewTextHandler(&logs, nil)).Info("x", "destination", d, "ptr", ptr)
			slog.New(slog.NewJSONHandler(&logs, nil)).Info("x", "destination", d, "ptr", ptr)
			slog.New(slog.NewTextHandler(&logs, nil)).With("destination", d).Info("x")

			for _, s := range []string{
				d.Redacted(),
				d.String(),
				d.GoString(),
				fmt.Sprint(d),
				fmt.Sprintf("%v %+v %#v %s %q", d, d, d, d, d),
				fmt.Sprintf("%v %+v %#v %s", ptr, ptr, ptr, ptr),
				fmt.Sprintf("%v", c),
				fmt.Sprintf("%+v", c),
				fmt.Sprintf("%#v", c),
				fmt.Sprintf("%v", *c),
				fmt.Sprintf("%+v", c.Destinations),
				fmt.Sprintf("%v", []Destination{d}),
				logs.String(),
			} {
				if strings.Contains(s, key) {
					t.Errorf("the stream key shows in %q", s)
				}
				if s == "" {
					t.Error("empty output")
				}
			}
			if !strings.Contains(logs.String(), `"url":"`) || !strings.Contains(logs.String(), "destination.url=") {
				t.Errorf("logs do not show the redacted url:\n%s", logs.String())
			}
		})
	}
}

func TestDestinationString(t *testing.T) {
	for _, ca := range []struct {
		d    Destination
		want string
	}{
		{Destination{Name: "yt", URL: "rtmp://h/live2/KEY"}, "yt rtmp://h/live2/****"},
		{Destination{Name: "local", Builtin: true}, "local (built-in receiver)"},
		{Destination{Name: "both", Builtin: true, URL: "rtmp://h/live2/KEY"}, "both rtmp://h/live2/**** (builtin)"},
	} {
		if got := ca.d.String(); got != ca.want {
			t.Errorf("String() = %q, want %q", got, ca.want)
		}
	}
	d := Destination{Name: "yt", URL: "rtmp://h/live2/KEY", Description: "main"}
	want := `config.Destination{Name:"yt", URL:"rtmp://h/live2/****", Builtin:false, Description:"main"}`
	if got := fmt.Sprintf("%#v", d); got != want {
		t.Errorf("%%#v = %s, want %s", got, want)
	}
	b := Destination{Name: "local", Builtin: true}
	want = `config.Destination{Name:"local", URL:"", Builtin:true, Description:""}`
	if got := fmt.Sprintf("%#v", b); got != want {
		t.Errorf("%%#v = %s, want %s", got, want)
	}
}
