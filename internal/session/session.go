// Package session is one live broadcast: it demuxes what the browser sends,
// passes through what the destinations can take as it is, has the encoder
// do only the codec work that is needed, and hands the packets to one
// publisher per destination. It owns their lifetime and keeps their
// statistics.
//
//	browser bytes -> Write -> demuxer -> H.264 / AAC -----------------------> merger -> Publisher x N
//	                                  -> Opus, VP8... -> encoder (ffmpeg) -> H.264 / AAC ^
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

	"github.com/livegate/livegate/internal/media"
	"github.com/livegate/livegate/internal/metrics"
	"github.com/livegate/livegate/internal/publish"
	"github.com/livegate/livegate/internal/transcode"
)

const (
	// finishTimeout bounds how long a graceful end may take before
	// everything is stopped hard.
	finishTimeout = 5 * time.Second
	// maxPending bounds the passthrough packets kept while the encoder
	// starts (its output tracks are needed before publishing can begin).
	maxPending      = 2048
	maxPendingBytes = 64 << 20
	// mergeHold is how long a packet may wait for the other track's
	// packets of the same time (the encoder lags its input by 25-45 ms).
	mergeHold = 150 * time.Millisecond
	// tsBase is where the broadcast's clock starts: a little above zero so
	// that the AAC encoder's priming, which puts its first packet before
	// its input, never goes negative (RTMP cannot carry that).
	tsBase = 200 * time.Millisecond
)

// Destination is where a broadcast goes, as resolved by the server from the
// operator's configuration.
type Destination struct {
	Name string
	// URL in gortmplib's form (rtmp[s]://host:port/app#key).
	URL *url.URL
}

// Profile is an output profile: the video is resized to it and its rates
// capped, which forces a video encode even for H.264.
type Profile struct {
	Name                       string
	Width, Height, FPS         int
	VideoBitrate, AudioBitrate int
	KeyframeInterval           time.Duration
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
	Queued   int64 // payload bytes waiting for the destination
}

// Stats is a snapshot of a session's counters.
type Stats struct {
	BytesIn      uint64
	Destinations []DestinationStats
	// FirstPacket is when the first packet reached the publishers (zero
	// before that).
	FirstPacket time.Time
	// EncoderRestarts counts ffmpeg restarts.
	EncoderRestarts int
}

// Session is one broadcast. Set the fields, Start, Write media, then Finish
// (graceful) or Close (abort). Every goroutine it starts has ended when
// Finish or Close returns.
type Session struct {
	ID         string
	Log        *slog.Logger
	FFmpegPath string
	// Encode holds the encoder settings (bitrates, preset, key-frame
	// interval); used only for tracks that must be transcoded.
	Encode transcode.Options
	// NewDemuxer reads the browser's container (chosen by the ingest from
	// the announced type).
	NewDemuxer func(io.Reader) (media.Demuxer, error)
	// Profile, when set, resizes the video (nil: sent as it came).
	Profile      *Profile
	Destinations []Destination
	Metrics      *metrics.Metrics
	// OnEvent is called on destination state changes, from the publishers'
	// goroutines; it must not block for long.
	OnEvent func(Event)

	ctx     context.Context
	cancel  context.CancelCauseFunc
	pr      *io.PipeReader
	pw      *io.PipeWriter
	outDone chan struct{}
	bytesIn atomic.Uint64

	mu          sync.Mutex
	encs        map[*media.Track]*transcode.Encoder // one per track to encode
	merge       *merger
	pending     []*media.Packet // packets before the merger exists
	pendingSize int
	lastDTS     map[*media.Track]time.Duration // per track, to keep time going forward
	starter     chan struct{}                  // closed when the publishers are started (or never will be)
	pubs        []*publish.Publisher
	states      map[string]publish.State
	firstPacket atomic.Int64 // unix nanoseconds; 0 before the first packet
	tracks      []*media.Track
	base        time.Duration // subtracted from the demuxer's clock
	haveBase    bool
	closeOnce   sync.Once
}

