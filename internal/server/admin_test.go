package server

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/livegate/livegate/internal/ingest/mediarecorder"
	"github.com/livegate/livegate/internal/testutil"
)

// fakeSessions is a publish handler with broadcasts that a Stop ends at once.
type fakeSessions struct {
	mu   sync.Mutex
	live []mediarecorder.SessionInfo
}

func (f *fakeSessions) Sessions() []mediarecorder.SessionInfo {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]mediarecorder.SessionInfo(nil), f.live...)
}

func (f *fakeSessions) Stop(id string) (<-chan struct{}, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, s := range f.live {
		if s.ID == id {
			f.live = append(f.live[:i], f.live[i+1:]...)
			ended := make(chan struct{})
			close(ended)
			return ended, true
		}
	}
	return nil, false
}

const adminToken = "lgt_admin-token-for-tests"

func newAdminServer(t *testing.T, token string) (*fixture, *fakeSessions, *refusals) {
	t.Helper()
	sessions := &fakeSessions{live: []mediarecorder.SessionInfo{
		{ID: "aaaa", Remote: "192.0.2.7:50000", Subject: "cam", Ingest: "webcodecs", State: "live", Started: time.Unix(1700000000, 0).UTC(),
			BytesIn: 1000, BitrateIn: 8000, Destinations: []mediarecorder.SessionDestination{{Name: "youtube", State: "live", BytesOut: 900}}},
		{ID: "bbbb", Subject: "anonymous", Ingest: "mediarecorder", State: "resuming"},
	}}
	ref := &refusals{}
	f := newServer(t, func(s *Server) {
		s.Sessions = sessions
		if token != "" {
			h := sha256.Sum256([]byte(token))
			s.AdminTokenHash = &h
		}
		s.OnAdminRefused = ref.add
	})
	return f, sessions, ref
}

type refusals struct {
	mu      sync.Mutex
	reasons []string
}

func (r *refusals) add(reason string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reasons = append(r.reasons, reason)
}

func (r *refusals) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.reasons, ",")
}

