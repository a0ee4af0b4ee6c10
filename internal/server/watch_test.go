package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
	mcfmp4 "github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"
	mp4codecs "github.com/bluenviron/mediacommon/v2/pkg/formats/mp4/codecs"
	"github.com/coder/websocket"

	"github.com/livegate/livegate/internal/demux/flv"
	"github.com/livegate/livegate/internal/media"
	"github.com/livegate/livegate/internal/publish"
	"github.com/livegate/livegate/internal/receiver"
	"github.com/livegate/livegate/internal/testutil"
)

// testFile is H.264 Constrained Baseline 320x240 at 30 fps (a key frame
// every 30) with AAC 48 kHz, 2 s.
const testFile = "../demux/flv/testdata/h264-aac.flv"

// loadPlays reads the test file and plays it n times over, each play
// shifted 2048 ms past the one before (the receiver's RTMP reader looks at
// 2 s of media before it reports a stream).
func loadPlays(t *testing.T, n int) ([]*media.Track, []*media.Packet) {
	t.Helper()
	tracks, pkts := testutil.Demux(t, testFile, flv.NewReader)
	return tracks, testutil.Loop(pkts, n, 2048*time.Millisecond)
}

// watchFixture is a server with a receiver that gets one live stream,
// live/w, pushed up to just before a key frame in its second second.
type watchFixture struct {
	*fixture
	rcv  *receiver.Receiver
	pub  *publish.Publisher
	pkts []*media.Packet
	key  int // index of the key frame the push stopped before
	tr   []*media.Track
}

func newWatchFixture(t *testing.T, maxWatchers int) *watchFixture {
	t.Helper()
	rcv := &receiver.Receiver{Listen: "127.0.0.1:0", Log: testutil.Logger(), MaxWatchers: maxWatchers}
	if err := rcv.Initialize(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rcv.Close)
	f := newServer(t, func(s *Server) { s.Receiver = rcv })

	tracks, pkts := loadPlays(t, 3)
	p := &publish.Publisher{Name: "w", URL: testutil.RTMPURL(t, rcv.Addr().String(), "w"), Tracks: tracks, Log: testutil.Logger()}
	if err := p.Initialize(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	key := -1
	for i, pkt := range pkts {
		if pkt.Track.Codec == media.CodecH264 && pkt.Key && pkt.DTS >= 3*time.Second {
			key = i
			break
		}
	}
	wf := &watchFixture{fixture: f, rcv: rcv, pub: p, pkts: pkts, key: key, tr: tracks}
	wf.push(t, pkts[:key])
	testutil.WaitFor(t, "the stream is received", 5*time.Second, func() bool {
		s := rcv.Streams()
		return len(s) == 1 && s[0].Active
	})
	return wf
}

func (wf *watchFixture) push(t *testing.T, pkts []*media.Packet) {
	t.Helper()
	for _, pkt := range pkts {
		if !wf.pub.Push(pkt) {
			t.Fatal("Push refused a packet")
		}
	}
}

func (wf *watchFixture) finish(t *testing.T) {
	t.Helper()
	wf.pub.Finish()
	select {
	case <-wf.pub.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the publisher did not end within 5 s")
	}
}

func (f *fixture) dialWatch(t *testing.T, path string) *websocket.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	u := "ws" + strings.TrimPrefix(f.base, "http") + "/api/v1/watch?path=" + url.QueryEscape(path)
	c, resp, err := websocket.Dial(ctx, u, nil)
	if err != nil {
		t.Fatalf("dial %s: %v", u, err)
	}
	if resp.Body != nil {
		resp.Body.Close()
	}
	c.SetReadLimit(16 << 20)
	t.Cleanup(func() { c.CloseNow() })
	return c
}

func read(t *testing.T, c *websocket.Conn) (websocket.MessageType, []byte, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return c.Read(ctx)
}

// closedWith reads c until it closes and returns the close frame.
func closedWith(t *testing.T, c *websocket.Conn) websocket.CloseError {
	t.Helper()
	ce, err := readClose(c)
	if err != nil {
		t.Fatal(err)
	}
	return ce
}

