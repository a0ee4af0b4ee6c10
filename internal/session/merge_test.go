package session

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/livegate/livegate/internal/media"
)

func TestMerger(t *testing.T) {
	v := &media.Track{Codec: media.CodecH264}
	a := &media.Track{Codec: media.CodecAAC}
	name := map[*media.Track]string{v: "v", a: "a"}
	type in struct {
		tr  *media.Track
		dts int // ms
		at  int // ms since start, arrival
	}
	for _, ca := range []struct {
		name string
		ins  []in
		want string // emitted before flush | after flush
	}{
		{"interleaves by time", []in{{v, 0, 0}, {v, 33, 1}, {a, 10, 30}, {a, 31, 31}, {v, 66, 66}, {a, 52, 70}},
			"v0 a10 a31 v33 a52 | v66"},
		{"a late track does not stall the other past maxHold", []in{{v, 0, 0}, {v, 33, 33}, {v, 66, 66}, {v, 100, 200}, {a, 5, 210}},
			"v0 v33 v66 a5 | v100"},
		{"one track only", []in{{v, 0, 0}, {v, 33, 200}}, "v0 | v33"},
		{"foreign track ignored", []in{{&media.Track{}, 0, 0}}, " | "},
	} {
		t.Run(ca.name, func(t *testing.T) {
			var out []string
			m := newMerger([]*media.Track{v, a}, 100*time.Millisecond, func(p *media.Packet) {
				out = append(out, fmt.Sprintf("%s%d", name[p.Track], p.DTS.Milliseconds()))
			})
			t0 := time.Now()
			for _, i := range ca.ins {
				m.push(&media.Packet{Track: i.tr, DTS: time.Duration(i.dts) * time.Millisecond}, t0.Add(time.Duration(i.at)*time.Millisecond))
			}
			before := strings.Join(out, " ")
			out = nil
			m.flush()
			m.stop()
			if got := before + " | " + strings.Join(out, " "); got != ca.want {
				t.Fatalf("got %q, want %q", got, ca.want)
			}
		})
	}
}

// TestMergerReleasesOnTime: a packet held for the other track goes out
// when its hold is over, even if nothing else arrives.
func TestMergerReleasesOnTime(t *testing.T) {
	v := &media.Track{Codec: media.CodecH264}
	a := &media.Track{Codec: media.CodecAAC}
	got := make(chan time.Duration, 4)
	m := newMerger([]*media.Track{v, a}, 50*time.Millisecond, func(p *media.Packet) { got <- p.DTS })
	defer m.stop()
	began := time.Now()
	m.push(&media.Packet{Track: v, DTS: 0}, began)
	select {
	case <-got:
		if d := time.Since(began); d < 45*time.Millisecond {
			t.Errorf("released after %v, before its hold of 50 ms", d)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a held packet was never released")
	}
	m.stop()
	m.mu.Lock()
	m.queues[v] = append(m.queues[v], held{&media.Packet{Track: v, DTS: 33}, time.Now()})
	m.mu.Unlock()
	m.expire() // after stop: nothing more is emitted
	select {
	case d := <-got:
		t.Fatalf("emitted %v after stop", d)
	default:
	}
}
