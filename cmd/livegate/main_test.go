package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/livegate/livegate/internal/config"
	"github.com/livegate/livegate/internal/server"
	"github.com/livegate/livegate/internal/testutil"
)

// startServe runs serve with cfg until the end of the test and returns its server once it
// is ready.
func startServe(t *testing.T, cfg *config.Config) *server.Server {
	t.Helper()
	return startServeLog(t, cfg, testutil.Logger())
}

// startServeLog is startServe with log.
func startServeLog(t *testing.T, cfg *config.Config, log *slog.Logger) *server.Server {
	t.Helper()
	return startLivegate(t, cfg, log, nil).srv
}

// livegate is serve running in the test: stop and reload are its signals.
type livegate struct {
	srv    *server.Server
	stop   chan os.Signal
	reload chan os.Signal
	done   chan error
	closed bool
}

// startLivegate runs serve with cfg, log and load (which reload reads; nil: none) until
// the test ends, when its stop channel is closed (everything ends at once) unless the
// test has stopped it itself (wait).
func startLivegate(t *testing.T, cfg *config.Config, log *slog.Logger, load func() (*config.Config, error)) *livegate {
	t.Helper()
	lg := &livegate{stop: make(chan os.Signal, 2), reload: make(chan os.Signal, 1), done: make(chan error, 1)}
	ready := make(chan *server.Server, 1)
	ctl := control{stop: lg.stop, reload: lg.reload, load: load}
	go func() { lg.done <- serve(ctl, cfg, log, func(s *server.Server) { ready <- s }) }()
	t.Cleanup(func() {
		if lg.closed {
			return
		}
		close(lg.stop)
		if err := lg.wait(15 * time.Second); err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	select {
	case lg.srv = <-ready:
		return lg
	case err := <-lg.done:
		lg.closed = true
		t.Fatalf("serve: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("serve was not ready within 10s")
	}
	return nil
}

// wait waits up to timeout for serve to return, and returns its error.
func (lg *livegate) wait(timeout time.Duration) error {
	select {
	case err := <-lg.done:
		lg.closed = true
		return err
	case <-time.After(timeout):
		return errors.New("serve did not return after it was told to stop")
	}
}

// TestPublishOverTLS runs livegate as main does with tls.self_signed, and publishes over
// wss:// with a client that trusts only that certificate: start, ready, stop, close.
func TestPublishOverTLS(t *testing.T) {
	cfg := config.Default()
	cfg.Listen = "127.0.0.1:0"
	cfg.Receiver.Listen = "127.0.0.1:0"
	cfg.TLS.SelfSigned = true
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	srv := startServe(t, cfg)

	roots := x509.NewCertPool()
	roots.AddCert(srv.Certificate.Leaf)
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}
	t.Cleanup(tr.CloseIdleConnections)
	client := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	base := "https://" + srv.Addr().String() // an IP address: the certificate names 127.0.0.1

	// The page's API answers over HTTPS, without Strict-Transport-Security for a
	// self-signed certificate.
	resp, err := client.Get(base + "/api/v1/destinations")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"name":"local"`) {
		t.Fatalf("GET /api/v1/destinations = %d %q", resp.StatusCode, body)
	}
	if v := resp.Header.Get("Strict-Transport-Security"); v != "" {
		t.Errorf("Strict-Transport-Security %q with a self-signed certificate", v)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "wss"+strings.TrimPrefix(base, "https")+"/api/v1/publish", &websocket.DialOptions{HTTPClient: client})
	if err != nil {
		t.Fatalf("dial wss: %v", err)
	}
	defer c.CloseNow()
	// Safari's MP4 with H.264 and AAC: nothing to transcode, so no ffmpeg is needed.
	start := `{"type":"start","version":1,"ingest":"mediarecorder","mime":"video/mp4;codecs=avc1,mp4a.40.2","destinations":["local"]}`
	if err := c.Write(ctx, websocket.MessageText, []byte(start)); err != nil {
		t.Fatal(err)
	}
	for {
		_, data, err := c.Read(ctx)
		if err != nil {
			t.Fatalf("waiting for ready: %v", err)
		}
		var m map[string]any
		if err := json.Unmarshal(data, &m); err != nil {
			t.Fatalf("not JSON: %q", data)
		}
		if m["type"] == "error" {
			t.Fatalf("livegate answered start with %s", data)
		}
		if m["type"] == "ready" {
			break
		}
	}
	if err := c.Write(ctx, websocket.MessageText, []byte(`{"type":"stop"}`)); err != nil {
		t.Fatal(err)
	}
	for {
		if _, _, err = c.Read(ctx); err != nil {
			break
		}
	}
	if websocket.CloseStatus(err) != websocket.StatusNormalClosure {
		t.Fatalf("after stop: %v, want a normal close", err)
	}
}

// TestRedirectToHTTPS runs livegate with tls.listen: plain HTTP on listen sends the
// browser to the HTTPS address.
func TestRedirectToHTTPS(t *testing.T) {
	cfg := config.Default()
	cfg.Listen = "127.0.0.1:0"
	cfg.Receiver.Listen = "127.0.0.1:0"
	cfg.TLS.SelfSigned = true
	cfg.TLS.Listen = "127.0.0.1:0"
	srv := startServe(t, cfg)

	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	client := &http.Client{Transport: tr, Timeout: 5 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Get("http://" + srv.RedirectAddr().String() + "/?destination=local")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if want := "https://" + srv.Addr().String() + "/?destination=local"; resp.StatusCode != http.StatusPermanentRedirect || resp.Header.Get("Location") != want {
		t.Fatalf("GET on the plain listener = %d to %q, want 308 to %q", resp.StatusCode, resp.Header.Get("Location"), want)
	}
}

// TestTLSFlag checks that -tls-self-signed reaches the configuration, which refuses it
// next to the operator's own certificate.
func TestTLSFlag(t *testing.T) {
	dir := t.TempDir()
	cert, err := server.NewSelfSigned([]string{"localhost"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	certFile := write("cert.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]}))
	keyFile := write("key.pem", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}))
	cfgFile := write("livegate.yaml", []byte("tls:\n  cert: "+certFile+"\n  key: "+keyFile+"\n"))

	var stderr bytes.Buffer
	err = run([]string{"-config", cfgFile, "-tls-self-signed"}, strings.NewReader(""), io.Discard, &stderr)
	if err == nil || !strings.Contains(err.Error(), "config: tls: has both self_signed: true (or -tls-self-signed) and cert/key") {
		t.Fatalf("run: %v, want the conflict of -tls-self-signed with cert and key", err)
	}

	stderr.Reset()
	if err := run([]string{"-help"}, strings.NewReader(""), io.Discard, &stderr); err == nil || !strings.Contains(stderr.String(), "-tls-self-signed") {
		t.Errorf("-help does not list -tls-self-signed: %q", stderr.String())
	}
}
