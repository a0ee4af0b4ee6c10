package transcode

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/livegate/livegate/internal/demux/flv"
	"github.com/livegate/livegate/internal/media"
)

const (
	// tsOffset is added to every timestamp going into ffmpeg and taken off
	// what comes out: the AAC encoder's priming puts its first packet
	// 1024 samples before its input, and FLV cannot carry a negative time.
	tsOffset = 10 * time.Second
	// restartPause is the wait before a dead encoder is started again.
	restartPause = 200 * time.Millisecond
	// maxRestarts within restartWindow before the encoder is given up.
	maxRestarts   = 5
	restartWindow = time.Minute
)

// ErrEncoderGaveUp: the encoder died too often.
var ErrEncoderGaveUp = errors.New("the encoder keeps failing")

// Encoder does a broadcast's codec work in a supervised ffmpeg child:
// packets of the tracks that must change (Opus, VP8...) go in, H.264 and
// AAC packets come out on the same clock. If ffmpeg dies it is started
// again and the broadcast goes on; the output tracks stay the same objects.
//
// Set the fields, Start, WritePacket from one goroutine, Close.
type Encoder struct {
	Path    string
	Options Options // Input and KeepTimestamps are set by the Encoder
	Inputs  []*media.Track
	Log     *slog.Logger
	// OnPacket receives each output packet, from the Encoder's goroutine.
	OnPacket func(*media.Packet)
	// OnRestart, when set, is called from the Encoder's goroutine each time ffmpeg has
	// been started again after it died (metrics).
	OnRestart func()

	ctx      context.Context
	cancel   context.CancelCauseFunc
	done     chan struct{}
	tracksCh chan struct{} // closed when the output tracks are known
	tracks   []*media.Track
	restarts atomic.Int64
	dropped  atomic.Uint64

	mu      sync.Mutex
	cur     *Process // nil between processes
	mkv     *mkvWriter
	needKey bool // after a restart, video waits for a key frame
	closing bool // CloseInput was called: no more input, no restart
	avcc    []byte

	curMu    sync.Mutex // guards proc only, so that Close never waits on a write
	proc     *Process
	cpuSpent time.Duration
}

// Start starts ffmpeg and the goroutine that supervises it.
func (e *Encoder) Start(ctx context.Context) error {
	if len(e.Inputs) == 0 {
		return errors.New("transcode: nothing to encode")
	}
	for _, t := range e.Inputs {
		if _, err := codecID(t.Codec); err != nil {
			return err
		}
	}
	e.Options.Input = InputMatroska
	e.Options.KeepTimestamps = true
	e.Options.Video, e.Options.Audio = false, false
	for _, t := range e.Inputs {
		if t.Codec.IsVideo() {
			e.Options.Video = true
		} else {
			e.Options.Audio = true
		}
	}
	if err := e.Options.Validate(); err != nil {
		return err
	}
	e.ctx, e.cancel = context.WithCancelCause(ctx)
	e.done = make(chan struct{})
	e.tracksCh = make(chan struct{})
	p, err := e.startProcess(false)
	if err != nil {
		e.cancel(err)
		close(e.done)
		return err
	}
	go e.run(p) // owned by the Encoder: Close waits for done
	return nil
}

func (e *Encoder) startProcess(restart bool) (*Process, error) {
	// Hold the lock while ffmpeg starts: WritePacket waits rather than
	// dropping what comes meanwhile.
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.ctx.Err(); err != nil {
		return nil, err // closed meanwhile: start nothing that would wait for input
	}
	// A restarted video encoder must begin at a key frame.
	e.needKey = restart
	p := &Process{Path: e.Path, Options: e.Options, Log: e.Log}
	if err := p.Start(); err != nil {
		return nil, err
	}
	mkv := &mkvWriter{w: bufio.NewWriterSize(p.Stdin(), 64*1024), tracks: e.Inputs}
	if err := mkv.writeHeader(); err != nil {
		p.Close(0)
		return nil, err
	}
	e.cur, e.mkv = p, mkv
	e.curMu.Lock()
	e.proc = p
	e.curMu.Unlock()
	return p, nil
}

