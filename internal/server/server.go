// Package server is livegate's HTTP side: the studio page, the JSON API,
// health, metrics and the publish WebSocket, over HTTP or HTTPS.
package server

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/livegate/livegate/internal/receiver"
)

// DestinationInfo is what the browser may know of a destination: its name
// and description, never its URL or key.
type DestinationInfo struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	Builtin     bool   `json:"builtin,omitempty"`
	// KeyFromClient: the streamer brings the stream key (the page asks).
	KeyFromClient bool `json:"key_from_client,omitempty"`
	// Profile is forced on broadcasts to it; Profiles may be chosen.
	Profile  string   `json:"profile,omitempty"`
	Profiles []string `json:"profiles,omitempty"`
}

// ProfileInfo describes an output profile to the browser.
type ProfileInfo struct {
	Name         string `json:"name"`
	Width        int    `json:"width"`
	Height       int    `json:"height"`
	FPS          int    `json:"fps"`
	VideoBitrate int    `json:"video_bitrate"`
}

// Server serves HTTP or HTTPS. Set the fields, Initialize, then Close.
type Server struct {
	// Listen is the address of the listener: plain HTTP, or HTTPS when Certificate is
	// set and TLSListen is not.
	Listen string
	// Certificate, when set, makes the server speak HTTPS (TLS 1.2 and 1.3); replace it
	// later with SetCertificate.
	Certificate *tls.Certificate
	// TLSListen, with Certificate, is the address of the HTTPS listener; Listen then
	// serves plain HTTP only to redirect to it.
	TLSListen string
	// HSTSMaxAge, when positive, is sent on every HTTPS response as
	// Strict-Transport-Security. Leave it 0 with a self-signed certificate.
	HSTSMaxAge time.Duration

	Log     *slog.Logger
	Static  fs.FS
	Publish http.Handler
	Metrics http.Handler
	// Receiver is the built-in receiver; nil when it is disabled.
	Receiver *receiver.Receiver
	// Destinations and Profiles are what GET /api/v1/destinations lists; replace them
	// later with SetCatalog.
	Destinations []DestinationInfo
	Profiles     []ProfileInfo
	// Ready says whether livegate takes new broadcasts: nil, or why not, in a sentence
	// that /readyz answers with 503. Nil: always, until Close.
	Ready func() error

	// Sessions are the broadcasts the admin API lists and ends (the publish handler);
	// AdminTokenHash is the SHA-256 of the token it needs (replace it later with
	// SetAdminToken). Without both, the admin API is off: its routes answer 404.
	Sessions       Sessions
	AdminTokenHash *[sha256.Size]byte
	// OnAdminRefused, when set, is told each refused admin call: "unauthorized" (no token,
	// or a wrong one) or "insecure" (plain HTTP from another machine) (metrics).
	OnAdminRefused func(reason string)

	ln         net.Listener // the application's: HTTPS when Certificate is set
	srv        *http.Server
	redirectLn net.Listener // plain HTTP redirecting to ln; nil unless TLSListen is set
	redirect   *http.Server
	cert       atomic.Pointer[tls.Certificate] // what the TLS handshakes serve
	catalog    atomic.Pointer[catalog]         // what /api/v1/destinations lists
	adminHash  atomic.Pointer[[sha256.Size]byte]
	closing    atomic.Bool    // Close has begun: /readyz answers 503
	serving    sync.WaitGroup // the Serve goroutines
	errMu      sync.Mutex
	err        error // the first error of a Serve goroutine

	// Watch-back WebSockets are hijacked, so Shutdown does not wait for
	// them: Close cancels ctx and waits for them itself.
	ctx     context.Context
	cancel  context.CancelFunc
	watchMu sync.Mutex // orders watches.Add against Close
	watches sync.WaitGroup
}

// Initialize listens and starts serving.
func (s *Server) Initialize() error {
	addr, what := s.Listen, "listen in the config or -listen"
	if s.TLSListen != "" {
		if s.Certificate == nil {
			return errors.New("server: TLSListen is set without a Certificate; set both, or neither")
		}
		addr, what = s.TLSListen, "tls.listen in the config"
	}
	var leaf *x509.Certificate
	if s.Certificate != nil {
		var err error
		if leaf, err = leafOf(s.Certificate); err != nil {
			return err
		}
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s (change %s): %w", addr, what, err)
	}
	if s.TLSListen != "" {
		rln, err := net.Listen("tcp", s.Listen)
		if err != nil {
			ln.Close()
			return fmt.Errorf("listen on %s, to redirect plain HTTP to HTTPS (change listen in the config or -listen): %w", s.Listen, err)
		}
		s.redirectLn = rln
	}
	s.ln = ln
	s.SetCatalog(s.Destinations, s.Profiles)
	s.adminHash.Store(s.AdminTokenHash)
	errorLog := slog.NewLogLogger(handshakeErrorsAtDebug{s.Log.Handler()}, slog.LevelWarn)
	handler := s.routes()
	if s.Certificate != nil && s.HSTSMaxAge > 0 {
		handler = hsts(s.HSTSMaxAge, handler)
	}
	s.srv = &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second, // bounds the TLS handshake too
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          errorLog,
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	if s.Certificate == nil {
		s.goServe(func() error { return s.srv.Serve(ln) })
		return nil
	}

	s.cert.Store(s.Certificate)
	s.srv.TLSConfig = s.tlsConfig()
	s.goServe(func() error {
		err := s.srv.ServeTLS(ln, "", "")
		ln.Close() // Serve closes it, but not when ServeTLS fails before it gets there
		return err
	})
	if s.redirectLn != nil {
		s.redirect = &http.Server{
			Handler:           s.adminOverPlainHTTP(redirectToHTTPS(portOf(ln.Addr()))),
			ReadHeaderTimeout: 10 * time.Second,
			IdleTimeout:       time.Minute,
			MaxHeaderBytes:    16 << 10,
			ErrorLog:          errorLog,
		}
		s.goServe(func() error { return s.redirect.Serve(s.redirectLn) })
		s.Log.Info("plain HTTP redirects to HTTPS", "listen", s.redirectLn.Addr().String(), "https", ln.Addr().String())
	}
	s.logCertificate("serving HTTPS", leaf)
	return nil
}

