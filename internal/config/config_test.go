package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

func TestDefault(t *testing.T) {
	c := Default()
	want := &Config{
		Listen:   "127.0.0.1:8080",
		Log:      Log{Level: "info", Format: "text"},
		FFmpeg:   FFmpeg{Path: "ffmpeg"},
		Receiver: Receiver{Enabled: true, Listen: "127.0.0.1:1935"},
		Limits: Limits{
			MaxSessions:           16,
			MaxSessionsPerAddress: 4,
			MaxSessionLength:      12 * time.Hour,
			MaxIngestBitrate:      20_000_000,
			MaxMessageBytes:       4 << 20,
			FirstMediaTimeout:     15 * time.Second,
			IdleTimeout:           10 * time.Second,
			ResumeWindow:          10 * time.Second,
		},
		ShutdownGrace: 10 * time.Second,
		Encode: Encode{
			VideoBitrate:     2_500_000,
			AudioBitrate:     128_000,
			KeyframeInterval: 2 * time.Second,
			X264Preset:       "veryfast",
			AudioSampleRate:  48000,
		},
		Profiles: map[string]Profile{
			"1080p": {Name: "1080p", Width: 1920, Height: 1080, FPS: 30, VideoBitrate: 6_000_000, AudioBitrate: 160_000, KeyframeInterval: 2 * time.Second},
			"720p":  {Name: "720p", Width: 1280, Height: 720, FPS: 30, VideoBitrate: 3_000_000, AudioBitrate: 128_000, KeyframeInterval: 2 * time.Second},
			"480p":  {Name: "480p", Width: 854, Height: 480, FPS: 30, VideoBitrate: 1_200_000, AudioBitrate: 96_000, KeyframeInterval: 2 * time.Second},
		},
		Destinations: map[string]Destination{
			"local": {Name: "local", Builtin: true, Description: "Built-in receiver (preview on this server)"},
		},
	}
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("Default() =\n%#v\nwant\n%#v", c, want)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("Default().Validate() = %v", err)
	}
	// Each call returns its own copy.
	c.Destinations["x"] = Destination{}
	if _, ok := Default().Destinations["x"]; ok {
		t.Fatal("Default() shares its destinations map between calls")
	}
	c.Profiles["x"] = Profile{}
	if _, ok := Default().Profiles["x"]; ok {
		t.Fatal("Default() shares its profiles map between calls")
	}
	if got, want := Default().ProfileNames(), []string{"1080p", "720p", "480p"}; !slices.Equal(got, want) {
		t.Fatalf("ProfileNames() = %v, want %v", got, want)
	}
}

func TestParseEmptyGivesDefault(t *testing.T) {
	for _, ca := range []struct {
		name string
		in   string
	}{
		{"nil", ""},
		{"newline", "\n"},
		{"spaces", "   \n  \n"},
		{"comments", "# nothing here\n# still nothing\n"},
		{"document marker", "---\n"},
		{"null", "~\n"},
		{"empty sections", "tls:\nlog:\nffmpeg:\nreceiver:\nlimits:\nencode:\ndestinations:\n"},
		{"empty mappings", "log: {}\nlimits: {}\ndestinations: {}\n"},
		{"null fields", "listen:\nlimits:\n  max_sessions: ~\n  idle_timeout: null\nreceiver:\n  enabled:\n"},
	} {
		t.Run(ca.name, func(t *testing.T) {
			c, err := Parse([]byte(ca.in))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if !reflect.DeepEqual(c, Default()) {
				t.Fatalf("Parse(%q) =\n%#v\nwant Default()", ca.in, c)
			}
		})
	}
}

func TestLoadExample(t *testing.T) {
	secret := strings.Repeat("s", 64)
	t.Setenv("LIVEGATE_SIGNING_KEY", secret)
	c, err := Load(filepath.Join("..", "..", "docs", "config.example.yaml"))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	want := Default()
	want.Auth = Auth{
		Tokens: []Token{{
			Name:         "studio",
			Hash:         "sha256:bcfb01d2710693bfc0a95e74279a94571b84ff6c2acb30e620b1b97e9ed73138",
			Destinations: []string{"local", "youtube"},
			Profiles:     []string{"720p", "1080p"},
			MaxBitrate:   8_000_000,
		}},
		SigningKeys:    []SigningKey{{ID: "k1", SecretEnv: "LIVEGATE_SIGNING_KEY", Secret: []byte(secret)}},
		AllowedOrigins: []string{"https://app.example.com"},
	}
	want.Destinations = map[string]Destination{
		"youtube": {
			Name:        "youtube",
			Preset:      "youtube",
			Key:         "abcd-efgh-ijkl-mnop-qrst",
			Description: "YouTube main channel",
			Profile:     "1080p",
		},
		"twitch": {
			Name:          "twitch",
			Preset:        "twitch",
			KeyFromClient: true,
			KeyPattern:    "live_[0-9]+_[A-Za-z0-9]+",
			Description:   "Twitch",
			Profiles:      []string{"720p", "480p"},
		},
		"facebook": {
			Name:        "facebook",
			URL:         "rtmps://live-api-s.facebook.com:443/rtmp/FB-1234567890123456-0-AbCdEfGhIjKlMnOp",
			Preset:      "custom",
			Description: "Facebook page",
		},
		"studio": {
			Name:        "studio",
			Preset:      "custom",
			Server:      "rtmp://rtmp.example.com:1935/live",
			Key:         "studio-1",
			Description: "Studio recorder",
		},
		"local": {Name: "local", Builtin: true, Description: "Preview on this server"},
	}
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("Load(example) =\n%#v\nwant\n%#v", c, want)
	}
	if got, wantNames := c.DestinationNames(), []string{"facebook", "local", "studio", "twitch", "youtube"}; !slices.Equal(got, wantNames) {
		t.Fatalf("DestinationNames() = %v, want %v", got, wantNames)
	}
}

