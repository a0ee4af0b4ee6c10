package mediarecorder

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/livegate/livegate/internal/metrics"
	"github.com/livegate/livegate/internal/session"
	"github.com/livegate/livegate/internal/testutil"
)

// dialQuery opens a publish socket with query (such as "resume=ID"); on a
// refused handshake it returns the HTTP status.
func (f *fixture) dialQuery(t *testing.T, query string) (*client, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	u := "ws" + strings.TrimPrefix(f.srv.URL, "http")
	if query != "" {
		u += "/?" + query
	}
	c, resp, err := websocket.Dial(ctx, u, nil)
	if err != nil {
		if resp == nil {
			t.Fatalf("dial: %v", err)
		}
		return nil, resp.StatusCode
	}
	t.Cleanup(func() { c.CloseNow() })
	return &client{t: t, c: c}, http.StatusSwitchingProtocols
}

// TestDrain: after Drain, a live broadcast is told when it will end and
// goes on (its media still reaches the destination); a new socket is
// refused with 503 unless it comes to resume, and a start on it is refused;
// a lost broadcast may still be resumed. Ending the handler's context at
// the deadline ends what is left with shutting_down, and Drained closes.
func TestDrain(t *testing.T) {
	f := newFixture(t, func(h *Handler) {
		h.ResumeWindow = 5 * time.Second
		h.FirstMediaTimeout, h.IdleTimeout = 30*time.Second, 30*time.Second
		h.Metrics = metrics.New()
	})
	data := h264File(t)
	a, ready := f.started(t)
	id, _ := ready["session"].(string)
	token, _ := ready["resume_token"].(string)
	sendChunks(t, a, data[:len(data)/2])
	waitFor(t, func() bool { s := f.rcv.Streams(); return len(s) == 1 && s[0].Video != nil })

	const grace = 3 * time.Second
	f.h.Drain(grace)
	if !f.h.Draining() {
		t.Fatal("Draining() is false after Drain")
	}
	m := a.next("draining")
	if ms, _ := m["deadline_ms"].(float64); m["type"] != "draining" || ms <= 0 || ms > float64(grace.Milliseconds()) {
		t.Fatalf("got %v, want draining with 0 < deadline_ms <= %d", m, grace.Milliseconds())
	}

	// New broadcasts are refused: at the handshake, or at start.
	if _, status := f.dialQuery(t, ""); status != http.StatusServiceUnavailable {
		t.Errorf("a new socket during the drain: %d, want 503", status)
	}
	x, status := f.dialQuery(t, "resume=nosuchsession")
	if status != http.StatusSwitchingProtocols {
		t.Fatalf("a socket that comes to resume: %d, want it taken", status)
	}
	x.sendText(startH264)
	if m := x.next("ready"); m["code"] != "shutting_down" {
		t.Fatalf("start during the drain: %v, want shutting_down", m)
	}
	if code := x.closeStatus(); code != websocket.StatusGoingAway {
		t.Errorf("close %d, want 1001", code)
	}

	// The broadcast goes on; lost, it is resumed, and told again.
	framesBefore := f.rcv.Streams()[0].Video.Frames
	_ = a.c.CloseNow()
	b, status := f.dialQuery(t, "resume="+id)
	if status != http.StatusSwitchingProtocols {
		t.Fatalf("resume during the drain: %d, want it taken", status)
	}
	b.sendText(`{"type":"resume","version":1,"session":"` + id + `","token":"` + token + `"}`)
	if m := b.next("ready"); m["resumed"] != true {
		t.Fatalf("resume during the drain: %v, want ready resumed", m)
	}
	if m := b.next("draining"); m["type"] != "draining" {
		t.Fatalf("after the resume: %v, want draining", m)
	}
	sendChunks(t, b, data)
	waitFor(t, func() bool { return f.rcv.Streams()[0].Video.Frames > framesBefore+30 })
	select {
	case <-f.h.Drained():
		t.Fatal("Drained while a broadcast is live")
	default:
	}

	// The deadline: what is left ends as at a shutdown.
	f.cancel()
	if m := b.next("error"); m["code"] != "shutting_down" {
		t.Fatalf("at the deadline: %v, want shutting_down", m)
	}
	if code := b.closeStatus(); code != websocket.StatusGoingAway {
		t.Errorf("close %d, want 1001", code)
	}
	select {
	case <-f.h.Drained():
	case <-time.After(10 * time.Second):
		t.Fatal("Drained not closed after the last broadcast ended")
	}
	if got := testutil.MetricValue(t, f.h.Metrics.Handler(), `livegate_session_errors_total{code="shutting_down"}`); got != "3" {
		t.Errorf(`livegate_session_errors_total{code="shutting_down"} %s, want 3 (503, start, deadline)`, got)
	}
}

// TestDrainWithNothingLive: Drained closes at once.
func TestDrainWithNothingLive(t *testing.T) {
	f := newFixture(t, nil)
	f.h.Drain(time.Minute)
	select {
	case <-f.h.Drained():
	case <-time.After(time.Second):
		t.Fatal("Drained not closed with nothing live")
	}
}

