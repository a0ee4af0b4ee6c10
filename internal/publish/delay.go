package publish

import (
	"slices"
	"sync"
	"time"
)

// delayWindow keeps the latest packets' delays, enough for a second of a
// 60 fps stream with its audio, to report a median and a maximum.
type delayWindow struct {
	mu   sync.Mutex
	at   [256]time.Time
	d    [256]time.Duration
	next int
}

func (w *delayWindow) add(now time.Time, d time.Duration) {
	w.mu.Lock()
	w.at[w.next], w.d[w.next] = now, d
	w.next = (w.next + 1) % len(w.at)
	w.mu.Unlock()
}

// summary gives the median and largest of the delays recorded within span
// of now.
func (w *delayWindow) summary(now time.Time, span time.Duration) (median, largest time.Duration) {
	var buf [256]time.Duration
	l := buf[:0]
	w.mu.Lock()
	for i, at := range w.at {
		if !at.IsZero() && now.Sub(at) <= span {
			l = append(l, w.d[i])
		}
	}
	w.mu.Unlock()
	if len(l) == 0 {
		return 0, 0
	}
	slices.Sort(l)
	return l[len(l)/2], l[len(l)-1]
}