// readClose reads c until it closes (5 s at most) and returns the close
// frame; it may run on any goroutine.
func readClose(c *websocket.Conn) (websocket.CloseError, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for {
		_, _, err := c.Read(ctx)
		if err == nil {
			continue
		}
		var ce websocket.CloseError
		if !errors.As(err, &ce) {
			return ce, fmt.Errorf("read: %w, want a close frame", err)
		}
		return ce, nil
	}
}

func TestWatch(t *testing.T) {
	wf := newWatchFixture(t, 0)
	c := wf.dialWatch(t, "live/w")

	typ, msg, err := read(t, c)
	if err != nil || typ != websocket.MessageText {
		t.Fatalf("first message: %v %q %v, want the init JSON", typ, msg, err)
	}
	var init map[string]string
	if err := json.Unmarshal(msg, &init); err != nil || init["type"] != "init" ||
		init["mime"] != `video/mp4; codecs="avc1.42c00d,mp4a.40.2"` {
		t.Fatalf("init message %s (%v)", msg, err)
	}
	typ, msg, err = read(t, c)
	if err != nil || typ != websocket.MessageBinary {
		t.Fatalf("second message: %v %v, want the init segment", typ, err)
	}
	var in mcfmp4.Init
	if err := in.Unmarshal(bytes.NewReader(msg)); err != nil {
		t.Fatalf("init segment: %v", err)
	}
	if len(in.Tracks) != 2 {
		t.Fatalf("init segment: %d tracks", len(in.Tracks))
	}
	if h, ok := in.Tracks[0].Codec.(*mp4codecs.H264); !ok || !bytes.Equal(h.SPS, wf.tr[0].SPS) || !bytes.Equal(h.PPS, wf.tr[0].PPS) {
		t.Errorf("video track %#v, want H.264 with the publisher's SPS and PPS", in.Tracks[0].Codec)
	}
	if a, ok := in.Tracks[1].Codec.(*mp4codecs.MPEG4Audio); !ok || a.Config.Type != mpeg4audio.ObjectTypeAACLC || a.Config.SampleRate != 48000 {
		t.Errorf("audio track %#v, want AAC LC 48 kHz", in.Tracks[1].Codec)
	}

	wf.push(t, wf.pkts[wf.key:])
	wf.finish(t)
	wantVideo := 0
	for _, p := range wf.pkts[wf.key:] {
		if p.Track.Codec == media.CodecH264 {
			wantVideo++
		}
	}
	video, audio, frags := 0, 0, 0
	var end websocket.CloseError
	for {
		typ, msg, err := read(t, c)
		if err != nil {
			if !errors.As(err, &end) {
				t.Fatalf("after %d fragments: %v, want a close frame", frags, err)
			}
			break
		}
		if typ != websocket.MessageBinary {
			t.Fatalf("fragment %d is a %v message", frags, typ)
		}
		var parts mcfmp4.Parts
		if err := parts.Unmarshal(msg); err != nil {
			t.Fatalf("fragment %d: %v", frags, err)
		}
		for _, pt := range parts[0].Tracks {
			if len(pt.Samples) == 0 {
				t.Errorf("fragment %d track %d without samples", frags, pt.ID)
			}
			if pt.ID == 1 {
				if frags == 0 && (pt.BaseTime != 0 || pt.Samples[0].IsNonSyncSample) {
					t.Errorf("first fragment starts at %d, sync %v; want a key frame at 0", pt.BaseTime, !pt.Samples[0].IsNonSyncSample)
				}
				video += len(pt.Samples)
			} else {
				audio += len(pt.Samples)
			}
		}
		frags++
	}
	t.Logf("%d fragments, %d video and %d audio samples; closed %d %q", frags, video, audio, end.Code, end.Reason)
	if video != wantVideo || audio < wantVideo {
		t.Errorf("%d video and %d audio samples, want %d video and more audio", video, audio, wantVideo)
	}
	if end.Code != websocket.StatusNormalClosure || end.Reason != "the stream ended" {
		t.Errorf("closed with %d %q, want 1000 \"the stream ended\"", end.Code, end.Reason)
	}
}

