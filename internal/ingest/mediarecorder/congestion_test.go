package mediarecorder

import (
	"testing"
	"time"

	"github.com/livegate/livegate/internal/publish"
)

func TestCongestion(t *testing.T) {
	// queued: ms of media waiting; out: what the destination took (0: not
	// measured).
	live := func(queued int64, dropped uint64) []destinationStats {
		return []destinationStats{{Name: "a", State: string(publish.StateLive), QueuedMS: queued, Dropped: dropped}}
	}
	liveOut := func(queued int64, out uint64) []destinationStats {
		return []destinationStats{{Name: "a", State: string(publish.StateLive), QueuedMS: queued, BitrateOut: out}}
	}
	t0 := time.Now()
	type step struct {
		at      time.Duration
		in      uint64
		dests   []destinationStats
		want    uint64
		changed bool
	}
	for _, ca := range []struct {
		name  string
		steps []step
	}{
		{"calm: nothing asked", []step{{0, 2_000_000, live(400, 0), 0, false}, {time.Second, 2_000_000, live(0, 0), 0, false}}},
		{"behind: 70% of what arrives", []step{{0, 2_000_000, live(1500, 0), 1_400_000, true}}},
		{"drops: down, then no change while stable", []step{
			{0, 2_000_000, live(0, 1), 1_400_000, true},
			{time.Second, 2_000_000, live(0, 5), 0, false}, // more drops, but not clearly lower
			{2 * time.Second, 1_400_000, live(0, 5), 0, false},
		}},
		{"down again only when clearly lower", []step{
			{0, 2_000_000, live(1500, 0), 1_400_000, true},
			{time.Second, 1_900_000, live(1500, 0), 0, false},
			{2 * time.Second, 1_000_000, live(1500, 0), 700_000, true},
		}},
		{"recovers by 20% every 2 s after 5 calm seconds", []step{
			{0, 2_000_000, live(1500, 0), 1_400_000, true},
			{3 * time.Second, 1_400_000, live(0, 0), 0, false},
			{5 * time.Second, 1_400_000, live(0, 0), 1_680_000, true},
			{6 * time.Second, 1_680_000, live(0, 0), 0, false},
			{7 * time.Second, 1_680_000, live(0, 0), 2_016_000, true},
			{9 * time.Second, 2_000_000, live(0, 0), 2_419_200, true},
		}},
		{"behind again: down at once", []step{
			{0, 2_000_000, live(1500, 0), 1_400_000, true},
			{5 * time.Second, 1_400_000, live(0, 0), 1_680_000, true},
			{6 * time.Second, 1_680_000, live(1500, 0), 1_176_000, true},
		}},
		{"a reconnecting destination does not count", []step{
			{0, 2_000_000, []destinationStats{{Name: "a", State: string(publish.StateReconnecting), QueuedMS: 5000}}, 0, false},
		}},
		{"behind a slow link: half of what it takes", []step{{0, 2_000_000, liveOut(1500, 1_000_000), 500_000, true}}},
		{"a fast destination's rate does not raise it", []step{{0, 2_000_000, liveOut(1500, 5_000_000), 1_400_000, true}}},
		{"never below the floor", []step{{0, 100_000, live(5000, 0), minTarget, true}}},
	} {
		t.Run(ca.name, func(t *testing.T) {
			var c congestion
			for i, s := range ca.steps {
				got, changed := c.update(t0.Add(s.at), s.in, s.dests)
				if changed != s.changed || (changed && got != s.want) {
					t.Fatalf("step %d: got %d %v, want %d %v", i, got, changed, s.want, s.changed)
				}
			}
		})
	}
}
