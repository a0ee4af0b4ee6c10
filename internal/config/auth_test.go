package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

const (
	hashA = "sha256:bcfb01d2710693bfc0a95e74279a94571b84ff6c2acb30e620b1b97e9ed73138"
	hashB = "sha256:0000000000000000000000000000000000000000000000000000000000000001"
)

// authFiles are secret files for the tests, in a directory of their own.
type authFiles struct {
	dir, secret, crlf, short, empty, large string
}

func newAuthFiles(t *testing.T) authFiles {
	t.Helper()
	dir := t.TempDir()
	write := func(name, data string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	return authFiles{
		dir:    dir,
		secret: write("secret", " "+strings.Repeat("f", 40)+" \n"),
		crlf:   write("crlf", strings.Repeat("c", 32)+"\r\n"),
		short:  write("short", "SECRET-too-short\n"),
		empty:  write("empty", "\n"),
		large:  write("large", strings.Repeat("x", 5000)),
	}
}

// TestParseAuth checks that each field of auth: and the new limits lands in the Config.
func TestParseAuth(t *testing.T) {
	f := newAuthFiles(t)
	t.Setenv("LIVEGATE_TEST_SIGNING", strings.Repeat("e", 31)+"\n") // as it is: 32 bytes
	for _, ca := range []struct {
		name string
		in   string
		want func(c *Config)
	}{
		{"null", "auth:\n", func(*Config) {}},
		{"null fields", "auth:\n  tokens:\n  signing_keys:\n  allow_anonymous:\n  allowed_origins:\n", func(*Config) {}},
		{"empty lists", "auth: {tokens: [], signing_keys: [], allowed_origins: []}", func(c *Config) {
			c.Auth.AllowedOrigins = []string{}
		}},
		{"a token", "auth:\n  tokens:\n    - name: studio\n      hash: " + hashA + "\n", func(c *Config) {
			c.Auth.Tokens = []Token{{Name: "studio", Hash: hashA}}
		}},
		{
			"a token with everything",
			"auth:\n  tokens:\n    - {name: s-1, hash: " + hashA + ", destinations: [local], profiles: [720p, 480p], max_bitrate: 4M}\n" +
				"    - {name: s_2, hash: 'sha256:" + strings.Repeat("AB", 32) + "', max_bitrate: 0}\n",
			func(c *Config) {
				c.Auth.Tokens = []Token{
					{Name: "s-1", Hash: hashA, Destinations: []string{"local"}, Profiles: []string{"720p", "480p"}, MaxBitrate: 4_000_000},
					{Name: "s_2", Hash: "sha256:" + strings.Repeat("AB", 32)},
				}
			},
		},
		{"null lists of a token", "auth: {tokens: [{name: a, hash: " + hashA + ", destinations: ~, profiles: ~}]}", func(c *Config) {
			c.Auth.Tokens = []Token{{Name: "a", Hash: hashA}}
		}},
		{"token max_bitrate 1G without an ingest limit", "auth: {tokens: [{name: a, hash: " + hashA + ", max_bitrate: 1G}]}\nlimits: {max_ingest_bitrate: 0}", func(c *Config) {
			c.Auth.Tokens = []Token{{Name: "a", Hash: hashA, MaxBitrate: 1_000_000_000}}
			c.Limits.MaxIngestBitrate = 0
		}},
		{"token max_bitrate at the ingest limit", "auth: {tokens: [{name: a, hash: " + hashA + ", max_bitrate: 20M}]}", func(c *Config) {
			c.Auth.Tokens = []Token{{Name: "a", Hash: hashA, MaxBitrate: 20_000_000}}
		}},
		{"tokens on all interfaces", "listen: :8080\nauth: {tokens: [{name: a, hash: " + hashA + "}]}", func(c *Config) {
			c.Listen = ":8080"
			c.Auth.Tokens = []Token{{Name: "a", Hash: hashA}}
		}},
		{"signing key from the environment, as it is", "auth: {signing_keys: [{id: k1, secret_env: LIVEGATE_TEST_SIGNING}]}", func(c *Config) {
			c.Auth.SigningKeys = []SigningKey{{ID: "k1", SecretEnv: "LIVEGATE_TEST_SIGNING", Secret: []byte(strings.Repeat("e", 31) + "\n")}}
		}},
		{
			"signing keys from files, without their last newline",
			"listen: 0.0.0.0:8080\nauth:\n  signing_keys:\n    - {id: k1, secret_file: " + f.secret + "}\n    - {id: k2, secret_file: " + f.crlf + "}\n",
			func(c *Config) {
				c.Listen = "0.0.0.0:8080"
				c.Auth.SigningKeys = []SigningKey{
					{ID: "k1", SecretFile: f.secret, Secret: []byte(" " + strings.Repeat("f", 40) + " ")},
					{ID: "k2", SecretFile: f.crlf, Secret: []byte(strings.Repeat("c", 32))},
				}
			},
		},
		{"allow_anonymous on all interfaces", "listen: :8080\nauth: {allow_anonymous: true}", func(c *Config) {
			c.Listen = ":8080"
			c.Auth.AllowAnonymous = true
		}},
		{"allow_anonymous on loopback", "auth: {allow_anonymous: true}", func(c *Config) { c.Auth.AllowAnonymous = true }},
		{"allow_anonymous false on loopback", "auth: {allow_anonymous: false}", func(*Config) {}},
		{"loopback: localhost", "listen: localhost:8080", func(c *Config) { c.Listen = "localhost:8080" }},
		{"loopback: LOCALHOST", "listen: LOCALHOST:8080", func(c *Config) { c.Listen = "LOCALHOST:8080" }},
		{"loopback: ::1", `listen: "[::1]:8080"`, func(c *Config) { c.Listen = "[::1]:8080" }},
		{"loopback: 127/8", "listen: 127.1.2.3:8080", func(c *Config) { c.Listen = "127.1.2.3:8080" }},
		{"loopback: tls.listen", "tls: {self_signed: true, listen: 'localhost:8443'}", func(c *Config) {
			c.TLS = TLS{SelfSigned: true, Listen: "localhost:8443"}
		}},
		{
			"allowed origins",
			"auth:\n  allowed_origins:\n    - https://app.example.com\n    - http://localhost:3000\n    - https://*.example.com\n    - https://app-?.example.org:8443\n    - http://192.168.1.20:8080\n",
			func(c *Config) {
				c.Auth.AllowedOrigins = []string{"https://app.example.com", "http://localhost:3000", "https://*.example.com", "https://app-?.example.org:8443", "http://192.168.1.20:8080"}
			},
		},
		{"limits: no bounds", "limits: {max_sessions_per_address: 0, max_session_length: 0s, max_ingest_bitrate: 0}", func(c *Config) {
			c.Limits.MaxSessionsPerAddress = 0
			c.Limits.MaxSessionLength = 0
			c.Limits.MaxIngestBitrate = 0
		}},
		{"limits: lowest", "limits: {max_sessions_per_address: 1, max_session_length: 1m, max_ingest_bitrate: 100k}", func(c *Config) {
			c.Limits.MaxSessionsPerAddress = 1
			c.Limits.MaxSessionLength = time.Minute
			c.Limits.MaxIngestBitrate = 100_000
		}},
		{"limits: highest", "limits: {max_sessions_per_address: 10000, max_session_length: 168h, max_ingest_bitrate: 1G}", func(c *Config) {
			c.Limits.MaxSessionsPerAddress = 10000
			c.Limits.MaxSessionLength = 168 * time.Hour
			c.Limits.MaxIngestBitrate = 1_000_000_000
		}},
		{"limits: fractions", "limits: {max_session_length: 1h30m, max_ingest_bitrate: 2.5M}", func(c *Config) {
			c.Limits.MaxSessionLength = 90 * time.Minute
			c.Limits.MaxIngestBitrate = 2_500_000
		}},
	} {
		t.Run(ca.name, func(t *testing.T) {
			c, err := Parse([]byte(ca.in))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			want := Default()
			ca.want(want)
			if !reflect.DeepEqual(c, want) {
				t.Fatalf("Parse(%q) =\n%#v\nwant\n%#v", ca.in, c, want)
			}
		})
	}
}

// TestParseAuthBad checks that each bad value is refused, alone, with a message that names
// the field and says what to do, and that no token or secret appears in it.
func TestParseAuthBad(t *testing.T) {
	f := newAuthFiles(t)
	t.Setenv("LIVEGATE_TEST_SIGNING", strings.Repeat("e", 32))
	t.Setenv("LIVEGATE_TEST_SHORT", "SECRET-short")
	t.Setenv("LIVEGATE_TEST_EMPTY", "")
	tok := func(fields string) string { return "auth: {tokens: [{name: a, hash: " + hashA + ", " + fields + "}]}" }
	key := func(fields string) string { return "auth: {signing_keys: [{id: k1, " + fields + "}]}" }
	origin := func(o string) string { return "auth: {allowed_origins: ['" + o + "']}" }
	for _, ca := range []struct {
		name string
		in   string
		want string // the whole message or its beginning ("config: ..."), or a part of it
	}{
		// the shape of auth:
		{"auth not a mapping", "auth: yes", `config: line 1: auth: "yes" is not a mapping; auth holds the fields tokens, signing_keys, allow_anonymous, allowed_origins`},
		{"auth unknown field", "auth:\n  token: x\n", `config: line 2: auth: field "token" is not known; allowed fields here: tokens, signing_keys, allow_anonymous, allowed_origins`},
		{"tokens a token", "auth: {tokens: lgt_SECRET}", "config: line 1: auth.tokens: a single value is not a list; write [a, b], or one - a per line"},
		{"tokens a list of tokens", "auth:\n  tokens:\n    - lgt_SECRET\n", "config: line 3: auth.tokens[0]: a single value is not a mapping; auth.tokens[0] holds the fields name, hash, destinations, profiles, max_bitrate"},
		{"token unknown field", "auth:\n  tokens:\n    - name: a\n      hash: " + hashA + "\n      token: lgt_SECRET\n", `config: line 5: auth.tokens[0]: field "token" is not known; allowed fields here: name, hash, destinations, profiles, max_bitrate`},
		{"signing_keys a secret", "auth: {signing_keys: SECRET}", "config: line 1: auth.signing_keys: a single value is not a list"},
		{"signing key unknown field", "auth:\n  signing_keys:\n    - id: k1\n      secret: SECRET\n", `config: line 4: auth.signing_keys[0]: field "secret" is not known; allowed fields here: id, secret_env, secret_file`},

		// tokens
		{"token name missing", "auth: {tokens: [{hash: " + hashA + "}]}", "config: line 1: auth.tokens[0].name: is missing; give the token a name for the logs (use 1..32 of a-z, 0-9, _ and -, starting with a-z or 0-9)"},
		{"token name empty", "auth: {tokens: [{name: '', hash: " + hashA + "}]}", "config: line 1: auth.tokens[0].name: is missing"},
		{"token name upper case", "auth: {tokens: [{name: Studio, hash: " + hashA + "}]}", `config: line 1: auth.tokens[0].name: "Studio" is not allowed; use 1..32 of a-z, 0-9, _ and -, starting with a-z or 0-9`},
		{"token name too long", "auth: {tokens: [{name: " + strings.Repeat("a", 33) + ", hash: " + hashA + "}]}", `auth.tokens[0].name: "` + strings.Repeat("a", 33) + `" is not allowed`},
		{"token name twice", "auth:\n  tokens:\n    - {name: a, hash: " + hashA + "}\n    - {name: a, hash: " + hashB + "}\n", `config: line 4: auth.tokens[1].name: "a" is the name of auth.tokens[0] too; give each token its own, so that the logs tell them apart`},
		{"token name a list", "auth: {tokens: [{name: [a], hash: " + hashA + "}]}", "config: line 1: auth.tokens[0].name: a list is not a string"},
		{"hash missing", "auth: {tokens: [{name: a}]}", "config: line 1: auth.tokens[0].hash: is missing; make a token and its hash with: livegate token new"},
		{"hash without sha256:", "auth: {tokens: [{name: a, hash: " + hashA[7:] + "}]}", `config: line 1: auth.tokens[0].hash: a token hash starts with "sha256:"; make one with: livegate token new`},
		{"hash too short", "auth: {tokens: [{name: a, hash: " + hashA[:70] + "}]}", "config: line 1: auth.tokens[0].hash: a token hash is sha256: and 64 hex digits; make one with: livegate token new"},
		{"hash not hex", "auth: {tokens: [{name: a, hash: 'sha256:" + strings.Repeat("g", 64) + "'}]}", "auth.tokens[0].hash: a token hash is sha256: and 64 hex digits"},
		{"hash is a token", "auth: {tokens: [{name: a, hash: lgt_SECRET}]}", "config: line 1: auth.tokens[0].hash: holds a token, not its hash; keep only the hash here (livegate token hash prints it), and since this token has been written down, better make a new one: livegate token new"},
		{"hash is a signed token", "auth: {tokens: [{name: a, hash: lg1.SECRET.SECRET}]}", "auth.tokens[0].hash: holds a token, not its hash"},
		{"hash twice", "auth:\n  tokens:\n    - {name: a, hash: " + hashA + "}\n    - {name: b, hash: '" + strings.ToUpper(hashA[7:]) + "'}\n", `config: line 4: auth.tokens[1].hash: a token hash starts with "sha256:"`},
		{"hash twice, upper-case hex", "auth:\n  tokens:\n    - {name: a, hash: " + hashA + "}\n    - {name: b, hash: 'sha256:" + strings.ToUpper(hashA[7:]) + "'}\n", "config: line 4: auth.tokens[1].hash: is the hash of auth.tokens[0] (a) too: two entries for the same token; keep one, or make another token with: livegate token new"},
		{"destinations empty", tok("destinations: []"), "config: line 1: auth.tokens[0].destinations: is empty, which would allow no destination; list the destinations allowed, or remove destinations to allow all"},
		{"destination unknown", tok("destinations: [youtube]"), `config: line 1: auth.tokens[0].destinations[0]: "youtube" is not a configured destination; use one of local`},
		{"destination twice", tok("destinations: [local, local]"), `config: line 1: auth.tokens[0].destinations[1]: "local" is listed twice; keep one`},
		{"destinations a name", tok("destinations: local"), `config: line 1: auth.tokens[0].destinations: "local" is not a list; write [a, b], or one - a per line`},
		{"profiles empty", tok("profiles: []"), "config: line 1: auth.tokens[0].profiles: is empty; list the profiles allowed, or remove profiles to allow all (a broadcast that asks for no profile is allowed either way)"},
		{"profile unknown", tok("profiles: [4k]"), `config: line 1: auth.tokens[0].profiles[0]: "4k" is not a profile; use one of 1080p, 720p, 480p`},
		{"profile twice", tok("profiles: [720p, 480p, 720p]"), `config: line 1: auth.tokens[0].profiles[2]: "720p" is listed twice; keep one`},
		{"max_bitrate low", tok("max_bitrate: 50k"), "config: line 1: auth.tokens[0].max_bitrate: 50k is out of range; use 0 (only limits.max_ingest_bitrate) or 100k..1G"},
		{"max_bitrate high", tok("max_bitrate: 1500M") + "\nlimits: {max_ingest_bitrate: 0}", "config: line 1: auth.tokens[0].max_bitrate: 1500M is out of range; use 0 (only limits.max_ingest_bitrate) or 100k..1G"},
		{"max_bitrate above the limit", tok("max_bitrate: 25M"), "config: line 1: auth.tokens[0].max_bitrate: 25M is above limits.max_ingest_bitrate (20M), which bounds every broadcast; lower it, or raise the limit"},
		{"max_bitrate not a bitrate", tok("max_bitrate: 4Mbps"), `config: line 1: auth.tokens[0].max_bitrate: "4Mbps" is not a bitrate; use bits per second or a rate such as 128k, 2500k or 2.5M`},

		// signing keys
		{"key id missing", "auth: {signing_keys: [{secret_env: LIVEGATE_TEST_SIGNING}]}", "config: line 1: auth.signing_keys[0].id: is missing; give the key an id, which the tokens it signs name (use 1..32 of a-z, 0-9, _ and -, starting with a-z or 0-9)"},
		{"key id bad", "auth: {signing_keys: [{id: 'k 1', secret_env: LIVEGATE_TEST_SIGNING}]}", `config: line 1: auth.signing_keys[0].id: "k 1" is not allowed`},
		{"key id twice", "auth:\n  signing_keys:\n    - {id: k1, secret_env: LIVEGATE_TEST_SIGNING}\n    - {id: k1, secret_file: " + f.secret + "}\n", `config: line 4: auth.signing_keys[1].id: "k1" is the id of auth.signing_keys[0] too; give each key its own`},
		{"no secret", "auth: {signing_keys: [{id: k1}]}", "config: line 1: auth.signing_keys[0]: has no secret; give secret_env (an environment variable) or secret_file (an absolute path) that holds at least 32 bytes (make one with: openssl rand -hex 32, and give the same to the backend that mints the tokens)"},
		{"both secrets, env first", key("secret_env: LIVEGATE_TEST_SIGNING, secret_file: " + f.secret), "config: line 1: auth.signing_keys[0].secret_file: the secret is already given by secret_env; give exactly one of secret_env or secret_file"},
		{"both secrets, file first", "auth:\n  signing_keys:\n    - id: k1\n      secret_file: " + f.secret + "\n      secret_env: LIVEGATE_TEST_SIGNING\n", "config: line 5: auth.signing_keys[0].secret_env: the secret is already given by secret_file; give exactly one of secret_env or secret_file"},
		{"secret env not set", key("secret_env: LIVEGATE_TEST_UNSET"), "config: line 1: auth.signing_keys[0].secret_env: the environment variable LIVEGATE_TEST_UNSET is not set; set it to the signing secret (at least 32 bytes; make one with: openssl rand -hex 32, and give the same to the backend that mints the tokens)"},
		{"secret env empty", key("secret_env: LIVEGATE_TEST_EMPTY"), "config: line 1: auth.signing_keys[0].secret_env: the environment variable LIVEGATE_TEST_EMPTY is empty; set it to the signing secret"},
		{"secret env a secret", key("secret_env: 'SECRET-in-the-wrong-field'"), "config: line 1: auth.signing_keys[0].secret_env: is not an environment variable name; use letters, digits and _, not starting with a digit"},
		{"secret env short", key("secret_env: LIVEGATE_TEST_SHORT"), "config: line 1: auth.signing_keys[0].secret_env: the secret in LIVEGATE_TEST_SHORT is 12 bytes long; a signing secret needs at least 32 (make one with: openssl rand -hex 32, and give the same to the backend that mints the tokens)"},
		{"secret file relative", key("secret_file: SECRET/in-the-wrong-field"), "config: line 1: auth.signing_keys[0].secret_file: is a relative path; use an absolute path"},
		{"secret file missing", key("secret_file: " + f.dir + "/nope"), "config: line 1: auth.signing_keys[0].secret_file: cannot read " + f.dir + "/nope: no such file or directory; check the path"},
		{"secret file a directory", key("secret_file: " + f.dir), "config: line 1: auth.signing_keys[0].secret_file: " + f.dir + " is not a regular file; write the signing secret in a file"},
		{"secret file empty", key("secret_file: " + f.empty), "config: line 1: auth.signing_keys[0].secret_file: " + f.empty + " is empty; write the signing secret in it"},
		{"secret file large", key("secret_file: " + f.large), "config: line 1: auth.signing_keys[0].secret_file: " + f.large + " is larger than 4KiB; it must hold only the signing secret"},
		{"secret file short", key("secret_file: " + f.short), "config: line 1: auth.signing_keys[0].secret_file: the secret in " + f.short + " is 16 bytes long; a signing secret needs at least 32"},

		// allow_anonymous
		{"allow_anonymous not a bool", "auth: {allow_anonymous: sure}", `config: line 1: auth.allow_anonymous: "sure" is not true or false`},
		{"allow_anonymous with tokens", "auth:\n  tokens: [{name: a, hash: " + hashA + "}]\n  allow_anonymous: true\n", "config: line 3: auth.allow_anonymous: is true, which lets anyone publish to every destination without a token, and tokens or signing keys are configured too, which then restrict no one; remove allow_anonymous to require a token, or remove auth.tokens and auth.signing_keys to let anyone publish"},
		{"allow_anonymous with a signing key", "auth: {allow_anonymous: true, signing_keys: [{id: k1, secret_env: LIVEGATE_TEST_SIGNING}]}", "config: line 1: auth.allow_anonymous: is true, which lets anyone publish"},

		// allowed origins
		{"origin star", origin("*"), `config: line 1: auth.allowed_origins[0]: "*" would let every web site publish through its visitors' browsers; list the origins of your pages (write scheme://host[:port], such as https://app.example.com or https://*.example.com)`},
		{"origin without a scheme", origin("app.example.com"), `config: line 1: auth.allowed_origins[0]: "app.example.com" is not an origin; write scheme://host[:port], such as https://app.example.com or https://*.example.com`},
		{"origin scheme", origin("wss://app.example.com"), `config: line 1: auth.allowed_origins[0]: "wss://app.example.com": scheme "wss" is not allowed; use https:// (or http:// for a page served without TLS)`},
		{"origin upper-case scheme", origin("HTTPS://app.example.com"), `scheme "HTTPS" is not allowed`},
		{"origin trailing slash", origin("https://app.example.com/"), `config: line 1: auth.allowed_origins[0]: "https://app.example.com/" has a path; an origin is only scheme://host[:port] (write scheme://host[:port]`},
		{"origin path", origin("https://app.example.com/studio"), `"https://app.example.com/studio" has a path`},
		{"origin query", origin("https://app.example.com?x=1"), `config: line 1: auth.allowed_origins[0]: "https://app.example.com?x=1": the host "app.example.com?x=1" may hold only letters, digits, '.', '-' and the wildcards * and ? (and [...]); write scheme://host[:port]`},
		{"origin user", origin("https://me@app.example.com"), `config: line 1: auth.allowed_origins[0]: "https://me@app.example.com" has a user name; an origin is only scheme://host[:port]`},
		{"origin space", origin("https://app.example.com "), `holds a space or a control character`},
		{"origin default https port", origin("https://app.example.com:443"), `config: line 1: auth.allowed_origins[0]: "https://app.example.com:443" names the default port, which browsers leave out of the Origin they send; write https://app.example.com`},
		{"origin default http port", origin("http://app.example.com:80"), `write http://app.example.com`},
		{"origin port 0", origin("https://app.example.com:0"), `config: line 1: auth.allowed_origins[0]: "https://app.example.com:0": port "0" is not allowed; use a number 1..65535 (wildcards go in the host only)`},
		{"origin port wildcard", origin("http://localhost:*"), `port "*" is not allowed`},
		{"origin no host", origin("https://"), `config: line 1: auth.allowed_origins[0]: "https://" has no host`},
		{"origin any host", origin("https://*"), `config: line 1: auth.allowed_origins[0]: "https://*" matches every host, which lets every web site publish through its visitors' browsers; give the domain, such as https://*.example.com`},
		{"origin any host with a port", origin("http://*.*:8080"), `"http://*.*:8080" matches every host`},
		{"origin ipv6", origin("http://[::1]:8080"), `config: line 1: auth.allowed_origins[0]: "http://[::1]:8080": an IPv6 address cannot be given here; use the page's host name`},
		{"origin bad pattern", origin("https://app[.example.com"), `config: line 1: auth.allowed_origins[0]: "https://app[.example.com" is not a valid pattern (syntax error in pattern); use * and ? in the host, as in https://*.example.com`},
		{"origin twice", "auth: {allowed_origins: [https://a.example.com, https://A.example.com]}", `config: line 1: auth.allowed_origins[1]: "https://A.example.com" is listed twice; keep one`},
		{"origins a name", "auth: {allowed_origins: https://a.example.com}", `config: line 1: auth.allowed_origins: "https://a.example.com" is not a list`},

		// issue #5: no token needed, and reachable from other machines
		{"all interfaces", "listen: :8080", `config: line 1: listen: ":8080" can be reached from other machines, and no token is needed to publish (auth: has no tokens or signing_keys); do one of: add a token under auth.tokens (livegate token new) or a key under auth.signing_keys; set auth.allow_anonymous: true to let anyone who reaches livegate publish; or listen on this machine only (listen: 127.0.0.1:8080 or -listen 127.0.0.1:8080)`},
		{"all IPv4 interfaces", "listen: 0.0.0.0:8080", `config: line 1: listen: "0.0.0.0:8080" can be reached from other machines`},
		{"all IPv6 interfaces", `listen: "[::]:8080"`, `config: line 1: listen: "[::]:8080" can be reached from other machines`},
		{"a LAN address", "listen: 192.168.1.20:8080", `listen: "192.168.1.20:8080" can be reached from other machines`},
		{"a host name", "listen: live.example.com:8080", `listen: "live.example.com:8080" can be reached from other machines`},
		{"allow_anonymous false", "listen: :8080\nauth: {allow_anonymous: false}", `config: line 1: listen: ":8080" can be reached from other machines`},
		{"tls.listen", "tls: {self_signed: true, listen: ':8443'}", `config: line 1: tls.listen: ":8443" can be reached from other machines, and no token is needed to publish (auth: has no tokens or signing_keys); do one of: add a token under auth.tokens (livegate token new) or a key under auth.signing_keys; set auth.allow_anonymous: true to let anyone who reaches livegate publish; or listen on this machine only (tls.listen: 127.0.0.1:8443)`},
		{"listen and tls.listen", "listen: :80\ntls: {self_signed: true, listen: ':443'}", `config: line 1: listen: ":80" and tls.listen ":443" can be reached from other machines, and no token is needed to publish (auth: has no tokens or signing_keys); do one of: add a token under auth.tokens (livegate token new) or a key under auth.signing_keys; set auth.allow_anonymous: true to let anyone who reaches livegate publish; or listen on this machine only (listen: 127.0.0.1:80 or -listen 127.0.0.1:80, and tls.listen: 127.0.0.1:443)`},

		// limits
		{"per address negative", "limits: {max_sessions_per_address: -1}", "config: line 1: limits.max_sessions_per_address: -1 is out of range; use 0 (no bound) or 1..10000"},
		{"per address big", "limits: {max_sessions_per_address: 10001}", "config: line 1: limits.max_sessions_per_address: 10001 is out of range; use 0 (no bound) or 1..10000"},
		{"per address words", "limits: {max_sessions_per_address: four}", `config: line 1: limits.max_sessions_per_address: "four" is not a whole number`},
		{"session length short", "limits: {max_session_length: 30s}", "config: line 1: limits.max_session_length: 30s is out of range; use 0 (no bound) or 1m..168h"},
		{"session length long", "limits: {max_session_length: 169h}", "config: line 1: limits.max_session_length: 169h is out of range; use 0 (no bound) or 1m..168h"},
		{"session length negative", "limits: {max_session_length: -1h}", "limits.max_session_length: -1h is out of range"},
		{"session length no unit", "limits: {max_session_length: 12}", "config: line 1: limits.max_session_length: 12 has no unit; write 12s for seconds"},
		{"session length days", "limits: {max_session_length: 7d}", `limits.max_session_length: "7d" is not a duration`},
		{"ingest bitrate low", "limits: {max_ingest_bitrate: 50k}", "config: line 1: limits.max_ingest_bitrate: 50k is out of range; use 0 (no bound) or 100k..1G"},
		{"ingest bitrate high", "limits: {max_ingest_bitrate: 2G}", "config: line 1: limits.max_ingest_bitrate: 2000M is out of range; use 0 (no bound) or 100k..1G"},
		{"ingest bitrate too large", "limits: {max_ingest_bitrate: 3G}", `config: line 1: limits.max_ingest_bitrate: "3G" is too large`},
		{"ingest bitrate bytes", "limits: {max_ingest_bitrate: 2MiB}", `config: line 1: limits.max_ingest_bitrate: "2MiB" is not a bitrate`},
	} {
		t.Run(ca.name, func(t *testing.T) {
			c, err := Parse([]byte(ca.in))
			if err == nil {
				t.Fatalf("Parse(%q) = %+v, want an error", ca.in, c.Auth)
			}
			msg := err.Error()
			if strings.HasPrefix(ca.want, "config: ") && !strings.HasPrefix(msg, ca.want) || !strings.Contains(msg, ca.want) {
				t.Errorf("error\n%s\nwant it to hold\n%s", msg, ca.want)
			}
			if n := strings.Count(msg, "\n") + 1; n != 1 {
				t.Errorf("want one problem, got %d:\n%s", n, msg)
			}
			if strings.Contains(msg, "SECRET") {
				t.Errorf("the message shows a token or a secret:\n%s", msg)
			}
		})
	}
}

// TestAuthProblemsTogether checks that the problems of auth: are all reported, in the
// order of the file.
func TestAuthProblemsTogether(t *testing.T) {
	in := `listen: :8080
auth:
  tokens:
    - name: Studio
      hash: nope
      destinations: [mars]
  signing_keys:
    - id: k1
  allowed_origins: [example.com]
limits:
  max_session_length: 1s
`
	_, err := Parse([]byte(in))
	if err == nil {
		t.Fatal("Parse: no error")
	}
	want := []string{
		`config: line 4: auth.tokens[0].name: "Studio" is not allowed`,
		`config: line 5: auth.tokens[0].hash: a token hash starts with "sha256:"`,
		`config: line 6: auth.tokens[0].destinations[0]: "mars" is not a configured destination`,
		"config: line 8: auth.signing_keys[0]: has no secret",
		`config: line 9: auth.allowed_origins[0]: "example.com" is not an origin`,
		"config: line 11: limits.max_session_length: 1s is out of range",
	}
	got := strings.Split(err.Error(), "\n")
	if len(got) != len(want) {
		t.Fatalf("got %d problems, want %d:\n%s", len(got), len(want), err)
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("problem %d:\n%s\nwant prefix\n%s", i, got[i], want[i])
		}
	}
}