// TestParseValid checks that each field given in the file lands in the Config.
func TestParseValid(t *testing.T) {
	for _, ca := range []struct {
		name string
		in   string
		want func(c *Config)
	}{
		{"listen all interfaces", "listen: :9000\nauth: {allow_anonymous: true}", func(c *Config) { c.Listen = ":9000"; c.Auth.AllowAnonymous = true }},
		{"listen ipv6", `listen: "[::1]:8080"`, func(c *Config) { c.Listen = "[::1]:8080" }},
		{"listen port 0", "listen: 127.0.0.1:0", func(c *Config) { c.Listen = "127.0.0.1:0" }},
		{"listen host name", "listen: localhost:65535", func(c *Config) { c.Listen = "localhost:65535" }},
		{"log", "log: {level: debug, format: json}", func(c *Config) { c.Log = Log{Level: "debug", Format: "json"} }},
		{"log warn", "log: {level: warn}", func(c *Config) { c.Log.Level = "warn" }},
		{"log error", "log: {level: error}", func(c *Config) { c.Log.Level = "error" }},
		{"ffmpeg absolute", "ffmpeg: {path: /opt/ffmpeg 7/bin/ffmpeg}", func(c *Config) { c.FFmpeg.Path = "/opt/ffmpeg 7/bin/ffmpeg" }},
		{"ffmpeg name", "ffmpeg: {path: ffmpeg7}", func(c *Config) { c.FFmpeg.Path = "ffmpeg7" }},
		{"receiver port 0", "receiver: {listen: '127.0.0.1:0'}", func(c *Config) { c.Receiver.Listen = "127.0.0.1:0" }},
		{
			"receiver disabled with a destination",
			"receiver: {enabled: false}\ndestinations: {yt: {url: rtmp://h/app/key}}",
			func(c *Config) {
				c.Receiver.Enabled = false
				c.Destinations = map[string]Destination{"yt": {Name: "yt", URL: "rtmp://h/app/key", Preset: "custom"}}
			},
		},
		{"receiver enabled explicitly", "receiver: {enabled: true}", func(*Config) {}},
		{
			"limits",
			"limits: {max_sessions: 10000, max_message_bytes: 64KiB, first_media_timeout: 5m, idle_timeout: 1s}",
			func(c *Config) {
				c.Limits = Limits{MaxSessions: 10000, MaxSessionsPerAddress: 4, MaxSessionLength: 12 * time.Hour, MaxIngestBitrate: 20_000_000,
					MaxMessageBytes: 64 << 10, FirstMediaTimeout: 5 * time.Minute, IdleTimeout: time.Second, ResumeWindow: 10 * time.Second}
			},
		},
		{"limits min sessions", "limits: {max_sessions: 1}", func(c *Config) { c.Limits.MaxSessions = 1 }},
		{"max message bytes integer", "limits: {max_message_bytes: 1048576}", func(c *Config) { c.Limits.MaxMessageBytes = 1 << 20 }},
		{"max message bytes MB", "limits: {max_message_bytes: 4MB}", func(c *Config) { c.Limits.MaxMessageBytes = 4_000_000 }},
		{"max message bytes 64MiB", "limits: {max_message_bytes: 64MiB}", func(c *Config) { c.Limits.MaxMessageBytes = 64 << 20 }},
		{"max message bytes 512KiB", "limits: {max_message_bytes: 512KiB}", func(c *Config) { c.Limits.MaxMessageBytes = 512 << 10 }},
		{"max message bytes lower case", "limits: {max_message_bytes: 4mib}", func(c *Config) { c.Limits.MaxMessageBytes = 4 << 20 }},
		{"max message bytes with space", "limits: {max_message_bytes: 4 MiB}", func(c *Config) { c.Limits.MaxMessageBytes = 4 << 20 }},
		{"max message bytes fraction", "limits: {max_message_bytes: 1.5MiB}", func(c *Config) { c.Limits.MaxMessageBytes = 3 << 19 }},
		{"max message bytes quoted", `limits: {max_message_bytes: "100000"}`, func(c *Config) { c.Limits.MaxMessageBytes = 100000 }},
		{"max message bytes B", "limits: {max_message_bytes: 70000B}", func(c *Config) { c.Limits.MaxMessageBytes = 70000 }},
		{"timeouts compound", "limits: {first_media_timeout: 1m30s, idle_timeout: 2500ms}", func(c *Config) {
			c.Limits.FirstMediaTimeout = 90 * time.Second
			c.Limits.IdleTimeout = 2500 * time.Millisecond
		}},
		{
			"encode",
			"encode: {video_bitrate: 2.5M, keyframe_interval: 0.5s, x264_preset: medium, audio_bitrate: 320k, audio_sample_rate: 44100}",
			func(c *Config) {
				c.Encode = Encode{VideoBitrate: 2_500_000, KeyframeInterval: 500 * time.Millisecond, X264Preset: "medium", AudioBitrate: 320_000, AudioSampleRate: 44100}
			},
		},
		{"video bitrate integer", "encode: {video_bitrate: 100000}", func(c *Config) { c.Encode.VideoBitrate = 100_000 }},
		{"video bitrate 50M", "encode: {video_bitrate: 50M}", func(c *Config) { c.Encode.VideoBitrate = 50_000_000 }},
		{"video bitrate upper K", "encode: {video_bitrate: 6000K}", func(c *Config) { c.Encode.VideoBitrate = 6_000_000 }},
		{"audio bitrate 32k", "encode: {audio_bitrate: 32k}", func(c *Config) { c.Encode.AudioBitrate = 32_000 }},
		{"keyframe 10s", "encode: {keyframe_interval: 10s}", func(c *Config) { c.Encode.KeyframeInterval = 10 * time.Second }},
		{"every preset", "encode: {x264_preset: ultrafast}", func(c *Config) { c.Encode.X264Preset = "ultrafast" }},
		{"shutdown grace 0", "shutdown_grace: 0s", func(c *Config) { c.ShutdownGrace = 0 }},
		{"shutdown grace 10m", "shutdown_grace: 10m", func(c *Config) { c.ShutdownGrace = 10 * time.Minute }},
		{"admin", "admin: {token_hash: " + hashB + "}", func(c *Config) { c.Admin.TokenHash = hashB }},
		{"admin empty section", "admin: {}", func(*Config) {}},
		{
			"destination name edge cases",
			"destinations:\n  " + strings.Repeat("a", 32) + ": {url: rtmp://h/a/k}\n  0_x-y: {url: rtmps://h/a/k}\n",
			func(c *Config) {
				c.Destinations = map[string]Destination{
					strings.Repeat("a", 32): {Name: strings.Repeat("a", 32), URL: "rtmp://h/a/k", Preset: "custom"},
					"0_x-y":                 {Name: "0_x-y", URL: "rtmps://h/a/k", Preset: "custom"},
				}
			},
		},
		{
			"builtin, and builtin false with a url",
			"destinations: {mine: {builtin: true}, other: {url: 'rtmp://h:1936/app/inner/k', builtin: false}}",
			func(c *Config) {
				c.Destinations = map[string]Destination{
					"mine":  {Name: "mine", Builtin: true},
					"other": {Name: "other", URL: "rtmp://h:1936/app/inner/k", Preset: "custom"},
				}
			},
		},
		{
			"description 200 characters of unicode",
			"destinations: {yt: {url: rtmp://h/a/k, description: " + strings.Repeat("é", 200) + "}}",
			func(c *Config) {
				c.Destinations = map[string]Destination{"yt": {Name: "yt", URL: "rtmp://h/a/k", Preset: "custom", Description: strings.Repeat("é", 200)}}
			},
		},
		{
			"64 destinations",
			"destinations:\n" + manyDestinations(64),
			func(c *Config) {
				c.Destinations = map[string]Destination{}
				for i := range 64 {
					n := fmt.Sprintf("d%02d", i)
					c.Destinations[n] = Destination{Name: n, URL: "rtmp://h/app/k", Preset: "custom"}
				}
			},
		},
		{
			"anchors and merge keys",
			"limits: &l {max_sessions: 3}\ndestinations:\n  a: &d {url: rtmp://h/app/k, description: shared}\n  b:\n    <<: *d\n    url: rtmp://h/app/other\n",
			func(c *Config) {
				c.Limits.MaxSessions = 3
				c.Destinations = map[string]Destination{
					"a": {Name: "a", URL: "rtmp://h/app/k", Preset: "custom", Description: "shared"},
					"b": {Name: "b", URL: "rtmp://h/app/other", Preset: "custom", Description: "shared"},
				}
			},
		},
	} {
		t.Run(ca.name, func(t *testing.T) {
			c, err := Parse([]byte(ca.in))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			want := Default()
			ca.want(want)
			if !reflect.DeepEqual(c, want) {
				t.Fatalf("Parse(%q) =\n%+v\nwant\n%+v", ca.in, c, want)
			}
		})
	}
}

