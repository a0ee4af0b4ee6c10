package session

import (
	"sync"
	"time"

	"github.com/livegate/livegate/internal/media"
)

// merger puts packets from several producers (the demuxer's passthrough
// tracks, the encoder's output) back in timestamp order before they go to
// the publishers: RTMP servers and players expect audio and video
// interleaved by time, and the encoder's output lags its input by tens of
// milliseconds. A packet waits until every track has one queued, or until
// it has waited maxHold (a track that pauses must not stall the others): a
// timer releases it then, even if nothing else arrives (a MediaRecorder's
// chunk, or an MP4 fragment, brings many frames at once and then nothing
// for up to a second).
type merger struct {
	maxHold time.Duration
	emit    func(*media.Packet) // called with mu held, in DTS order

	mu      sync.Mutex
	queues  map[*media.Track][]held
	timer   *time.Timer // releases the oldest packet when its hold is over
	stopped bool
}

type held struct {
	pkt *media.Packet
	at  time.Time
}

func newMerger(tracks []*media.Track, maxHold time.Duration, emit func(*media.Packet)) *merger {
	m := &merger{maxHold: maxHold, emit: emit, queues: make(map[*media.Track][]held, len(tracks))}
	for _, t := range tracks {
		m.queues[t] = nil
	}
	return m
}

// push queues a packet and emits what is ready. Safe for concurrent use.
func (m *merger) push(pkt *media.Packet, now time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.queues[pkt.Track]; !ok {
		return // not a track of this broadcast
	}
	m.queues[pkt.Track] = append(m.queues[pkt.Track], held{pkt, now})
	m.release(now, false)
	m.arm(now)
}

// arm sets the timer for the oldest packet held. Called with mu held.
func (m *merger) arm(now time.Time) {
	var oldest time.Time
	for _, q := range m.queues {
		if len(q) > 0 && (oldest.IsZero() || q[0].at.Before(oldest)) {
			oldest = q[0].at
		}
	}
	if m.stopped || oldest.IsZero() {
		if m.timer != nil {
			m.timer.Stop()
		}
		return
	}
	d := max(oldest.Add(m.maxHold).Sub(now), time.Millisecond)
	if m.timer == nil {
		m.timer = time.AfterFunc(d, m.expire)
	} else {
		m.timer.Reset(d)
	}
}

func (m *merger) expire() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.stopped {
		return
	}
	now := time.Now()
	m.release(now, false)
	m.arm(now)
}

// stop ends the timer: nothing is emitted after stop returns (the
// publishers may be finished then).
func (m *merger) stop() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.stopped = true
	if m.timer != nil {
		m.timer.Stop()
	}
}

// flush emits everything queued, in order (at the end of a broadcast).
func (m *merger) flush() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.release(time.Time{}, true)
}

func (m *merger) release(now time.Time, all bool) {
	for {
		var first *media.Track
		ready := true
		for t, q := range m.queues {
			if len(q) == 0 {
				ready = false
				continue
			}
			if first == nil || q[0].pkt.DTS < m.queues[first][0].pkt.DTS {
				first = t
			}
		}
		if first == nil {
			return
		}
		head := m.queues[first][0]
		if !ready && !all && now.Sub(head.at) < m.maxHold {
			return
		}
		m.queues[first] = m.queues[first][1:]
		m.emit(head.pkt)
	}
}
