package publish

import (
	"context"
	"io"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/gortmplib"
	"github.com/bluenviron/gortmplib/pkg/amf0"
	"github.com/bluenviron/gortmplib/pkg/message"
	"go.uber.org/goleak"

	"github.com/livegate/livegate/internal/demux/flv"
	"github.com/livegate/livegate/internal/media"
	"github.com/livegate/livegate/internal/receiver"
	"github.com/livegate/livegate/internal/testutil"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testFile is H.264 Constrained Baseline 320x240 at 30 fps (a key frame
// every 30) with AAC 48 kHz, 2 s: 60 video and 95 audio packets.
const testFile = "../demux/flv/testdata/h264-aac.flv"

const secretKey = "SECRETKEY123"

// loadPackets reads the test file. The receiver's RTMP reader looks at 2 s
// of media before it reports tracks, and the file holds just 2 s, so the
// packets are given twice, the second time shifted past the first.
func loadPackets(t *testing.T) ([]*media.Track, []*media.Packet) {
	t.Helper()
	tracks, pkts := testutil.Demux(t, testFile, flv.NewReader)
	if len(pkts) != 155 {
		t.Fatalf("the test file has %d packets, want 155", len(pkts))
	}
	const shift = 2048 * time.Millisecond // 96 AAC frames of 1024 samples at 48 kHz
	return tracks, testutil.Loop(pkts, 2, shift)
}

// expected is what the receiver must report for packets pushed to a
// publisher: those from the first video key frame on.
type expected struct {
	video, keys, audio int
	firstMS, lastMS    int64
}

func expect(pkts []*media.Packet) expected {
	var e expected
	started := false
	for _, p := range pkts {
		if !started {
			if !p.Track.Codec.IsVideo() || !p.Key {
				continue
			}
			started = true
			e.firstMS, e.lastMS = p.PTS.Milliseconds(), p.PTS.Milliseconds()
		}
		if p.Track.Codec.IsVideo() {
			e.video++
			if p.Key {
				e.keys++
			}
		} else {
			e.audio++
		}
		e.firstMS = min(e.firstMS, p.PTS.Milliseconds())
		e.lastMS = max(e.lastMS, p.PTS.Milliseconds())
	}
	return e
}

func startReceiver(t *testing.T) *receiver.Receiver {
	t.Helper()
	rcv := &receiver.Receiver{Listen: "127.0.0.1:0", Log: testutil.Logger()}
	if err := rcv.Initialize(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rcv.Close)
	return rcv
}

// states records what OnState reported.
type states struct {
	mu      sync.Mutex
	seen    []State
	reasons []string
}

func (s *states) on(st State, reason string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seen = append(s.seen, st)
	s.reasons = append(s.reasons, reason)
}

func (s *states) get() ([]State, []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]State(nil), s.seen...), append([]string(nil), s.reasons...)
}

