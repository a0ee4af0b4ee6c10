package server

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"testing/fstest"
	"time"

	"go.uber.org/goleak"

	"github.com/livegate/livegate/internal/metrics"
	"github.com/livegate/livegate/internal/receiver"
	"github.com/livegate/livegate/internal/testutil"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const indexHTML = "<!doctype html><title>studio</title>"

type fixture struct {
	srv       *Server
	base      string
	metrics   *metrics.Metrics
	published *atomic.Int32
	client    *http.Client
}

// newServer starts a Server on loopback; the caller may change its
// configuration in tweak before it starts. It is closed at the end of the
// test unless the test closed it itself.
func newServer(t *testing.T, tweak func(*Server)) *fixture {
	t.Helper()
	m := metrics.New()
	var published atomic.Int32
	s := &Server{
		Listen: "127.0.0.1:0",
		Log:    testutil.Logger(),
		Static: fstest.MapFS{"index.html": {Data: []byte(indexHTML)}},
		Publish: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			published.Add(1)
			w.WriteHeader(http.StatusTeapot)
		}),
		Metrics: m.Handler(),
		Destinations: []DestinationInfo{
			{Name: "youtube", Description: "YouTube main channel"},
			{Name: "nginx"}, // no description: must not fall back on anything secret
			{Name: "local", Builtin: true},
		},
	}
	if tweak != nil {
		tweak(s)
	}
	if err := s.Initialize(); err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{}
	client := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	t.Cleanup(func() {
		tr.CloseIdleConnections()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = s.Close(ctx) // a second Close after the test's own is harmless
	})
	return &fixture{srv: s, base: "http://" + s.Addr().String(), metrics: m, published: &published, client: client}
}

func (f *fixture) do(t *testing.T, method, path string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, f.base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := f.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return resp, string(body)
}

func TestStudioPage(t *testing.T) {
	f := newServer(t, nil)
	resp, body := f.do(t, http.MethodGet, "/")
	if resp.StatusCode != http.StatusOK || body != indexHTML {
		t.Fatalf("GET / = %d %q, want 200 and index.html", resp.StatusCode, body)
	}
	for _, ca := range []struct {
		name, header string
		want         []string
	}{
		{"csp", "Content-Security-Policy", []string{"default-src 'self'", "frame-ancestors 'none'", "script-src 'self'"}},
		{"framing", "X-Frame-Options", []string{"DENY"}},
		{"sniffing", "X-Content-Type-Options", []string{"nosniff"}},
		{"devices", "Permissions-Policy", []string{"camera=(self)", "microphone=(self)"}},
	} {
		t.Run(ca.name, func(t *testing.T) {
			got := resp.Header.Get(ca.header)
			for _, w := range ca.want {
				if !strings.Contains(got, w) {
					t.Errorf("%s = %q, want it to contain %q", ca.header, got, w)
				}
			}
		})
	}
}

func TestEndpoints(t *testing.T) {
	f := newServer(t, nil)
	for _, ca := range []struct {
		name, method, path string
		status             int
		contains           []string
	}{
		{"health", http.MethodGet, "/healthz", http.StatusOK, []string{"ok"}},
		{"publish reaches its handler", http.MethodGet, "/api/v1/publish", http.StatusTeapot, nil},
		{"receiver disabled", http.MethodGet, "/api/v1/receiver", http.StatusNotFound, []string{"receiver is disabled"}},
		{"no watch without a receiver", http.MethodGet, "/api/v1/watch?path=live/local", http.StatusNotFound, nil},
		{"unknown file", http.MethodGet, "/nothing-here.js", http.StatusNotFound, nil},
		{"post health", http.MethodPost, "/healthz", http.StatusMethodNotAllowed, nil},
		{"post destinations", http.MethodPost, "/api/v1/destinations", http.StatusMethodNotAllowed, nil},
		{"delete receiver", http.MethodDelete, "/api/v1/receiver", http.StatusMethodNotAllowed, nil},
		{"post page", http.MethodPost, "/", http.StatusMethodNotAllowed, nil},
	} {
		t.Run(ca.name, func(t *testing.T) {
			resp, body := f.do(t, ca.method, ca.path)
			if resp.StatusCode != ca.status {
				t.Fatalf("%s %s = %d, want %d (%q)", ca.method, ca.path, resp.StatusCode, ca.status, body)
			}
			for _, w := range ca.contains {
				if !strings.Contains(body, w) {
					t.Errorf("body %q, want it to contain %q", body, w)
				}
			}
		})
	}
	if n := f.published.Load(); n != 1 {
		t.Errorf("publish handler hit %d times, want 1", n)
	}
	// The 404 of a disabled receiver is a sentence a person can read.
	_, body := f.do(t, http.MethodGet, "/api/v1/receiver")
	if body = strings.TrimSpace(body); len(body) < 20 || strings.HasPrefix(body, "{") {
		t.Errorf("disabled receiver says %q, want a sentence", body)
	}
}

