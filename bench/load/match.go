package load

import (
	"sort"
	"time"
)

// sentFrame is a video frame as a publisher sent it.
type sentFrame struct {
	// Seg is the stretch of the stream it belongs to: within one, the
	// destination's clock is the sender's plus one offset. A MediaRecorder
	// loop behind a restart is a new stretch (livegate places it after the
	// previous one by the time that passed); WebCodecs timestamps and the
	// seed's input go on, so they are one stretch.
	Seg int
	// Rel is its time within the stretch.
	Rel time.Duration
	// Due is when it was due to be sent at real-time pace (the chunk's
	// time for MediaRecorder): what a browser would have had ready then.
	Due time.Time
}

// arrivedFrame is a video frame as the destination got it.
type arrivedFrame struct {
	TS time.Duration // its timestamp on the destination's clock (RTMP: whole ms)
	At time.Time     // when it arrived
}

// matchResult is what a stream's matching found.
type matchResult struct {
	Sent, Received, Matched int
	// Unmatched arrived frames fit no frame sent (duplicates included).
	Unmatched int
	// Delays of the matched frames.
	Delays []frameDelay
}

// frameDelay is a matched frame's ingest-to-publish delay: from when it was
// due to be sent to its arrival.
type frameDelay struct {
	Due   time.Time
	Delay time.Duration
}

// Lost is the frames sent that never arrived.
func (m matchResult) Lost() int { return m.Sent - m.Matched }

// Tolerances of the matching.
const (
	// exactTolerance: a frame that passed through (livegate's H.264)
	// keeps its time, to the millisecond RTMP carries.
	exactTolerance = 3 * time.Millisecond
	// encodedTolerance: an encoder (the seed's ffmpeg, livegate's VP8 to
	// H.264) puts frames on its 1/30 s grid, and where two came closer
	// than that pushes the next ones a slot later for a while: a frame
	// may arrive up to a frame interval from its time. Encoders keep
	// every frame and their order, so frames are taken in order there.
	encodedTolerance = 40 * time.Millisecond
	// alignLookahead is how many arrived frames judge an offset.
	alignLookahead = 8
	// alignCandidates: a stretch's first arrived frame may be one of its
	// first few sent frames (those before it lost).
	alignCandidates = 8
	// alignSegments: whole stretches may be lost.
	alignSegments = 3
)

// matcher pairs the frames that arrived at the destination with those
// sent.
type matcher struct {
	// encoded: the video was encoded on the way (the seed, or livegate
	// for VP8), so its times moved a little; frames are paired in order.
	// Otherwise they are paired by exact time, which also finds which
	// ones were lost.
	encoded bool
}

func (m matcher) tolerance() time.Duration {
	if m.encoded {
		return encodedTolerance
	}
	return exactTolerance
}

// match pairs the frames that arrived with those sent, by time, and
// returns each one's delay. Frames arrive in order; the offset of each
// stretch between the sender's clock and the destination's is learnt from
// its first frames (livegate starts its clock at 200 ms, and places a
// restarted stream after the previous one by the wall-clock time that
// passed, which the sender cannot know exactly; ffmpeg has its own).
func (m matcher) match(sent []sentFrame, got []arrivedFrame) matchResult {
	res := matchResult{Sent: len(sent), Received: len(got)}
	var segs [][]sentFrame
	for _, f := range sent {
		for len(segs) <= f.Seg {
			segs = append(segs, nil)
		}
		segs[f.Seg] = append(segs[f.Seg], f)
	}
	for _, s := range segs {
		sort.SliceStable(s, func(i, j int) bool { return s[i].Rel < s[j].Rel })
	}
	tol := m.tolerance()
	cur, next := -1, 0 // the stretch, and its first frame not matched yet
	var offset time.Duration
	for i := 0; i < len(got); i++ {
		a := got[i]
		if cur >= 0 && len(segs[cur]) > 0 {
			seg := segs[cur]
			r := a.TS - offset
			if j := m.find(seg, next, r); j >= 0 {
				next = j + 1
				res.Matched++
				res.Delays = append(res.Delays, frameDelay{seg[j].Due, a.At.Sub(seg[j].Due)})
				continue
			}
			if r <= seg[len(seg)-1].Rel+tol {
				res.Unmatched++ // a duplicate, or a time never sent
				continue
			}
		}
		// A new stretch begins here (or the first one).
		s, off, ok := m.align(segs, cur, offset, got[i:])
		if !ok {
			res.Unmatched++
			continue
		}
		cur, next, offset = s, 0, off
		i-- // match it again in its stretch
	}
	return res
}

