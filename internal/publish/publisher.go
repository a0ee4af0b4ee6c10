// Package publish sends a broadcast's packets to one RTMP or RTMPS
// destination. Each Publisher has a bounded queue and one writer goroutine,
// so a slow or dead destination never stalls the browser or the others.
package publish

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/bluenviron/gortmplib"
	"github.com/bluenviron/gortmplib/pkg/codecs"

	"github.com/livegate/livegate/internal/media"
)

// Why a connection ended. Their text is what the browser is told; the
// wrapped error, with the destination's address, stays in the logs.
var (
	ErrConnect = errors.New("could not connect to the destination")
	ErrRefused = errors.New("the destination refused the stream (check the stream key)")
	ErrLost    = errors.New("the connection to the destination was lost")
)

// reason is what the browser is told about err.
func reason(err error) string {
	for _, e := range []error{ErrConnect, ErrRefused, ErrLost} {
		if errors.Is(err, e) {
			return e.Error()
		}
	}
	return "the destination failed"
}

// State is where a publisher is in its life.
type State string

// States, as the browser sees them (docs/protocol.md).
const (
	StateConnecting   State = "connecting"
	StateLive         State = "live"
	StateReconnecting State = "reconnecting"
	StateFailed       State = "failed"
	StateEnded        State = "ended"
)

const (
	defaultQueueSize = 1024 // about 10 s of 30 fps video with its audio
	connectTimeout   = 10 * time.Second
	// writeTimeout bounds one write: a destination that takes no data for
	// this long is dead as far as a live stream is concerned.
	writeTimeout = 10 * time.Second

	// Reconnecting: the wait doubles from minBackoff up to maxBackoff.
	minBackoff = 500 * time.Millisecond
	maxBackoff = 10 * time.Second
	// A destination that was never live is given this many attempts: it
	// is most likely misconfigured (host, key), and the streamer should
	// hear so at once.
	firstAttempts = 3
	// A destination that was live is retried for this long before it is
	// declared failed.
	maxOutage = 2 * time.Minute
	// minStable is how long a connection must last to count as live.
	minStable = 5 * time.Second
	// maxQueueBytes bounds a destination's queue whatever the frame sizes.
	maxQueueBytes = 32 << 20
)

// Publisher publishes to one destination.
type Publisher struct {
	// Name of the destination, for logs and the browser.
	Name string
	// URL in gortmplib's form: rtmp[s]://host:port/app#key.
	URL       *url.URL
	TLSConfig *tls.Config
	Tracks    []*media.Track
	Log       *slog.Logger
	QueueSize int
	// OnState is called from the writer goroutine on every state change.
	OnState func(st State, reason string)
	// Backoff overrides the first wait before reconnecting (tests).
	Backoff time.Duration
	// OnDelay, if set, is called from the writer goroutine with each
	// written packet's delay since it arrived at livegate.
	OnDelay func(time.Duration)

	ctx      context.Context
	cancel   context.CancelFunc
	queue    chan *media.Packet
	done     chan struct{}
	dropped  atomic.Uint64
	queued   atomic.Int64 // bytes in the queue
	needKey  atomic.Bool  // dropping until a video key frame
	hasVideo bool
	written  atomic.Uint64
	bytesOut atomic.Uint64
	pushed   atomic.Int64 // DTS of the last packet queued
	sent     atomic.Int64 // DTS of the last packet taken from the queue
	delays   delayWindow
}

// Initialize starts the writer goroutine. Close (or Finish and Wait) stops it.
func (p *Publisher) Initialize(ctx context.Context) error {
	if p.URL == nil {
		return errors.New("publish: no URL")
	}
	if len(p.Tracks) == 0 {
		return errors.New("publish: no tracks")
	}
	n := p.QueueSize
	if n <= 0 {
		n = defaultQueueSize
	}
	if p.OnState == nil {
		p.OnState = func(State, string) {}
	}
	p.ctx, p.cancel = context.WithCancel(ctx)
	p.queue = make(chan *media.Packet, n)
	for _, t := range p.Tracks {
		p.hasVideo = p.hasVideo || t.Codec.IsVideo()
	}
	p.done = make(chan struct{})
	go p.run()
	return nil
}

// Push queues a packet without blocking. When the queue is full the packet
// is dropped and counted, and Push returns false.
//
// After a drop, video would be broken until the next key frame: so from a
// drop on, everything is dropped until a video key frame fits.
func (p *Publisher) Push(pkt *media.Packet) bool {
	if p.needKey.Load() {
		if !pkt.Track.Codec.IsVideo() || !pkt.Key {
			p.dropped.Add(1)
			return false
		}
	}
	size := int64(pkt.Size())
	if p.queued.Add(size) > maxQueueBytes {
		p.queued.Add(-size)
		p.drop()
		return false
	}
	select {
	case p.queue <- pkt:
		p.needKey.Store(false)
		p.pushed.Store(int64(pkt.DTS))
		return true
	default:
		p.queued.Add(-size)
		p.drop()
		return false
	}
}