func TestMetrics(t *testing.T) {
	f := newServer(t, nil)
	f.metrics.BytesOut.WithLabelValues("x").Add(1)
	resp, body := f.do(t, http.MethodGet, "/metrics")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics = %d", resp.StatusCode)
	}
	for _, name := range []string{
		"livegate_sessions_active ",
		"livegate_sessions_total ",
		"livegate_ingest_bytes_total ",
		`livegate_destination_bytes_total{destination="x"} 1`,
	} {
		if !strings.Contains(body, name) {
			t.Errorf("/metrics lacks %q", name)
		}
	}
}

func TestDestinationsNeverLeakURLs(t *testing.T) {
	f := newServer(t, nil)
	resp, body := f.do(t, http.MethodGet, "/api/v1/destinations")
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		t.Fatalf("GET /api/v1/destinations = %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if resp.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("Cache-Control = %q, want no-store", resp.Header.Get("Cache-Control"))
	}
	for _, bad := range []string{"rtmp", "url", "key", "://"} {
		if strings.Contains(strings.ToLower(body), bad) {
			t.Errorf("destinations JSON contains %q: %s", bad, body)
		}
	}
	var got struct {
		Destinations []map[string]any `json:"destinations"`
	}
	dec := json.NewDecoder(strings.NewReader(body))
	if err := dec.Decode(&got); err != nil {
		t.Fatalf("decode %q: %v", body, err)
	}
	allowed := map[string]bool{"name": true, "description": true, "builtin": true}
	var names []string
	for _, d := range got.Destinations {
		for k := range d {
			if !allowed[k] {
				t.Errorf("destination %v has field %q", d, k)
			}
		}
		names = append(names, d["name"].(string))
	}
	if strings.Join(names, ",") != "local,nginx,youtube" {
		t.Errorf("names = %v, want local,nginx,youtube in order", names)
	}
	for _, ca := range []struct {
		name    string
		idx     int
		desc    any
		builtin any
	}{
		{"builtin", 0, nil, true},
		{"no description", 1, nil, nil},
		{"with description", 2, "YouTube main channel", nil},
	} {
		t.Run(ca.name, func(t *testing.T) {
			d := got.Destinations[ca.idx]
			if d["description"] != ca.desc || d["builtin"] != ca.builtin {
				t.Errorf("destination %v: description %v builtin %v, want %v %v", d, d["description"], d["builtin"], ca.desc, ca.builtin)
			}
		})
	}
}

func TestReceiverReport(t *testing.T) {
	rcv := &receiver.Receiver{Listen: "127.0.0.1:0", Log: testutil.Logger()}
	if err := rcv.Initialize(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rcv.Close)
	f := newServer(t, func(s *Server) { s.Receiver = rcv })
	resp, body := f.do(t, http.MethodGet, "/api/v1/receiver")
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		t.Fatalf("GET /api/v1/receiver = %d %s %q", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	var got map[string]json.RawMessage
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatalf("decode %q: %v", body, err)
	}
	if len(got) != 1 || string(got["streams"]) != "[]" {
		t.Fatalf("receiver report %s, want {\"streams\":[]}", body)
	}
}

func TestClose(t *testing.T) {
	f := newServer(t, nil)
	if resp, _ := f.do(t, http.MethodGet, "/healthz"); resp.StatusCode != http.StatusOK {
		t.Fatalf("healthz = %d", resp.StatusCode)
	}
	addr := f.srv.Addr().String()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- f.srv.Close(ctx) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Close: %v", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("Close did not return")
	}
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err == nil {
		c.Close()
		t.Fatal("the listener is still there after Close")
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial after Close: %v, want connection refused", err)
	}
}

func TestListenError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	s := &Server{Listen: ln.Addr().String(), Log: testutil.Logger(), Static: fstest.MapFS{}}
	err = s.Initialize()
	if err == nil {
		t.Fatal("Initialize on a busy port succeeded")
	}
	if !strings.Contains(err.Error(), "listen") || !strings.Contains(err.Error(), ln.Addr().String()) {
		t.Errorf("error %q does not say what to change", err)
	}
}