// TestReconfigure: new settings apply to the broadcasts that start after
// them; a broadcast in progress keeps the destinations and limits it began
// with, to its end.
func TestReconfigure(t *testing.T) {
	f := newFixture(t, func(h *Handler) { h.FirstMediaTimeout, h.IdleTimeout = 30*time.Second, 30*time.Second })
	data := h264File(t)
	a, _ := f.started(t)
	sendChunks(t, a, data[:len(data)/2])

	// "local" is removed and "other" added; at most one broadcast now.
	set := Settings{
		Encode:            f.h.Encode,
		Destinations:      map[string]Destination{"other": {Name: "other", Target: fixed(testutil.RTMPURL(t, f.rcv.Addr().String(), "other"))}},
		Profiles:          map[string]session.Profile{},
		MaxSessions:       2,
		MaxMessageBytes:   1 << 20,
		FirstMediaTimeout: 30 * time.Second,
		IdleTimeout:       30 * time.Second,
	}
	f.h.Reconfigure(set)

	b := f.dial(t)
	b.sendText(startH264)
	if m := b.next("ready"); m["code"] != "unknown_destination" || !strings.Contains(m["message"].(string), "choose one of: other") {
		t.Fatalf("a new broadcast to the removed destination: %v, want unknown_destination naming other", m)
	}
	c := f.dial(t)
	c.sendText(strings.Replace(startH264, `["local"]`, `["other"]`, 1))
	if m := c.next("ready"); m["type"] != "ready" {
		t.Fatalf("a new broadcast to the added destination: %v, want ready", m)
	}
	// Two are live: the new limit refuses a third.
	d := f.dial(t)
	d.sendText(strings.Replace(startH264, `["local"]`, `["other"]`, 1))
	if m := d.next("ready"); m["code"] != "too_many_sessions" {
		t.Fatalf("a third broadcast with max_sessions 2: %v, want too_many_sessions", m)
	}

	// Both go on to a clean end, each to its own destination.
	sendChunks(t, a, data[len(data)/2:])
	sendChunks(t, c, data)
	for _, x := range []*client{a, c} {
		x.sendText(`{"type":"stop"}`)
		if code := x.closeStatus(); code != websocket.StatusNormalClosure {
			t.Fatalf("close %d, want 1000", code)
		}
	}
	waitFor(t, func() bool {
		s := f.rcv.Streams()
		return len(s) == 2 && !s[0].Active && !s[1].Active
	})
	for _, s := range f.rcv.Streams() {
		if (s.Path != "live/local" && s.Path != "live/other") || s.Video == nil || s.Video.Frames < 115 {
			t.Errorf("stream %s: video %+v, want all of the 4 s", s.Path, s.Video)
		}
	}
}

// TestStopAndSessions: the operator lists the live broadcasts and ends one;
// the browser is told why, the other broadcast goes on.
func TestStopAndSessions(t *testing.T) {
	f := newFixture(t, func(h *Handler) {
		h.Metrics = metrics.New()
		h.FirstMediaTimeout, h.IdleTimeout = 30*time.Second, 30*time.Second
	})
	data := h264File(t)
	a := f.dial(t)
	a.sendText(startH264)
	idA := a.next("ready")["session"].(string)
	c := f.dial(t)
	c.sendText(startH264)
	idC := c.next("ready")["session"].(string)
	sendChunks(t, a, data[:len(data)/2])
	waitFor(t, func() bool {
		s := f.h.Sessions()
		return len(s) == 2 && s[0].BytesIn > 0 && len(s[0].Destinations) == 1
	})

	list := f.h.Sessions()
	if list[0].ID != idA || list[1].ID != idC {
		t.Fatalf("sessions %s, %s, want %s, %s, oldest first", list[0].ID, list[1].ID, idA, idC)
	}
	s := list[0]
	if s.Subject != "anonymous" || s.Ingest != "mediarecorder" || s.Video != "H264" || s.State != "live" ||
		!strings.HasPrefix(s.Remote, "127.0.0.1:") || s.UptimeMS <= 0 || s.Destinations[0].Name != "local" {
		t.Errorf("session %+v", s)
	}

	publishers := func() string {
		return testutil.MetricValue(t, f.h.Metrics.Handler(), `livegate_destination_publishers{destination="local"}`)
	}
	// One publisher: the other broadcast has sent no media, and has nothing to publish yet.
	waitFor(t, func() bool { return publishers() == "1" })
	if _, ok := f.h.Stop("nosuchsession"); ok {
		t.Error("Stop of an unknown session said ok")
	}
	ended, ok := f.h.Stop(idA)
	if !ok {
		t.Fatal("Stop of a live session said not ok")
	}
	if m := a.next("error"); m["code"] != "stopped_by_operator" || len(m["message"].(string)) < 20 {
		t.Fatalf("the stopped browser got %v, want stopped_by_operator", m)
	}
	if code := a.closeStatus(); code != closeGone {
		t.Errorf("close %d, want %d", code, closeGone)
	}
	select {
	case <-ended:
	case <-time.After(10 * time.Second):
		t.Fatal("the stopped broadcast did not end")
	}
	if got := publishers(); got != "0" {
		t.Errorf(`livegate_destination_publishers{destination="local"} %s after the stop, want 0`, got)
	}
	if l := f.h.Sessions(); len(l) != 1 || l[0].ID != idC {
		t.Fatalf("after the stop: %+v, want only %s", l, idC)
	}
	c.sendText(`{"type":"ping","id":1}`)
	if m := c.next("pong"); m["type"] != "pong" {
		t.Fatalf("the other broadcast: %v, want it still served", m)
	}
	if got := testutil.MetricValue(t, f.h.Metrics.Handler(), `livegate_session_errors_total{code="stopped_by_operator"}`); got != "1" {
		t.Errorf(`livegate_session_errors_total{code="stopped_by_operator"} %s, want 1`, got)
	}
}
