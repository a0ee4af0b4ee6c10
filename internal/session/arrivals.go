package session

import (
	"sync"
	"time"
)

// arrivalLog remembers when an encoder's input packets arrived, so that
// its output packets can be given the arrival time of the input they came
// from (matched by time: the encoder keeps its input's timestamps).
type arrivalLog struct {
	mu sync.Mutex
	q  []arrival // in time order
}

type arrival struct {
	pts time.Duration
	at  time.Time
}

// maxArrivals bounds the log: far more than an encoder holds (its lag is
// tens of milliseconds), so only a stalled encoder's input is forgotten.
const maxArrivals = 512

func (l *arrivalLog) add(pts time.Duration, at time.Time) {
	l.mu.Lock()
	if len(l.q) >= maxArrivals {
		l.q = append(l.q[:0], l.q[len(l.q)/2:]...)
	}
	l.q = append(l.q, arrival{pts, at})
	l.mu.Unlock()
}

// find returns when the input holding time pts arrived: that of the
// latest input at or before pts. Outputs come in time order, so inputs
// before that one are forgotten.
func (l *arrivalLog) find(pts time.Duration) time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	i := 0
	for i+1 < len(l.q) && l.q[i+1].pts <= pts {
		i++
	}
	if i > 0 {
		l.q = append(l.q[:0], l.q[i:]...)
	}
	if len(l.q) == 0 {
		return time.Time{}
	}
	return l.q[0].at
}
