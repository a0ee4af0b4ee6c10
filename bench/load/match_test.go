package load

import (
	"testing"
	"time"
)

// frames30 makes n sent frames of a stretch at Chromium's 30 fps, with
// its jitter (33 or 34 ms apart), due at t0 + rel.
func frames30(seg, n int, t0 time.Time) []sentFrame {
	var out []sentFrame
	var rel time.Duration
	for i := range n {
		out = append(out, sentFrame{Seg: seg, Rel: rel, Due: t0.Add(rel)})
		rel += 33 * time.Millisecond
		if i%3 == 0 {
			rel += time.Millisecond
		}
	}
	return out
}

// arrive makes what a destination gets of sent: each frame at
// offset(seg) + Rel (rounded to the ms, as RTMP carries it), arriving
// delay after it was due; drop leaves frames out by index.
func arrive(sent []sentFrame, offset func(seg int) time.Duration, delay time.Duration, drop map[int]bool) []arrivedFrame {
	var out []arrivedFrame
	for i, f := range sent {
		if drop[i] {
			continue
		}
		ts := (offset(f.Seg) + f.Rel).Round(time.Millisecond)
		out = append(out, arrivedFrame{TS: ts, At: f.Due.Add(delay)})
	}
	return out
}

func TestMatch(t *testing.T) {
	t0 := time.Unix(1000, 0)
	loop := frames30(0, 120, t0)
	var restarted []sentFrame // three loops behind restarts, 4 s apart
	for k := range 3 {
		restarted = append(restarted, frames30(k, 120, t0.Add(time.Duration(k)*4*time.Second))...)
	}
	// livegate's clock starts at 200 ms; each restart lands after the
	// previous stretch by a gap the sender does not know.
	base := func(int) time.Duration { return 200 * time.Millisecond }
	gaps := func(seg int) time.Duration {
		return 200*time.Millisecond + time.Duration(seg)*(4*time.Second+137*time.Millisecond)
	}
	for _, ca := range []struct {
		name      string
		sent      []sentFrame
		got       []arrivedFrame
		encoded   bool
		matched   int
		lost      int
		unmatched int
	}{
		{"all arrive", loop, arrive(loop, base, 40*time.Millisecond, nil), false, 120, 0, 0},
		{"lost in the middle", loop, arrive(loop, base, 40*time.Millisecond, map[int]bool{50: true, 51: true, 90: true}), false, 117, 3, 0},
		{"restarts with unknown gaps", restarted, arrive(restarted, gaps, 25*time.Millisecond, nil), false, 360, 0, 0},
		{"a whole stretch lost", restarted, arrive(restarted, gaps, 25*time.Millisecond, rangeSet(120, 240)), false, 240, 120, 0},
		{"nothing arrives", loop, nil, false, 0, 120, 0},
		{"encoded, in order", loop, arrive(loop, func(int) time.Duration { return 7 * time.Millisecond }, 300*time.Millisecond, nil), true, 120, 0, 0},
	} {
		t.Run(ca.name, func(t *testing.T) {
			res := matcher{encoded: ca.encoded}.match(ca.sent, ca.got)
			if res.Matched != ca.matched || res.Lost() != ca.lost || res.Unmatched != ca.unmatched {
				t.Fatalf("matched %d lost %d unmatched %d, want %d %d %d", res.Matched, res.Lost(), res.Unmatched, ca.matched, ca.lost, ca.unmatched)
			}
			for _, d := range res.Delays {
				if d.Delay != 40*time.Millisecond && d.Delay != 25*time.Millisecond && d.Delay != 300*time.Millisecond {
					t.Fatalf("a delay of %v: a frame was paired with another", d.Delay)
				}
			}
		})
	}
}

func rangeSet(from, to int) map[int]bool {
	m := map[int]bool{}
	for i := from; i < to; i++ {
		m[i] = true
	}
	return m
}

// TestMatchEncoderGrid: an encoder on a 1/30 s grid moves frames that
// came too close a slot later for a while (ffmpeg does); in order, every
// frame is still found.
func TestMatchEncoderGrid(t *testing.T) {
	t0 := time.Unix(1000, 0)
	sent := frames30(0, 60, t0)
	sent[20].Rel = sent[19].Rel + 8*time.Millisecond // two frames 8 ms apart
	var got []arrivedFrame
	slot := time.Second / 30
	last := time.Duration(-1)
	for _, f := range sent {
		s := (f.Rel + slot/2) / slot * slot
		if s <= last {
			s = last + slot
		}
		last = s
		got = append(got, arrivedFrame{TS: (s + 7*time.Millisecond).Round(time.Millisecond), At: f.Due.Add(time.Second)})
	}
	res := matcher{encoded: true}.match(sent, got)
	if res.Matched != 60 || res.Unmatched != 0 {
		t.Fatalf("matched %d unmatched %d, want 60 0", res.Matched, res.Unmatched)
	}
	for _, d := range res.Delays {
		if d.Delay != time.Second {
			t.Fatalf("a delay of %v: a frame was paired with another", d.Delay)
		}
	}
}

func TestPercentile(t *testing.T) {
	ds := []time.Duration{5, 1, 4, 2, 3, 10, 9, 8, 7, 6}
	for _, ca := range []struct {
		q    float64
		want time.Duration
	}{{0, 1}, {0.5, 5}, {0.99, 10}, {1, 10}} {
		if got := percentile(ds, ca.q); got != ca.want {
			t.Errorf("percentile %v = %v, want %v", ca.q, got, ca.want)
		}
	}
	if percentile(nil, 0.5) != 0 {
		t.Error("percentile of nothing")
	}
}