// find is the index, from from on, of the frame of seg that the frame
// arriving at rel is, or -1. Encoded: the frame at from if within the
// tolerance, else (frames lost) the nearest later one. Exact: the nearest
// within the tolerance.
func (m matcher) find(seg []sentFrame, from int, rel time.Duration) int {
	tol := m.tolerance()
	if from >= len(seg) {
		return -1
	}
	if m.encoded && absDur(seg[from].Rel-rel) <= tol {
		return from
	}
	j := from + sort.Search(len(seg)-from, func(k int) bool { return seg[from+k].Rel >= rel-tol })
	best := -1
	for ; j < len(seg) && seg[j].Rel <= rel+tol; j++ {
		if best < 0 || absDur(seg[j].Rel-rel) < absDur(seg[best].Rel-rel) {
			best = j
		}
	}
	return best
}

// align finds the stretch (from first on) and the offset under which the
// frames got, from their first, match the most frames sent; a frame
// cannot arrive before it was due.
//
// Frames come at a steady rate, so offsets a whole number of frames apart
// often match as well: within a stretch, ties go to its earliest frame, as
// the first frame of a stretch is a key frame that neither livegate nor
// ffmpeg leaves out. (Should the first frames of a stretch be lost all the
// same, its delays are off by as many frame intervals; the count of frames
// lost is right either way.) Between stretches, all loops of one
// recording, ties go to the one whose offset is nearest where it should
// be: after the previous stretch (prev, at offset prevOffset) by the
// stretches' lengths and half a second each for the restarts' gaps
// (livegate takes 1 ms to 1 s). The offset is then set to the median
// difference over those frames, so that an encoder's rounding of the
// first one does not shift the others.
func (m matcher) align(segs [][]sentFrame, prev int, prevOffset time.Duration, got []arrivedFrame) (seg int, offset time.Duration, ok bool) {
	const restartGap = 500 * time.Millisecond
	bestScore := 0
	var bestMiss time.Duration
	look := got[:min(len(got), alignLookahead)]
	expected := prevOffset
	for s := prev + 1; s < len(segs) && s < prev+1+alignSegments; s++ {
		if s > 0 && len(segs[s-1]) > 0 {
			q := segs[s-1]
			expected += q[len(q)-1].Rel - q[0].Rel + restartGap
		}
		for c := 0; c < len(segs[s]) && c < alignCandidates; c++ {
			f := segs[s][c]
			if look[0].At.Before(f.Due) {
				continue
			}
			off := look[0].TS - f.Rel
			score := 0
			for _, a := range look {
				if m.find(segs[s], c, a.TS-off) >= 0 {
					score++
				}
			}
			miss := absDur(off - expected)
			if prev < 0 {
				miss = 0 // the first stretch: nothing to go by
			}
			if score > bestScore || (score == bestScore && s != seg && miss < bestMiss) {
				seg, offset, ok, bestScore, bestMiss = s, off, true, score, miss
			}
		}
	}
	if !ok {
		return 0, 0, false
	}
	var diffs []time.Duration
	for _, a := range look {
		if j := m.find(segs[seg], 0, a.TS-offset); j >= 0 {
			diffs = append(diffs, a.TS-segs[seg][j].Rel)
		}
	}
	if len(diffs) > 0 {
		offset = percentile(diffs, 0.5)
	}
	return seg, offset, true
}

func absDur(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

// percentile is the q-quantile (0..1) of ds by the nearest rank; ds is
// sorted in place. 0 when ds is empty.
func percentile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	i := int(q*float64(len(ds))+0.999999) - 1
	return ds[min(max(i, 0), len(ds)-1)]
}
