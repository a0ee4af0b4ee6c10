package main

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/livegate/livegate/internal/auth"
	"github.com/livegate/livegate/internal/config"
	"github.com/livegate/livegate/internal/metrics"
)

// syncBuffer is a log destination that a test reads while the server writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func writeConfig(t *testing.T, yaml string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "livegate.yaml")
	if err := os.WriteFile(p, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// publishStart opens the publish WebSocket of the server at addr (from origin, when not
// empty), sends a start with token, and returns the type of livegate's answer, ready or
// error, with the error's code; or "refused" when the handshake is.
func publishStart(t *testing.T, addr net.Addr, origin, token string) (typ, code string) {
	t.Helper()
	return publishStartFrom(t, addr, origin, "local", token)
}

// publishStartTo is publishStart to dest.
func publishStartTo(t *testing.T, addr net.Addr, dest, token string) (typ, code string) {
	t.Helper()
	return publishStartFrom(t, addr, "", dest, token)
}

func publishStartFrom(t *testing.T, addr net.Addr, origin, dest, token string) (typ, code string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, port, _ := net.SplitHostPort(addr.String())
	opts := &websocket.DialOptions{HTTPHeader: http.Header{}}
	if origin != "" {
		opts.HTTPHeader.Set("Origin", origin)
	}
	c, resp, err := websocket.Dial(ctx, "ws://127.0.0.1:"+port+"/api/v1/publish", opts)
	if err != nil {
		if resp != nil && resp.StatusCode == http.StatusForbidden {
			return "refused", ""
		}
		t.Fatalf("dial: %v", err)
	}
	defer c.CloseNow()
	// Safari's MP4 with H.264 and AAC: nothing to transcode.
	start := map[string]any{"type": "start", "version": 1, "ingest": "mediarecorder", "mime": "video/mp4;codecs=avc1,mp4a.40.2", "destinations": []string{dest}}
	if token != "" {
		start["token"] = token
	}
	data, _ := json.Marshal(start)
	if err := c.Write(ctx, websocket.MessageText, data); err != nil {
		t.Fatal(err)
	}
	for {
		_, data, err := c.Read(ctx)
		if err != nil {
			t.Fatalf("waiting for ready or error: %v", err)
		}
		var m struct{ Type, Code string }
		if err := json.Unmarshal(data, &m); err != nil {
			t.Fatalf("not JSON: %q", data)
		}
		if m.Type == "ready" || m.Type == "error" {
			return m.Type, m.Code
		}
	}
}

// TestNoAuthListensOnLoopbackOnly checks issue #5's rule as main applies it: without
// tokens, livegate refuses an address other machines reach, whether the file or -listen
// gives it, and says what to do.
func TestNoAuthListensOnLoopbackOnly(t *testing.T) {
	for _, ca := range []struct {
		name string
		args func(t *testing.T) []string
		want string
	}{
		{"-listen", func(*testing.T) []string { return []string{"-listen", "0.0.0.0:8080"} },
			`config: listen: "0.0.0.0:8080" can be reached from other machines, and no token is needed to publish (auth: has no tokens or signing_keys); do one of: add a token under auth.tokens (livegate token new) or a key under auth.signing_keys; set auth.allow_anonymous: true to let anyone who reaches livegate publish; or listen on this machine only (listen: 127.0.0.1:8080 or -listen 127.0.0.1:8080)`},
		{"-listen on all interfaces, with TLS", func(*testing.T) []string { return []string{"-listen", ":8443", "-tls-self-signed"} },
			`config: listen: ":8443" can be reached from other machines`},
		{"the file", func(t *testing.T) []string {
			return []string{"-config", writeConfig(t, "listen: 0.0.0.0:8080\nauth: {allow_anonymous: false}\n")}
		}, `: line 1: listen: "0.0.0.0:8080" can be reached from other machines`},
		{"tls.listen", func(t *testing.T) []string {
			return []string{"-config", writeConfig(t, "tls: {self_signed: true, listen: ':8443'}\n")}
		}, `: line 1: tls.listen: ":8443" can be reached from other machines`},
		{"-listen, the file having no listen", func(t *testing.T) []string {
			return []string{"-config", writeConfig(t, "log: {level: debug}\n"), "-listen", ":8080"}
		}, `config: listen: ":8080" can be reached from other machines`},
	} {
		t.Run(ca.name, func(t *testing.T) {
			_, _, err := runCmd(t, "", ca.args(t)...)
			if err == nil || !strings.Contains(err.Error(), ca.want) {
				t.Fatalf("run: %v, want %q", err, ca.want)
			}
		})
	}
}

// TestAllowAnonymousStarts starts livegate on all interfaces with allow_anonymous: anyone
// may publish, without a token, and the log says so.
func TestAllowAnonymousStarts(t *testing.T) {
	file := writeConfig(t, "listen: 0.0.0.0:0\nreceiver: {listen: 127.0.0.1:0}\nauth: {allow_anonymous: true}\n")
	cfg, err := configure([]string{"-config", file}, os.Stderr)
	if err != nil {
		t.Fatalf("configure: %v", err)
	}
	var log syncBuffer
	srv := startServeLog(t, cfg, slog.New(slog.NewTextHandler(&log, nil)))
	if typ, code := publishStart(t, srv.Addr(), "", ""); typ != "ready" {
		t.Fatalf("publish without a token: %s %s, want ready", typ, code)
	}
	if want := `level=WARN msg="auth.allow_anonymous: anyone who reaches livegate may publish to every destination, without a token;`; !strings.Contains(log.String(), want) {
		t.Errorf("the log does not warn %s\n%s", want, log.String())
	}
}

// TestHelpHint checks that the LAN command -help suggests starts.
func TestHelpHint(t *testing.T) {
	_, errOut, _ := runCmd(t, "", "-help")
	var yaml string
	var args []string
	for _, line := range strings.Split(errOut, "\n") {
		line = strings.TrimSpace(line)
		if v, ok := strings.CutPrefix(line, "echo '"); ok {
			yaml, _, _ = strings.Cut(v, "'")
		}
		if v, ok := strings.CutPrefix(line, "livegate -config lan.yaml "); ok {
			args = strings.Fields(v)
		}
	}
	if yaml == "" || args == nil {
		t.Fatalf("no LAN hint in -help:\n%s", errOut)
	}
	file := writeConfig(t, yaml+"\n")
	if _, err := configure(append([]string{"-config", file}, args...), os.Stderr); err != nil {
		t.Fatalf("the -help hint (%s with %q) does not start: %v", args, yaml, err)
	}
}

// TestAnonymousOnLoopbackSaysSo checks the log line of a livegate without tokens.
func TestAnonymousOnLoopbackSaysSo(t *testing.T) {
	cfg := config.Default()
	cfg.Listen = "127.0.0.1:0"
	cfg.Receiver.Listen = "127.0.0.1:0"
	var log syncBuffer
	srv := startServeLog(t, cfg, slog.New(slog.NewTextHandler(&log, nil)))
	if typ, code := publishStart(t, srv.Addr(), "", ""); typ != "ready" {
		t.Fatalf("publish without a token: %s %s, want ready", typ, code)
	}
	if want := `level=INFO msg="no tokens are configured: anyone on this machine may publish, and livegate listens on loopback only; to let other machines publish, add tokens (livegate token new, then auth.tokens in the config)`; !strings.Contains(log.String(), want) {
		t.Errorf("the log does not say %s\n%s", want, log.String())
	}
}

// TestTokensAndOrigins starts livegate with a token and an allowed origin: publishing
// needs the token, and a page from another origin is refused at the handshake.
func TestTokensAndOrigins(t *testing.T) {
	tok := auth.NewToken()
	file := writeConfig(t, "listen: 0.0.0.0:0\nreceiver: {listen: 127.0.0.1:0}\nauth:\n  tokens:\n    - {name: cam, hash: "+auth.HashToken(tok)+"}\n  allowed_origins: ['https://*.example.com']\n")
	cfg, err := configure([]string{"-config", file}, os.Stderr)
	if err != nil {
		t.Fatalf("configure: %v", err)
	}
	var log syncBuffer
	srv := startServeLog(t, cfg, slog.New(slog.NewTextHandler(&log, nil)))
	_, port, _ := net.SplitHostPort(srv.Addr().String())
	for _, ca := range []struct {
		name, origin, token string
		typ, code           string
	}{
		{"no token", "", "", "error", "unauthorized"},
		{"a wrong token", "", auth.NewToken(), "error", "unauthorized"},
		{"the token", "", tok, "ready", ""},
		{"the token from an allowed origin", "https://app.example.com", tok, "ready", ""},
		{"the token from another origin", "https://evil.example.org", tok, "refused", ""},
		{"the token from the page's own origin", "http://127.0.0.1:" + port, tok, "ready", ""},
	} {
		t.Run(ca.name, func(t *testing.T) {
			if typ, code := publishStart(t, srv.Addr(), ca.origin, ca.token); typ != ca.typ || code != ca.code {
				t.Fatalf("publish: %s %s, want %s %s", typ, code, ca.typ, ca.code)
			}
		})
	}
	if want := `level=INFO msg="publishing needs a token" tokens=1 signing_keys=0 allowed_origins=https://*.example.com`; !strings.Contains(log.String(), want) {
		t.Errorf("the log does not say %s\n%s", want, log.String())
	}
	if strings.Contains(log.String(), tok) {
		t.Errorf("the log holds the token:\n%s", log.String())
	}
}

// TestPublishHandlerWiring checks that auth: and limits: reach the publish handler.
func TestPublishHandlerWiring(t *testing.T) {
	t.Setenv("LIVEGATE_TEST_SIGNING", strings.Repeat("k", 32))
	cfg, err := config.Parse([]byte(`auth:
  tokens:
    - {name: cam, hash: ` + auth.HashToken("lgt_x") + `, destinations: [local], profiles: [720p], max_bitrate: 3M}
  signing_keys: [{id: k1, secret_env: LIVEGATE_TEST_SIGNING}]
  allowed_origins: [https://app.example.com]
limits:
  max_sessions_per_address: 2
  max_session_length: 90m
  max_ingest_bitrate: 8M
`))
	if err != nil {
		t.Fatal(err)
	}
	h, err := publishHandler(cfg, slog.Default(), metrics.New(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if h.MaxSessionsPerAddress != 2 || h.MaxSessionLength != 90*time.Minute || h.MaxIngestBitrate != 8_000_000 {
		t.Errorf("limits: per address %d, length %v, ingest %d", h.MaxSessionsPerAddress, h.MaxSessionLength, h.MaxIngestBitrate)
	}
	if !reflect.DeepEqual(h.AllowedOrigins, []string{"https://app.example.com"}) {
		t.Errorf("AllowedOrigins = %q", h.AllowedOrigins)
	}
	hash, _ := auth.ParseHash(auth.HashToken("lgt_x"))
	want := &auth.Verifier{
		Static: []auth.StaticToken{{Name: "cam", Hash: hash, Grant: auth.Grant{Destinations: []string{"local"}, Profiles: []string{"720p"}, MaxBitrate: 3_000_000}}},
		Keys:   []auth.SigningKey{{ID: "k1", Secret: []byte(strings.Repeat("k", 32))}},
	}
	if !reflect.DeepEqual(h.Auth, want) {
		t.Errorf("Auth = %+v, want %+v", h.Auth, want)
	}

	// Without tokens: anonymous, and the defaults.
	h, err = publishHandler(config.Default(), slog.Default(), metrics.New(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if h.Auth == nil || !h.Auth.Anonymous || h.Auth.Enabled() {
		t.Errorf("Auth without tokens = %+v, want anonymous", h.Auth)
	}
	if h.MaxSessionsPerAddress != 4 || h.MaxSessionLength != 12*time.Hour || h.MaxIngestBitrate != 20_000_000 || h.AllowedOrigins != nil {
		t.Errorf("defaults: per address %d, length %v, ingest %d, origins %q", h.MaxSessionsPerAddress, h.MaxSessionLength, h.MaxIngestBitrate, h.AllowedOrigins)
	}
}
