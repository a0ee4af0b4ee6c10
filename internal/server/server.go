// Package server is livegate's HTTP side: the studio page, the JSON API,
// health, metrics and the publish WebSocket.
package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"sync"
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

// Server serves HTTP. Set the fields, Initialize, then Close.
type Server struct {
	Listen       string
	Log          *slog.Logger
	Static       fs.FS
	Publish      http.Handler
	Metrics      http.Handler
	Receiver     *receiver.Receiver // nil when disabled
	Destinations []DestinationInfo
	Profiles     []ProfileInfo

	ln   net.Listener
	srv  *http.Server
	done chan struct{}
	err  error

	// Watch-back WebSockets are hijacked, so Shutdown does not wait for
	// them: Close cancels ctx and waits for them itself.
	ctx     context.Context
	cancel  context.CancelFunc
	watchMu sync.Mutex // orders watches.Add against Close
	watches sync.WaitGroup
}

// Initialize listens and starts serving.
func (s *Server) Initialize() error {
	ln, err := net.Listen("tcp", s.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s (change listen in the config or -listen): %w", s.Listen, err)
	}
	s.ln = ln
	sort.Slice(s.Destinations, func(i, j int) bool { return s.Destinations[i].Name < s.Destinations[j].Name })
	s.srv = &http.Server{
		Handler:           s.routes(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.Log.Handler(), slog.LevelWarn),
	}
	s.done = make(chan struct{})
	s.ctx, s.cancel = context.WithCancel(context.Background())
	go func() { // owned by Server: Close waits for it
		defer close(s.done)
		if err := s.srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			s.err = err
		}
	}()
	return nil
}

// Addr is the address the server listens on.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Close stops accepting requests and waits up to the context's deadline for
// those in flight. It ends the watch-back WebSockets and waits for them;
// the publish WebSockets are hijacked: their handler ends them.
func (s *Server) Close(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	<-s.done
	s.watchMu.Lock()
	s.cancel()
	s.watchMu.Unlock()
	s.watches.Wait()
	if s.err != nil {
		return s.err
	}
	return err
}

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /", securityHeaders(http.FileServerFS(s.Static)))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	if s.Metrics != nil {
		mux.Handle("GET /metrics", s.Metrics)
	}
	mux.HandleFunc("GET /api/v1/destinations", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, map[string]any{"destinations": s.Destinations, "profiles": s.Profiles})
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
	return mux
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