func manyDestinations(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "  d%02d: {url: rtmp://h/app/k}\n", i)
	}
	return b.String()
}

// TestParseBadValues checks that each bad value is refused with a message that names the
// field and says what is allowed, and that nothing else is reported.
func TestParseBadValues(t *testing.T) {
	for _, ca := range []struct {
		name string
		in   string
		want []string // all in the one error message
	}{
		// listen addresses
		{"listen no port", "listen: localhost", []string{`config: line 1: listen: "localhost" is not host:port; use for example 127.0.0.1:8080`}},
		{"listen empty", `listen: ""`, []string{`listen: "" is not host:port`}},
		{"listen bare port", "listen: 8080", []string{`listen: "8080" is not host:port`, ":8080 (all interfaces)"}},
		{"listen port too big", "listen: :65536", []string{`listen: port "65536" is not allowed; use a number 0..65535`}},
		{"listen negative port", "listen: :-1", []string{`listen: port "-1" is not allowed; use a number 0..65535`}},
		{"listen named port", "listen: :http", []string{`listen: port "http" is not allowed`}},
		{"listen ipv6 no brackets", "listen: ::1:8080", []string{`listen: "::1:8080" is not host:port`}},
		{"listen space in host", "listen: 'my host:80'", []string{`listen: host "my host" holds a space`}},
		{"receiver listen", "receiver: {listen: 'nope'}", []string{`receiver.listen: "nope" is not host:port`}},
		{"receiver listen port", "receiver: {listen: ':99999'}", []string{`receiver.listen: port "99999" is not allowed; use a number 0..65535`}},

		// log and ffmpeg
		{"log level", "log: {level: verbose}", []string{`log.level: "verbose" is not allowed; use one of debug, info, warn, error`}},
		{"log level case", "log: {level: INFO}", []string{`log.level: "INFO" is not allowed; use one of debug, info, warn, error`}},
		{"log level empty", "log: {level: ''}", []string{`log.level: "" is not allowed`}},
		{"log format", "log: {format: logfmt}", []string{`log.format: "logfmt" is not allowed; use one of text, json`}},
		{"ffmpeg empty", "ffmpeg: {path: ''}", []string{"ffmpeg.path: is empty; use a command name such as ffmpeg or an absolute path"}},
		{"ffmpeg relative", "ffmpeg: {path: ./bin/ffmpeg}", []string{`ffmpeg.path: "./bin/ffmpeg" is a relative path; use a command name such as ffmpeg or an absolute path`}},
		{"ffmpeg control", "ffmpeg: {path: \"ffmpeg\\n\"}", []string{"ffmpeg.path: holds a control character"}},

		// limits
		{"max sessions 0", "limits: {max_sessions: 0}", []string{"config: line 1: limits.max_sessions: 0 is out of range; use 1..10000"}},
		{"max sessions big", "limits: {max_sessions: 10001}", []string{"limits.max_sessions: 10001 is out of range; use 1..10000"}},
		{"max sessions negative", "limits: {max_sessions: -3}", []string{"limits.max_sessions: -3 is out of range; use 1..10000"}},
		{"max sessions string", "limits: {max_sessions: many}", []string{`limits.max_sessions: "many" is not a whole number`}},
		{"max sessions quoted", `limits: {max_sessions: "16"}`, []string{`limits.max_sessions: "16" is quoted, which makes it a string; write 16 without quotes`}},
		{"max sessions float", "limits: {max_sessions: 1.5}", []string{"limits.max_sessions: 1.5 is not a whole number"}},
		{"max sessions list", "limits: {max_sessions: [1]}", []string{"limits.max_sessions: a list is not a whole number"}},
		{"max sessions overflow", "limits: {max_sessions: 9223372036854775808}", []string{"limits.max_sessions: 9223372036854775808"}},
		{"max message bytes small", "limits: {max_message_bytes: 1KiB}", []string{"limits.max_message_bytes: 1KiB is out of range; use 64KiB..64MiB"}},
		{"max message bytes big", "limits: {max_message_bytes: 65MiB}", []string{"limits.max_message_bytes: 65MiB is out of range; use 64KiB..64MiB"}},
		{"max message bytes odd", "limits: {max_message_bytes: 1000}", []string{"limits.max_message_bytes: 1000 bytes is out of range; use 64KiB..64MiB"}},
		{"max message bytes zero", "limits: {max_message_bytes: 0}", []string{"limits.max_message_bytes: 0 bytes is out of range; use 64KiB..64MiB"}},
		{"max message bytes GiB", "limits: {max_message_bytes: 1GiB}", []string{"limits.max_message_bytes: 1024MiB is out of range; use 64KiB..64MiB"}},
		{"max message bytes unit", "limits: {max_message_bytes: 4XB}", []string{`limits.max_message_bytes: "4XB" is not a size; use a number of bytes or a size such as 512KiB, 4MiB or 4MB`}},
		{"max message bytes bits", "limits: {max_message_bytes: 4Mbit}", []string{`limits.max_message_bytes: "4Mbit" is not a size`}},
		{"max message bytes bare M", "limits: {max_message_bytes: 4M}", []string{`limits.max_message_bytes: "4M" is not a size`}},
		{"max message bytes negative", "limits: {max_message_bytes: -1}", []string{"limits.max_message_bytes: -1 is not a size"}},
		{"max message bytes fraction", "limits: {max_message_bytes: 0.3B}", []string{`limits.max_message_bytes: "0.3B" is not a whole number of bytes`}},
		{"max message bytes huge", "limits: {max_message_bytes: 99999999999GiB}", []string{`limits.max_message_bytes: "99999999999GiB" is not a whole number of bytes`}},
		{"max message bytes bool", "limits: {max_message_bytes: true}", []string{"limits.max_message_bytes: true is not a size"}},
		{"max message bytes map", "limits: {max_message_bytes: {a: 1}}", []string{"limits.max_message_bytes: a mapping is not a size"}},
		{"first media timeout 0", "limits: {first_media_timeout: 0s}", []string{"limits.first_media_timeout: 0s is out of range; use 1s..5m"}},
		{"first media timeout long", "limits: {first_media_timeout: 1h}", []string{"limits.first_media_timeout: 1h is out of range; use 1s..5m"}},
		{"first media timeout negative", "limits: {first_media_timeout: -5s}", []string{"limits.first_media_timeout: -5s is out of range; use 1s..5m"}},
		{"first media timeout no unit", "limits: {first_media_timeout: 15}", []string{"limits.first_media_timeout: 15 has no unit; write 15s for seconds"}},
		{"idle timeout short", "limits: {idle_timeout: 999ms}", []string{"limits.idle_timeout: 999ms is out of range; use 1s..5m"}},
		{"idle timeout long", "limits: {idle_timeout: 5m1s}", []string{"limits.idle_timeout: 5m1s is out of range; use 1s..5m"}},
		{"idle timeout words", "limits: {idle_timeout: ten seconds}", []string{`limits.idle_timeout: "ten seconds" is not a duration; use a Go duration such as 500ms, 15s or 1m30s`}},
		{"idle timeout days", "limits: {idle_timeout: 1d}", []string{`limits.idle_timeout: "1d" is not a duration`}},
		{"idle timeout list", "limits: {idle_timeout: [1s]}", []string{"limits.idle_timeout: a list is not a duration"}},

		// shutdown and admin
		{"shutdown grace negative", "shutdown_grace: -1s", []string{"config: line 1: shutdown_grace: -1s is out of range; use 0 (end the broadcasts at once) or up to 10m"}},
		{"shutdown grace long", "shutdown_grace: 11m", []string{"shutdown_grace: 11m is out of range"}},
		{"shutdown grace no unit", "shutdown_grace: 30", []string{"shutdown_grace: 30 has no unit"}},
		{"admin hash empty", "admin: {token_hash: ''}", []string{"config: line 1: admin.token_hash: is empty; give the hash of the admin token"}},
		{"admin hash bad", "admin: {token_hash: md5:abc}", []string{`admin.token_hash: a token hash starts with "sha256:"`}},
		{"admin hash is a token", "admin: {token_hash: lgt_abcdefghijklmnopqrstuvwxyz0123456789}", []string{"admin.token_hash: holds a token, not its hash"}},
		{"admin hash not a string", "admin: {token_hash: [lgt_secret]}", []string{"admin.token_hash: a list is not a string"}},
		{"admin section scalar", "admin: lgt_secret", []string{"admin: a single value is not a mapping"}},
		{"admin hash is a publish token's", "auth: {tokens: [{name: cam, hash: " + hashB + "}]}\nadmin: {token_hash: " + hashB + "}", []string{"config: line 2: admin.token_hash: is the hash of auth.tokens[0] (cam) too"}},

		// encode
		{"video bitrate low", "encode: {video_bitrate: 99k}", []string{"encode.video_bitrate: 99k is out of range; use 100k..50M"}},
		{"video bitrate high", "encode: {video_bitrate: 51M}", []string{"encode.video_bitrate: 51M is out of range; use 100k..50M"}},
		{"video bitrate odd", "encode: {video_bitrate: 1234}", []string{"encode.video_bitrate: 1234 is out of range; use 100k..50M"}},
		{"video bitrate unit", "encode: {video_bitrate: 2500kbps}", []string{`encode.video_bitrate: "2500kbps" is not a bitrate; use bits per second or a rate such as 128k, 2500k or 2.5M`}},
		{"video bitrate fraction", "encode: {video_bitrate: 2.5}", []string{"encode.video_bitrate: 2.5 is not a whole number of bits per second"}},
		{"video bitrate too large", "encode: {video_bitrate: 3G}", []string{`encode.video_bitrate: "3G" is too large`}},
		{"video bitrate exponent", "encode: {video_bitrate: 1e6}", []string{"encode.video_bitrate: 1e6 is not a bitrate"}},
		{"audio bitrate low", "encode: {audio_bitrate: 31999}", []string{"encode.audio_bitrate: 31999 is out of range; use 32k..320k"}},
		{"audio bitrate high", "encode: {audio_bitrate: 1M}", []string{"encode.audio_bitrate: 1M is out of range; use 32k..320k"}},
		{"keyframe short", "encode: {keyframe_interval: 400ms}", []string{"encode.keyframe_interval: 400ms is out of range; use 0.5s..10s"}},
		{"keyframe long", "encode: {keyframe_interval: 11s}", []string{"encode.keyframe_interval: 11s is out of range; use 0.5s..10s"}},
		{"keyframe frames", "encode: {keyframe_interval: 60}", []string{"encode.keyframe_interval: 60 has no unit"}},
		{"preset", "encode: {x264_preset: slow}", []string{`encode.x264_preset: "slow" is not allowed; use one of ultrafast, superfast, veryfast, faster, fast, medium`}},
		{"sample rate", "encode: {audio_sample_rate: 44800}", []string{"encode.audio_sample_rate: 44800 is not allowed; use 44100 or 48000"}},
		{"sample rate 0", "encode: {audio_sample_rate: 0}", []string{"encode.audio_sample_rate: 0 is not allowed; use 44100 or 48000"}},

		// receiver and destinations
		{"enabled not bool", "receiver: {enabled: maybe}", []string{`receiver.enabled: "maybe" is not true or false`}},
		{"enabled number", "receiver: {enabled: 1}", []string{`receiver.enabled: 1 is not true or false`}},
		{"enabled quoted", `receiver: {enabled: "false"}`, []string{`receiver.enabled: "false" is quoted, which makes it a string; write false without quotes`}},
		{"sample rate float", "encode: {audio_sample_rate: 48000.0}", []string{"encode.audio_sample_rate: 48000.0 is not a whole number"}},
		{
			"no destinations and no receiver",
			"receiver: {enabled: false}",
			[]string{"config: destinations: none are configured and the built-in receiver is disabled; add a destination, or enable the receiver (receiver.enabled: true)"},
		},
		{
			"empty destinations and no receiver",
			"receiver: {enabled: false}\ndestinations: {}",
			[]string{"config: line 2: destinations: none are configured and the built-in receiver is disabled"},
		},
		{
			"builtin with receiver disabled",
			"receiver: {enabled: false}\ndestinations:\n  local: {builtin: true}",
			[]string{"config: line 3: destinations.local.builtin: the built-in receiver is disabled; enable it (receiver.enabled: true) or give this destination a url"},
		},
		{"builtin and url", "destinations: {x: {builtin: true, url: rtmp://h/a/k}}", []string{"destinations.x: has both url and builtin: true; keep one"}},
		{"neither", "destinations: {x: {description: hello}}", []string{"destinations.x: has none of url, preset and builtin: true; give one"}},
		{"neither null", "destinations:\n  x:\n", []string{"config: line 2: destinations.x: has none of url, preset and builtin: true; give one"}},
		{"builtin false", "destinations: {x: {builtin: false}}", []string{"destinations.x: has none of url, preset and builtin: true"}},
		{"name upper case", "destinations: {YouTube: {url: rtmp://h/a/k}}", []string{`destinations.YouTube: the name "YouTube" is not allowed; use 1..32 of a-z, 0-9, _ and -, starting with a-z or 0-9`}},
		{"name leading dash", "destinations: {-yt: {url: rtmp://h/a/k}}", []string{`destinations.-yt: the name "-yt" is not allowed`}},
		{"name leading underscore", "destinations: {_yt: {url: rtmp://h/a/k}}", []string{`destinations._yt: the name "_yt" is not allowed`}},
		{"name dot", "destinations: {y.t: {url: rtmp://h/a/k}}", []string{`the name "y.t" is not allowed`}},
		{"name empty", `destinations: {"": {url: rtmp://h/a/k}}`, []string{`destinations.: the name "" is not allowed`}},
		{"name too long", "destinations: {" + strings.Repeat("a", 33) + ": {url: rtmp://h/a/k}}", []string{"the name \"" + strings.Repeat("a", 33) + "\" is not allowed"}},
		{"too many", "destinations:\n" + manyDestinations(65), []string{"config: line 1: destinations: 65 are configured; at most 64 are allowed"}},
		{"description long", "destinations: {x: {url: rtmp://h/a/k, description: " + strings.Repeat("d", 201) + "}}", []string{"destinations.x.description: is 201 characters long; use at most 200"}},
		{"description newline", "destinations: {x: {url: rtmp://h/a/k, description: \"two\\nlines\"}}", []string{"destinations.x.description: must be one line of text, without control characters"}},
		{"description list", "destinations: {x: {url: rtmp://h/a/k, description: [a]}}", []string{"destinations.x.description: a list is not a string"}},
		{"destinations list", "destinations: [yt]", []string{"config: line 1: destinations: a list is not a mapping; write one NAME: {...} entry per line"}},
		{"destination scalar", "destinations: {yt: 'rtmp://h/a/k'}", []string{`destinations.yt: "rtmp://h/a/k" is not a mapping; destinations.yt holds the fields url, preset, server, key, key_env, key_file, key_from_client, key_pattern, builtin, description, profile, profiles`}},
		{"section scalar", "limits: 5", []string{"config: line 1: limits: 5 is not a mapping; limits holds the fields max_sessions, max_sessions_per_address, max_session_length, max_ingest_bitrate, max_message_bytes"}},
		{"top level list", "- listen: :80", []string{"config: line 1: a list is not a mapping; the file holds the fields listen, tls, auth, admin, log, ffmpeg, receiver, limits, shutdown_grace, encode, profiles, destinations"}},
		{"top level scalar", "hello", []string{`config: line 1: "hello" is not a mapping; the file holds the fields listen`}},
		{"duplicate field", "listen: 127.0.0.1:1\nlisten: 127.0.0.1:2", []string{"config: line 2: listen: given twice (lines 1 and 2); keep one"}},
		{"duplicate destination", "destinations:\n  a: {builtin: true}\n  a: {builtin: true}", []string{"config: line 3: destinations.a: given twice (lines 2 and 3); keep one"}},
		{"two documents", "listen: :1\n---\nlisten: :2\n", []string{"config: line 2: the file holds more than one YAML document (---); keep one"}},
		{"syntax", "listen: [", []string{"config: line 1: did not find expected node content"}},
		{"tabs", "limits:\n\tmax_sessions: 3\n", []string{"config: line 2: found character that cannot start any token"}},
		{"complex key", "? [a]\n: 1\n", []string{"config: line 1: a key must be a plain name, not a list"}},
		{"bad merge", "log:\n  <<: 5\n", []string{"config: line 2: log: a merge (<<) must refer to a mapping or a list of mappings"}},
	} {
		t.Run(ca.name, func(t *testing.T) {
			c, err := Parse([]byte(ca.in))
			if err == nil {
				t.Fatalf("Parse(%q) = %+v, want an error", ca.in, c)
			}
			if c != nil {
				t.Errorf("Parse returned a config with its error")
			}
			msg := err.Error()
			for _, w := range ca.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error\n%s\ndoes not contain\n%s", msg, w)
				}
			}
			if n := strings.Count(msg, "\n") + 1; n != 1 {
				t.Errorf("want one problem, got %d:\n%s", n, msg)
			}
		})
	}
}

