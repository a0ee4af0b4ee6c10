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
	"bytes"
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
	// packets of the same time. The audio encoder lags its input by 25-45
	// ms, after a 60 ms Opus packet has come whole: waiting for all of it
	// (150 ms) made the server's delay p99 150 ms and WebCodecs' glass-to-
	// RTMP 146 ms. At 80 ms, audio may follow video of a later time by a
	// few tens of milliseconds, which RTMP servers and players take (each
	// track's own time still only goes forward).
	mergeHold = 80 * time.Millisecond
	// tsBase is where the broadcast's clock starts: a little above zero so
	// that the AAC encoder's priming, which puts its first packet before
	// its input, never goes negative (RTMP cannot carry that).
	tsBase = 200 * time.Millisecond
	// minRestartGap is the least time between the last packet of a stream
	// and the first of the next one begun by Restart.
	minRestartGap = 80 * time.Millisecond
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
	// QueuedDuration is the media time waiting for the destination.
	QueuedDuration time.Duration
	// DelayMedian and DelayMax: from arrival at livegate to the write to
	// the destination, over the last second.
	DelayMedian, DelayMax time.Duration
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
	// Restarts counts the new streams begun inside the broadcast (Restart).
	Restarts int
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
	outDone chan struct{}
	bytesIn atomic.Uint64
	// lastWrite is when the latest media bytes arrived (unix ns): the
	// arrival time of the packets they complete.
	lastWrite atomic.Int64
	// next carries the reader of the stream a Restart began to the pump,
	// which takes it when the current stream has been read to its end.
	next chan *io.PipeReader
	// arrivals, per transcoded input track, for the encoders' output.
	arrivals map[*media.Track]*arrivalLog

	mu          sync.Mutex
	pw          *io.PipeWriter   // the current stream's input
	pipes       []*io.PipeReader // every stream's reader, closed at the end
	restarts    int
	restartGap  time.Duration                       // for the stream the latest Restart began
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
	maxDTS      time.Duration // the latest time handed on, on the broadcast's clock
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
	pr, pw := io.Pipe()
	s.pw, s.pipes = pw, []*io.PipeReader{pr}
	s.next = make(chan *io.PipeReader, 1)
	s.arrivals = make(map[*media.Track]*arrivalLog)
	s.outDone = make(chan struct{})
	go s.run() // owned by the session: Finish/Close wait for outDone
	return nil
}

// Write hands media bytes to the demuxer. It blocks until they are read,
// which slows the browser's socket down rather than buffering here.
func (s *Session) Write(b []byte) error {
	s.lastWrite.Store(time.Now().UnixNano())
	s.mu.Lock()
	pw := s.pw
	s.mu.Unlock()
	if _, err := pw.Write(b); err != nil {
		return fmt.Errorf("session: %w", s.endCause(err))
	}
	s.bytesIn.Add(uint64(len(b)))
	if s.Metrics != nil {
		s.Metrics.BytesIn.Add(float64(len(b)))
	}
	return nil
}

// Restart begins a new stream inside the broadcast: what was written so
// far is read to its end (a stream cut off in the middle is fine), and the
// bytes written next are read with a new demuxer, as a stream of their own
// (a MediaRecorder started again, or a client that resumed after a network
// loss). The new stream must have the broadcast's codecs. Its time goes on
// from the broadcast's: if its clock started again, it is placed after the
// latest packet, by gap (the time that passed, as far as the caller
// knows; at least 80 ms, the length of the longest packets). Call Restart
// from the goroutine that calls Write.
func (s *Session) Restart(gap time.Duration) error {
	if s.bytesIn.Load() == 0 {
		return nil // nothing was sent yet: the stream has not begun
	}
	pr, pw := io.Pipe()
	select {
	case s.next <- pr:
	default:
		return errors.New("session: the previous restart has not been taken up yet")
	}
	s.mu.Lock()
	old := s.pw
	s.pw = pw
	s.pipes = append(s.pipes, pr)
	s.restarts++
	// At least past the last packets' own length (an Opus packet is up to
	// 60 ms; a video frame 33), so that no track's time stands still.
	s.restartGap = max(gap, minRestartGap)
	s.mu.Unlock()
	if s.Metrics != nil {
		s.Metrics.Restarts.Inc()
	}
	return old.Close()
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
	s.mu.Lock()
	pw := s.pw
	s.mu.Unlock()
	_ = pw.Close()
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
		s.closePipes(errFinished)
		<-s.outDone
	})
}

