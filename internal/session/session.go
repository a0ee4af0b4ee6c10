// Package session is one live broadcast: it wires the encoder child and the
// publishers together, owns their lifetime and keeps their statistics.
//
//	browser bytes -> Write -> ffmpeg (transcode) -> FLV -> packets -> Publisher x N
package session

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/livegate/livegate/internal/demux/flv"
	"github.com/livegate/livegate/internal/media"
	"github.com/livegate/livegate/internal/metrics"
	"github.com/livegate/livegate/internal/publish"
	"github.com/livegate/livegate/internal/transcode"
)

// finishTimeout bounds how long a graceful end may take before everything
// is stopped hard.
const finishTimeout = 5 * time.Second

// Destination is where a broadcast goes, as resolved by the server from the
// operator's configuration.
type Destination struct {
	Name string
	// URL in gortmplib's form (rtmp[s]://host:port/app#key).
	URL *url.URL
}

// Event is a change the browser should hear about.
type Event struct {
	Destination string
	State       publish.State
	Reason      string
}

// DestinationStats is one destination's share of Stats.
type DestinationStats struct {
	Name     string
	State    publish.State
	BytesOut uint64
	Dropped  uint64
}

// Stats is a snapshot of a session's counters.
type Stats struct {
	BytesIn      uint64
	Destinations []DestinationStats
	// FirstPacket is when the first packet reached the publishers (zero
	// before that).
	FirstPacket time.Time
}

// Session is one broadcast. Set the fields, Start, Write media, then Finish
// (graceful) or Close (abort). Every goroutine it starts has ended when
// Finish or Close returns.
type Session struct {
	ID           string
	Log          *slog.Logger
	FFmpegPath   string
	Transcode    transcode.Options
	Destinations []Destination
	Metrics      *metrics.Metrics
	// OnEvent is called on destination state changes, from the publishers'
	// goroutines; it must not block for long.
	OnEvent func(Event)

	ctx     context.Context
	cancel  context.CancelCauseFunc
	proc    *transcode.Process
	outDone chan struct{}
	bytesIn atomic.Uint64

	mu          sync.Mutex
	pubs        []*publish.Publisher
	states      map[string]publish.State
	firstPacket time.Time
	tracks      []*media.Track
	closeOnce   sync.Once
}

// Start starts the encoder and the goroutine that reads its output.
func (s *Session) Start(ctx context.Context) error {
	if len(s.Destinations) == 0 {
		return errors.New("session: no destination")
	}
	if s.OnEvent == nil {
		s.OnEvent = func(Event) {}
	}
	s.ctx, s.cancel = context.WithCancelCause(ctx)
	s.states = make(map[string]publish.State, len(s.Destinations))
	for _, d := range s.Destinations {
		s.states[d.Name] = publish.StateConnecting
	}
	s.proc = &transcode.Process{Path: s.FFmpegPath, Options: s.Transcode, Log: s.Log.With("component", "ffmpeg")}
	if err := s.proc.Start(); err != nil {
		s.cancel(err)
		return err
	}
	s.outDone = make(chan struct{})
	go s.readOutput() // owned by the session: Finish/Close wait for outDone
	return nil
}

// Write hands media bytes to the encoder. It blocks while the encoder is
// busy, which slows the browser's socket down rather than buffering here.
func (s *Session) Write(b []byte) error {
	if _, err := s.proc.Stdin().Write(b); err != nil {
		return fmt.Errorf("session: write to encoder: %w", s.endCause(err))
	}
	s.bytesIn.Add(uint64(len(b)))
	if s.Metrics != nil {
		s.Metrics.BytesIn.Add(float64(len(b)))
	}
	return nil
}

// Ended is closed as soon as the session must end (a failure, Close or the
// parent context); call Close then to stop what is left.
func (s *Session) Ended() <-chan struct{} { return s.ctx.Done() }

// Done is closed when the pipeline has ended, on its own or not.
func (s *Session) Done() <-chan struct{} { return s.outDone }

// Err says why the pipeline ended; nil after a clean Finish.
func (s *Session) Err() error {
	select {
	case <-s.outDone:
	default:
		return nil
	}
	if c := context.Cause(s.ctx); c != nil && !errors.Is(c, context.Canceled) && !errors.Is(c, errFinished) {
		return c
	}
	return nil
}

var errFinished = errors.New("finished")

// Finish ends the broadcast gracefully: the encoder gets end of input and
// flushes, the publishers send what they have. It gives up after a few
// seconds and stops everything.
func (s *Session) Finish() {
	_ = s.proc.Stdin().Close()
	t := time.NewTimer(finishTimeout)
	defer t.Stop()
	select {
	case <-s.outDone:
	case <-t.C:
		s.Log.Warn("broadcast did not end in time; stopping it")
	}
	s.Close()
}

// Close stops everything at once and waits for it.
func (s *Session) Close() {
	s.closeOnce.Do(func() {
		s.cancel(errFinished)
		s.proc.Close(time.Second)
		<-s.outDone
		if s.Metrics != nil {
			for _, d := range s.Destinations {
				s.Metrics.DestinationUp.WithLabelValues(d.Name).Set(0)
			}
		}
	})
}

// Tracks are the tracks the encoder produced (nil before they are known).
func (s *Session) Tracks() []*media.Track {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tracks
}

// EncoderCPU is the encoder's CPU time; known once it has exited.
func (s *Session) EncoderCPU() time.Duration { return s.proc.CPUTime() }