// Start starts the goroutine that runs the pipeline.
func (s *Session) Start(ctx context.Context) error {
	if len(s.Destinations) == 0 {
		return errors.New("session: no destination")
	}
	if s.NewDemuxer == nil {
		return errors.New("session: no demuxer")
	}
	if s.OnEvent == nil {
		s.OnEvent = func(Event) {}
	}
	s.ctx, s.cancel = context.WithCancelCause(ctx)
	s.states = make(map[string]publish.State, len(s.Destinations))
	for _, d := range s.Destinations {
		s.states[d.Name] = publish.StateConnecting
	}
	s.pr, s.pw = io.Pipe()
	s.outDone = make(chan struct{})
	go s.run() // owned by the session: Finish/Close wait for outDone
	return nil
}

// Write hands media bytes to the demuxer. It blocks until they are read,
// which slows the browser's socket down rather than buffering here.
func (s *Session) Write(b []byte) error {
	if _, err := s.pw.Write(b); err != nil {
		return fmt.Errorf("session: %w", s.endCause(err))
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

// Finish ends the broadcast gracefully: the demuxer reads to the end, the
// encoder flushes, the publishers send what they have. It gives up after a
// few seconds and stops everything.
func (s *Session) Finish() {
	_ = s.pw.Close()
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
		_ = s.pr.CloseWithError(errFinished)
		<-s.outDone
	})
}

// Tracks are the tracks sent to the destinations (nil before they are known).
func (s *Session) Tracks() []*media.Track {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tracks
}

// Encoders are the session's encoders, one per track that needs one
// (none when everything passes through).
func (s *Session) Encoders() []*transcode.Encoder {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := make([]*transcode.Encoder, 0, len(s.encs))
	for _, e := range s.encs {
		l = append(l, e)
	}
	return l
}

// Stats returns the session's counters.
func (s *Session) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Stats{BytesIn: s.bytesIn.Load()}
	if n := s.firstPacket.Load(); n != 0 {
		st.FirstPacket = time.Unix(0, n)
	}
	for _, e := range s.encs {
		st.EncoderRestarts += e.Restarts()
	}
	for i, d := range s.Destinations {
		ds := DestinationStats{Name: d.Name, State: s.states[d.Name]}
		if i < len(s.pubs) {
			ds.BytesOut = s.pubs[i].BytesOut()
			ds.Dropped = s.pubs[i].Dropped()
			ds.Queued = s.pubs[i].Queued()
		}
		st.Destinations = append(st.Destinations, ds)
	}
	return st
}

// endCause explains a failed write by how the session ended.
func (s *Session) endCause(err error) error {
	if c := context.Cause(s.ctx); c != nil && !errors.Is(c, errFinished) {
		return c
	}
	return err
}