// closePipes unblocks Write and the demuxer, whichever stream they are on.
func (s *Session) closePipes(err error) {
	s.mu.Lock()
	pipes := s.pipes
	s.mu.Unlock()
	for _, pr := range pipes {
		_ = pr.CloseWithError(err)
	}
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
	st := Stats{BytesIn: s.bytesIn.Load(), Restarts: s.restarts}
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
			ds.QueuedDuration = s.pubs[i].QueuedDuration()
			ds.DelayMedian, ds.DelayMax = s.pubs[i].Delay()
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
		s.closePipes(err) // unblock Write
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
	if s.merge != nil {
		if graceful {
			s.merge.flush()
		}
		s.merge.stop() // before the publishers finish: nothing is pushed after
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
		if s.Metrics != nil {
			s.Metrics.Publishers.WithLabelValues(p.Name).Dec()
		}
	}
}

// pump reads the browser's stream to its end. It returns nil at a clean end.
func (s *Session) pump() error {
	s.mu.Lock()
	pr := s.pipes[0]
	s.mu.Unlock()
	d, in, err := s.openDemuxer(pr)
	if err != nil || d == nil {
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
		arr := &arrivalLog{}
		s.arrivals[t] = arr
		enc := &transcode.Encoder{Path: s.FFmpegPath, Options: opts, Inputs: []*media.Track{t},
			Log: s.Log.With("component", "encoder", "input", t.Codec.String()),
			OnPacket: func(pkt *media.Packet) {
				pkt.Arrived = arr.find(pkt.PTS)
				s.deliver(pkt)
			}}
		if s.Metrics != nil {
			enc.OnRestart = s.Metrics.EncoderRestarts.Inc
		}
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
	seg := &stream{d: d, tracks: map[*media.Track]*media.Track{}}
	if video != nil {
		seg.tracks[video] = video
	}
	if audio != nil {
		seg.tracks[audio] = audio
	}
	for {
		pkt, err := seg.d.ReadPacket()
		if err != nil {
			if s.ctx.Err() != nil {
				return nil
			}
			select {
			case pr := <-s.next: // a Restart: go on with the new stream
				if !errors.Is(err, io.EOF) {
					s.Log.Info("the previous stream was cut off before its end", "error", err)
				}
				st, err := s.openStream(pr, video, audio, pass)
				switch {
				case errors.Is(err, io.EOF):
					return s.endOfInput(encs) // it ended before it began
				case err != nil:
					return err
				case st == nil:
					return nil // stopped meanwhile
				}
				seg = st
				continue
			default:
			}
			if errors.Is(err, io.EOF) {
				return s.endOfInput(encs)
			}
			return s.demuxErr(err)
		}
		t := seg.tracks[pkt.Track]
		if t == nil {
			continue
		}
		pkt.Track = t
		pkt.Arrived = time.Unix(0, s.lastWrite.Load())
		if seg.inband != nil && pkt.Key {
			pkt.AU = seg.withParams(pkt.AU)
		}
		s.rebase(pkt, seg)
		if contains(pass, pkt.Track) {
			s.deliver(pkt)
			continue
		}
		s.arrivals[pkt.Track].add(pkt.PTS, pkt.Arrived)
		if err := encs[pkt.Track].WritePacket(pkt); err != nil {
			if s.ctx.Err() != nil && errors.Is(context.Cause(s.ctx), errFinished) {
				return nil
			}
			return fmt.Errorf("%w: %v", ErrEncoderFailed, err)
		}
	}
}

// stream is one of the streams a broadcast is made of (see Restart).
type stream struct {
	d media.Demuxer
	// tracks maps the stream's tracks onto the broadcast's.
	tracks map[*media.Track]*media.Track
	// rebased: the stream's clock has been placed on the broadcast's.
	rebased bool
	// inband holds SPS and PPS to put in front of each key frame, when
	// the stream's passthrough H.264 parameters differ from those the
	// destinations were given at connection time.
	inband [][]byte
}

// withParams puts the stream's SPS and PPS in front of a key frame's NAL
// units, unless it already carries an SPS.
func (st *stream) withParams(au [][]byte) [][]byte {
	for _, n := range au {
		if len(n) > 0 && n[0]&0x1f == 7 {
			return au
		}
	}
	return append(append(make([][]byte, 0, len(au)+2), st.inband...), au...)
}

// openDemuxer reads a stream's header. A stream cut off before its header
// was complete gives way to the next one, if a Restart has begun one. It
// returns no demuxer and no error when the session is stopped meanwhile.
func (s *Session) openDemuxer(pr *io.PipeReader) (media.Demuxer, []*media.Track, error) {
	for {
		d, err := s.NewDemuxer(pr)
		var in []*media.Track
		if err == nil {
			in, err = d.Tracks()
		}
		if err == nil {
			return d, in, nil
		}
		if s.ctx.Err() != nil {
			return nil, nil, nil
		}
		select {
		case pr = <-s.next:
		default:
			return nil, nil, err
		}
	}
}

// openStream reads the header of a stream begun by Restart and maps its
// tracks onto the broadcast's, which it must match.
func (s *Session) openStream(pr *io.PipeReader, video, audio *media.Track, pass []*media.Track) (*stream, error) {
	d, in, err := s.openDemuxer(pr)
	switch {
	case d == nil && err == nil:
		return nil, nil // stopped meanwhile
	case errors.Is(err, io.EOF):
		return nil, io.EOF
	case err != nil:
		return nil, fmt.Errorf("%w: %v", ErrBadMedia, err)
	}
	st := &stream{d: d, tracks: make(map[*media.Track]*media.Track, 2)}
	var gotVideo, gotAudio bool
	for _, t := range in {
		want, got := audio, &gotAudio
		if t.Codec.IsVideo() {
			want, got = video, &gotVideo
		}
		if want == nil || *got {
			continue // a kind the broadcast does not carry, or a second track of one
		}
		*got = true
		if t.Codec != want.Codec {
			return nil, fmt.Errorf("%w: a new stream must keep the broadcast's codecs (it had %v, the new stream has %v)", ErrBadMedia, want.Codec, t.Codec)
		}
		st.tracks[t] = want
		if t.Codec == media.CodecH264 && contains(pass, want) && len(t.SPS) > 0 &&
			(!bytes.Equal(t.SPS, want.SPS) || !bytes.Equal(t.PPS, want.PPS)) {
			s.Log.Info("the new stream's H.264 parameters differ; they go in band with each key frame")
			st.inband = [][]byte{t.SPS, t.PPS}
		}
	}
	s.Log.Info("new stream in the broadcast", "tracks", len(st.tracks))
	return st, nil
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
	// RTMP carries no negative time, and a track's time must go forward
	// (an encoder's first packet can land just before zero, a restarted
	// encoder or stream repeat a timestamp): such packets are dropped.
	if last, ok := s.lastDTS[pkt.Track]; pkt.DTS < 0 || (ok && pkt.DTS <= last) {
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

// rebase moves the demuxer's clock onto the broadcast's, which starts at
// tsBase. A stream begun by Restart whose clock went on (WebCodecs) keeps
// its times; one whose clock started again (a new MediaRecorder) is placed
// after the latest packet by the restart's gap.
func (s *Session) rebase(pkt *media.Packet, st *stream) {
	if !st.rebased {
		st.rebased = true
		switch {
		case !s.haveBase:
			s.base, s.haveBase = pkt.DTS-tsBase, true
		case pkt.DTS-s.base <= s.maxDTS:
			s.mu.Lock()
			gap := s.restartGap
			s.mu.Unlock()
			s.base = pkt.DTS - (s.maxDTS + gap)
		}
	}
	pkt.PTS -= s.base
	pkt.DTS -= s.base
	if pkt.DTS < 0 { // an early packet of the other track: clamp
		pkt.PTS -= pkt.DTS
		pkt.DTS = 0
	}
	s.maxDTS = max(s.maxDTS, pkt.DTS)
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
		if s.Metrics != nil {
			h := s.Metrics.PublishDelay.WithLabelValues(name)
			p.OnDelay = func(d time.Duration) { h.Observe(d.Seconds()) }
		}
		if err := p.Initialize(s.ctx); err != nil {
			return err
		}
		s.pubs = append(s.pubs, p)
		if s.Metrics != nil {
			s.Metrics.Publishers.WithLabelValues(name).Inc()
		}
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
