package load

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/bluenviron/gortmplib"
	"github.com/bluenviron/gortmplib/pkg/message"
)

// streamLog is what arrived of one stream at the destination.
type streamLog struct {
	mu    sync.Mutex
	video []arrivedFrame
	audio int // AAC frames
	conns int // connections that carried it (a publisher that reconnects makes more)
	open  int // of which are open now
}

func (l *streamLog) onMessage(msg message.Message, at time.Time) {
	var ts time.Duration
	switch m := msg.(type) {
	case *message.Video:
		if m.Type != message.VideoTypeAU {
			return // the sequence header, or its end
		}
		ts = m.DTS
	case *message.VideoExCodedFrames:
		ts = m.DTS
	case *message.VideoExFramesX:
		ts = m.DTS
	case *message.Audio:
		if m.Codec == message.CodecMPEG4Audio && m.AACType == message.AudioAACTypeAU {
			l.mu.Lock()
			l.audio++
			l.mu.Unlock()
		}
		return
	default:
		return
	}
	l.mu.Lock()
	l.video = append(l.video, arrivedFrame{TS: ts, At: at})
	l.mu.Unlock()
}

func (l *streamLog) connOpened() { l.mu.Lock(); l.conns++; l.open++; l.mu.Unlock() }
func (l *streamLog) connClosed() { l.mu.Lock(); l.open--; l.mu.Unlock() }

// ended tells whether the stream came and every connection of it closed.
func (l *streamLog) ended() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.conns > 0 && l.open == 0
}

// snapshot copies what arrived.
func (l *streamLog) snapshot() (video []arrivedFrame, audio int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]arrivedFrame(nil), l.video...), l.audio
}

// consume reads RTMP messages until read fails, noting when each arrived.
func consume(read func() (message.Message, error), setDeadline func(time.Time) error, log *streamLog) error {
	for {
		_ = setDeadline(time.Now().Add(readTimeout))
		msg, err := read()
		if err != nil {
			return err
		}
		log.onMessage(msg, time.Now())
	}
}

const (
	handshakeTimeout = 10 * time.Second
	readTimeout      = 20 * time.Second
)

// Receiver is the load generator's own RTMP server: the destination that
// measures best, in the generator's process and on its clock. It takes
// the publishes of the streams it was told to Expect and notes when each
// video frame arrives (the time its message came off the socket) and its
// timestamp. Unlike livegate's built-in receiver it takes any number of
// connections and keeps every stream until told to Forget it.
type Receiver struct {
	// Listen is the TCP address, 127.0.0.1:0 for a free port.
	Listen string
	Log    *slog.Logger

	ln      net.Listener
	wg      sync.WaitGroup
	mu      sync.Mutex
	conns   map[net.Conn]struct{}
	streams map[string]*streamLog // by path: live/KEY
	closed  bool
}

// Initialize starts listening; Close stops it and waits for every
// connection's goroutine.
func (r *Receiver) Initialize() error {
	ln, err := net.Listen("tcp", r.Listen)
	if err != nil {
		return fmt.Errorf("receiver: %w", err)
	}
	r.ln = ln
	r.conns = make(map[net.Conn]struct{})
	r.streams = make(map[string]*streamLog)
	r.wg.Add(1)
	go r.accept() // owned by r: Close waits
	return nil
}

// URL is the RTMP application's URL: rtmp://ADDR/live.
func (r *Receiver) URL() string { return "rtmp://" + r.ln.Addr().String() + "/live" }

// Expect makes ready for the stream published as rtmp://ADDR/live/KEY.
func (r *Receiver) Expect(key string) *streamLog {
	l := &streamLog{}
	r.mu.Lock()
	r.streams["live/"+key] = l
	r.mu.Unlock()
	return l
}

// Forget lets a stream's log go.
func (r *Receiver) Forget(key string) {
	r.mu.Lock()
	delete(r.streams, "live/"+key)
	r.mu.Unlock()
}

// Close stops accepting, closes every connection and waits for them.
func (r *Receiver) Close() {
	r.mu.Lock()
	r.closed = true
	for c := range r.conns {
		_ = c.Close()
	}
	r.mu.Unlock()
	_ = r.ln.Close()
	r.wg.Wait()
}

func (r *Receiver) accept() {
	defer r.wg.Done()
	for {
		conn, err := r.ln.Accept()
		if err != nil {
			return
		}
		r.mu.Lock()
		if r.closed {
			r.mu.Unlock()
			_ = conn.Close()
			continue
		}
		r.conns[conn] = struct{}{}
		r.mu.Unlock()
		r.wg.Add(1)
		go func() { // owned by r: Close closes conn and waits
			defer r.wg.Done()
			err := r.handle(conn)
			r.mu.Lock()
			delete(r.conns, conn)
			r.mu.Unlock()
			_ = conn.Close()
			r.Log.Debug("receiver: connection closed", "reason", err)
		}()
	}
}

func (r *Receiver) handle(conn net.Conn) error {
	_ = conn.SetDeadline(time.Now().Add(handshakeTimeout))
	sc := &gortmplib.ServerConn{RW: conn}
	if err := sc.Initialize(); err != nil {
		return fmt.Errorf("handshake: %w", err)
	}
	if err := sc.Accept(); err != nil {
		return fmt.Errorf("accept: %w", err)
	}
	if !sc.Publish {
		return errors.New("only publishing is taken")
	}
	path := strings.TrimPrefix(sc.URL.Path, "/")
	r.mu.Lock()
	l := r.streams[path]
	r.mu.Unlock()
	if l == nil {
		return fmt.Errorf("unexpected stream %q", path)
	}
	l.connOpened()
	defer l.connClosed()
	_ = conn.SetDeadline(time.Time{})
	return consume(sc.Read, conn.SetReadDeadline, l)
}

// play reads the stream at rawURL (rtmp://host:port/app/key) from an RTMP
// server (nginx-rtmp) until ctx ends, into l. It returns once the player
// is connected, and gives the goroutine it starts to wg.
func play(ctx context.Context, wg *sync.WaitGroup, rawURL string, l *streamLog, log *slog.Logger) error {
	u, err := url.Parse(rawURL)
	if err != nil {
		return fmt.Errorf("player: %w", err)
	}
	// gortmplib's form: the key goes in the fragment.
	i := strings.LastIndexByte(u.Path, '/')
	u.Fragment, u.Path = u.Path[i+1:], u.Path[:i]
	c := &gortmplib.Client{URL: u, Publish: false}
	ictx, cancel := context.WithTimeout(ctx, handshakeTimeout)
	defer cancel()
	if err := c.Initialize(ictx); err != nil {
		return fmt.Errorf("player of %s: %w", rawURL, err)
	}
	l.connOpened()
	wg.Add(1)
	go func() { // owned by the caller's wg; ends when ctx does
		defer wg.Done()
		defer l.connClosed()
		stop := context.AfterFunc(ctx, c.Close)
		defer stop()
		// A player of a stream that is not published yet waits: no read
		// deadline.
		err := consume(c.Read, func(time.Time) error { return nil }, l)
		c.Close()
		log.Debug("player ended", "url", rawURL, "reason", err)
	}()
	return nil
}