func (s *Session) run() {
	defer close(s.outDone)
	err := s.pump()
	if err != nil {
		s.cancel(err)
		_ = s.pr.CloseWithError(err) // unblock Write
	}
	if s.starter != nil {
		<-s.starter // ends at once once the context is done
	}
	graceful := err == nil && s.ctx.Err() == nil
	s.mu.Lock()
	encs, pubs := s.encs, s.pubs
	s.mu.Unlock()
	for _, enc := range encs {
		if graceful {
			enc.Finish(2 * time.Second)
		} else {
			enc.Close()
		}
	}
	s.mu.Lock()
	if s.merge != nil && graceful {
		s.merge.flush()
	}
	s.mu.Unlock()
	for _, p := range pubs {
		if graceful {
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

// pump reads the browser's stream to its end. It returns nil at a clean end.
func (s *Session) pump() error {
	d, err := s.NewDemuxer(s.pr)
	if err != nil {
		return s.demuxErr(err)
	}
	in, err := d.Tracks()
	if err != nil {
		return s.demuxErr(err)
	}
	var pass, encode []*media.Track
	var video, audio *media.Track
	for _, t := range in {
		switch {
		case t.Codec == media.CodecH264 && s.Profile != nil:
			encode = append(encode, t) // resized
		case t.Codec == media.CodecH264, t.Codec == media.CodecAAC:
			if (t.Codec.IsVideo() && video == nil) || (!t.Codec.IsVideo() && audio == nil) {
				pass = append(pass, t)
			}
		case t.Codec == media.CodecOpus, t.Codec == media.CodecVP8, t.Codec == media.CodecVP9, t.Codec == media.CodecAV1:
			encode = append(encode, t)
		}
		if t.Codec.IsVideo() && video == nil {
			video = t
		} else if !t.Codec.IsVideo() && audio == nil {
			audio = t
		}
	}
	for _, t := range in {
		s.Log.Info("input track", "track", t.String(), "passthrough", contains(pass, t))
	}
	encodeOnly := make([]*media.Track, 0, len(encode))
	for _, t := range encode {
		if t == video || t == audio { // first track of each kind only
			encodeOnly = append(encodeOnly, t)
		}
	}
	// One encoder per track: audio and video restart independently (a
	// restarted video encoder waits for a key frame, which a browser may
	// send rarely; audio must not wait with it).
	encs := make(map[*media.Track]*transcode.Encoder, len(encodeOnly))
	for _, t := range encodeOnly {
		opts := s.Encode
		if p := s.Profile; p != nil {
			opts.Width, opts.Height, opts.FPS = p.Width, p.Height, p.FPS
			opts.VideoBitrate, opts.AudioBitrate, opts.KeyframeInterval = p.VideoBitrate, p.AudioBitrate, p.KeyframeInterval
		}
		enc := &transcode.Encoder{Path: s.FFmpegPath, Options: opts, Inputs: []*media.Track{t},
			Log: s.Log.With("component", "encoder", "input", t.Codec.String()), OnPacket: s.deliver}
		if err := enc.Start(s.ctx); err != nil {
			return fmt.Errorf("%w: %v", ErrEncoderFailed, err)
		}
		s.mu.Lock()
		encs[t] = enc
		s.encs = encs
		s.mu.Unlock()
	}

	// Publishing starts when every output track is known: at once when
	// everything passes through, else when the encoders' output begins.
	s.starter = make(chan struct{})
	if len(encs) == 0 {
		close(s.starter)
		if err := s.startPublishing(pass, encs); err != nil {
			return err
		}
	} else {
		go s.startWhenReady(pass, encs) // owned by the session: pump waits for starter
	}
	for {
		pkt, err := d.ReadPacket()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return s.endOfInput(encs)
			}
			if s.ctx.Err() != nil {
				return nil
			}
			return s.demuxErr(err)
		}
		if pkt.Track != video && pkt.Track != audio {
			continue
		}
		s.rebase(pkt)
		if contains(pass, pkt.Track) {
			s.deliver(pkt)
			continue
		}
		if err := encs[pkt.Track].WritePacket(pkt); err != nil {
			if s.ctx.Err() != nil && errors.Is(context.Cause(s.ctx), errFinished) {
				return nil
			}
			return fmt.Errorf("%w: %v", ErrEncoderFailed, err)
		}
	}
}

// startWhenReady waits for the encoders' output tracks, then starts the
// publishers. It ends the session if an encoder fails first.
func (s *Session) startWhenReady(pass []*media.Track, encs map[*media.Track]*transcode.Encoder) {
	defer close(s.starter)
	for _, e := range encs {
		select {
		case <-e.TracksReady():
		case <-e.Done():
			select {
			case <-e.TracksReady(): // it made its output and ended: fine
				continue
			default:
			}
			s.cancel(fmt.Errorf("%w: %v", ErrEncoderFailed, e.Err()))
			return
		case <-s.ctx.Done():
			return
		}
	}
	if err := s.startPublishing(pass, encs); err != nil {
		s.cancel(err)
	}
}

// endOfInput handles the end of the browser's stream: a short broadcast
// may end before the encoders' output began, so their input is closed to
// make them flush, and publishing starts (late) if it had not.
func (s *Session) endOfInput(encs map[*media.Track]*transcode.Encoder) error {
	for _, e := range encs {
		e.CloseInput()
	}
	t := time.NewTimer(finishTimeout)
	defer t.Stop()
	select {
	case <-s.starter:
	case <-t.C:
		s.cancel(fmt.Errorf("%w: no output at the end of the stream", ErrEncoderFailed))
		<-s.starter
	}
	if c := context.Cause(s.ctx); c != nil && !errors.Is(c, errFinished) {
		return c
	}
	return nil
}

// deliver hands a packet to the merger, or keeps it until the publishers
// start. Safe for concurrent use (the demuxer and the encoders call it).
func (s *Session) deliver(pkt *media.Packet) {
	s.mu.Lock()
	// RTMP carries no negative time, and a track's time must not go back
	// (an encoder's first packet can land just before zero, a restarted
	// encoder repeat a timestamp): such packets are dropped.
	if last, ok := s.lastDTS[pkt.Track]; pkt.DTS < 0 || (ok && pkt.DTS < last) {
		s.mu.Unlock()
		return
	}
	if s.lastDTS == nil {
		s.lastDTS = make(map[*media.Track]time.Duration)
	}
	s.lastDTS[pkt.Track] = pkt.DTS
	m := s.merge
	if m == nil {
		s.pendingSize += pkt.Size()
		if len(s.pending) >= maxPending || s.pendingSize > maxPendingBytes {
			s.mu.Unlock()
			s.cancel(fmt.Errorf("%w: its output did not begin", ErrEncoderFailed))
			return
		}
		s.pending = append(s.pending, pkt)
		s.mu.Unlock()
		return
	}
	s.mu.Unlock()
	m.push(pkt, time.Now())
}

// rebase moves the demuxer's clock so that the broadcast starts at tsBase.
func (s *Session) rebase(pkt *media.Packet) {
	if !s.haveBase {
		s.base, s.haveBase = pkt.DTS-tsBase, true
	}
	pkt.PTS -= s.base
	pkt.DTS -= s.base
	if pkt.DTS < 0 { // an early packet of the other track: clamp
		pkt.PTS -= pkt.DTS
		pkt.DTS = 0
	}
}

func (s *Session) demuxErr(err error) error {
	if s.ctx.Err() != nil {
		return nil
	}
	if errors.Is(err, io.EOF) && s.bytesIn.Load() == 0 {
		return nil // ended before any media: nothing to tell
	}
	return fmt.Errorf("%w: %v", ErrBadMedia, err)
}

// startPublishing creates the publishers once every output track is known.
func (s *Session) startPublishing(pass []*media.Track, encs map[*media.Track]*transcode.Encoder) error {
	var out []*media.Track
	for _, e := range encs {
		out = append(out, e.OutputTracks()...)
	}
	out = append(out, pass...)
	// Video first, as RTMP servers expect.
	var tracks []*media.Track
	for _, t := range out {
		if t.Codec.IsVideo() {
			tracks = append(tracks, t)
		}
	}
	for _, t := range out {
		if !t.Codec.IsVideo() {
			tracks = append(tracks, t)
		}
	}
	for _, t := range tracks {
		s.Log.Info("output track", "track", t.String())
	}
	if len(tracks) == 0 {
		return fmt.Errorf("%w: no audio or video track livegate can send", ErrBadMedia)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
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
			return err
		}
		s.pubs = append(s.pubs, p)
	}
	lastOut := make([]uint64, len(s.pubs))
	lastDrop := make([]uint64, len(s.pubs))
	pubs := s.pubs
	s.merge = newMerger(tracks, mergeHold, func(pkt *media.Packet) {
		if s.firstPacket.Load() == 0 {
			s.firstPacket.Store(time.Now().UnixNano())
		}
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
	})
	for _, p := range s.pending {
		s.merge.push(p, time.Now())
	}
	s.pending, s.pendingSize = nil, 0
	return nil
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

func contains(l []*media.Track, t *media.Track) bool {
	for _, x := range l {
		if x == t {
			return true
		}
	}
	return false
}
