package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"slices"
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
// livegate might (fmt verbs, slog text and JSON, encoding/json, the errors of Validate and
// Target) and checks that the key never shows.
func TestStreamKeyNeverPrinted(t *testing.T) {
	const key = "SECRET-abcd-efgh"
	for _, d := range []Destination{
		{Name: "yt", URL: "rtmp://a.rtmp.youtube.com/live2/" + key, Description: "YouTube"},
		{Name: "fb", URL: "rtmps://h:443/app/inner/" + key},
		{Name: "bad", URL: "rtmp://h/app/" + key + "?x=1"},
		{Name: "bad2", URL: "rtmp://" + key + "@h/app/k"},
		{Name: "both", URL: "rtmp://h/app/" + key, Builtin: true},
		{Name: "preset", Preset: "youtube", Key: key},
		{Name: "env", Preset: "twitch", Key: key, KeyEnv: "TWITCH_KEY"},
		{Name: "file", Preset: "facebook", Key: key, KeyFile: "/run/secrets/fb"},
		{Name: "custom", Preset: "custom", Server: "rtmp://h/live", Key: key},
		{Name: "in-server", Preset: "custom", Server: "rtmp://h/live/" + key, Key: key},
		{Name: "in-server-query", Preset: "custom", Server: "rtmp://h/live?k=" + key, Key: key},
		{Name: "bad-key", Preset: "youtube", Key: key + " x"},
		{Name: "key-and-client", Preset: "youtube", Key: key, KeyFromClient: true},
		{Name: "unknown", Preset: "vimeo", Key: key},
		{Name: "preset-server", Preset: "youtube", Server: "rtmp://h/" + key, Key: key},
	} {
		t.Run(d.Name, func(t *testing.T) {
			c := Default()
			c.Destinations[d.Name] = d
			checkNoKey(t, key, c, d)
		})
	}

	// A whole configuration, with keys read from the environment and a file.
	t.Run("parsed", func(t *testing.T) {
		t.Setenv("LIVEGATE_TEST_KEY", key+"-env")
		dir := keyFiles(t, map[string]string{"k": key + "-file\n"})
		c, err := Parse([]byte(dir(`destinations:
  a: {url: rtmp://h/app/` + key + `}
  b: {preset: youtube, key: ` + key + `}
  c: {preset: twitch, key_env: LIVEGATE_TEST_KEY}
  d: {preset: facebook, key_file: {dir}/k}
  e: {preset: custom, server: rtmps://h/live, key: ` + key + `-c}
  f: {preset: custom, server: rtmp://h/live, key_from_client: true}
`)))
		if err != nil {
			t.Fatalf("Parse: %v", err)
		}
		if c.Destinations["c"].Key != key+"-env" || c.Destinations["d"].Key != key+"-file" {
			t.Fatalf("keys not read")
		}
		for _, name := range c.DestinationNames() {
			checkNoKey(t, key, c, c.Destinations[name])
		}
	})
}

