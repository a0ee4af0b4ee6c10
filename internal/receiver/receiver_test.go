package receiver

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"testing"
	"time"

	"github.com/bluenviron/gortmplib"
	"go.uber.org/goleak"

	"github.com/livegate/livegate/internal/media"
	"github.com/livegate/livegate/internal/publish"
	"github.com/livegate/livegate/internal/testutil"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testFile is H.264 Constrained Baseline 320x240 at 30 fps (a key frame
// every 30) with AAC 48 kHz, 2 s: 60 video and 95 audio packets.
const testFile = "../demux/flv/testdata/h264-aac.flv"

// loadPackets reads the test file twice over, the second time with shifted
// timestamps: gortmplib's reader wants 2 s of media before it reports the
// tracks, and the file holds just 2 s.
func loadPackets(t *testing.T) ([]*media.Track, []*media.Packet) {
	t.Helper()
	return loadPlays(t, 2)
}

func startReceiver(t *testing.T) *Receiver {
	t.Helper()
	r := &Receiver{Listen: "127.0.0.1:0", Log: testutil.Logger()}
	if err := r.Initialize(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r
}

// startPublisher publishes to the receiver under the key; the caller pushes
// packets. It is closed at the end of the test.
func startPublisher(t *testing.T, r *Receiver, key string, tracks []*media.Track) *publish.Publisher {
	t.Helper()
	p := &publish.Publisher{Name: key, URL: testutil.RTMPURL(t, r.Addr().String(), key), Tracks: tracks, Log: testutil.Logger()}
	if err := p.Initialize(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

func push(t *testing.T, p *publish.Publisher, pkts []*media.Packet) {
	t.Helper()
	for _, pkt := range pkts {
		if !p.Push(pkt) {
			t.Fatal("Push refused a packet with room in the queue")
		}
	}
}

func finish(t *testing.T, p *publish.Publisher) {
	t.Helper()
	p.Finish()
	select {
	case <-p.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the publisher did not end within 5 s")
	}
}

// dropped tells whether the receiver closed c: reading ends with EOF or a
// reset rather than the deadline.
func dropped(c net.Conn, within time.Duration) bool {
	_ = c.SetReadDeadline(time.Now().Add(within))
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	return !errors.As(err, &ne) || !ne.Timeout()
}

func dial(t *testing.T, r *Receiver) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", r.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func randomBytes(seed uint64, n int) []byte {
	rng := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

func TestBadClientsDoNotDisturbAPublish(t *testing.T) {
	tracks, pkts := loadPackets(t)
	for _, ca := range []struct {
		name string
		// bad connects to the receiver, misbehaves, and returns its
		// connection.
		bad func(t *testing.T, r *Receiver) net.Conn
	}{
		{"http request", func(t *testing.T, r *Receiver) net.Conn {
			c := dial(t, r)
			_, _ = c.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
			return c
		}},
		{"random bytes", func(t *testing.T, r *Receiver) net.Conn {
			c := dial(t, r)
			b := randomBytes(1, 8<<10)
			b[0] = 0xff // not an RTMP version
			_, _ = c.Write(b)
			return c
		}},
		{"handshake then hang up", func(t *testing.T, r *Receiver) net.Conn {
			c := dial(t, r)
			_, _ = c.Write(append([]byte{3}, randomBytes(2, 1536)...))
			_ = c.(*net.TCPConn).CloseWrite()
			return c
		}},
		{"player", func(t *testing.T, r *Receiver) net.Conn {
			cl := &gortmplib.Client{URL: testutil.RTMPURL(t, r.Addr().String(), "test")}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := cl.Initialize(ctx); err != nil {
				// Refused during the exchange: dropped all the same.
				c := dial(t, r)
				_ = c.Close()
				return c
			}
			t.Cleanup(cl.Close)
			return cl.NetConn()
		}},
	} {
		t.Run(ca.name, func(t *testing.T) {
			r := startReceiver(t)
			p := startPublisher(t, r, "good", tracks)
			// The receiver reports a stream once it has 2 s of it.
			half := len(pkts) * 3 / 4
			push(t, p, pkts[:half])
			testutil.WaitFor(t, "the good stream is received", 5*time.Second, func() bool { return len(r.Streams()) == 1 })

			c := ca.bad(t, r)
			if !dropped(c, 5*time.Second) {
				t.Fatal("the receiver kept the bad client's connection")
			}

			push(t, p, pkts[half:])
			finish(t, p)
			testutil.WaitFor(t, "the good stream ends", 5*time.Second, func() bool {
				s := r.Streams()
				return len(s) == 1 && !s[0].Active
			})
			s := r.Streams()[0]
			// Everything from the first key frame (the first packet is
			// audio before it).
			if s.Path != "live/good" || s.Video == nil || s.Video.Frames != 120 || s.Audio == nil || s.Audio.Frames != 189 {
				t.Errorf("good stream %+v video %+v audio %+v; want 120 video and 189 audio frames", s, s.Video, s.Audio)
			}
			if p.Dropped() != 0 {
				t.Errorf("the good publisher dropped %d packets", p.Dropped())
			}
		})
	}
}

func (r *Receiver) connCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.conns)
}

func TestConnectionCap(t *testing.T) {
	tracks, pkts := loadPackets(t)
	r := startReceiver(t)
	// Connections that never say a word hold their place until the
	// handshake timeout.
	idle := make([]net.Conn, maxConns)
	local := make(map[string]bool, maxConns)
	for i := range idle {
		idle[i] = dial(t, r)
		local[idle[i].LocalAddr().String()] = true
	}
	testutil.WaitFor(t, "the receiver takes the connections", 5*time.Second, func() bool { return r.connCount() == maxConns })

	extra := dial(t, r)
	if !dropped(extra, 5*time.Second) {
		t.Fatalf("connection %d was kept beyond the cap", maxConns+1)
	}
	r.mu.Lock()
	for c := range r.conns {
		if !local[c.RemoteAddr().String()] {
			t.Errorf("the receiver holds %s, which is not one of the first %d", c.RemoteAddr(), maxConns)
		}
	}
	r.mu.Unlock()
	if n := r.connCount(); n != maxConns {
		t.Fatalf("%d connections held, want %d", n, maxConns)
	}

	// A place freed is a place a publisher can take.
	_ = idle[0].Close()
	testutil.WaitFor(t, "the receiver lets the closed connection go", 5*time.Second, func() bool { return r.connCount() == maxConns-1 })
	p := startPublisher(t, r, "after", tracks)
	push(t, p, pkts)
	finish(t, p)
	testutil.WaitFor(t, "the stream ends", 5*time.Second, func() bool {
		s := r.Streams()
		return len(s) == 1 && !s[0].Active && s[0].Video != nil && s[0].Video.Frames == 120
	})
}

func TestCloseWithConnectionsOpen(t *testing.T) {
	tracks, pkts := loadPackets(t)
	r := &Receiver{Listen: "127.0.0.1:0", Log: testutil.Logger()}
	if err := r.Initialize(); err != nil {
		t.Fatal(err)
	}
	// A publisher in the middle of its stream, one in the middle of the
	// handshake, and a few that said nothing.
	p := startPublisher(t, r, "live", tracks)
	push(t, p, pkts)
	testutil.WaitFor(t, "the stream is received", 5*time.Second, func() bool {
		s := r.Streams()
		return len(s) == 1 && s[0].Video != nil && s[0].Video.Frames > 0
	})
	half := dial(t, r)
	_, _ = half.Write(append([]byte{3}, randomBytes(3, 100)...))
	var conns []net.Conn
	for range 5 {
		conns = append(conns, dial(t, r))
	}
	conns = append(conns, half)
	testutil.WaitFor(t, "the receiver takes the connections", 5*time.Second, func() bool { return r.connCount() == 7 })

	began := time.Now()
	r.Close()
	if d := time.Since(began); d > 2*time.Second {
		t.Errorf("Close took %v with connections open; want < 2 s", d)
	}
	for i, c := range conns {
		if !dropped(c, 2*time.Second) {
			t.Errorf("connection %d is still open after Close", i)
		}
	}
	if s := r.Streams(); len(s) != 1 || s[0].Active {
		t.Errorf("after Close the stream is %+v, want one, inactive", s)
	}
	if c, err := net.DialTimeout("tcp", r.Addr().String(), time.Second); err == nil {
		c.Close()
		t.Error("the receiver still listens after Close")
	}
}

func TestKeptStreams(t *testing.T) {
	r := &Receiver{}
	base := time.Now()
	for i := range keptStreams + 5 {
		st := &streamState{Stream: Stream{Path: "s", Active: i == 0, StartedAt: base.Add(time.Duration(i) * time.Second)}}
		r.addStream(st)
	}
	got := r.Streams()
	if len(got) != keptStreams {
		t.Fatalf("%d streams kept, want %d", len(got), keptStreams)
	}
	// Newest first; the active one (the oldest) is never forgotten.
	for i := 1; i < len(got); i++ {
		if got[i].StartedAt.After(got[i-1].StartedAt) {
			t.Fatalf("stream %d is newer than stream %d", i, i-1)
		}
	}
	if last := got[len(got)-1]; !last.Active || !last.StartedAt.Equal(base) {
		t.Errorf("oldest kept %+v, want the active one", last)
	}
}

func TestHasPicture(t *testing.T) {
	for _, ca := range []struct {
		name string
		au   [][]byte
		want bool
	}{
		{"sequence header", [][]byte{{0x67, 0x42}, {0x68, 0xce}}, false},
		{"idr", [][]byte{{0x67, 0x42}, {0x68, 0xce}, {0x65, 0x88}}, true},
		{"non-idr", [][]byte{{0x41, 0x9a}}, true},
		{"sei only", [][]byte{{0x06, 0x05}}, false},
		{"empty", [][]byte{{}}, false},
	} {
		t.Run(ca.name, func(t *testing.T) {
			if got := hasPicture(ca.au); got != ca.want {
				t.Errorf("hasPicture = %v, want %v", got, ca.want)
			}
		})
	}
}
