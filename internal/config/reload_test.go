package config

import (
	"slices"
	"strings"
	"testing"
)

func TestReload(t *testing.T) {
	const running = `listen: 0.0.0.0:8080
auth:
  tokens:
    - {name: cam, hash: ` + hashA + `}
limits: {max_sessions: 8}
destinations:
  youtube: {preset: youtube, key: old-key-1234}
  studio: {url: rtmp://studio.example/live/k1}
  local: {builtin: true}
`
	for _, ca := range []struct {
		name    string
		next    string
		changed []string
		ignored []string
		err     string
		check   func(t *testing.T, c *Config)
	}{
		{name: "nothing", next: running},
		{
			name: "destinations, tokens, limits, log level, grace",
			next: `listen: 0.0.0.0:8080
auth:
  tokens:
    - {name: cam, hash: ` + hashA + `, max_bitrate: 2M}
    - {name: phone, hash: ` + hashB + `}
log: {level: debug}
limits: {max_sessions: 4, idle_timeout: 20s}
shutdown_grace: 30s
destinations:
  youtube: {preset: youtube, key: new-key-5678}
  twitch: {preset: twitch, key_from_client: true}
  local: {builtin: true}
`,
			changed: []string{
				"auth.tokens: added phone; changed cam",
				"log.level",
				"limits.max_sessions", "limits.idle_timeout",
				"shutdown_grace",
				"destinations: added twitch; removed studio; changed youtube",
			},
		},
		{
			name: "restart-only fields are kept",
			next: strings.Replace(running, "listen: 0.0.0.0:8080", "listen: 0.0.0.0:9090\nreceiver: {listen: 127.0.0.1:1936}\nffmpeg: {path: /opt/ffmpeg}\nlog: {format: json}", 1) +
				"profiles: {small: {width: 640, height: 360}}\n",
			changed: []string{"profiles: added small; removed 1080p, 480p, 720p"},
			ignored: []string{"listen", "receiver.listen", "ffmpeg.path", "log.format"},
			check: func(t *testing.T, c *Config) {
				if c.Listen != "0.0.0.0:8080" || c.Receiver.Listen != "127.0.0.1:1935" || c.FFmpeg.Path != "ffmpeg" || c.Log.Format != "text" {
					t.Errorf("kept listen %s, receiver %s, ffmpeg %s, log format %s; want the running ones", c.Listen, c.Receiver.Listen, c.FFmpeg.Path, c.Log.Format)
				}
				if _, ok := c.Profiles["small"]; !ok {
					t.Error("the new profile is not in the configuration")
				}
			},
		},
		{
			name:    "TLS on needs a restart",
			next:    strings.Replace(running, "listen: 0.0.0.0:8080", "listen: 0.0.0.0:8080\ntls: {self_signed: true}", 1),
			ignored: []string{"tls (HTTPS on or off, or self_signed)"},
			check: func(t *testing.T, c *Config) {
				if c.TLS.Enabled() {
					t.Error("TLS turned on by a reload")
				}
			},
		},
		{
			name: "admin and origins",
			next: strings.Replace(running, "limits:", "  allowed_origins: [https://app.example.com]\nlimits:", 1) +
				"admin: {token_hash: " + strings.Replace(hashB, "01", "02", 1) + "}\n",
			changed: []string{"auth.allowed_origins", "admin.token_hash"},
		},
		{
			// Valid alone (loopback without tokens), not with the running listen address.
			name: "valid alone, not with what is kept",
			next: "listen: 127.0.0.1:8080\n",
			err:  `listen: "0.0.0.0:8080" can be reached from other machines, and no token is needed to publish`,
		},
	} {
		t.Run(ca.name, func(t *testing.T) {
			cur, err := Parse([]byte(running))
			if err != nil {
				t.Fatal(err)
			}
			next, err := Parse([]byte(ca.next))
			if err != nil {
				if ca.err != "" && strings.Contains(err.Error(), ca.err) {
					return
				}
				t.Fatal(err)
			}
			r, err := cur.Reload(next)
			if ca.err != "" {
				if err == nil || !strings.Contains(err.Error(), ca.err) {
					t.Fatalf("Reload: %v, want %q", err, ca.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Reload: %v", err)
			}
			if !slices.Equal(r.Changed, ca.changed) {
				t.Errorf("changed %q, want %q", r.Changed, ca.changed)
			}
			if !slices.Equal(r.Ignored, ca.ignored) {
				t.Errorf("ignored %q, want %q", r.Ignored, ca.ignored)
			}
			for _, s := range append(r.Changed, r.Ignored...) {
				for _, secret := range []string{"old-key", "new-key", "k1", hashA[7:], hashB[7:]} {
					if strings.Contains(s, secret) {
						t.Errorf("%q shows a secret", s)
					}
				}
			}
			if ca.check != nil {
				ca.check(t, r.Config)
			}
		})
	}
}
