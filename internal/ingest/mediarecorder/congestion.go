package mediarecorder

import (
	"time"

	"github.com/livegate/livegate/internal/publish"
)

// congestion turns what the server sees of its own side into bitrate
// targets for the browser: when a live destination falls behind (more
// than half a second of media queued) or drops packets, the target goes down
// to 70% of what arrives, and to half of what that destination took over
// the last second if that is less (so that its backlog drains, at half
// its rate); after 5 calm seconds it goes up by 20% every 2 s, and is lifted
// altogether once it is well above what arrives. The browser clamps it to
// its own range (a WebCodecs encoder changes its bitrate live; a
// MediaRecorder client restarts its recorder).
type congestion struct {
	target    uint64    // bits/s; 0: no limit asked
	calmSince time.Time // the last time a destination was behind
	lastRaise time.Time
	lastDrop  map[string]uint64
}

const (
	congestionCalm = 5 * time.Second
	// raiseEvery: once calm, the target rises by a fifth this often, so
	// that a stream cut to a quarter is back in about 15 s.
	raiseEvery = 2 * time.Second
	minTarget  = 150_000
	// behindAfter: a destination with more media than this queued is
	// behind.
	behindAfter = 500 * time.Millisecond
)

// update returns the new target and true when the browser should be told.
// bitrateIn is what arrived from the browser over the last second; dests
// are the destinations' figures of the same second.
func (c *congestion) update(now time.Time, bitrateIn uint64, dests []destinationStats) (uint64, bool) {
	if c.lastDrop == nil {
		c.lastDrop = make(map[string]uint64)
	}
	behind := false
	t := bitrateIn * 7 / 10
	for _, d := range dests {
		dropped := d.Dropped > c.lastDrop[d.Name]
		c.lastDrop[d.Name] = d.Dropped
		if d.State != string(publish.StateLive) {
			continue // a reconnecting destination drops by design
		}
		if dropped || time.Duration(d.QueuedMS)*time.Millisecond > behindAfter {
			behind = true
			if d.BitrateOut > 0 {
				t = min(t, d.BitrateOut/2)
			}
		}
	}
	switch {
	case behind && bitrateIn > 0:
		t = max(t, minTarget)
		c.calmSince = now
		if c.target == 0 || t < c.target*9/10 {
			c.target = t
			return t, true
		}
	case c.target != 0 && now.Sub(c.calmSince) >= congestionCalm && now.Sub(c.lastRaise) >= raiseEvery:
		c.lastRaise = now
		if c.target > 2*max(bitrateIn, minTarget) {
			c.target = 0 // far above what the browser sends: no limit
		} else {
			c.target = c.target * 6 / 5
		}
		return c.target, true
	}
	return 0, false
}