// TestValidateAuthInCode checks Validate on an Auth built in code.
func TestValidateAuthInCode(t *testing.T) {
	secret := []byte(strings.Repeat("s", 32))
	for _, ca := range []struct {
		name   string
		change func(c *Config)
		want   []string // prefixes; empty: valid
	}{
		{"a token", func(c *Config) { c.Auth.Tokens = []Token{{Name: "a", Hash: hashA}} }, nil},
		{"a key", func(c *Config) {
			c.Listen = ":8080"
			c.Auth.SigningKeys = []SigningKey{{ID: "k1", SecretEnv: "X", Secret: secret}}
		}, nil},
		{"a key not read", func(c *Config) { c.Auth.SigningKeys = []SigningKey{{ID: "k1", SecretFile: "/run/k"}} }, []string{
			"config: auth.signing_keys[0].secret_file: was not read into Secret: Load and Parse read it; in code, set Secret too",
		}},
		{"a key with both sources", func(c *Config) {
			c.Auth.SigningKeys = []SigningKey{{ID: "k1", SecretEnv: "X", SecretFile: "/run/k", Secret: secret}}
		}, []string{"config: auth.signing_keys[0]: has both secret_env and secret_file; give exactly one"}},
		{"a short key", func(c *Config) { c.Auth.SigningKeys = []SigningKey{{ID: "k1", SecretEnv: "X", Secret: secret[:31]}} }, []string{
			"config: auth.signing_keys[0].secret_env: the secret in X is 31 bytes long; a signing secret needs at least 32",
		}},
		{"too many tokens", func(c *Config) {
			for i := range 1001 {
				c.Auth.Tokens = append(c.Auth.Tokens, Token{Name: fmt.Sprintf("t%d", i), Hash: fmt.Sprintf("sha256:%064x", i)})
			}
		}, []string{"config: auth.tokens: 1001 are configured; at most 1000 are allowed"}},
		{"too many keys", func(c *Config) {
			for i := range 17 {
				c.Auth.SigningKeys = append(c.Auth.SigningKeys, SigningKey{ID: fmt.Sprintf("k%d", i), SecretEnv: "X", Secret: secret})
			}
		}, []string{"config: auth.signing_keys: 17 are configured; at most 16 are allowed"}},
		{"too many origins", func(c *Config) {
			for i := range 65 {
				c.Auth.AllowedOrigins = append(c.Auth.AllowedOrigins, fmt.Sprintf("https://a%d.example.com", i))
			}
		}, []string{"config: auth.allowed_origins: 65 are configured; at most 64 are allowed"}},
		{"listen changed after Parse, as -listen does", func(c *Config) { c.Listen = ":8443" }, []string{
			`config: listen: ":8443" can be reached from other machines`,
		}},
		{"bad listen: said once", func(c *Config) { c.Listen = "8443" }, []string{`config: listen: "8443" is not host:port`}},
		{"tls.listen without TLS: said once", func(c *Config) { c.TLS.Listen = ":8443" }, []string{
			"config: tls.listen: there is no certificate to serve HTTPS with",
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

func TestLoopbackOnly(t *testing.T) {
	for _, ca := range []struct {
		listen, tlsListen string
		want              bool
	}{
		{"127.0.0.1:8080", "", true},
		{"127.255.0.1:8080", "", true},
		{"localhost:8080", "", true},
		{"[::1]:8080", "", true},
		{"[::ffff:127.0.0.1]:8080", "", true},
		{"127.0.0.1:8080", "[::1]:8443", true},
		{":8080", "", false},
		{"0.0.0.0:8080", "", false},
		{"[::]:8080", "", false},
		{"10.0.0.1:8080", "", false},
		{"localhost.example.com:8080", "", false},
		{"127.0.0.1:8080", ":8443", false},
		{"nonsense", "", false},
	} {
		c := &Config{Listen: ca.listen, TLS: TLS{Listen: ca.tlsListen}}
		if got := c.LoopbackOnly(); got != ca.want {
			t.Errorf("LoopbackOnly(listen %q, tls.listen %q) = %v, want %v", ca.listen, ca.tlsListen, got, ca.want)
		}
	}
}

func TestCheckGrant(t *testing.T) {
	c := Default()
	for _, ca := range []struct {
		name       string
		dests      []string
		profiles   []string
		maxBitrate int
		want       string // "" for valid
	}{
		{"everything", nil, nil, 0, ""},
		{"some", []string{"local"}, []string{"720p"}, 4_000_000, ""},
		{"unknown destination", []string{"mars"}, nil, 0, `destinations[0]: "mars" is not a configured destination; use one of local`},
		{"unknown profile", nil, []string{"4k"}, 0, `profiles[0]: "4k" is not a profile; use one of 1080p, 720p, 480p`},
		{"bitrate too high", nil, nil, 30_000_000, "max_bitrate: 30M is above limits.max_ingest_bitrate (20M), which bounds every broadcast; lower it, or raise the limit"},
		{"bitrate too low", nil, nil, 1000, "max_bitrate: 1k is out of range; use 0 (only limits.max_ingest_bitrate) or 100k..1G"},
		{"all wrong", []string{"mars"}, []string{"4k"}, 1000, "destinations[0]: \"mars\" is not a configured destination; use one of local\nprofiles[0]: \"4k\" is not a profile; use one of 1080p, 720p, 480p\nmax_bitrate: 1k is out of range"},
	} {
		t.Run(ca.name, func(t *testing.T) {
			err := c.CheckGrant(ca.dests, ca.profiles, ca.maxBitrate)
			switch {
			case ca.want == "" && err != nil:
				t.Fatalf("CheckGrant: %v", err)
			case ca.want != "" && (err == nil || !strings.HasPrefix(err.Error(), ca.want)):
				t.Fatalf("CheckGrant: %v, want %q", err, ca.want)
			}
		})
	}
}

func TestCheckName(t *testing.T) {
	for _, ok := range []string{"a", "studio", "user-7", "k_1", strings.Repeat("a", 32)} {
		if err := CheckName(ok); err != nil {
			t.Errorf("CheckName(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"", "Studio", "-a", "a b", "a.b", strings.Repeat("a", 33)} {
		if err := CheckName(bad); err == nil {
			t.Errorf("CheckName(%q): no error", bad)
		}
	}
}

// TestSigningSecretNeverPrinted prints a configuration with a signing key every way a
// program might, and checks that the secret does not show.
func TestSigningSecretNeverPrinted(t *testing.T) {
	const secret = "s3cr3t-0123456789abcdef0123456789abcdef"
	t.Setenv("LIVEGATE_TEST_SIGNING", secret)
	c, err := Parse([]byte("auth: {signing_keys: [{id: k1, secret_env: LIVEGATE_TEST_SIGNING}]}"))
	if err != nil {
		t.Fatal(err)
	}
	if string(c.Auth.SigningKeys[0].Secret) != secret {
		t.Fatalf("Secret = %q", c.Auth.SigningKeys[0].Secret)
	}
	var out bytes.Buffer
	for _, format := range []string{"%v", "%+v", "%#v", "%s"} {
		fmt.Fprintf(&out, format+"\n", c)
		fmt.Fprintf(&out, format+"\n", c.Auth)
		fmt.Fprintf(&out, format+"\n", c.Auth.SigningKeys[0])
	}
	js, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	out.Write(js)
	slog.New(slog.NewTextHandler(&out, nil)).Info("x", "key", c.Auth.SigningKeys[0], "auth", c.Auth)
	slog.New(slog.NewJSONHandler(&out, nil)).Info("x", "key", c.Auth.SigningKeys[0])
	if strings.Contains(out.String(), "s3cr3t") || strings.Contains(out.String(), "0123456789abcdef") {
		t.Fatalf("the secret was printed:\n%s", out.String())
	}
	for _, want := range []string{"signing key k1 (secret_env LIVEGATE_TEST_SIGNING)", `config.SigningKey{ID:"k1", SecretEnv:"LIVEGATE_TEST_SIGNING", SecretFile:"", Secret:39 bytes}`, `{"id":"k1","secret_env":"LIVEGATE_TEST_SIGNING"}`} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the output does not show %s:\n%s", want, out.String())
		}
	}
}