// checkNoKey prints c and d every way it can think of, and fails if key shows.
func checkNoKey(t *testing.T, key string, c *Config, d Destination) {
	t.Helper()
	ptr := &d
	var logs bytes.Buffer
	slog.New(slog.NewTextHandler(&logs, nil)).Info("x", "destination", d, "ptr", ptr)
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("x", "destination", d, "ptr", ptr)
	slog.New(slog.NewTextHandler(&logs, nil)).With("destination", d).Info("x")
	var cfgLogs bytes.Buffer
	slog.New(slog.NewTextHandler(&cfgLogs, nil)).Info("x", "config", c, "destinations", c.Destinations)
	slog.New(slog.NewJSONHandler(&cfgLogs, nil)).Info("x", "config", c, "destinations", c.Destinations)
	js, err := json.Marshal(c)
	if err != nil {
		t.Fatalf("json.Marshal: %v", err)
	}

	outputs := []string{
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
		cfgLogs.String(),
		string(js),
	}
	errs := []error{c.Validate()}
	for _, ck := range []string{"", "abcdefgh", key} {
		_, err := d.Target(ck)
		errs = append(errs, err)
	}
	for _, err := range errs {
		if err != nil {
			outputs = append(outputs, err.Error(), fmt.Sprintf("%v %+v %#v", err, err, err))
		}
	}
	for _, s := range outputs {
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
	want := `config.Destination{Name:"yt", URL:"rtmp://h/live2/****", Builtin:false, Description:"main", ` +
		`Preset:"", Server:"", Key:"", KeyEnv:"", KeyFile:"", KeyFromClient:false, KeyPattern:"", Profile:"", Profiles:[]string(nil)}`
	if got := fmt.Sprintf("%#v", d); got != want {
		t.Errorf("%%#v = %s, want %s", got, want)
	}
	b := Destination{Name: "local", Builtin: true}
	want = `config.Destination{Name:"local", URL:"", Builtin:true, Description:"", ` +
		`Preset:"", Server:"", Key:"", KeyEnv:"", KeyFile:"", KeyFromClient:false, KeyPattern:"", Profile:"", Profiles:[]string(nil)}`
	if got := fmt.Sprintf("%#v", b); got != want {
		t.Errorf("%%#v = %s, want %s", got, want)
	}
}

// keyFiles writes the files a test case names, in a new directory, and returns a function
// that puts that directory in place of {dir} in a string.
func keyFiles(t *testing.T, files map[string]string) func(string) string {
	t.Helper()
	dir := t.TempDir()
	for name, data := range files {
		p := filepath.Join(dir, name)
		if data == "<dir>" {
			if err := os.Mkdir(p, 0o700); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return func(s string) string { return strings.ReplaceAll(s, "{dir}", dir) }
}

// TestParsePresets checks each form of a preset destination: what lands in the
// Destination, where Target publishes, and what Redacted shows.
func TestParsePresets(t *testing.T) {
	for _, ca := range []struct {
		name      string
		in        string            // the destination "d"; {dir} is the directory of files
		env       map[string]string // set for the test
		files     map[string]string // written to {dir}
		want      Destination       // {dir} in KeyFile is replaced
		clientKey string            // given to Target
		target    string
		redacted  string
	}{
		{
			name:     "youtube with key",
			in:       "preset: youtube\nkey: SECRET-yt-1",
			want:     Destination{Preset: "youtube", Key: "SECRET-yt-1", Description: "YouTube"},
			target:   "rtmps://a.rtmps.youtube.com:443/live2#SECRET-yt-1",
			redacted: "rtmps://a.rtmps.youtube.com:443/live2/****",
		},
		{
			name:     "twitch with key",
			in:       "preset: twitch\nkey: live_123456_SECRETAbC",
			want:     Destination{Preset: "twitch", Key: "live_123456_SECRETAbC", Description: "Twitch"},
			target:   "rtmps://live.twitch.tv:443/app#live_123456_SECRETAbC",
			redacted: "rtmps://live.twitch.tv:443/app/****",
		},
		{
			name:     "facebook with key",
			in:       "preset: facebook\nkey: FB-1-0-SECRET",
			want:     Destination{Preset: "facebook", Key: "FB-1-0-SECRET", Description: "Facebook Live"},
			target:   "rtmps://live-api-s.facebook.com:443/rtmp#FB-1-0-SECRET",
			redacted: "rtmps://live-api-s.facebook.com:443/rtmp/****",
		},
		{
			name:     "youtube with key_env, trimmed",
			in:       "preset: youtube\nkey_env: LIVEGATE_TEST_KEY",
			env:      map[string]string{"LIVEGATE_TEST_KEY": " SECRET-env-2\n"},
			want:     Destination{Preset: "youtube", Key: "SECRET-env-2", KeyEnv: "LIVEGATE_TEST_KEY", Description: "YouTube"},
			target:   "rtmps://a.rtmps.youtube.com:443/live2#SECRET-env-2",
			redacted: "rtmps://a.rtmps.youtube.com:443/live2/****",
		},
		{
			name:     "twitch with key_env",
			in:       "preset: twitch\nkey_env: _TWITCH_KEY_2",
			env:      map[string]string{"_TWITCH_KEY_2": "live_1_SECRET"},
			want:     Destination{Preset: "twitch", Key: "live_1_SECRET", KeyEnv: "_TWITCH_KEY_2", Description: "Twitch"},
			target:   "rtmps://live.twitch.tv:443/app#live_1_SECRET",
			redacted: "rtmps://live.twitch.tv:443/app/****",
		},
		{
			name:     "facebook with key_file, trimmed",
			in:       "preset: facebook\nkey_file: {dir}/fb.key",
			files:    map[string]string{"fb.key": "\n  FB-2-0-SECRET \r\n\n"},
			want:     Destination{Preset: "facebook", Key: "FB-2-0-SECRET", KeyFile: "{dir}/fb.key", Description: "Facebook Live"},
			target:   "rtmps://live-api-s.facebook.com:443/rtmp#FB-2-0-SECRET",
			redacted: "rtmps://live-api-s.facebook.com:443/rtmp/****",
		},
		{
			name:     "key_file of 4KiB",
			in:       "preset: youtube\nkey_file: {dir}/k",
			files:    map[string]string{"k": strings.Repeat(" ", 4096-len("SECRET-4k")) + "SECRET-4k"},
			want:     Destination{Preset: "youtube", Key: "SECRET-4k", KeyFile: "{dir}/k", Description: "YouTube"},
			target:   "rtmps://a.rtmps.youtube.com:443/live2#SECRET-4k",
			redacted: "rtmps://a.rtmps.youtube.com:443/live2/****",
		},
		{
			name:      "youtube with key_from_client",
			in:        "preset: youtube\nkey_from_client: true",
			want:      Destination{Preset: "youtube", KeyFromClient: true, Description: "YouTube"},
			clientKey: "abcd-efgh-ijkl-mnop",
			target:    "rtmps://a.rtmps.youtube.com:443/live2#abcd-efgh-ijkl-mnop",
			redacted:  "rtmps://a.rtmps.youtube.com:443/live2/****",
		},
		{
			name:      "twitch with key_from_client and key_pattern",
			in:        "preset: twitch\nkey_from_client: true\nkey_pattern: 'live_[0-9]+_[A-Za-z0-9]+'",
			want:      Destination{Preset: "twitch", KeyFromClient: true, KeyPattern: "live_[0-9]+_[A-Za-z0-9]+", Description: "Twitch"},
			clientKey: "live_42_AbC",
			target:    "rtmps://live.twitch.tv:443/app#live_42_AbC",
			redacted:  "rtmps://live.twitch.tv:443/app/****",
		},
		{
			name:     "custom rtmp server with key",
			in:       "preset: custom\nserver: rtmp://rtmp.example.com/live\nkey: SECRET-c",
			want:     Destination{Preset: "custom", Server: "rtmp://rtmp.example.com/live", Key: "SECRET-c"},
			target:   "rtmp://rtmp.example.com:1935/live#SECRET-c",
			redacted: "rtmp://rtmp.example.com:1935/live/****",
		},
		{
			name:     "custom rtmps server with port, deep app and key_file",
			in:       "preset: custom\nserver: rtmps://[2001:db8::1]:8443/app/inner\nkey_file: {dir}/k\ndescription: mine",
			files:    map[string]string{"k": "SECRET-d"},
			want:     Destination{Preset: "custom", Server: "rtmps://[2001:db8::1]:8443/app/inner", Key: "SECRET-d", KeyFile: "{dir}/k", Description: "mine"},
			target:   "rtmps://[2001:db8::1]:8443/app/inner#SECRET-d",
			redacted: "rtmps://[2001:db8::1]:8443/app/inner/****",
		},
		{
			name:      "custom with key_from_client",
			in:        "preset: custom\nserver: rtmp://127.0.0.1/live\nkey_from_client: true\nkey_pattern: '[a-z]{3}'",
			want:      Destination{Preset: "custom", Server: "rtmp://127.0.0.1/live", KeyFromClient: true, KeyPattern: "[a-z]{3}"},
			clientKey: "abc",
			target:    "rtmp://127.0.0.1:1935/live#abc",
			redacted:  "rtmp://127.0.0.1:1935/live/****",
		},
		{
			name:     "url with preset custom written out",
			in:       "preset: custom\nurl: rtmp://h/app/SECRET-u",
			want:     Destination{Preset: "custom", URL: "rtmp://h/app/SECRET-u"},
			target:   "rtmp://h:1935/app#SECRET-u",
			redacted: "rtmp://h/app/****",
		},
		{
			name:     "description given, profile forced",
			in:       "preset: youtube\nkey: SECRET-p\ndescription: Main channel\nprofile: 720p",
			want:     Destination{Preset: "youtube", Key: "SECRET-p", Description: "Main channel", Profile: "720p"},
			target:   "rtmps://a.rtmps.youtube.com:443/live2#SECRET-p",
			redacted: "rtmps://a.rtmps.youtube.com:443/live2/****",
		},
		{
			name:     "profiles to pick from",
			in:       "preset: twitch\nkey: SECRET-q\nprofiles:\n  - 720p\n  - 480p",
			want:     Destination{Preset: "twitch", Key: "SECRET-q", Description: "Twitch", Profiles: []string{"720p", "480p"}},
			target:   "rtmps://live.twitch.tv:443/app#SECRET-q",
			redacted: "rtmps://live.twitch.tv:443/app/****",
		},
		{
			name:     "empty profiles list",
			in:       "preset: twitch\nkey: SECRET-r\nprofiles: []",
			want:     Destination{Preset: "twitch", Key: "SECRET-r", Description: "Twitch"},
			target:   "rtmps://live.twitch.tv:443/app#SECRET-r",
			redacted: "rtmps://live.twitch.tv:443/app/****",
		},
		{
			name:     "builtin with a profile",
			in:       "builtin: true\nprofile: 480p",
			want:     Destination{Builtin: true, Profile: "480p"},
			redacted: "(built-in receiver)",
		},
	} {
		t.Run(ca.name, func(t *testing.T) {
			for k, v := range ca.env {
				t.Setenv(k, v)
			}
			dir := keyFiles(t, ca.files)
			in := "destinations:\n  d:\n    " + strings.ReplaceAll(dir(ca.in), "\n", "\n    ") + "\n"
			c, err := Parse([]byte(in))
			if err != nil {
				t.Fatalf("Parse(%q): %v", in, err)
			}
			want := ca.want
			want.Name = "d"
			want.KeyFile = dir(want.KeyFile)
			d := c.Destinations["d"]
			if !reflect.DeepEqual(d, want) {
				t.Fatalf("Destination =\n%#v\nwant\n%#v\n(keys %q, want %q)", d, want, d.Key, want.Key)
			}
			if got := d.Redacted(); got != ca.redacted {
				t.Errorf("Redacted() = %q, want %q", got, ca.redacted)
			}
			if ca.target == "" {
				return
			}
			u, err := d.Target(ca.clientKey)
			if err != nil {
				t.Fatalf("Target: %v", err)
			}
			if u.String() != ca.target {
				t.Errorf("Target() = %s, want %s", u, ca.target)
			}
			if u.Port() == "" || u.User != nil || u.RawQuery != "" {
				t.Errorf("Target() = %s: no explicit port, or a user or query", u)
			}
			if !d.KeyFromClient {
				r, err := d.RTMPURL()
				if err != nil || r.String() != u.String() {
					t.Errorf("RTMPURL() = %v, %v; want Target(\"\")", r, err)
				}
			}
		})
	}
}

// TestTargetClientKey checks keys brought by the streamer: the good ones land in the
// fragment, the others are refused with an error that never shows them.
func TestTargetClientKey(t *testing.T) {
	yt := Destination{Name: "yt", Preset: "youtube", KeyFromClient: true}
	tw := Destination{Name: "tw", Preset: "twitch", KeyFromClient: true, KeyPattern: "live_[0-9]+_[A-Za-z0-9]+"}
	loose := Destination{Name: "loose", Preset: "custom", Server: "rtmp://h/live", KeyFromClient: true, KeyPattern: ".*"}
	alt := Destination{Name: "alt", Preset: "custom", Server: "rtmp://h/live", KeyFromClient: true, KeyPattern: "abc|def"}
	for _, ca := range []struct {
		name string
		d    Destination
		key  string
		want error // nil: accepted
	}{
		{"default pattern", yt, "abcd-efgh-ijkl-mnop", nil},
		{"default pattern, 8 characters", yt, "abcdefgh", nil},
		{"default pattern, 128 characters", yt, strings.Repeat("k", 128), nil},
		{"default pattern, 7 characters", yt, "abcdefg", ErrBadClientKey},
		{"default pattern, 129 characters", yt, strings.Repeat("k", 129), ErrBadClientKey},
		{"default pattern, a dot", yt, "abcd.efgh", ErrBadClientKey},
		{"slash", yt, "abcdefgh/def", ErrBadClientKey},
		{"slash short", yt, "abc/def", ErrBadClientKey},
		{"query", yt, "a?b=cdefgh", ErrBadClientKey},
		{"query short", yt, "a?b=c", ErrBadClientKey},
		{"space", yt, "abcd efgh", ErrBadClientKey},
		{"leading space", yt, " abcdefgh", ErrBadClientKey},
		{"newline", yt, "abcdefgh\n", ErrBadClientKey},
		{"newline inside", yt, "abcd\nefgh", ErrBadClientKey},
		{"NUL", yt, "abcd\x00efgh", ErrBadClientKey},
		{"fragment", yt, "abcdefgh#x", ErrBadClientKey},
		{"percent", yt, "abcdefgh%2F", ErrBadClientKey},
		{"non-ascii", yt, "abcdéfgh", ErrBadClientKey},
		{"300 characters", yt, strings.Repeat("a", 300), ErrBadClientKey},
		{"empty", yt, "", ErrNoClientKey},
		{"pattern", tw, "live_123_AbC", nil},
		{"pattern not matched", tw, "abcd-efgh-ijkl", ErrBadClientKey},
		{"pattern is anchored at the start", tw, "xlive_123_AbC", ErrBadClientKey},
		{"pattern is anchored at the end", tw, "live_123_AbC-x", ErrBadClientKey},
		{"pattern does not lift the rule for every key", loose, "abc/def", ErrBadClientKey},
		{"pattern does not lift the rule, newline", loose, "abc\n", ErrBadClientKey},
		{"pattern does not lift the rule, 300", loose, strings.Repeat("a", 300), ErrBadClientKey},
		{"loose pattern, short key", loose, "a", nil},
		{"alternation is anchored as a whole", alt, "abcdef", ErrBadClientKey},
		{"alternation", alt, "def", nil},
		{"pattern, empty", tw, "", ErrNoClientKey},
		{"key given to a destination with its own key", Destination{Name: "own", Preset: "youtube", Key: "SECRET"}, "abcdefgh", ErrUnexpectedClientKey},
		{"key given to a url destination", Destination{Name: "u", URL: "rtmp://h/app/SECRET", Preset: "custom"}, "abcdefgh", ErrUnexpectedClientKey},
		{"key given to the built-in receiver", Destination{Name: "local", Builtin: true}, "abcdefgh", ErrUnexpectedClientKey},
	} {
		t.Run(ca.name, func(t *testing.T) {
			u, err := ca.d.Target(ca.key)
			if ca.want == nil {
				if err != nil {
					t.Fatalf("Target(%q): %v", ca.key, err)
				}
				if u.Fragment != ca.key || !strings.HasSuffix(u.String(), "#"+ca.key) {
					t.Fatalf("Target(%q) = %s: the key is not the fragment", ca.key, u)
				}
				return
			}
			if err == nil {
				t.Fatalf("Target(%q) = %s, want an error", ca.key, u)
			}
			if !errors.Is(err, ca.want) {
				t.Errorf("error %q is not %q", err, ca.want)
			}
			if ca.key != "" && strings.Contains(err.Error(), ca.key) {
				t.Errorf("error %q shows the key", err)
			}
			if strings.Contains(err.Error(), "SECRET") {
				t.Errorf("error %q shows the configured key", err)
			}
		})
	}

	// The messages.
	for _, ca := range []struct {
		d    Destination
		key  string
		want string
	}{
		{yt, "abc/def", `stream key for "yt" does not match the allowed pattern`},
		{yt, "", `no stream key given for "yt", which takes the streamer's key`},
		{Destination{Name: "own", Preset: "youtube", Key: "k"}, "abcdefgh", `destination "own" does not take a stream key from the client`},
		{Destination{Name: "p", Preset: "youtube", KeyFromClient: true, KeyPattern: "("}, "abcdefgh", "destination p: key_pattern: is not a Go regular expression (missing closing ): `(`)"},
		{Destination{Name: "x", Preset: "vimeo", Key: "k"}, "", `destination x: preset: "vimeo" is not allowed; use one of youtube, twitch, facebook, custom`},
		{Destination{Name: "x", Preset: "youtube", Key: "k", Server: "rtmp://h/live"}, "", "destination x: server: preset youtube has its own server, rtmps://a.rtmps.youtube.com:443/live2; remove server, or use preset: custom"},
		{Destination{Name: "x", Preset: "custom", Key: "k"}, "", "destination x: server: is empty"},
		{Destination{Name: "x", Preset: "custom", Server: "rtmp://h/live/SECRET", Key: "SECRET"}, "", "destination x: server: holds the stream key"},
		{Destination{Name: "x", Preset: "youtube"}, "", "destination x: key: the stream key is empty"},
		{Destination{Name: "x", Preset: "youtube", Key: "SEC RET", KeyEnv: "YT"}, "", "destination x: key_env: the stream key may contain only letters, digits and . _ ~ = + -, at most 256 of them"},
	} {
		_, err := ca.d.Target(ca.key)
		if err == nil || !strings.HasPrefix(err.Error(), ca.want) {
			t.Errorf("%v.Target(%q) error %v, want %q", ca.d, ca.key, err, ca.want)
		}
		if err != nil && strings.Contains(err.Error(), "SEC") {
			t.Errorf("error %q shows the key", err)
		}
	}
}

// TestPresetErrors checks each rule on preset destinations, key sources and profiles: one
// problem, with its line, its field path and what is allowed, and never the key, which
// always contains SECRET here.
func TestPresetErrors(t *testing.T) {
	for _, ca := range []struct {
		name string
		in   string // the destination "yt", whose fields start on line 3; {dir} is the directory of the files below
		want string
	}{
		// the form
		{"unknown preset", "preset: vimeo\nkey: SECRET", `config: line 3: destinations.yt.preset: "vimeo" is not allowed; use one of youtube, twitch, facebook, custom`},
		{"preset case", "preset: YouTube\nkey: SECRET", `config: line 3: destinations.yt.preset: "YouTube" is not allowed`},
		{"preset and url", "preset: youtube\nurl: rtmp://h/app/SECRET", "config: line 2: destinations.yt: has both url and preset; keep one"},
		{"preset and builtin", "preset: youtube\nbuiltin: true", "config: line 2: destinations.yt: has both builtin: true and preset; keep one"},
		{"all three", "preset: twitch\nbuiltin: true\nurl: rtmp://h/app/SECRET", "config: line 2: destinations.yt: has url, builtin: true and preset; keep one"},
		{"none", "description: hello", "config: line 2: destinations.yt: has none of url, preset and builtin: true; give one"},
		{"preset list", "preset: [youtube]", "config: line 3: destinations.yt.preset: a list is not a string"},

		// the server
		{"preset with a server", "preset: youtube\nserver: rtmp://a.rtmp.youtube.com/live2\nkey: SECRET", "config: line 4: destinations.yt.server: preset youtube has its own server, rtmps://a.rtmps.youtube.com:443/live2; remove server, or use preset: custom"},
		{"twitch with a server", "preset: twitch\nserver: rtmps://live.twitch.tv/app\nkey: SECRET", "config: line 4: destinations.yt.server: preset twitch has its own server, rtmps://live.twitch.tv:443/app"},
		{"custom without a server", "preset: custom\nkey: SECRET", "config: line 2: destinations.yt.server: is missing; preset custom needs server: rtmp[s]://host[:port]/app"},
		{"custom with the key in the server", "preset: custom\nserver: rtmp://h/live/SECRET\nkey: SECRET", "config: line 4: destinations.yt.server: holds the stream key; write it without the key, rtmp[s]://host[:port]/app, and give the key with key, key_env or key_file"},
		{"custom with the key from key_env in the server", "preset: custom\nserver: rtmp://h/live/SECRET-e\nkey_env: LIVEGATE_TEST_KEY", "config: line 4: destinations.yt.server: holds the stream key"},
		{"custom server http", "preset: custom\nserver: http://h/live\nkey: SECRET", `config: line 4: destinations.yt.server: scheme "http" is not allowed; use rtmp:// or rtmps://`},
		{"custom server without app", "preset: custom\nserver: rtmp://h\nkey: SECRET", "config: line 4: destinations.yt.server: needs an app in its path; use rtmp[s]://host[:port]/app"},
		{"custom server root", "preset: custom\nserver: rtmp://h/\nkey: SECRET", "destinations.yt.server: needs an app in its path"},
		{"custom server trailing slash", "preset: custom\nserver: rtmp://h/live/\nkey: SECRET", "destinations.yt.server: ends with a slash; use rtmp[s]://host[:port]/app, and give the stream key apart"},
		{"custom server query", "preset: custom\nserver: rtmp://h/live?key=SECRET\nkey_from_client: true", "destinations.yt.server: must not have a query (?...); give the stream key with key, key_env, key_file or key_from_client"},
		{"custom server user", "preset: custom\nserver: rtmp://SECRET@h/live\nkey_from_client: true", "destinations.yt.server: must not hold a user name or password (user:pass@)"},
		{"custom server fragment", "preset: custom\nserver: rtmp://h/live#SECRET\nkey_from_client: true", "destinations.yt.server: must not have a fragment (#...)"},
		{"custom server bad app", "preset: custom\nserver: rtmp://h/li ve/SEC;RET\nkey_from_client: true", "destinations.yt.server: the app (the path) may contain only letters, digits and . _ ~ = + -"},
		{"custom server escape", "preset: custom\nserver: rtmp://h/SECRET%41\nkey_from_client: true", "destinations.yt.server: must not hold escapes (%); the app may contain only"},
		{"custom server bad port", "preset: custom\nserver: rtmp://h:0/live\nkey: SECRET", `destinations.yt.server: port "0" is not allowed; use 1..65535`},

		// the key sources
		{"no key", "preset: youtube", "config: line 2: destinations.yt: has no stream key; give one of key, key_env, key_file or key_from_client: true"},
		{"key_from_client false", "preset: youtube\nkey_from_client: false", "config: line 2: destinations.yt: has no stream key"},
		{"empty key", "preset: youtube\nkey: ''", "config: line 2: destinations.yt: has no stream key"},
		{"key and key_env", "preset: youtube\nkey: SECRET\nkey_env: LIVEGATE_TEST_KEY", "config: line 5: destinations.yt.key_env: the stream key is already given by key; give exactly one of key, key_env, key_file or key_from_client: true"},
		{"key_env and key_file", "preset: youtube\nkey_file: {dir}/k\nkey_env: LIVEGATE_TEST_KEY", "config: line 5: destinations.yt.key_env: the stream key is already given by key_file;"},
		{"key and key_from_client", "preset: twitch\nkey_from_client: true\nkey: SECRET", "config: line 5: destinations.yt.key: the stream key is already given by key_from_client;"},
		{"key_file and key_from_client", "preset: twitch\nkey_file: {dir}/k\nkey_from_client: true", "config: line 5: destinations.yt.key_from_client: the stream key is already given by key_file;"},
		{"key bad characters", "preset: youtube\nkey: SECRET key", "config: line 4: destinations.yt.key: the stream key may contain only letters, digits and . _ ~ = + -, at most 256 of them"},
		{"key with a slash", "preset: youtube\nkey: SECRET/x", "config: line 4: destinations.yt.key: the stream key may contain only"},
		{"key newline", `preset: youtube` + "\n" + `key: "SECRET\n"`, "config: line 4: destinations.yt.key: the stream key may contain only"},
		{"key too long", "preset: youtube\nkey: SECRET" + strings.Repeat("k", 251), "config: line 4: destinations.yt.key: the stream key may contain only letters, digits and . _ ~ = + -, at most 256 of them"},
		{"key list", "preset: youtube\nkey: [SECRET]", "config: line 4: destinations.yt.key: a list is not a string"},
		{"key mapping", "preset: youtube\nkey: {SECRET: SECRET}", "config: line 4: destinations.yt.key: a mapping is not a string"},
		{"key_from_client quoted", "preset: youtube\nkey_from_client: 'true'", `config: line 4: destinations.yt.key_from_client: "true" is quoted, which makes it a string; write true without quotes`},

		// key_env
		{"env missing", "preset: youtube\nkey_env: LIVEGATE_TEST_UNSET", "config: line 4: destinations.yt.key_env: the environment variable LIVEGATE_TEST_UNSET is not set; set it to the stream key"},
		{"env empty", "preset: youtube\nkey_env: LIVEGATE_TEST_EMPTY", "config: line 4: destinations.yt.key_env: the environment variable LIVEGATE_TEST_EMPTY is empty; set it to the stream key"},
		{"env blank", "preset: youtube\nkey_env: LIVEGATE_TEST_BLANK", "config: line 4: destinations.yt.key_env: the environment variable LIVEGATE_TEST_BLANK is empty"},
		{"env bad key", "preset: youtube\nkey_env: LIVEGATE_TEST_KEY_BAD", "config: line 4: destinations.yt.key_env: the stream key in LIVEGATE_TEST_KEY_BAD may contain only letters, digits and . _ ~ = + -, at most 256 of them"},
		{"env name that is a key", "preset: youtube\nkey_env: SECRET-abcd-efgh", "config: line 4: destinations.yt.key_env: is not an environment variable name; use letters, digits and _, not starting with a digit"},
		{"env name with a digit first", "preset: youtube\nkey_env: 1SECRET", "destinations.yt.key_env: is not an environment variable name"},

		// key_file
		{"file missing", "preset: youtube\nkey_file: {dir}/missing", "config: line 4: destinations.yt.key_file: cannot read {dir}/missing: no such file or directory"},
		{"file empty", "preset: youtube\nkey_file: {dir}/empty", "config: line 4: destinations.yt.key_file: {dir}/empty is empty; write the stream key in it"},
		{"file blank", "preset: youtube\nkey_file: {dir}/blank", "config: line 4: destinations.yt.key_file: {dir}/blank is empty"},
		{"file too big", "preset: youtube\nkey_file: {dir}/big", "config: line 4: destinations.yt.key_file: {dir}/big is larger than 4KiB; it must hold only the stream key"},
		{"file a directory", "preset: youtube\nkey_file: {dir}/sub", "config: line 4: destinations.yt.key_file: {dir}/sub is not a regular file; write the stream key in a file"},
		{"file a device", "preset: youtube\nkey_file: /dev/null", "config: line 4: destinations.yt.key_file: /dev/null is not a regular file"},
		{"file through a symlink", "preset: youtube\nkey_file: {dir}/link", "config: line 4: destinations.yt.key_file: the stream key in {dir}/link may contain only"},
		{"file bad key", "preset: youtube\nkey_file: {dir}/bad", "config: line 4: destinations.yt.key_file: the stream key in {dir}/bad may contain only letters, digits and . _ ~ = + -, at most 256 of them"},
		{"file two lines", "preset: youtube\nkey_file: {dir}/two", "config: line 4: destinations.yt.key_file: the stream key in {dir}/two may contain only"},
		{"file relative", "preset: youtube\nkey_file: secrets/yt.key", `config: line 4: destinations.yt.key_file: "secrets/yt.key" is a relative path; use an absolute path`},

		// key_pattern
		{"pattern without key_from_client", "preset: youtube\nkey: SECRET\nkey_pattern: '[a-z]+'", "config: line 5: destinations.yt.key_pattern: is only for a key from the client (key_from_client: true); remove it"},
		{"pattern invalid", "preset: youtube\nkey_from_client: true\nkey_pattern: 'live_('", "config: line 5: destinations.yt.key_pattern: is not a Go regular expression (missing closing ): `live_(`)"},
		{"pattern Perl lookahead", "preset: youtube\nkey_from_client: true\nkey_pattern: '(?=a)b'", "config: line 5: destinations.yt.key_pattern: is not a Go regular expression (invalid or unsupported Perl syntax"},
		{"pattern too long", "preset: youtube\nkey_from_client: true\nkey_pattern: '" + strings.Repeat("a", 1001) + "'", "config: line 5: destinations.yt.key_pattern: is 1001 bytes long; use at most 1000"},

		// key fields where they do not belong
		{"builtin with a key", "builtin: true\nkey: SECRET", "config: line 4: destinations.yt.key: the built-in receiver takes no server or stream key; remove key"},
		{"builtin with key_from_client", "builtin: true\nkey_from_client: true", "config: line 4: destinations.yt.key_from_client: the built-in receiver takes no server or stream key"},
		{"url with key_env", "url: rtmp://h/app/SECRET\nkey_env: LIVEGATE_TEST_KEY", "config: line 4: destinations.yt.key_env: url already holds the server and the stream key; remove key_env, or replace url with preset: custom, server and a key"},
		{"url with a server", "url: rtmp://h/app/SECRET\nserver: rtmp://h/app", "config: line 4: destinations.yt.server: url already holds the server and the stream key; remove server"},
		{"url with key_from_client", "url: rtmp://h/app/SECRET\nkey_from_client: true", "config: line 4: destinations.yt.key_from_client: url already holds"},

		// profiles
		{"unknown profile", "preset: youtube\nkey: SECRET\nprofile: 4k", `config: line 5: destinations.yt.profile: "4k" is not a profile; use one of 1080p, 720p, 480p`},
		{"unknown profile in the list", "preset: youtube\nkey: SECRET\nprofiles: [720p, 4k]", `config: line 5: destinations.yt.profiles[1]: "4k" is not a profile; use one of 1080p, 720p, 480p`},
		{"unknown profile in a block list", "preset: youtube\nkey: SECRET\nprofiles:\n  - 720p\n  - 360p", `config: line 7: destinations.yt.profiles[1]: "360p" is not a profile`},
		{"profile listed twice", "preset: youtube\nkey: SECRET\nprofiles: [720p, 480p, 720p]", `config: line 5: destinations.yt.profiles[2]: "720p" is listed twice; keep one`},
		{"profile and profiles", "preset: youtube\nkey: SECRET\nprofile: 720p\nprofiles: [480p]", "config: line 2: destinations.yt: has both profile (always used) and profiles (the streamer picks one); keep one"},
		{"profiles not a list", "preset: youtube\nkey: SECRET\nprofiles: 720p", `config: line 5: destinations.yt.profiles: "720p" is not a list; write [a, b], or one - a per line`},
		{"profiles element a mapping", "preset: youtube\nkey: SECRET\nprofiles: [{a: 1}]", "config: line 5: destinations.yt.profiles[0]: a mapping is not a string"},
		{"profiles element null", "preset: youtube\nkey: SECRET\nprofiles: [~]", `config: line 5: destinations.yt.profiles[0]: "" is not a profile`},
	} {
		t.Run(ca.name, func(t *testing.T) {
			t.Setenv("LIVEGATE_TEST_KEY", "SECRET-e")
			t.Setenv("LIVEGATE_TEST_EMPTY", "")
			t.Setenv("LIVEGATE_TEST_BLANK", " \n\t")
			t.Setenv("LIVEGATE_TEST_KEY_BAD", "SECRET key")
			os.Unsetenv("LIVEGATE_TEST_UNSET")
			dir := keyFiles(t, map[string]string{
				"k":     "SECRET-f",
				"empty": "",
				"blank": " \n\n ",
				"big":   bigKeyFile,
				"sub":   "<dir>",
				"bad":   "SECRET;key",
				"two":   "SECRET-1\nSECRET-2\n",
			})
			if err := os.Symlink(dir("{dir}/bad"), dir("{dir}/link")); err != nil {
				t.Fatal(err)
			}
			in := "destinations:\n  yt:\n    " + strings.ReplaceAll(dir(ca.in), "\n", "\n    ") + "\n"
			c, err := Parse([]byte(in))
			if err == nil {
				t.Fatalf("Parse(%q) = %+v, want an error", in, c)
			}
			msg := err.Error()
			want := dir(ca.want)
			if !strings.HasPrefix(msg, want) && !strings.Contains(msg, ": "+want) {
				t.Errorf("error\n%s\ndoes not contain\n%s", msg, want)
			}
			if n := strings.Count(msg, "\n") + 1; n != 1 {
				t.Errorf("want one problem, got %d:\n%s", n, msg)
			}
			if strings.Contains(msg, "SECRET") {
				t.Errorf("error %q shows the stream key", msg)
			}
		})
	}
}

// bigKeyFile is one byte too many for a key_file.
var bigKeyFile = "SECRET" + strings.Repeat(" ", maxKeyFileBytes+1-len("SECRET"))

// TestPresetProblemsTogether checks that problems with presets, keys and profiles are
// reported together with the others, in the order of the file.
func TestPresetProblemsTogether(t *testing.T) {
	os.Unsetenv("LIVEGATE_TEST_UNSET")
	in := `profiles:
  hd: {width: 1281, height: 720}
destinations:
  yt:
    preset: youtube
    key_env: LIVEGATE_TEST_UNSET
    profile: 4k
  tw:
    preset: twitch
    key: SECRET-1
    key_from_client: true
    profiles: [hd, hd]
  fb:
    preset: facebook
  mine:
    preset: custom
    server: rtmp://h/live/SECRET-2
    key: SECRET-2
`
	_, err := Parse([]byte(in))
	if err == nil {
		t.Fatal("Parse: no error")
	}
	want := []string{
		"config: line 2: profiles.hd.width: 1281 is not allowed; use an even number 160..3840",
		"config: line 6: destinations.yt.key_env: the environment variable LIVEGATE_TEST_UNSET is not set; set it to the stream key",
		`config: line 7: destinations.yt.profile: "4k" is not a profile; use one of hd`,
		"config: line 11: destinations.tw.key_from_client: the stream key is already given by key; give exactly one of key, key_env, key_file or key_from_client: true",
		`config: line 12: destinations.tw.profiles[1]: "hd" is listed twice; keep one`,
		"config: line 13: destinations.fb: has no stream key; give one of key, key_env, key_file or key_from_client: true",
		"config: line 17: destinations.mine.server: holds the stream key; write it without the key, rtmp[s]://host[:port]/app, and give the key with key, key_env or key_file",
	}
	if got := strings.Split(err.Error(), "\n"); !slices.Equal(got, want) {
		t.Fatalf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestLoadReadsKeys checks that Load reads key_env and key_file, and names the config file
// in what it cannot read.
func TestLoadReadsKeys(t *testing.T) {
	t.Setenv("LIVEGATE_TEST_KEY", "SECRET-load-env")
	os.Unsetenv("LIVEGATE_TEST_UNSET")
	dir := keyFiles(t, map[string]string{"fb.key": "SECRET-load-file\n"})

	good := dir("{dir}/good.yaml")
	if err := os.WriteFile(good, []byte(dir("destinations:\n  yt: {preset: youtube, key_env: LIVEGATE_TEST_KEY}\n  fb: {preset: facebook, key_file: {dir}/fb.key}\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(good)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if c.Destinations["yt"].Key != "SECRET-load-env" || c.Destinations["fb"].Key != "SECRET-load-file" {
		t.Fatalf("keys not read: %#v", c.Destinations)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate after Load: %v", err)
	}

	bad := dir("{dir}/bad.yaml")
	if err := os.WriteFile(bad, []byte(dir("destinations:\n  yt: {preset: youtube, key_env: LIVEGATE_TEST_UNSET}\n  fb: {preset: facebook, key_file: {dir}/nope}\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Load(bad)
	want := "config " + bad + ": line 2: destinations.yt.key_env: the environment variable LIVEGATE_TEST_UNSET is not set; set it to the stream key\n" +
		"config " + bad + ": line 3: destinations.fb.key_file: cannot read " + dir("{dir}/nope") + ": no such file or directory"
	if err == nil || err.Error() != want {
		t.Fatalf("Load error\n%v\nwant\n%s", err, want)
	}
}

// TestValidatePresetsInCode checks Validate on preset destinations built in code.
func TestValidatePresetsInCode(t *testing.T) {
	for _, ca := range []struct {
		name string
		d    Destination
		want string // empty: valid
	}{
		{"key", Destination{Preset: "youtube", Key: "k"}, ""},
		{"key read from env", Destination{Preset: "youtube", Key: "k", KeyEnv: "YT"}, ""},
		{"client", Destination{Preset: "custom", Server: "rtmp://h/app", KeyFromClient: true}, ""},
		{"url with custom", Destination{URL: "rtmp://h/app/k", Preset: "custom"}, ""},
		{"url without preset", Destination{URL: "rtmp://h/app/k"}, ""},
		{"env not read", Destination{Preset: "youtube", KeyEnv: "YT_KEY"}, "config: destinations.d.key_env: YT_KEY was not read into Key: Load and Parse read it; in code, set Key too"},
		{"file not read", Destination{Preset: "youtube", KeyFile: "/run/yt"}, "config: destinations.d.key_file: /run/yt was not read into Key"},
		{"key and client", Destination{Preset: "youtube", Key: "SECRET", KeyFromClient: true}, "config: destinations.d: has both key and key_from_client; give exactly one of key, key_env, key_file or key_from_client: true"},
		{"env and file", Destination{Preset: "youtube", Key: "SECRET", KeyEnv: "A", KeyFile: "/b"}, "config: destinations.d: has both key_env and key_file; give exactly one"},
		{"bad key from file", Destination{Preset: "youtube", Key: "SECRET key", KeyFile: "/b"}, "config: destinations.d.key_file: the stream key in /b may contain only"},
		{"profile unknown", Destination{Preset: "youtube", Key: "k", Profile: "4k"}, `config: destinations.d.profile: "4k" is not a profile; use one of 1080p, 720p, 480p`},
	} {
		t.Run(ca.name, func(t *testing.T) {
			c := Default()
			ca.d.Name = "d"
			c.Destinations["d"] = ca.d
			err := c.Validate()
			switch {
			case ca.want == "" && err != nil:
				t.Fatalf("Validate: %v", err)
			case ca.want == "":
			case err == nil:
				t.Fatal("Validate: no error")
			case !strings.HasPrefix(err.Error(), ca.want) || strings.Contains(err.Error(), "\n"):
				t.Fatalf("error\n%s\nwant one problem starting\n%s", err, ca.want)
			case strings.Contains(err.Error(), "SECRET"):
				t.Fatalf("error %q shows the key", err)
			}
		})
	}
}

func TestRedactedPresets(t *testing.T) {
	for _, ca := range []struct {
		name string
		d    Destination
		want string
	}{
		{"youtube", Destination{Preset: "youtube", Key: "SECRET"}, "rtmps://a.rtmps.youtube.com:443/live2/****"},
		{"twitch from env", Destination{Preset: "twitch", Key: "SECRET", KeyEnv: "X"}, "rtmps://live.twitch.tv:443/app/****"},
		{"facebook from the client", Destination{Preset: "facebook", KeyFromClient: true}, "rtmps://live-api-s.facebook.com:443/rtmp/****"},
		{"custom rtmp shows its scheme and port", Destination{Preset: "custom", Server: "rtmp://h/live", Key: "SECRET"}, "rtmp://h:1935/live/****"},
		{"custom rtmps", Destination{Preset: "custom", Server: "rtmps://h/live", Key: "SECRET"}, "rtmps://h:443/live/****"},
		{"custom with the key in the server", Destination{Preset: "custom", Server: "rtmp://h/live/SECRET", Key: "SECRET"}, "rtmp://h/****"},
		{"custom with a query", Destination{Preset: "custom", Server: "rtmp://h/live?k=SECRET", KeyFromClient: true}, "rtmp://h/****"},
		{"custom unparsable", Destination{Preset: "custom", Server: "rtmp://h/SECRET%zz"}, "****"},
		{"unknown preset", Destination{Preset: "vimeo", Key: "SECRET"}, "****"},
		{"preset with a server", Destination{Preset: "youtube", Server: "rtmp://h/live", Key: "SECRET"}, "rtmp://h/****"},
	} {
		t.Run(ca.name, func(t *testing.T) {
			if got := ca.d.Redacted(); got != ca.want {
				t.Fatalf("Redacted() = %q, want %q", got, ca.want)
			}
		})
	}
}