func (p *Publisher) drop() {
	p.dropped.Add(1)
	if p.hasVideo {
		p.needKey.Store(true)
	}
}

// Finish tells the publisher no more packets will come: it sends what is
// queued, then ends. Push must not be called after Finish.
func (p *Publisher) Finish() { close(p.queue) }

// Done is closed when the writer goroutine has ended.
func (p *Publisher) Done() <-chan struct{} { return p.done }

// Close stops the publisher at once and waits for its goroutine.
func (p *Publisher) Close() {
	p.cancel()
	<-p.done
}

// BytesOut is the number of bytes sent to the destination so far.
func (p *Publisher) BytesOut() uint64 { return p.bytesOut.Load() }

// Dropped is the number of packets dropped because the queue was full.
func (p *Publisher) Dropped() uint64 { return p.dropped.Load() }

// Queued is the number of payload bytes waiting to be sent: how far the
// destination is behind.
func (p *Publisher) Queued() int64 { return p.queued.Load() }

// QueuedDuration is the media time waiting to be sent.
func (p *Publisher) QueuedDuration() time.Duration {
	if p.queued.Load() <= 0 {
		return 0
	}
	return max(0, time.Duration(p.pushed.Load()-p.sent.Load()))
}

// Delay gives the median and the largest delay, from arrival at livegate
// to the write to the destination, of the packets written over the last
// second (zero when none were).
func (p *Publisher) Delay() (median, largest time.Duration) {
	return p.delays.summary(time.Now(), time.Second)
}

// Written is the number of packets written to the destination.
func (p *Publisher) Written() uint64 { return p.written.Load() }

func (p *Publisher) run() {
	defer close(p.done)
	defer p.cancel()
	p.OnState(StateConnecting, "")
	first := p.Backoff
	if first <= 0 {
		first = minBackoff
	}
	backoff := first
	var everLive bool
	var attempts int
	var downSince time.Time
	for {
		began := time.Now()
		live, err := p.runOnce()
		switch {
		case err == nil:
			p.Log.Info("publish ended", "bytes", p.bytesOut.Load(), "packets", p.written.Load(), "dropped", p.dropped.Load())
			p.OnState(StateEnded, "")
			return
		case p.ctx.Err() != nil:
			p.OnState(StateEnded, "")
			return
		}
		// A connection counts as live only if it held: a server that takes
		// the stream and drops it at once (a wrong key, often) must end
		// up failed, not flap between live and reconnecting forever.
		if live && time.Since(began) >= minStable {
			everLive, attempts, downSince, backoff = true, 0, time.Now(), first
		}
		attempts++
		if (!everLive && attempts >= firstAttempts) || (everLive && time.Since(downSince) > maxOutage) {
			p.Log.Warn("publish failed", "error", err, "attempts", attempts)
			p.OnState(StateFailed, reason(err))
			return
		}
		p.Log.Warn("publish interrupted; reconnecting", "error", err, "in", backoff)
		p.OnState(StateReconnecting, reason(err))
		if !p.wait(backoff) {
			p.OnState(StateEnded, "")
			return
		}
		backoff = min(backoff*2, maxBackoff)
	}
}

// wait lets d pass while dropping what is queued (it would be stale when
// the connection is back, which starts on a new key frame anyway). It
// returns false when the publisher is stopped or finished meanwhile.
func (p *Publisher) wait(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			return true
		case <-p.ctx.Done():
			return false
		case pkt, ok := <-p.queue:
			if !ok {
				return false
			}
			p.queued.Add(-int64(pkt.Size()))
			p.dropped.Add(1)
		}
	}
}