// goServe runs serve in a goroutine that Close waits for, keeping its first error.
func (s *Server) goServe(serve func() error) {
	s.serving.Add(1)
	go func() { // owned by Server: Close waits for it
		defer s.serving.Done()
		if err := serve(); !errors.Is(err, http.ErrServerClosed) {
			s.errMu.Lock()
			if s.err == nil {
				s.err = err
			}
			s.errMu.Unlock()
		}
	}()
}

// Addr is the address the server serves its pages on: the HTTPS listener's when
// Certificate is set.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// RedirectAddr is the address of the plain HTTP listener that redirects to HTTPS, or nil
// when there is none (TLSListen is not set).
func (s *Server) RedirectAddr() net.Addr {
	if s.redirectLn == nil {
		return nil
	}
	return s.redirectLn.Addr()
}

// Close stops accepting requests and waits up to the context's deadline for
// those in flight. It ends the watch-back WebSockets and waits for them;
// the publish WebSockets are hijacked: their handler ends them.
func (s *Server) Close(ctx context.Context) error {
	s.closing.Store(true)
	err := s.srv.Shutdown(ctx)
	if s.redirect != nil {
		err = errors.Join(err, s.redirect.Shutdown(ctx))
	}
	s.serving.Wait()
	s.watchMu.Lock()
	s.cancel()
	s.watchMu.Unlock()
	s.watches.Wait()
	s.errMu.Lock()
	defer s.errMu.Unlock()
	if s.err != nil {
		return s.err
	}
	return err
}

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /", securityHeaders(http.FileServerFS(s.Static)))
	// Alive: the process serves HTTP. Ready: it takes new broadcasts.
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", s.readyz)
	if s.Metrics != nil {
		mux.Handle("GET /metrics", s.Metrics)
	}
	mux.HandleFunc("GET /api/v1/destinations", func(w http.ResponseWriter, _ *http.Request) {
		c := s.catalog.Load()
		writeJSON(w, map[string]any{"destinations": c.destinations, "profiles": c.profiles})
	})
	mux.HandleFunc("GET /api/v1/receiver", func(w http.ResponseWriter, _ *http.Request) {
		if s.Receiver == nil {
			http.Error(w, "the built-in receiver is disabled", http.StatusNotFound)
			return
		}
		writeJSON(w, map[string]any{"streams": s.Receiver.Streams()})
	})
	if s.Receiver != nil {
		mux.HandleFunc("GET /api/v1/watch", s.watch)
	}
	mux.Handle("GET /api/v1/publish", s.Publish)
	s.adminRoutes(mux)
	return mux
}

// catalog is what GET /api/v1/destinations lists.
type catalog struct {
	destinations []DestinationInfo
	profiles     []ProfileInfo
}

// SetCatalog replaces the destinations and profiles that GET /api/v1/destinations lists
// (after a configuration reload). The server keeps its own copies.
func (s *Server) SetCatalog(dests []DestinationInfo, profiles []ProfileInfo) {
	c := &catalog{destinations: slices.Clone(dests), profiles: slices.Clone(profiles)}
	slices.SortFunc(c.destinations, func(a, b DestinationInfo) int { return strings.Compare(a.Name, b.Name) })
	if c.destinations == nil {
		c.destinations = []DestinationInfo{}
	}
	if c.profiles == nil {
		c.profiles = []ProfileInfo{}
	}
	s.catalog.Store(c)
}

// readyz answers 200 while livegate takes new broadcasts, else 503 and why: a load
// balancer or Kubernetes then sends new broadcasts elsewhere.
func (s *Server) readyz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	why := ""
	if s.closing.Load() {
		why = "livegate is shutting down"
	} else if s.Ready != nil {
		if err := s.Ready(); err != nil {
			why = err.Error()
		}
	}
	if why != "" {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(why + "\n"))
		return
	}
	_, _ = w.Write([]byte("ready\n"))
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(v)
}

// securityHeaders keeps the studio page from being framed or sniffed, and
// lets it use the camera and microphone.
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Content-Security-Policy", "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data: blob:; media-src 'self' blob: mediastream:; style-src 'self'; script-src 'self'; frame-ancestors 'none'")
		h.Set("Permissions-Policy", "camera=(self), microphone=(self), display-capture=(self)")
		next.ServeHTTP(w, r)
	})
}