// WritePacket sends one input packet to ffmpeg. Packets of a track not in
// Inputs are ignored. While ffmpeg restarts, packets are dropped (and
// counted); video resumes at the next key frame.
func (e *Encoder) WritePacket(pkt *media.Packet) error {
	ti := -1
	for i, t := range e.Inputs {
		if t == pkt.Track {
			ti = i
		}
	}
	if ti < 0 {
		return nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.ctx.Err() != nil {
		return context.Cause(e.ctx)
	}
	if e.cur == nil || (e.needKey && pkt.Track.Codec.IsVideo() && !pkt.Key) {
		e.dropped.Add(1)
		return nil
	}
	if pkt.Track.Codec.IsVideo() {
		e.needKey = false
	}
	data := pkt.Data
	if pkt.Track.Codec == media.CodecH264 {
		e.avcc = media.AppendAVCC(e.avcc[:0], pkt.AU)
		data = e.avcc
	}
	err := e.mkv.writePacket(ti, pkt.PTS+tsOffset, pkt.Key, data)
	if err == nil {
		err = e.mkv.w.(*bufio.Writer).Flush()
	}
	if err != nil {
		// ffmpeg is gone; the supervisor restarts it.
		e.dropped.Add(1)
		e.cur = nil
	}
	return nil
}

// TracksReady is closed when the output tracks are known.
func (e *Encoder) TracksReady() <-chan struct{} { return e.tracksCh }

// OutputTracks are the output tracks; valid once TracksReady is closed.
func (e *Encoder) OutputTracks() []*media.Track { return e.tracks }

// Tracks waits for the output tracks (H.264 and/or AAC) of the first
// ffmpeg run.
func (e *Encoder) Tracks(ctx context.Context) ([]*media.Track, error) {
	select {
	case <-e.tracksCh:
		return e.tracks, nil
	case <-e.done:
		if err := e.Err(); err != nil {
			return nil, err
		}
		return nil, errors.New("transcode: the encoder ended before its output began")
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Done is closed when the encoder has stopped for good.
func (e *Encoder) Done() <-chan struct{} { return e.done }

// Err says why the encoder stopped (nil after Close or a clean end).
func (e *Encoder) Err() error {
	if c := context.Cause(e.ctx); c != nil && !errors.Is(c, context.Canceled) && !errors.Is(c, errClosed) {
		return c
	}
	return nil
}

// Restarts is how many times ffmpeg was started again.
func (e *Encoder) Restarts() int { return int(e.restarts.Load()) }

// Dropped is the number of input packets dropped while ffmpeg restarted.
func (e *Encoder) Dropped() uint64 { return e.dropped.Load() }

// CPUTime is the CPU time used by the ffmpeg processes that have ended.
func (e *Encoder) CPUTime() time.Duration {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.cpuSpent
}

// PID is the current ffmpeg's process id (0 between processes).
func (e *Encoder) PID() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.cur == nil {
		return 0
	}
	return e.cur.PID()
}

var errClosed = errors.New("closed")

// CloseInput ends ffmpeg's input: it flushes what it has and ends. Use
// Finish to wait for that.
func (e *Encoder) CloseInput() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.closing = true
	if e.cur != nil {
		_ = e.cur.Stdin().Close()
	}
}

// Finish closes ffmpeg's input so that it flushes what it has, and waits
// up to grace for its output to end; then it stops everything.
func (e *Encoder) Finish(grace time.Duration) {
	e.mu.Lock()
	p := e.cur
	e.mu.Unlock()
	if p != nil {
		_ = p.Stdin().Close()
		t := time.NewTimer(grace)
		select {
		case <-e.done:
		case <-p.Done():
		case <-t.C:
		}
		t.Stop()
	}
	e.Close()
}

// Close stops ffmpeg and waits for the supervisor. ffmpeg gets its end of
// input and a second to go; then its process group is killed.
func (e *Encoder) Close() {
	e.cancel(errClosed)
	// Not under e.mu: a WritePacket blocked on a wedged ffmpeg holds it.
	e.curMu.Lock()
	p := e.proc
	e.curMu.Unlock()
	var wg sync.WaitGroup
	if p != nil {
		wg.Add(1)
		go func() { // ends when the process has; waited for below
			defer wg.Done()
			p.Close(time.Second)
		}()
	}
	<-e.done
	wg.Wait()
}

// run supervises ffmpeg: reads its output, and starts it again when it
// dies, until the context ends.
func (e *Encoder) run(p *Process) {
	defer close(e.done)
	var starts []time.Time
	for {
		err := e.readOutput(p)
		p.Close(time.Second)
		e.mu.Lock()
		e.cpuSpent += p.CPUTime()
		if e.cur == p {
			e.cur = nil
		}
		closing := e.closing
		e.mu.Unlock()
		if e.ctx.Err() != nil {
			return
		}
		if closing {
			// The input had ended: whatever this run made is all there is.
			if err != nil {
				e.Log.Warn("encoder ended with an error after its input ended", "error", err)
			}
			e.cancel(errClosed)
			return
		}
		if err == nil {
			err = p.Err()
		}
		if err == nil {
			// A clean end of output with the input still open: only a
			// Finish does that.
			e.cancel(errClosed)
			return
		}
		now := time.Now()
		starts = append(starts, now)
		for len(starts) > 0 && now.Sub(starts[0]) > restartWindow {
			starts = starts[1:]
		}
		if len(starts) > maxRestarts {
			e.cancel(fmt.Errorf("%w: %d restarts in %v; last: %v", ErrEncoderGaveUp, maxRestarts, restartWindow, err))
			return
		}
		e.Log.Warn("encoder died; starting it again", "error", err, "in", restartPause)
		t := time.NewTimer(restartPause)
		select {
		case <-e.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		np, serr := e.startProcess(true)
		if serr != nil {
			if e.ctx.Err() == nil {
				e.cancel(serr)
			}
			return
		}
		e.restarts.Add(1)
		if e.OnRestart != nil {
			e.OnRestart()
		}
		p = np
	}
}

// readOutput reads one ffmpeg run's FLV output and hands the packets on.
func (e *Encoder) readOutput(p *Process) error {
	r, err := flv.NewReader(p.Stdout())
	if err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			<-p.Done()
			return p.Err()
		}
		return err
	}
	tracks, err := r.Tracks()
	if err != nil {
		<-p.Done()
		if perr := p.Err(); perr != nil {
			return perr
		}
		return err
	}
	// Map this run's tracks onto the first run's, so that publishers keep
	// the tracks they know.
	mapped, err := e.adoptTracks(tracks)
	if err != nil {
		return err
	}
	for {
		pkt, err := r.ReadPacket()
		if err != nil {
			if errors.Is(err, io.EOF) {
				<-p.Done()
				return p.Err()
			}
			return err
		}
		pkt.Track = mapped[pkt.Track]
		pkt.PTS -= tsOffset
		pkt.DTS -= tsOffset
		e.OnPacket(pkt)
	}
}

func (e *Encoder) adoptTracks(tracks []*media.Track) (map[*media.Track]*media.Track, error) {
	m := make(map[*media.Track]*media.Track, len(tracks))
	select {
	case <-e.tracksCh:
	default:
		e.tracks = tracks
		for _, t := range tracks {
			m[t] = t
		}
		close(e.tracksCh)
		return m, nil
	}
	if len(tracks) != len(e.tracks) {
		return nil, fmt.Errorf("transcode: the restarted encoder gives %d tracks, not %d", len(tracks), len(e.tracks))
	}
	for i, t := range tracks {
		old := e.tracks[i]
		if !sameConfig(old, t) {
			return nil, fmt.Errorf("transcode: the restarted encoder changed the %v configuration", t.Codec)
		}
		m[t] = old
	}
	return m, nil
}

func sameConfig(a, b *media.Track) bool {
	if a.Codec != b.Codec {
		return false
	}
	switch a.Codec {
	case media.CodecAAC:
		return a.AAC != nil && b.AAC != nil && *a.AAC == *b.AAC
	case media.CodecH264:
		return string(a.SPS) == string(b.SPS) && string(a.PPS) == string(b.PPS)
	}
	return true
}