// EncoderPID is the encoder's process id.
func (s *Session) EncoderPID() int { return s.proc.PID() }

// Stats returns the session's counters.
func (s *Session) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Stats{BytesIn: s.bytesIn.Load(), FirstPacket: s.firstPacket}
	for i, d := range s.Destinations {
		ds := DestinationStats{Name: d.Name, State: s.states[d.Name]}
		if i < len(s.pubs) {
			ds.BytesOut = s.pubs[i].BytesOut()
			ds.Dropped = s.pubs[i].Dropped()
		}
		st.Destinations = append(st.Destinations, ds)
	}
	return st
}

// endCause explains a failed write to the encoder by how the session ended.
func (s *Session) endCause(err error) error {
	if c := context.Cause(s.ctx); c != nil && !errors.Is(c, errFinished) {
		return c
	}
	return err
}

func (s *Session) readOutput() {
	defer close(s.outDone)
	err := s.pump()
	// Stop the encoder whatever happened, so that Write cannot block on a
	// pipe nobody reads.
	s.proc.Close(time.Second)
	if err != nil {
		s.cancel(err)
	}
	s.mu.Lock()
	pubs := s.pubs
	s.mu.Unlock()
	for _, p := range pubs {
		if err == nil && s.ctx.Err() == nil {
			p.Finish()
			select {
			case <-p.Done():
			case <-s.ctx.Done():
			case <-time.After(finishTimeout):
			}
		}
		p.Close()
	}
}

// pump reads the encoder's FLV output and hands the packets to the
// publishers. It returns nil at a clean end of the encoder's output.
func (s *Session) pump() error {
	out := s.proc.Stdout()
	r, err := flv.NewReader(out)
	if err == nil {
		var tracks []*media.Track
		tracks, err = r.Tracks()
		if err == nil {
			return s.publish(r, tracks)
		}
	}
	// The encoder produced nothing usable: find out why.
	<-s.proc.Done()
	if s.ctx.Err() != nil {
		return nil
	}
	if perr := s.proc.Err(); perr != nil {
		if s.proc.Signaled() {
			return fmt.Errorf("%w: %v", ErrEncoderFailed, perr)
		}
		return fmt.Errorf("%w (%v)", ErrBadMedia, perr)
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		if s.bytesIn.Load() == 0 {
			return nil // ended before any media: nothing to tell
		}
		return fmt.Errorf("%w: the encoder found no audio or video in it (%s)", ErrBadMedia, s.proc.Stderr())
	}
	return fmt.Errorf("%w: %v", ErrEncoderFailed, err)
}

func (s *Session) publish(r *flv.Reader, tracks []*media.Track) error {
	for _, t := range tracks {
		s.Log.Info("encoder output track", "track", t.String())
	}
	s.mu.Lock()
	s.tracks = tracks
	for _, d := range s.Destinations {
		name := d.Name
		p := &publish.Publisher{
			Name:    name,
			URL:     d.URL,
			Tracks:  tracks,
			Log:     s.Log.With("destination", name),
			OnState: func(st publish.State, reason string) { s.onState(name, st, reason) },
		}
		if err := p.Initialize(s.ctx); err != nil {
			s.mu.Unlock()
			return err
		}
		s.pubs = append(s.pubs, p)
	}
	pubs := s.pubs
	s.mu.Unlock()

	lastOut := make([]uint64, len(pubs))
	lastDrop := make([]uint64, len(pubs))
	for {
		pkt, err := r.ReadPacket()
		if err != nil {
			if s.ctx.Err() != nil {
				return nil
			}
			<-s.proc.Done()
			if errors.Is(err, io.EOF) {
				if perr := s.proc.Err(); perr != nil {
					return fmt.Errorf("%w: %v", ErrEncoderFailed, perr)
				}
				return nil
			}
			return fmt.Errorf("%w: its output could not be read: %v", ErrEncoderFailed, err)
		}
		if s.ctx.Err() != nil {
			return nil
		}
		s.mu.Lock()
		if s.firstPacket.IsZero() {
			s.firstPacket = time.Now()
		}
		s.mu.Unlock()
		for i, p := range pubs {
			p.Push(pkt)
			if s.Metrics != nil {
				if n := p.BytesOut(); n != lastOut[i] {
					s.Metrics.BytesOut.WithLabelValues(s.Destinations[i].Name).Add(float64(n - lastOut[i]))
					lastOut[i] = n
				}
				if n := p.Dropped(); n != lastDrop[i] {
					s.Metrics.Dropped.WithLabelValues(s.Destinations[i].Name).Add(float64(n - lastDrop[i]))
					lastDrop[i] = n
				}
			}
		}
	}
}

func (s *Session) onState(name string, st publish.State, reason string) {
	s.mu.Lock()
	prev := s.states[name]
	s.states[name] = st
	allFailed := true
	for _, v := range s.states {
		if v != publish.StateFailed {
			allFailed = false
		}
	}
	s.mu.Unlock()
	if s.Metrics != nil {
		g := s.Metrics.DestinationUp.WithLabelValues(name)
		if st == publish.StateLive {
			g.Inc()
		} else if prev == publish.StateLive {
			g.Dec()
		}
		if st == publish.StateReconnecting {
			s.Metrics.Reconnects.WithLabelValues(name).Inc()
		}
	}
	s.OnEvent(Event{Destination: name, State: st, Reason: reason})
	if allFailed {
		s.cancel(fmt.Errorf("%w: %s", ErrAllDestinationsFailed, reason))
	}
}
