package testutil

import (
	"bytes"
	"io"
	"os"
	"reflect"
	"testing"
	"time"

	"github.com/livegate/livegate/internal/media"
)

// ReadAll reads a whole stream with the demuxer newDemuxer makes of r: the
// tracks, every packet, and the error that ended it.
func ReadAll[D media.Demuxer](r io.Reader, newDemuxer func(io.Reader) (D, error)) ([]*media.Track, []*media.Packet, error) {
	d, err := newDemuxer(r)
	if err != nil {
		return nil, nil, err
	}
	tracks, err := d.Tracks()
	if err != nil {
		return nil, nil, err
	}
	var pkts []*media.Packet
	for {
		pkt, err := d.ReadPacket()
		if err != nil {
			return tracks, pkts, err
		}
		pkts = append(pkts, pkt)
	}
}

// Demux reads the file at path with the demuxer newDemuxer makes and
// returns its tracks and packets; the test fails unless the file ends with
// io.EOF itself.
func Demux[D media.Demuxer](t testing.TB, path string, newDemuxer func(io.Reader) (D, error)) ([]*media.Track, []*media.Packet) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tracks, pkts, err := ReadAll(f, newDemuxer)
	if err != io.EOF { // media.Demuxer: io.EOF itself at a clean end
		t.Fatalf("%s: %v after %d packets", path, err, len(pkts))
	}
	return tracks, pkts
}

// ReadKept reads the stream in r with the demuxer newDemuxer makes, to the
// first error after its tracks, as a consumer that keeps the packets does:
// it returns the packets as read and deep copies taken when each was read,
// which differ if the demuxer reused a packet's memory later.
func ReadKept[D media.Demuxer](t testing.TB, r io.Reader, newDemuxer func(io.Reader) (D, error)) (kept, copies []*media.Packet) {
	t.Helper()
	d, err := newDemuxer(r)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Tracks(); err != nil {
		t.Fatal(err)
	}
	for {
		p, err := d.ReadPacket()
		if err != nil {
			return kept, copies
		}
		c := *p
		c.Data = bytes.Clone(p.Data)
		c.AU = nil
		for _, n := range p.AU {
			c.AU = append(c.AU, bytes.Clone(n))
		}
		kept, copies = append(kept, p), append(copies, &c)
	}
}

// EqualPackets compares two reads of one stream field by field and fails
// the test at the first difference; name says which reads they are.
func EqualPackets(t testing.TB, name string, got, want []*media.Packet) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d packets, want %d", name, len(got), len(want))
	}
	for i := range got {
		g, w := got[i], want[i]
		if !reflect.DeepEqual(*g.Track, *w.Track) {
			t.Fatalf("%s: packet %d track %v, want %v", name, i, g.Track, w.Track)
		}
		if g.PTS != w.PTS || g.DTS != w.DTS || g.Key != w.Key {
			t.Fatalf("%s: packet %d PTS %v DTS %v key %v, want %v %v %v", name, i, g.PTS, g.DTS, g.Key, w.PTS, w.DTS, w.Key)
		}
		if !reflect.DeepEqual(g.AU, w.AU) || !bytes.Equal(g.Data, w.Data) {
			t.Fatalf("%s: packet %d payload differs", name, i)
		}
	}
}

// Loop returns pkts played n times over, play i shifted by i×period, as
// copies that share the payloads (and tracks) of pkts.
func Loop(pkts []*media.Packet, n int, period time.Duration) []*media.Packet {
	out := make([]*media.Packet, 0, n*len(pkts))
	for i := range n {
		for _, p := range pkts {
			c := *p
			c.PTS += time.Duration(i) * period
			c.DTS += time.Duration(i) * period
			out = append(out, &c)
		}
	}
	return out
}
