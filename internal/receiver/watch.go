package receiver

import (
	"context"
	"fmt"

	"github.com/livegate/livegate/internal/media"
)

const (
	// DefaultMaxWatchers is the number of watchers a stream takes when
	// Receiver.MaxWatchers is 0.
	DefaultMaxWatchers = 8
	// watchQueue is a watcher's channel capacity: about 3 s of a 30 fps
	// stream with AAC audio.
	watchQueue = 256
)

// Watcher is one subscription to a live stream's packets: what an RTMP
// player of the stream would get. Make one with Receiver.Watch.
//
// The stream's connection goroutine hands each packet to C without ever
// waiting: when C is full the packet is dropped and counted, and after a
// dropped video packet the watcher skips to the next key frame (counting
// what it skips), so that what it gets always decodes.
type Watcher struct {
	// Video is the H.264 track (SPS and PPS) and Audio the AAC track
	// (AudioSpecificConfig); either is nil when the stream has none.
	// Packets carry one of them as their Track.
	Video, Audio *media.Track
	// C delivers the packets, starting at a video key frame (at once for
	// a stream without video). The packets and their payloads are shared:
	// read them, never change them. C is closed when the watch ends: the
	// stream ended, the context was cancelled, Close was called, or the
	// video format changed; Err then says which.
	C <-chan *media.Packet

	c    chan *media.Packet
	st   *streamState
	stop func() bool // unregisters the context's AfterFunc

	// Guarded by st.wmu.
	started bool // has had its first key frame
	synced  bool // delivers: started and nothing dropped since the last key frame
	dropped uint64
	err     error
}

// Watch subscribes to the active stream whose path (for example
// "live/local") is exactly path. The watch lasts until ctx is cancelled,
// Close is called or the stream ends; it starts no goroutine of its own
// (the context's end is noticed with context.AfterFunc). Errors:
// ErrNoStream, ErrTooManyWatchers, ErrNotWatchable, or ctx's error.
func (r *Receiver) Watch(ctx context.Context, path string) (*Watcher, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	st := r.activeStream(path)
	if st == nil {
		return nil, fmt.Errorf("%w: %q", ErrNoStream, path)
	}
	st.wmu.Lock()
	defer st.wmu.Unlock()
	switch {
	case st.ended:
		return nil, fmt.Errorf("%w: %q", ErrNoStream, path)
	case st.video == nil && st.audio == nil:
		return nil, ErrNotWatchable
	case len(st.watchers) >= st.maxWatchers:
		return nil, fmt.Errorf("%w (%d)", ErrTooManyWatchers, st.maxWatchers)
	}
	w := &Watcher{Video: st.video, Audio: st.audio, c: make(chan *media.Packet, watchQueue), st: st}
	w.C = w.c
	st.watchers[w] = struct{}{}
	// If ctx is already done, the function runs at once on its own
	// goroutine and waits for wmu: the watcher is in place by then.
	w.stop = context.AfterFunc(ctx, func() { st.removeWatcher(w, context.Cause(ctx)) })
	return w, nil
}

// activeStream is the newest active stream with that exact path.
func (r *Receiver) activeStream(path string) *streamState {
	r.mu.Lock()
	defer r.mu.Unlock()
	var found *streamState
	for _, s := range r.streams {
		if s.Path == path && s.active() && (found == nil || s.StartedAt.After(found.StartedAt)) {
			found = s
		}
	}
	return found
}

// Close ends the watch (C is closed, Err is ErrWatchClosed). It may be
// called more than once, and after the watch ended by itself.
func (w *Watcher) Close() { w.st.removeWatcher(w, ErrWatchClosed) }

// Dropped is the number of packets the watcher lost because it did not
// read C fast enough (packets that found C full, and those skipped after
// them up to the next key frame).
func (w *Watcher) Dropped() uint64 {
	w.st.wmu.Lock()
	defer w.st.wmu.Unlock()
	return w.dropped
}

// Err says why the watch ended; nil while it goes on.
func (w *Watcher) Err() error {
	w.st.wmu.Lock()
	defer w.st.wmu.Unlock()
	return w.err
}

// offer hands pkt over without waiting. Called with st.wmu held.
func (w *Watcher) offer(pkt *media.Packet) {
	isVideo := pkt.Track == w.Video
	if !w.synced {
		if w.Video != nil && !(isVideo && pkt.Key) {
			if w.started {
				w.dropped++
			}
			return
		}
		w.started, w.synced = true, true
	}
	select {
	case w.c <- pkt:
	default:
		w.dropped++
		if isVideo {
			// The next pictures refer to this one: wait for a key frame.
			w.synced = false
		}
	}
}

// finish ends the watch with err. Called with st.wmu held, once: the
// caller takes w out of st.watchers.
func (w *Watcher) finish(err error) {
	w.err = err
	close(w.c)
	w.stop()
}

func (s *streamState) removeWatcher(w *Watcher, err error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if _, ok := s.watchers[w]; !ok {
		return // already ended
	}
	delete(s.watchers, w)
	w.finish(err)
}

// hasWatchers tells whether a packet would go anywhere.
func (s *streamState) hasWatchers() bool {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	return len(s.watchers) > 0
}

// deliver offers a packet to every watcher.
func (s *streamState) deliver(pkt *media.Packet) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	for w := range s.watchers {
		w.offer(pkt)
	}
}

// changeVideo takes new H.264 parameter sets: later watchers get the new
// track, current ones end with ErrFormatChanged (their init segment no
// longer describes the stream).
func (s *streamState) changeVideo(t *media.Track) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.video = t
	for w := range s.watchers {
		w.finish(ErrFormatChanged)
	}
	clear(s.watchers)
}