// newPublisher starts a publisher; it is closed at the end of the test.
func newPublisher(t *testing.T, u *url.URL, tracks []*media.Track, tweak func(*Publisher)) (*Publisher, *states) {
	t.Helper()
	st := &states{}
	p := &Publisher{Name: "test", URL: u, Tracks: tracks, Log: testutil.Logger(), OnState: st.on}
	if tweak != nil {
		tweak(p)
	}
	if err := p.Initialize(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p, st
}

func waitDone(t *testing.T, p *Publisher, timeout time.Duration) {
	t.Helper()
	select {
	case <-p.Done():
	case <-time.After(timeout):
		t.Fatalf("the publisher did not end within %v", timeout)
	}
}

// received waits until the receiver has seen one stream end and returns it.
func received(t *testing.T, rcv *receiver.Receiver) receiver.Stream {
	t.Helper()
	testutil.WaitFor(t, "the stream ends at the receiver", 5*time.Second, func() bool {
		s := rcv.Streams()
		return len(s) == 1 && !s[0].Active
	})
	return rcv.Streams()[0]
}

func checkStream(t *testing.T, s receiver.Stream, want expected) {
	t.Helper()
	if s.Path != "live/test" {
		t.Errorf("path %q, want live/test", s.Path)
	}
	if v := s.Video; v == nil || v.Codec != "H264" || v.Width != 320 || v.Height != 240 ||
		v.Profile != "Constrained Baseline" || v.Level != "1.3" {
		t.Errorf("video %+v, want H264 Constrained Baseline 1.3 320x240", v)
	} else if int(v.Frames) != want.video || int(v.KeyFrames) != want.keys {
		t.Errorf("video frames %d (%d key), want %d (%d key)", v.Frames, v.KeyFrames, want.video, want.keys)
	}
	if a := s.Audio; a == nil || a.Codec != "AAC" || a.SampleRate != 48000 || a.Channels != 1 {
		t.Errorf("audio %+v, want AAC 48000 Hz mono", a)
	} else if int(a.Frames) != want.audio {
		t.Errorf("audio frames %d, want %d", a.Frames, want.audio)
	}
	if s.FirstPTSms != want.firstMS || s.LastPTSms != want.lastMS {
		t.Errorf("pts %d..%d ms, want %d..%d", s.FirstPTSms, s.LastPTSms, want.firstMS, want.lastMS)
	}
	if s.Bytes == 0 {
		t.Error("the receiver counted no bytes")
	}
}

func TestPublishToReceiver(t *testing.T) {
	tracks, pkts := loadPackets(t)
	// The test file begins with an audio packet, then the first key frame.
	skip := 0
	for !pkts[skip].Track.Codec.IsVideo() || !pkts[skip].Key {
		skip++
	}
	// A stream that begins in the middle of a group of pictures: audio and
	// non-key video until the second key frame.
	mid := skip + 1
	for pkts[mid].Track.Codec.IsVideo() && pkts[mid].Key {
		mid++
	}
	for _, ca := range []struct {
		name string
		pkts []*media.Packet
	}{
		{"from the start", pkts},
		{"starts on a key frame", pkts[mid:]},
	} {
		t.Run(ca.name, func(t *testing.T) {
			want := expect(ca.pkts)
			if ca.pkts[0].Track.Codec.IsVideo() && ca.pkts[0].Key {
				t.Fatal("the case must not begin on a key frame")
			}
			rcv := startReceiver(t)
			p, st := newPublisher(t, testutil.RTMPURL(t, rcv.Addr().String(), "test"), tracks, nil)
			for _, pkt := range ca.pkts {
				if !p.Push(pkt) {
					t.Fatal("Push refused a packet with room in the queue")
				}
			}
			p.Finish()
			waitDone(t, p, 5*time.Second)

			checkStream(t, received(t, rcv), want)
			if int(p.Written()) != want.video+want.audio {
				t.Errorf("written %d, want %d", p.Written(), want.video+want.audio)
			}
			if p.Dropped() != 0 || p.BytesOut() == 0 {
				t.Errorf("dropped %d, bytes out %d", p.Dropped(), p.BytesOut())
			}
			seen, reasons := st.get()
			if got := joinStates(seen); got != "connecting,live,ended" {
				t.Errorf("states %s (%q), want connecting,live,ended", got, reasons)
			}
		})
	}
}

func joinStates(ss []State) string {
	var b strings.Builder
	for i, s := range ss {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(string(s))
	}
	return b.String()
}

// rejectingServer is an RTMP server that refuses every publish the way some
// ingest servers do: with an onStatus error that repeats the stream name.
func rejectingServer(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() { // ends when the listener is closed
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() { // ends when the client leaves or the exchange is over
				defer wg.Done()
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(5 * time.Second))
				_ = rejectPublish(c)
			}()
		}
	}()
	return ln.Addr().String()
}

func rejectPublish(c net.Conn) error {
	sc := &gortmplib.ServerConn{RW: c}
	if err := sc.Initialize(); err != nil { // handshake and connect
		return err
	}
	if err := sc.Write(&message.CommandAMF0{
		ChunkStreamID: 3, Name: "_result", CommandID: 1,
		Arguments: []any{
			amf0.Object{{Key: "fmsVer", Value: "FMS/3,0,1,123"}},
			amf0.Object{{Key: "level", Value: "status"}, {Key: "code", Value: "NetConnection.Connect.Success"}},
		},
	}); err != nil {
		return err
	}
	for {
		msg, err := sc.Read()
		if err != nil {
			return err
		}
		cmd, ok := msg.(*message.CommandAMF0)
		if !ok {
			continue
		}
		switch cmd.Name {
		case "createStream":
			if err := sc.Write(&message.CommandAMF0{
				ChunkStreamID: cmd.ChunkStreamID, Name: "_result", CommandID: cmd.CommandID,
				Arguments: []any{nil, float64(1)},
			}); err != nil {
				return err
			}
		case "publish":
			name, _ := cmd.Arguments[1].(string)
			if err := sc.Write(&message.CommandAMF0{
				ChunkStreamID: 5, MessageStreamID: 0x1000000, Name: "onStatus", CommandID: cmd.CommandID,
				Arguments: []any{nil, amf0.Object{
					{Key: "level", Value: "error"},
					{Key: "code", Value: "NetStream.Publish.BadName"},
					{Key: "description", Value: name + " is already publishing"},
					{Key: "details", Value: name},
				}},
			}); err != nil {
				return err
			}
			// Let the client read the answer and leave.
			_, err := io.Copy(io.Discard, c)
			return err
		}
	}
}

