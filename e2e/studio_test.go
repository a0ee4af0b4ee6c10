package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/livegate/livegate/internal/auth"
	"github.com/livegate/livegate/internal/testutil"
)

// TestStudioStates walks the studio page through its main states (ready,
// live, reconnecting after a network loss, a destination that cannot be
// reached, and live on a phone-sized screen) and checks what each shows
// the streamer. With LIVEGATE_SCREENSHOT_DIR set (make screenshots) it
// keeps a picture of each for the README.
func TestStudioStates(t *testing.T) {
	dead := testutil.ClosedPort(t)
	lg := startLivegate(t, fmt.Sprintf("receiver:\n  listen: 127.0.0.1:0\ndestinations:\n  local:\n    builtin: true\n  youtube:\n    url: rtmp://%s/live/unreachable\n    description: YouTube (unreachable in this test)\n", dead))
	// The browser reaches livegate through a proxy the test can take down.
	link := testutil.StartThrottle(t, strings.TrimPrefix(lg.BaseURL, "http://"), 1<<30)
	b := startChromium(t)
	screenshotOnFailure(t, "studio", b)
	dir := os.Getenv("LIVEGATE_SCREENSHOT_DIR")
	shot := func(name string) {
		t.Helper()
		if dir == "" {
			return
		}
		if err := b.Screenshot(filepath.Join(dir, "studio-"+name+".png")); err != nil {
			t.Error(err)
		}
	}
	status := func() string {
		t.Helper()
		var s string
		if err := evalInto(b, `document.querySelector('#status').textContent`, &s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	base := "http://" + link.Addr

	// Ready: the camera is on, the destinations are listed, Go live is enabled.
	if err := b.Navigate(base + "/?destination=local"); err != nil {
		t.Fatal(err)
	}
	if err := b.WaitFor(`document.body.dataset.state === 'ready' && !document.querySelector('#golive').disabled`, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	var labels struct {
		Unlabelled []string `json:"unlabelled"`
		Dests      int      `json:"dests"`
	}
	// Every control has a name a screen reader can say.
	if err := evalInto(b, `({unlabelled: [...document.querySelectorAll('button, select, input, video')]
	    .filter((e) => !e.hidden && !(e.labels && e.labels.length) && !e.getAttribute('aria-label') && !e.getAttribute('aria-labelledby') && !e.textContent.trim())
	    .map((e) => e.id || e.tagName),
	  dests: document.querySelectorAll('#destination-list input').length})`, &labels); err != nil {
		t.Fatal(err)
	}
	if len(labels.Unlabelled) > 0 || labels.Dests != 2 {
		t.Errorf("ready page: controls without a label %v, %d destinations listed (want 2)", labels.Unlabelled, labels.Dests)
	}
	shot("ready")

	// Live, with its health figures.
	if _, err := b.Eval(`window.__livegate.goLive()`); err != nil {
		t.Fatal(err)
	}
	if err := b.WaitFor(`window.__livegate.destinations?.local?.state === 'live' && window.__livegate.rtt > 0 && window.__livegate.lastStats?.uptime_ms > 3000`, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	var live struct {
		Time, Sent, RTT string
	}
	if err := evalInto(b, `({time: document.querySelector('#stat-time').textContent, sent: document.querySelector('#stat-sent').textContent,
	  rtt: document.querySelector('#stat-rtt').textContent})`, &live); err != nil {
		t.Fatal(err)
	}
	if live.Time == "00:00" || live.Sent == "—" || live.RTT == "—" {
		t.Errorf("live page shows time %q, sent %q, round trip %q; want figures", live.Time, live.Sent, live.RTT)
	}
	shot("live")

	// The network goes down: the page says so and keeps the broadcast.
	link.Refuse(true)
	link.Cut()
	if err := b.WaitFor(`document.body.dataset.state === 'reconnecting'`, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if s := status(); !strings.Contains(strings.ToLower(s), "reconnecting") {
		t.Errorf("while reconnecting the status says %q", s)
	}
	shot("reconnecting")
	link.Refuse(false)
	if err := b.WaitFor(`document.body.dataset.state === 'live' && window.__livegate.reconnects === 1`, 15*time.Second); err != nil {
		t.Fatal(err)
	}

	// On a phone: the same page, one column, nothing cut off.
	if err := b.SetViewport(390, 844, true); err != nil {
		t.Fatal(err)
	}
	var overflow int
	if err := evalInto(b, `document.documentElement.scrollWidth - window.innerWidth`, &overflow); err != nil {
		t.Fatal(err)
	}
	if overflow > 0 {
		t.Errorf("on a 390 px wide screen the page is %d px too wide", overflow)
	}
	shot("phone")
	if err := b.SetViewport(1280, 900, false); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Eval(`window.__livegate.stop()`); err != nil {
		t.Fatal(err)
	}
	if err := b.WaitFor(`document.body.dataset.state === 'stopped'`, 15*time.Second); err != nil {
		t.Fatal(err)
	}

	// A destination that cannot be reached: a clear error that names it.
	if err := b.Navigate(base + "/?destination=youtube&autostart=1"); err != nil {
		t.Fatal(err)
	}
	if err := b.WaitFor(`document.body.dataset.state === 'error'`, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	if s := status(); !strings.Contains(s, "youtube") || !strings.Contains(s, "could not connect") {
		t.Errorf("the error says %q; want it to name youtube and say it could not connect", s)
	}
	shot("error")
}

// TestStudioToken: on a server with tokens, the studio refuses to go live
// without one and says so at the token field; a token in the link's
// fragment (which the browser never sends to a server) is taken out of
// the address and used.
func TestStudioToken(t *testing.T) {
	token := auth.NewToken()
	lg := startLivegate(t, fmt.Sprintf("receiver:\n  listen: 127.0.0.1:0\ndestinations:\n  local:\n    builtin: true\nauth:\n  tokens:\n    - name: studio\n      hash: %s\n", auth.HashToken(token)))
	b := startChromium(t)
	screenshotOnFailure(t, "studio", b)

	if err := b.Navigate(lg.URL("/?destination=local&autostart=1")); err != nil {
		t.Fatal(err)
	}
	if err := b.WaitFor(`document.body.dataset.state === 'error' && window.__livegate.lastError?.code === 'unauthorized'`, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	var field struct {
		Shown   bool `json:"shown"`
		Focused bool `json:"focused"`
	}
	if err := evalInto(b, `({shown: !document.querySelector('#token-field').hidden, focused: document.activeElement?.id === 'token'})`, &field); err != nil {
		t.Fatal(err)
	}
	if !field.Shown || !field.Focused {
		t.Errorf("after the refusal the token field is shown %v, focused %v; want both", field.Shown, field.Focused)
	}

	// Another query: the same one with a fragment would not load the page again.
	if err := b.Navigate(lg.URL("/?autostart=1&destination=local#token=" + token)); err != nil {
		t.Fatal(err)
	}
	if err := b.WaitFor(`window.__livegate.destinations?.local?.state === 'live'`, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	var where string
	if err := evalInto(b, `location.href + ' ' + JSON.stringify(window.__livegate)`, &where); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(where, token) {
		t.Error("the token is still in the address or in window.__livegate")
	}
	if _, err := b.Eval(`window.__livegate.stop()`); err != nil {
		t.Fatal(err)
	}
	if err := b.WaitFor(`document.body.dataset.state === 'stopped'`, 15*time.Second); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(lg.Log(), token) {
		t.Error("livegate logged the token")
	}
}