func TestUnknownFields(t *testing.T) {
	for _, ca := range []struct {
		name string
		in   string
		want string
	}{
		{
			"top level",
			"listen: 127.0.0.1:1\nlog: {level: info}\nlistn: :2\n",
			`config: line 3: field "listn" is not known; allowed fields here: listen, tls, auth, admin, log, ffmpeg, receiver, limits, shutdown_grace, encode, profiles, destinations`,
		},
		{"log", "log:\n  lvl: debug\n", `config: line 2: log: field "lvl" is not known; allowed fields here: level, format`},
		{"ffmpeg", "ffmpeg: {bin: x}", `config: line 1: ffmpeg: field "bin" is not known; allowed fields here: path`},
		{"receiver", "receiver:\n  enable: false\n", `config: line 2: receiver: field "enable" is not known; allowed fields here: enabled, listen`},
		{
			"limits",
			"limits:\n  max_sessions: 3\n  max_sesions: 4\n",
			`config: line 3: limits: field "max_sesions" is not known; allowed fields here: max_sessions, max_sessions_per_address, max_session_length, max_ingest_bitrate, max_message_bytes, first_media_timeout, idle_timeout, resume_window`,
		},
		{
			"encode",
			"encode:\n  preset: fast\n",
			`config: line 2: encode: field "preset" is not known; allowed fields here: video_bitrate, keyframe_interval, x264_preset, audio_bitrate, audio_sample_rate`,
		},
		{
			"destination",
			"destinations:\n  yt:\n    url: rtmp://h/a/k\n    keys: secret\n",
			`config: line 4: destinations.yt: field "keys" is not known; allowed fields here: url, preset, server, key, key_env, key_file, key_from_client, key_pattern, builtin, description, profile, profiles`,
		},
		{"case matters", "Listen: :1", `config: line 1: field "Listen" is not known`},
		{"through an alias", "x: &a 1\n", `config: line 1: field "x" is not known`},
		{"through a merge", "log:\n  <<: {level: info, colour: true}\n", `config: line 2: log: field "colour" is not known; allowed fields here: level, format`},
	} {
		t.Run(ca.name, func(t *testing.T) {
			_, err := Parse([]byte(ca.in))
			if err == nil {
				t.Fatal("Parse: no error")
			}
			if err.Error() != ca.want && !strings.HasPrefix(err.Error(), ca.want) {
				t.Fatalf("error\n%s\nwant\n%s", err, ca.want)
			}
		})
	}
}