func TestFailureReasonHidesKey(t *testing.T) {
	tracks, _ := loadPackets(t)
	for _, ca := range []struct {
		name   string
		addr   func(testing.TB) string
		reason string
	}{
		{"closed port", testutil.ClosedPort, "could not connect"},
		{"publish refused", rejectingServer, "refused the stream"},
	} {
		t.Run(ca.name, func(t *testing.T) {
			p, st := newPublisher(t, testutil.RTMPURL(t, ca.addr(t), secretKey), tracks, func(p *Publisher) { p.Backoff = 10 * time.Millisecond })
			waitDone(t, p, 5*time.Second)
			seen, reasons := st.get()
			// Never live: a few attempts, then failed.
			got := joinStates(seen)
			if !strings.HasPrefix(got, "connecting,") || !strings.HasSuffix(got, ",failed") ||
				strings.Contains(got, "live") || strings.Contains(got, "ended") {
				t.Fatalf("states %s, want connecting, reconnecting..., failed", got)
			}
			if reason := reasons[len(reasons)-1]; !strings.Contains(reason, ca.reason) {
				t.Errorf("reason %q, want it to contain %q", reason, ca.reason)
			}
			for i, reason := range reasons {
				if strings.Contains(reason, secretKey) {
					t.Errorf("the reason given with %s shows the stream key: %q", seen[i], reason)
				}
			}
		})
	}
}

func TestQueueFullAndStuckPeer(t *testing.T) {
	tracks, pkts := loadPackets(t)
	// A peer that accepts TCP and then never says a word: the publisher
	// stays in the RTMP handshake and takes nothing from its queue.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	acceptDone := make(chan struct{})
	go func() { // ends when the listener is closed
		defer close(acceptDone)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-acceptDone
		for _, c := range conns {
			c.Close()
		}
	})

	p, st := newPublisher(t, testutil.RTMPURL(t, ln.Addr().String(), secretKey), tracks, func(p *Publisher) { p.QueueSize = 2 })
	testutil.WaitFor(t, "the publisher connects", 5*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(conns) == 1
	})
	for i, pkt := range pkts[:10] {
		if ok := p.Push(pkt); ok != (i < 2) {
			t.Fatalf("Push #%d = %v with a queue of 2", i, ok)
		}
	}
	if p.Dropped() != 8 || p.Written() != 0 {
		t.Fatalf("dropped %d, written %d; want 8, 0", p.Dropped(), p.Written())
	}
	began := time.Now()
	p.Close()
	if d := time.Since(began); d > 2*time.Second {
		t.Errorf("Close took %v with a stuck peer; want < 2 s", d)
	}
	if seen, _ := st.get(); joinStates(seen) != "connecting,ended" {
		t.Errorf("states %s, want connecting,ended", joinStates(seen))
	}
}

func TestInitializeErrors(t *testing.T) {
	tracks, _ := loadPackets(t)
	u := testutil.RTMPURL(t, "127.0.0.1:1", "k")
	for _, ca := range []struct {
		name string
		p    *Publisher
	}{
		{"no url", &Publisher{Tracks: tracks, Log: testutil.Logger()}},
		{"no tracks", &Publisher{URL: u, Log: testutil.Logger()}},
	} {
		t.Run(ca.name, func(t *testing.T) {
			if err := ca.p.Initialize(context.Background()); err == nil {
				ca.p.Close()
				t.Fatal("Initialize succeeded")
			}
		})
	}
}

func TestRedact(t *testing.T) {
	for _, ca := range []struct{ name, in, want string }{
		{"key in fragment", "rtmp://host:1935/live#" + secretKey, "rtmp://host:1935/live/****"},
		{"user info", "rtmps://user:pass@host:443/app#" + secretKey, "rtmps://host:443/app/****"},
		{"no key", "rtmp://host:1935/live", "rtmp://host:1935/live"},
	} {
		t.Run(ca.name, func(t *testing.T) {
			u, err := url.Parse(ca.in)
			if err != nil {
				t.Fatal(err)
			}
			if got := redact(u); got != ca.want {
				t.Errorf("redact(%s) = %s, want %s", ca.in, got, ca.want)
			}
		})
	}
}
