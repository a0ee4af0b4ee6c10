package server

import (
	"crypto/sha256"
	"crypto/subtle"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/livegate/livegate/internal/ingest/mediarecorder"
)

// Sessions are the broadcasts in progress, as the admin API sees them: the publish
// handler.
type Sessions interface {
	// Sessions lists the broadcasts in progress.
	Sessions() []mediarecorder.SessionInfo
	// Stop ends one for the operator; ended is closed once it has ended, ok is false when
	// id is not in progress.
	Stop(id string) (ended <-chan struct{}, ok bool)
}

// adminPrefix is where the admin API lives.
const adminPrefix = "/api/v1/admin/"

// stopWait bounds how long DELETE waits for a broadcast to end (its last media is
// flushed to the destinations) before it answers 202 rather than 204.
const stopWait = 10 * time.Second

// SetAdminToken replaces the SHA-256 of the admin token; nil turns the admin API off.
func (s *Server) SetAdminToken(hash *[sha256.Size]byte) { s.adminHash.Store(hash) }

func (s *Server) adminRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET "+adminPrefix+"sessions", s.admin(func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, map[string]any{"sessions": s.Sessions.Sessions()})
	}))
	mux.HandleFunc("DELETE "+adminPrefix+"sessions/{id}", s.admin(func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		ended, ok := s.Sessions.Stop(id)
		if !ok {
			http.Error(w, "no broadcast with that id is in progress; list them with GET "+adminPrefix+"sessions", http.StatusNotFound)
			return
		}
		s.Log.Info("admin: broadcast ended by the operator", "session", id, "remote", r.RemoteAddr)
		t := time.NewTimer(stopWait)
		defer t.Stop()
		select {
		case <-ended:
			w.WriteHeader(http.StatusNoContent)
		case <-t.C:
			http.Error(w, "the broadcast is ending: its last media is still on the way to its destinations", http.StatusAccepted)
		case <-r.Context().Done():
		}
	}))
}

// admin guards an admin route: 404 while the API is off, 401 without the admin token.
// The token is compared as its SHA-256, in constant time.
func (s *Server) admin(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		want := s.adminHash.Load()
		if want == nil || s.Sessions == nil {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		scheme, token, _ := strings.Cut(r.Header.Get("Authorization"), " ")
		if !strings.EqualFold(scheme, "Bearer") || token == "" {
			s.refuseAdmin(w, r, `Bearer realm="livegate admin"`, "the admin API needs the admin token: Authorization: Bearer <token>")
			return
		}
		got := sha256.Sum256([]byte(strings.TrimSpace(token)))
		if subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
			s.refuseAdmin(w, r, `Bearer realm="livegate admin", error="invalid_token"`, "the admin token is not valid on this server")
			return
		}
		next(w, r)
	}
}

func (s *Server) refuseAdmin(w http.ResponseWriter, r *http.Request, challenge, msg string) {
	if s.OnAdminRefused != nil {
		s.OnAdminRefused("unauthorized")
	}
	s.Log.Warn("admin: refused", "remote", r.RemoteAddr, "method", r.Method, "path", r.URL.Path, "why", msg)
	w.Header().Set("WWW-Authenticate", challenge)
	http.Error(w, msg, http.StatusUnauthorized)
}

// adminOverPlainHTTP serves the admin API on the plain HTTP listener that redirects to
// HTTPS, for a client on this machine only (curl on the host): from anywhere else the
// token has crossed the network in clear, so the call is refused, not redirected, and the
// token should be replaced.
func (s *Server) adminOverPlainHTTP(next http.Handler) http.Handler {
	admin := http.NewServeMux()
	s.adminRoutes(admin)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, adminPrefix) {
			next.ServeHTTP(w, r)
			return
		}
		if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil && net.ParseIP(host).IsLoopback() {
			admin.ServeHTTP(w, r)
			return
		}
		if s.OnAdminRefused != nil {
			s.OnAdminRefused("insecure")
		}
		s.Log.Warn("admin: refused over plain HTTP from another machine", "remote", r.RemoteAddr, "method", r.Method, "path", r.URL.Path,
			"token_sent", r.Header.Get("Authorization") != "")
		w.Header().Set("Cache-Control", "no-store")
		msg := "the admin API is served over HTTPS only (port " + portOf(s.ln.Addr()) + "); this request came over plain HTTP"
		if r.Header.Get("Authorization") != "" {
			msg += ", so its token crossed the network in clear: make a new admin token (livegate token new) and replace admin.token_hash"
		}
		http.Error(w, msg, http.StatusForbidden)
	})
}
