package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/coder/websocket"

	"github.com/livegate/livegate/internal/mux/fmp4"
	"github.com/livegate/livegate/internal/receiver"
)

const (
	// maxWatchPath bounds the ?path= of a watch.
	maxWatchPath = 256
	// watchWriteTimeout ends a watch whose browser takes no data for that
	// long.
	watchWriteTimeout = 10 * time.Second
	// Close codes of the watch WebSocket besides 1000 (the stream ended)
	// and 1001 (livegate is stopping): 4000 + an HTTP status, as for the
	// publish WebSocket.
	closeBadRequest     websocket.StatusCode = 4400
	closeNoStream       websocket.StatusCode = 4404
	closeFormatChanged  websocket.StatusCode = 4409
	closeNotWatchable   websocket.StatusCode = 4415
	closeTooManyWatches websocket.StatusCode = 4429
)

// watchInit is the first message of a watch: the MIME type (with codecs)
// for MediaSource.addSourceBuffer.
type watchInit struct {
	Type string `json:"type"` // "init"
	MIME string `json:"mime"`
}

// watch serves GET /api/v1/watch?path=live/local: the live stream of the
// built-in receiver with exactly that path, as fragmented MP4 over a
// WebSocket, for Media Source Extensions. The server sends a text message
// {"type":"init","mime":"video/mp4; codecs=\"avc1.42c01f,mp4a.40.2\""},
// a binary init segment (ftyp+moov), then binary fragments (moof+mdat) of
// about 200 ms each, the first starting at a key frame. It closes with 1000
// when the stream ends. A request it refuses gets an HTTP status and a
// sentence; a WebSocket handshake it refuses is accepted and closed at once
// with 4000 + that status and the sentence as the reason, because a page
// cannot read the status of a failed handshake.
func (s *Server) watch(w http.ResponseWriter, r *http.Request) {
	path := r.URL.Query().Get("path")
	if path == "" || len(path) > maxWatchPath || !utf8.ValidString(path) || strings.ContainsFunc(path, unicode.IsControl) {
		s.refuseWatch(w, r, http.StatusBadRequest, "give the stream to watch as ?path=, for example ?path=live/local")
		return
	}
	ctx, done, ok := s.startWatch(r.Context())
	if !ok {
		s.refuseWatch(w, r, http.StatusServiceUnavailable, "livegate is shutting down")
		return
	}
	defer done()

	wt, err := s.Receiver.Watch(ctx, path)
	switch {
	case errors.Is(err, receiver.ErrNoStream):
		s.refuseWatch(w, r, http.StatusNotFound, fmt.Sprintf("no live stream %q on the built-in receiver", path))
		return
	case errors.Is(err, receiver.ErrTooManyWatchers):
		s.refuseWatch(w, r, http.StatusTooManyRequests, "too many people are watching this stream back already; try again later")
		return
	case errors.Is(err, receiver.ErrNotWatchable):
		s.refuseWatch(w, r, http.StatusUnsupportedMediaType, "this stream has no H.264 video or AAC audio that a browser could play")
		return
	case err != nil:
		s.refuseWatch(w, r, http.StatusServiceUnavailable, "livegate is shutting down")
		return
	}
	defer wt.Close()
	m := &fmp4.Muxer{Video: wt.Video, Audio: wt.Audio}
	var init []byte
	if err = m.Initialize(); err == nil {
		init, err = m.InitSegment()
	}
	if err != nil {
		s.Log.Warn("watch-back: cannot describe the stream", "path", path, "error", err)
		s.refuseWatch(w, r, http.StatusUnsupportedMediaType, "this stream cannot be played back in a browser")
		return
	}

	// The default options check that the Origin matches the Host: other
	// sites cannot watch through a visitor's browser.
	c, err := websocket.Accept(w, r, nil)
	if err != nil {
		s.Log.Info("watch-back: websocket handshake refused", "remote", r.RemoteAddr, "error", err)
		return
	}
	defer c.CloseNow()
	log := s.Log.With("path", path, "remote", r.RemoteAddr)
	log.Info("watch-back started", "mime", m.MIME())
	began := time.Now()

	// The browser sends nothing: reading only notices that it left. Not
	// with ctx: cancelling it would drop the connection without the close
	// frame that tells the browser why (the deferred CloseNow ends it).
	left := c.CloseRead(context.WithoutCancel(ctx))
	msg, _ := json.Marshal(watchInit{Type: "init", MIME: m.MIME()})
	if err := write(ctx, c, websocket.MessageText, msg); err != nil {
		return
	}
	if err := write(ctx, c, websocket.MessageBinary, init); err != nil {
		return
	}
	frags := 0
	for {
		select {
		case pkt, ok := <-wt.C:
			if !ok {
				why := wt.Err()
				if frag, err := m.Flush(); err == nil && frag != nil && errors.Is(why, receiver.ErrStreamEnded) {
					_ = write(ctx, c, websocket.MessageBinary, frag)
				}
				code, reason := closeFor(why)
				log.Info("watch-back ended", "reason", why, "fragments", frags, "dropped", wt.Dropped(), "after", time.Since(began).Round(time.Millisecond))
				_ = c.Close(code, reason)
				return
			}
			frag, err := m.Write(pkt)
			if err != nil {
				log.Warn("watch-back: fragment", "error", err)
				_ = c.Close(websocket.StatusInternalError, "the stream could not be packaged")
				return
			}
			if frag == nil {
				continue
			}
			if err := write(ctx, c, websocket.MessageBinary, frag); err != nil {
				log.Info("watch-back ended: the browser takes no data", "error", err, "fragments", frags)
				return
			}
			frags++
		case <-left.Done():
			log.Info("watch-back ended: the browser left", "fragments", frags, "dropped", wt.Dropped())
			return
		}
	}
}

