package receiver

import (
	"slices"
	"time"
)

const (
	// statsWindow is the span of the bit rate and of the arrival delay.
	statsWindow = 2 * time.Second
	// maxWindowSamples bounds a window's memory whatever the message rate
	// of a publisher; beyond it the window covers less than statsWindow.
	maxWindowSamples = 4096
)

type sample struct {
	at time.Time
	v  int64
}

// window holds the samples of the last statsWindow (by the time of the
// newest) and the newest sample before them, which is the base of a rate.
type window struct {
	s []sample
}

func (w *window) add(at time.Time, v int64) {
	w.s = append(w.s, sample{at: at, v: v})
	cut := at.Add(-statsWindow)
	i := 0
	for i+1 < len(w.s) && !w.s[i+1].at.After(cut) {
		i++
	}
	if n := len(w.s) - maxWindowSamples; n > i {
		i = n
	}
	// Reslicing, not copying: append moves the live part to a new array
	// when the old one is used up.
	w.s = w.s[i:]
}

// rate is the growth of v per second over the statsWindow that ends at
// end: v is a running total, so (v now - v then) / elapsed.
func (w *window) rate(end time.Time) float64 {
	if len(w.s) < 2 {
		return 0
	}
	last := w.s[len(w.s)-1]
	cut := end.Add(-statsWindow)
	base := w.s[0]
	for _, x := range w.s {
		if x.at.After(cut) {
			break
		}
		base = x
	}
	d := end.Sub(base.at)
	if d <= 0 || last.v <= base.v {
		return 0
	}
	return float64(last.v-base.v) / d.Seconds()
}

// median is the middle value of the samples of the last statsWindow.
func (w *window) median() (int64, bool) {
	if len(w.s) == 0 {
		return 0, false
	}
	cut := w.s[len(w.s)-1].at.Add(-statsWindow)
	vs := make([]int64, 0, len(w.s))
	for _, x := range w.s {
		if x.at.After(cut) {
			vs = append(vs, x.v)
		}
	}
	slices.Sort(vs)
	return vs[len(vs)/2], true
}