func (f *fixture) admin(t *testing.T, method, path, auth string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, f.base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
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

func TestAdminAPI(t *testing.T) {
	for _, ca := range []struct {
		name         string
		configured   string // the admin token of the server; "": none
		method, path string
		auth         string
		status       int
		contains     []string
		challenge    string // WWW-Authenticate
		refused      string // OnAdminRefused's reasons
		left         int    // broadcasts left after
	}{
		{name: "list", configured: adminToken, method: "GET", path: "/api/v1/admin/sessions", auth: "Bearer " + adminToken,
			status: 200, contains: []string{`"id":"aaaa"`, `"subject":"cam"`, `"remote":"192.0.2.7:50000"`, `"bitrate_in":8000`, `"name":"youtube"`, `"state":"resuming"`}, left: 2},
		{name: "scheme in lower case", configured: adminToken, method: "GET", path: "/api/v1/admin/sessions", auth: "bearer " + adminToken, status: 200, left: 2},
		{name: "stop", configured: adminToken, method: "DELETE", path: "/api/v1/admin/sessions/aaaa", auth: "Bearer " + adminToken, status: 204, left: 1},
		{name: "stop an unknown id", configured: adminToken, method: "DELETE", path: "/api/v1/admin/sessions/zzzz", auth: "Bearer " + adminToken,
			status: 404, contains: []string{"no broadcast with that id"}, left: 2},
		{name: "no token", configured: adminToken, method: "GET", path: "/api/v1/admin/sessions",
			status: 401, challenge: `Bearer realm="livegate admin"`, refused: "unauthorized", left: 2},
		{name: "wrong token", configured: adminToken, method: "DELETE", path: "/api/v1/admin/sessions/aaaa", auth: "Bearer lgt_wrong",
			status: 401, challenge: `Bearer realm="livegate admin", error="invalid_token"`, refused: "unauthorized", left: 2},
		{name: "basic auth", configured: adminToken, method: "GET", path: "/api/v1/admin/sessions", auth: "Basic YWRtaW46YWRtaW4=",
			status: 401, challenge: `Bearer realm="livegate admin"`, refused: "unauthorized", left: 2},
		{name: "a prefix of the token", configured: adminToken, method: "GET", path: "/api/v1/admin/sessions", auth: "Bearer " + adminToken[:10],
			status: 401, challenge: `Bearer realm="livegate admin", error="invalid_token"`, refused: "unauthorized", left: 2},
		{name: "no admin config", method: "GET", path: "/api/v1/admin/sessions", auth: "Bearer " + adminToken, status: 404, left: 2},
		{name: "no admin config, stop", method: "DELETE", path: "/api/v1/admin/sessions/aaaa", auth: "Bearer " + adminToken, status: 404, left: 2},
	} {
		t.Run(ca.name, func(t *testing.T) {
			f, sessions, ref := newAdminServer(t, ca.configured)
			resp, body := f.admin(t, ca.method, ca.path, ca.auth)
			if resp.StatusCode != ca.status {
				t.Fatalf("%s %s = %d %q, want %d", ca.method, ca.path, resp.StatusCode, body, ca.status)
			}
			for _, w := range ca.contains {
				if !strings.Contains(body, w) {
					t.Errorf("body %s, want it to contain %s", body, w)
				}
			}
			if got := resp.Header.Get("WWW-Authenticate"); got != ca.challenge {
				t.Errorf("WWW-Authenticate %q, want %q", got, ca.challenge)
			}
			if got := ref.String(); got != ca.refused {
				t.Errorf("refusals counted %q, want %q", got, ca.refused)
			}
			if n := len(sessions.Sessions()); n != ca.left {
				t.Errorf("%d broadcasts left, want %d", n, ca.left)
			}
			if strings.Contains(body, adminToken) {
				t.Errorf("the answer holds the token: %s", body)
			}
			if ca.status == 200 {
				var got struct {
					Sessions []mediarecorder.SessionInfo `json:"sessions"`
				}
				if err := json.Unmarshal([]byte(body), &got); err != nil || len(got.Sessions) != 2 {
					t.Errorf("decode %s: %v, want 2 sessions", body, err)
				}
				if resp.Header.Get("Cache-Control") != "no-store" {
					t.Errorf("Cache-Control %q, want no-store", resp.Header.Get("Cache-Control"))
				}
			}
		})
	}
}

// TestAdminTokenReplaced: SetAdminToken takes effect at once; nil turns the API off.
func TestAdminTokenReplaced(t *testing.T) {
	f, _, _ := newAdminServer(t, adminToken)
	next := sha256.Sum256([]byte("lgt_next"))
	f.srv.SetAdminToken(&next)
	if resp, _ := f.admin(t, "GET", "/api/v1/admin/sessions", "Bearer "+adminToken); resp.StatusCode != 401 {
		t.Errorf("the old token after SetAdminToken: %d, want 401", resp.StatusCode)
	}
	if resp, _ := f.admin(t, "GET", "/api/v1/admin/sessions", "Bearer lgt_next"); resp.StatusCode != 200 {
		t.Errorf("the new token: %d, want 200", resp.StatusCode)
	}
	f.srv.SetAdminToken(nil)
	if resp, _ := f.admin(t, "GET", "/api/v1/admin/sessions", "Bearer lgt_next"); resp.StatusCode != 404 {
		t.Errorf("after SetAdminToken(nil): %d, want 404", resp.StatusCode)
	}
}

// TestAdminOverPlainHTTP: the plain listener that redirects to HTTPS serves the admin API
// to this machine only; from another, it refuses (never redirects: the token has already
// crossed the network) and says to replace the token.
func TestAdminOverPlainHTTP(t *testing.T) {
	sessions := &fakeSessions{live: []mediarecorder.SessionInfo{{ID: "aaaa"}}}
	h := sha256.Sum256([]byte(adminToken))
	ref := &refusals{}
	s := &Server{Log: testutil.Logger(), Sessions: sessions, AdminTokenHash: &h, OnAdminRefused: ref.add}
	s.adminHash.Store(&h)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	s.ln = ln
	handler := s.adminOverPlainHTTP(redirectToHTTPS("8443"))
	for _, ca := range []struct {
		name, remote, path string
		status             int
		contains           string
	}{
		{"loopback", "127.0.0.1:40000", "/api/v1/admin/sessions", 200, `"id":"aaaa"`},
		{"loopback v6", "[::1]:40000", "/api/v1/admin/sessions", 200, `"id":"aaaa"`},
		{"another machine", "192.0.2.9:40000", "/api/v1/admin/sessions", 403, "crossed the network in clear"},
		{"the page still redirects", "192.0.2.9:40000", "/", 308, ""},
	} {
		t.Run(ca.name, func(t *testing.T) {
			req := httptest.NewRequest("GET", "http://live.example.com:8080"+ca.path, nil)
			req.RemoteAddr = ca.remote
			req.Header.Set("Authorization", "Bearer "+adminToken)
			rec := httptest.NewRecorder()
			handler.ServeHTTP(rec, req)
			if rec.Code != ca.status || !strings.Contains(rec.Body.String(), ca.contains) {
				t.Fatalf("GET %s from %s = %d %q, want %d with %q", ca.path, ca.remote, rec.Code, rec.Body.String(), ca.status, ca.contains)
			}
		})
	}
	if got := ref.String(); got != "insecure" {
		t.Errorf("refusals %q, want insecure", got)
	}
}

func TestReadyz(t *testing.T) {
	var mu sync.Mutex
	var notReady error
	f := newServer(t, func(s *Server) {
		s.Ready = func() error {
			mu.Lock()
			defer mu.Unlock()
			return notReady
		}
	})
	if resp, body := f.do(t, "GET", "/readyz"); resp.StatusCode != 200 || body != "ready\n" {
		t.Fatalf("GET /readyz = %d %q, want 200 ready", resp.StatusCode, body)
	}
	mu.Lock()
	notReady = errors.New("livegate is draining: it takes no new broadcast")
	mu.Unlock()
	if resp, body := f.do(t, "GET", "/readyz"); resp.StatusCode != 503 || body != "livegate is draining: it takes no new broadcast\n" {
		t.Fatalf("GET /readyz while draining = %d %q, want 503 and the reason", resp.StatusCode, body)
	}
	// Alive all the same.
	if resp, _ := f.do(t, "GET", "/healthz"); resp.StatusCode != 200 {
		t.Fatalf("GET /healthz while draining = %d, want 200", resp.StatusCode)
	}
}

// TestSetCatalog: /api/v1/destinations serves what SetCatalog gave last.
func TestSetCatalog(t *testing.T) {
	f := newServer(t, nil)
	f.srv.SetCatalog([]DestinationInfo{{Name: "twitch"}, {Name: "added"}}, []ProfileInfo{{Name: "720p", Width: 1280, Height: 720}})
	_, body := f.do(t, "GET", "/api/v1/destinations")
	var got struct {
		Destinations []DestinationInfo `json:"destinations"`
		Profiles     []ProfileInfo     `json:"profiles"`
	}
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Destinations) != 2 || got.Destinations[0].Name != "added" || got.Destinations[1].Name != "twitch" ||
		len(got.Profiles) != 1 || got.Profiles[0].Name != "720p" {
		t.Fatalf("after SetCatalog: %s", body)
	}
}