// write sends one message. Not cancelled with ctx: coder/websocket drops the
// connection when a write's context ends, and a shutdown should rather end
// the watch with a close frame once the write is done.
func write(ctx context.Context, c *websocket.Conn, typ websocket.MessageType, b []byte) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), watchWriteTimeout)
	defer cancel()
	return c.Write(ctx, typ, b)
}

// closeFor is the close code and reason for why a watch ended.
func closeFor(why error) (websocket.StatusCode, string) {
	switch {
	case errors.Is(why, receiver.ErrStreamEnded):
		return websocket.StatusNormalClosure, "the stream ended"
	case errors.Is(why, receiver.ErrFormatChanged):
		return closeFormatChanged, "the stream's video format changed; watch it again"
	default: // the server's context: shutting down
		return websocket.StatusGoingAway, "livegate is shutting down"
	}
}

// refuseWatch answers a watch it will not serve: an HTTP status, or for a
// WebSocket handshake, a WebSocket closed at once with 4000 + status.
func (s *Server) refuseWatch(w http.ResponseWriter, r *http.Request, status int, sentence string) {
	if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
		http.Error(w, sentence, status)
		return
	}
	c, err := websocket.Accept(w, r, nil)
	if err != nil {
		return // Accept answered with an HTTP error
	}
	defer c.CloseNow()
	code := websocket.StatusCode(4000 + status)
	if status == http.StatusServiceUnavailable {
		code = websocket.StatusGoingAway // shutting down: 1001, as docs/protocol.md says
	}
	_ = c.Close(code, closeReason(sentence))
}

// closeReason cuts a sentence to the 123 bytes a close frame can carry.
func closeReason(s string) string {
	const maxReason = 123
	if len(s) <= maxReason {
		return s
	}
	s = s[:maxReason-3]
	for !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s + "..."
}

// startWatch registers a watch with the server, so that Close ends it and
// waits for it. ctx ends with the request or when the server closes.
func (s *Server) startWatch(parent context.Context) (context.Context, func(), bool) {
	s.watchMu.Lock()
	defer s.watchMu.Unlock()
	if s.ctx.Err() != nil {
		return nil, nil, false
	}
	s.watches.Add(1)
	ctx, cancel := context.WithCancel(parent)
	stop := context.AfterFunc(s.ctx, cancel)
	return ctx, func() {
		stop()
		cancel()
		s.watches.Done()
	}, true
}