func TestWatchRefused(t *testing.T) {
	wf := newWatchFixture(t, 1)
	// The one watcher the stream takes.
	first := wf.dialWatch(t, "live/w")
	if _, _, err := read(t, first); err != nil {
		t.Fatal(err)
	}

	for _, ca := range []struct {
		name, path string
		status     int
		contains   string
	}{
		{"unknown path", "live/other", http.StatusNotFound, `no live stream "live/other"`},
		{"a file", "../../../etc/passwd", http.StatusNotFound, "no live stream"},
		{"path without its app", "w", http.StatusNotFound, "no live stream"},
		{"no path", "", http.StatusBadRequest, "?path="},
		{"path with a control character", "live/w\n", http.StatusBadRequest, "?path="},
		{"path too long", strings.Repeat("a", maxWatchPath+1), http.StatusBadRequest, "?path="},
		{"too many watchers", "live/w", http.StatusTooManyRequests, "too many people"},
	} {
		t.Run(ca.name+" over http", func(t *testing.T) {
			resp, body := wf.do(t, http.MethodGet, "/api/v1/watch?path="+url.QueryEscape(ca.path))
			if resp.StatusCode != ca.status || !strings.Contains(body, ca.contains) {
				t.Errorf("GET = %d %q, want %d and %q", resp.StatusCode, body, ca.status, ca.contains)
			}
		})
		t.Run(ca.name+" over websocket", func(t *testing.T) {
			c := wf.dialWatch(t, ca.path)
			ce := closedWith(t, c)
			if int(ce.Code) != 4000+ca.status || !strings.Contains(ce.Reason, ca.contains) {
				t.Errorf("closed with %d %q, want %d and %q", ce.Code, ce.Reason, 4000+ca.status, ca.contains)
			}
		})
	}

	// The first watcher was not disturbed, and its place is free once it
	// leaves.
	if typ, _, err := read(t, first); err != nil || typ != websocket.MessageBinary {
		t.Fatalf("the first watcher: %v %v", typ, err)
	}
	first.Close(websocket.StatusNormalClosure, "")
	testutil.WaitFor(t, "the place of the first watcher is free", 5*time.Second, func() bool {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		w, err := wf.rcv.Watch(ctx, "live/w")
		if err == nil {
			w.Close()
		}
		return err == nil
	})
}

func TestCloseEndsWatches(t *testing.T) {
	wf := newWatchFixture(t, 0)
	c := wf.dialWatch(t, "live/w")
	if _, _, err := read(t, c); err != nil {
		t.Fatal(err)
	}
	// The browser reads on: it answers the close frame.
	type result struct {
		ce  websocket.CloseError
		err error
	}
	closed := make(chan result, 1)
	go func() { // ends within 5 s
		ce, err := readClose(c)
		closed <- result{ce, err}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	began := time.Now()
	if err := wf.srv.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if d := time.Since(began); d > 2*time.Second {
		t.Errorf("Close took %v with a watch open", d)
	}
	res := <-closed
	if res.err != nil {
		t.Fatal(res.err)
	}
	ce := res.ce
	if ce.Code != websocket.StatusGoingAway || ce.Reason != "livegate is shutting down" {
		t.Errorf("closed with %d %q, want 1001 \"livegate is shutting down\"", ce.Code, ce.Reason)
	}
}

func TestCloseReason(t *testing.T) {
	for _, ca := range []struct{ in, want string }{
		{"short", "short"},
		{strings.Repeat("a", 123), strings.Repeat("a", 123)},
		{strings.Repeat("a", 124), strings.Repeat("a", 120) + "..."},
		{strings.Repeat("a", 119) + "ééé", strings.Repeat("a", 119) + "..."},
	} {
		got := closeReason(ca.in)
		if got != ca.want || len(got) > 123 {
			t.Errorf("closeReason(%d bytes) = %q, want %q", len(ca.in), got, ca.want)
		}
	}
}