// TestStrictDecoderAgrees checks the walker against yaml.v3's own strict decoding
// (KnownFields), which Parse keeps as a second line of defence: whatever yaml.v3 refuses,
// the walker must refuse first, with a better message.
func TestStrictDecoderAgrees(t *testing.T) {
	for _, in := range []string{
		"",
		"listen: :1",
		"listn: :1",
		"log: {lvl: x}",
		"limits: {max_sessions: many}",
		"limits: {idle_timeout: 10}",
		"destinations: {yt: {url: x, keys: y}}",
		"destinations: {yt: {preset: youtube, key: y, profiles: [720p, 480p]}}",
		"destinations: {yt: {preset: youtube, profiles: 720p}}",
		"destinations: {yt: {preset: youtube, profiles: [{a: 1}]}}",
		"profiles: {p: {width: 640, height: 360, fps: 25, video_bitrate: 800k, audio_bitrate: 64k, keyframe_interval: 1s}}",
		"profiles: {p: {width: 640, heigth: 360}}",
		"profiles: {p: {width: wide}}",
		"destinations: {yt: {url: x}, yt: {url: y}}",
		"receiver: {enabled: maybe}",
		"log:\n  <<: {level: info, colour: true}\n",
		"encode: {video_bitrate: 2500kbps}",
		"tls: {self_signed: true, listen: ':8443'}",
		"tls: {crt: x}",
		"tls: {self_signed: sure}",
		"limits: {max_sessions: 1.5}", // yaml.v3 would truncate it; the walker refuses it
		"limits: {max_sessions_per_address: 2, max_session_length: 1h, max_ingest_bitrate: 5M}",
		"auth: {tokens: [{name: a, hash: x, destinations: [local], profiles: [720p], max_bitrate: 4M}]}",
		"auth: {tokens: [{nme: a}]}",
		"auth: {tokens: lgt_x}",
		"auth: {tokens: [lgt_x]}",
		"auth: {signing_keys: [{id: k, secret_env: X, secret_file: /x}]}",
		"auth: {signing_keys: [{id: k, secret: x}]}",
		"auth: {allow_anonymous: true, allowed_origins: [https://a.example.com]}",
		"auth: {allowed_origins: https://a.example.com}",
		"destinations:\n  a: &d {url: rtmp://h/app/k}\n  b:\n    <<: *d\n",
	} {
		_, _, probs := decode([]byte(in))
		strict := yaml.NewDecoder(bytes.NewReader([]byte(in)))
		strict.KnownFields(true)
		err := strict.Decode(&fileConfig{})
		if errors.Is(err, io.EOF) {
			err = nil
		}
		if err != nil && len(probs) == 0 {
			t.Errorf("%q: the walker found nothing, yaml.v3 strict decoding says %v", in, err)
		}
		if err == nil && len(probs) > 0 && in != "limits: {max_sessions: 1.5}" {
			t.Errorf("%q: the walker found %v, yaml.v3 strict decoding nothing", in, probs[0])
		}
	}
}