// runOnce makes one connection and writes until the queue ends (nil), the
// publisher is stopped, or the connection fails. live tells whether the
// destination accepted the stream.
func (p *Publisher) runOnce() (live bool, err error) {
	cctx, ccancel := context.WithTimeout(p.ctx, connectTimeout)
	client := &gortmplib.Client{URL: p.URL, Publish: true, TLSConfig: p.TLSConfig, DialContext: dialSmallBuffer}
	err = client.Initialize(cctx)
	ccancel()
	if err != nil {
		// Could not reach it at all, or reached it and was turned away
		// (during the RTMP connect and publish commands).
		kind := ErrRefused
		var opErr *net.OpError
		if (errors.As(err, &opErr) && opErr.Op == "dial") || errors.Is(err, context.DeadlineExceeded) {
			kind = ErrConnect
		}
		return false, fmt.Errorf("%w: %s: %w", kind, redact(p.URL), hideKey(err, p.URL))
	}
	defer client.Close()
	// Unblock a write stuck on a dead peer when we are told to stop.
	stop := context.AfterFunc(p.ctx, client.Close)
	defer stop()

	tracks := make(map[*media.Track]*gortmplib.Track, len(p.Tracks))
	gtracks := make([]*gortmplib.Track, 0, len(p.Tracks))
	var hasVideo bool
	for _, t := range p.Tracks {
		gt, err := toRTMPTrack(t)
		if err != nil {
			return false, err
		}
		hasVideo = hasVideo || t.Codec.IsVideo()
		tracks[t] = gt
		gtracks = append(gtracks, gt)
	}
	conn := client.NetConn()
	_ = conn.SetWriteDeadline(time.Now().Add(writeTimeout))
	w := &gortmplib.Writer{Conn: client, Tracks: gtracks}
	if err := w.Initialize(); err != nil {
		return false, fmt.Errorf("%w: %s: %w", ErrRefused, redact(p.URL), hideKey(err, p.URL))
	}
	p.Log.Info("publishing", "url", redact(p.URL))
	p.OnState(StateLive, "")

	// A viewer can only start decoding at a key frame: begin there, and
	// drop audio until then so that both tracks start together.
	started := !hasVideo
	var last uint64
	for {
		var pkt *media.Packet
		var ok bool
		select {
		case pkt, ok = <-p.queue:
			if !ok {
				return true, nil
			}
			p.queued.Add(-int64(pkt.Size()))
			p.sent.Store(int64(pkt.DTS))
		case <-p.ctx.Done():
			return true, p.ctx.Err()
		}
		if !started {
			if !pkt.Track.Codec.IsVideo() || !pkt.Key {
				continue
			}
			started = true
		}
		gt := tracks[pkt.Track]
		if gt == nil {
			continue
		}
		_ = conn.SetWriteDeadline(time.Now().Add(writeTimeout))
		switch pkt.Track.Codec {
		case media.CodecH264:
			err = w.WriteH264(gt, pkt.PTS, pkt.DTS, pkt.AU)
		case media.CodecAAC:
			err = w.WriteMPEG4Audio(gt, pkt.PTS, pkt.Data)
		}
		if err != nil {
			if p.ctx.Err() != nil {
				return true, p.ctx.Err()
			}
			return true, fmt.Errorf("%w: %s: %w", ErrLost, redact(p.URL), hideKey(err, p.URL))
		}
		p.written.Add(1)
		if !pkt.Arrived.IsZero() {
			now := time.Now()
			d := now.Sub(pkt.Arrived)
			p.delays.add(now, d)
			if p.OnDelay != nil {
				p.OnDelay(d)
			}
		}
		// Counted per connection by the client: add what this one sent.
		if n := client.BytesSent(); n != last {
			p.bytesOut.Add(n - last)
			last = n
		}
	}
}

// sendBuffer bounds the kernel's send buffer for a destination (Linux
// doubles it, to 128 KiB: enough for 10 Mbit/s at 100 ms of round trip).
// With the default (megabytes on a fast path) a slow destination would
// hide its backlog there, adding seconds of delay that the queue, the
// drops and the browser's bitrate target never see.
const sendBuffer = 64 << 10

func dialSmallBuffer(ctx context.Context, network, addr string) (net.Conn, error) {
	c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetWriteBuffer(sendBuffer)
	}
	return c, nil
}

func toRTMPTrack(t *media.Track) (*gortmplib.Track, error) {
	switch t.Codec {
	case media.CodecH264:
		return &gortmplib.Track{Codec: &codecs.H264{SPS: t.SPS, PPS: t.PPS}}, nil
	case media.CodecAAC:
		return &gortmplib.Track{Codec: &codecs.MPEG4Audio{Config: t.AAC}}, nil
	}
	return nil, fmt.Errorf("publish: codec %v cannot go into RTMP here", t.Codec)
}

// keyHiddenError is an error whose text no longer shows the stream key.
type keyHiddenError struct {
	msg string
	err error
}

func (e *keyHiddenError) Error() string { return e.msg }
func (e *keyHiddenError) Unwrap() error { return e.err }

// hideKey masks the stream key in err's text: a server may repeat the
// stream name in its refusal, and gortmplib prints the server's answer.
func hideKey(err error, u *url.URL) error {
	if u.Fragment == "" || !strings.Contains(err.Error(), u.Fragment) {
		return err
	}
	return &keyHiddenError{msg: strings.ReplaceAll(err.Error(), u.Fragment, "****"), err: err}
}

// redact hides the stream key, which gortmplib carries in the fragment.
func redact(u *url.URL) string {
	c := *u
	c.Fragment = ""
	c.User = nil
	s := c.String()
	if u.Fragment != "" {
		s += "/****"
	}
	return s
}