func TestProblemsReportedTogether(t *testing.T) {
	in := `listen: localhost
log:
  level: loud
limits:
  max_sessions: 0
  max_message_bytes: 4XB
  idle_timeout: 10
  max_sesions: 3
encode:
  x264_preset: slow
destinations:
  YT:
    url: http://example.com/live/key
  ok:
    url: rtmp://example.com/live/key
`
	_, err := Parse([]byte(in))
	if err == nil {
		t.Fatal("Parse: no error")
	}
	want := []string{
		`config: line 1: listen: "localhost" is not host:port; use for example 127.0.0.1:8080, [::1]:8080 or :8080 (all interfaces)`,
		`config: line 3: log.level: "loud" is not allowed; use one of debug, info, warn, error`,
		`config: line 5: limits.max_sessions: 0 is out of range; use 1..10000`,
		`config: line 6: limits.max_message_bytes: "4XB" is not a size; use a number of bytes or a size such as 512KiB, 4MiB or 4MB`,
		`config: line 7: limits.idle_timeout: 10 has no unit; write 10s for seconds, or use a Go duration such as 500ms, 15s or 1m30s`,
		`config: line 8: limits: field "max_sesions" is not known; allowed fields here: max_sessions, max_sessions_per_address, max_session_length, max_ingest_bitrate, max_message_bytes, first_media_timeout, idle_timeout, resume_window`,
		`config: line 10: encode.x264_preset: "slow" is not allowed; use one of ultrafast, superfast, veryfast, faster, fast, medium`,
		`config: line 12: destinations.YT: the name "YT" is not allowed; use 1..32 of a-z, 0-9, _ and -, starting with a-z or 0-9`,
		`config: line 13: destinations.YT.url: scheme "http" is not allowed; use rtmp:// or rtmps://`,
	}
	if got := strings.Split(err.Error(), "\n"); !slices.Equal(got, want) {
		t.Fatalf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// Each problem is its own error inside the join.
	var joined interface{ Unwrap() []error }
	if !errors.As(err, &joined) || len(joined.Unwrap()) != len(want) {
		t.Fatalf("error is not a join of %d errors: %#v", len(want), err)
	}
}

// TestValidateInCode checks Validate on a Config built or changed in code rather than parsed.
func TestValidateInCode(t *testing.T) {
	for _, ca := range []struct {
		name   string
		change func(c *Config)
		want   []string // empty: valid
	}{
		{"default", func(*Config) {}, nil},
		{"zero config", func(c *Config) { *c = Config{} }, []string{
			`config: listen: "" is not host:port`,
			`config: log.level: "" is not allowed`,
			`config: log.format: "" is not allowed`,
			`config: ffmpeg.path: is empty`,
			`config: receiver.listen: "" is not host:port`,
			`config: limits.max_sessions: 0 is out of range; use 1..10000`,
			`config: limits.max_message_bytes: 0 bytes is out of range; use 64KiB..64MiB`,
			`config: limits.first_media_timeout: 0s is out of range; use 1s..5m`,
			`config: limits.idle_timeout: 0s is out of range; use 1s..5m`,
			`config: encode.video_bitrate: 0 is out of range; use 100k..50M`,
			`config: encode.keyframe_interval: 0s is out of range; use 0.5s..10s`,
			`config: encode.x264_preset: "" is not allowed`,
			`config: encode.audio_bitrate: 0 is out of range; use 32k..320k`,
			`config: encode.audio_sample_rate: 0 is not allowed; use 44100 or 48000`,
			`config: destinations: none are configured and the built-in receiver is disabled`,
		}},
		{"no destinations, receiver on", func(c *Config) { c.Destinations = nil }, []string{
			"config: destinations: none are configured; add one (for the built-in receiver: local: {builtin: true})",
		}},
		{"name differs from key", func(c *Config) {
			c.Destinations["yt"] = Destination{URL: "rtmp://h/a/k"}
		}, []string{`config: destinations.yt: its Name "" differs from its key "yt"; make them equal`}},
		{"receiver disabled", func(c *Config) { c.Receiver.Enabled = false }, []string{
			"config: destinations.local.builtin: the built-in receiver is disabled",
		}},
		{"bad url", func(c *Config) {
			c.Destinations["yt"] = Destination{Name: "yt", URL: "rtmp://h/key"}
		}, []string{"config: destinations.yt.url: needs an app and a stream key in its path"}},
		{"long timeout", func(c *Config) { c.Limits.IdleTimeout = 2 * time.Hour }, []string{
			"config: limits.idle_timeout: 2h is out of range; use 1s..5m",
		}},
	} {
		t.Run(ca.name, func(t *testing.T) {
			c := Default()
			ca.change(c)
			err := c.Validate()
			if len(ca.want) == 0 {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Validate: no error")
			}
			got := strings.Split(err.Error(), "\n")
			if len(got) != len(ca.want) {
				t.Errorf("got %d problems, want %d:\n%s", len(got), len(ca.want), err)
			}
			for i := range min(len(got), len(ca.want)) {
				if !strings.HasPrefix(got[i], ca.want[i]) {
					t.Errorf("problem %d:\n%s\nwant prefix\n%s", i, got[i], ca.want[i])
				}
			}
		})
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	write := func(name, data string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}

	t.Run("valid", func(t *testing.T) {
		p := write("ok.yaml", "limits: {max_sessions: 2}\n")
		c, err := Load(p)
		if err != nil {
			t.Fatalf("Load: %v", err)
		}
		if c.Limits.MaxSessions != 2 {
			t.Fatalf("MaxSessions = %d, want 2", c.Limits.MaxSessions)
		}
	})
	t.Run("empty file", func(t *testing.T) {
		c, err := Load(write("empty.yaml", ""))
		if err != nil {
			t.Fatalf("Load: %v", err)
		}
		if !reflect.DeepEqual(c, Default()) {
			t.Fatalf("Load(empty) = %+v, want Default()", c)
		}
	})
	t.Run("missing", func(t *testing.T) {
		p := filepath.Join(dir, "missing.yaml")
		_, err := Load(p)
		if err == nil {
			t.Fatal("Load: no error")
		}
		if !errors.Is(err, os.ErrNotExist) {
			t.Errorf("error %v does not wrap os.ErrNotExist", err)
		}
		if !strings.HasPrefix(err.Error(), "config "+p+": ") {
			t.Errorf("error %q does not start with %q", err, "config "+p+": ")
		}
	})
	t.Run("problems name the file", func(t *testing.T) {
		p := write("bad.yaml", "listn: x\nlimits: {max_sessions: 0}\n")
		_, err := Load(p)
		if err == nil {
			t.Fatal("Load: no error")
		}
		want := "config " + p + `: line 1: field "listn" is not known; allowed fields here: listen, tls, auth, admin, log, ffmpeg, receiver, limits, shutdown_grace, encode, profiles, destinations` + "\n" +
			"config " + p + ": line 2: limits.max_sessions: 0 is out of range; use 1..10000"
		if err.Error() != want {
			t.Fatalf("error\n%s\nwant\n%s", err, want)
		}
	})
}

func TestDestinationNames(t *testing.T) {
	c := &Config{Destinations: map[string]Destination{"b": {}, "a": {}, "c-1": {}, "0": {}}}
	if got, want := c.DestinationNames(), []string{"0", "a", "b", "c-1"}; !slices.Equal(got, want) {
		t.Fatalf("DestinationNames() = %v, want %v", got, want)
	}
	if got := (&Config{}).DestinationNames(); len(got) != 0 {
		t.Fatalf("DestinationNames() of no destinations = %v", got)
	}
}
