package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/livegate/livegate/internal/auth"
	"github.com/livegate/livegate/internal/config"
	"github.com/livegate/livegate/internal/server"
)

// broadcaster is a publish WebSocket as a test drives it.
type broadcaster struct {
	t  *testing.T
	c  *websocket.Conn
	id string
}

// startBroadcast opens a publish socket to srv and starts a broadcast to dest (Safari's
// MP4 with H.264 and AAC: nothing to transcode). It fails the test unless livegate
// answers ready.
func startBroadcast(t *testing.T, srv *server.Server, dest string) *broadcaster {
	t.Helper()
	b, m := tryBroadcast(t, srv, dest)
	if m["type"] != "ready" {
		t.Fatalf("start to %s: %v, want ready", dest, m)
	}
	b.id, _ = m["session"].(string)
	return b
}

// tryBroadcast is startBroadcast that returns livegate's answer to start, ready or error.
func tryBroadcast(t *testing.T, srv *server.Server, dest string) (*broadcaster, map[string]any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws://"+srv.Addr().String()+"/api/v1/publish", nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { c.CloseNow() })
	b := &broadcaster{t: t, c: c}
	start := `{"type":"start","version":1,"ingest":"mediarecorder","mime":"video/mp4;codecs=avc1,mp4a.40.2","destinations":["` + dest + `"]}`
	if err := c.Write(ctx, websocket.MessageText, []byte(start)); err != nil {
		t.Fatal(err)
	}
	return b, b.next("ready")
}

// next reads until a message of type want (or an error) and returns it.
func (b *broadcaster) next(want string) map[string]any {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	for {
		_, data, err := b.c.Read(ctx)
		if err != nil {
			b.t.Fatalf("waiting for %s: %v", want, err)
		}
		var m map[string]any
		if err := json.Unmarshal(data, &m); err != nil {
			b.t.Fatalf("not JSON: %q", data)
		}
		if m["type"] == want || m["type"] == "error" {
			return m
		}
	}
}

// ping checks that the broadcast is still served: a ping is answered.
func (b *broadcaster) ping() {
	b.t.Helper()
	if err := b.c.Write(context.Background(), websocket.MessageText, []byte(`{"type":"ping","id":7}`)); err != nil {
		b.t.Fatalf("ping: %v", err)
	}
	if m := b.next("pong"); m["type"] != "pong" {
		b.t.Fatalf("after a ping: %v, want pong", m)
	}
}

// closeStatus reads until the socket closes.
func (b *broadcaster) closeStatus() websocket.StatusCode {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	for {
		if _, _, err := b.c.Read(ctx); err != nil {
			return websocket.CloseStatus(err)
		}
	}
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get(url) //nolint:noctx // a test on loopback
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// TestDrain: on SIGTERM, /readyz answers 503 at once; a new broadcast is refused; the
// live one is told when it will end and goes on until shutdown_grace has passed, then
// ends with shutting_down; serve returns without an error.
func TestDrain(t *testing.T) {
	cfg := config.Default()
	cfg.Listen = "127.0.0.1:0"
	cfg.Receiver.Listen = "127.0.0.1:0"
	cfg.ShutdownGrace = 2 * time.Second
	var log syncBuffer
	lg := startLivegate(t, cfg, slog.New(slog.NewTextHandler(&log, nil)), nil)
	base := "http://" + lg.srv.Addr().String()
	if status, body := get(t, base+"/readyz"); status != 200 || body != "ready\n" {
		t.Fatalf("/readyz before the drain: %d %q, want 200 ready", status, body)
	}
	b := startBroadcast(t, lg.srv, "local")

	lg.stop <- syscall.SIGTERM
	began := time.Now()
	m := b.next("draining")
	if ms, _ := m["deadline_ms"].(float64); m["type"] != "draining" || ms < 1000 || ms > 2000 {
		t.Fatalf("after SIGTERM: %v, want draining with deadline_ms about 2000", m)
	}
	if status, body := get(t, base+"/readyz"); status != 503 || !strings.Contains(body, "draining") {
		t.Errorf("/readyz while draining: %d %q, want 503 saying why", status, body)
	}
	if status, _ := get(t, base+"/healthz"); status != 200 {
		t.Errorf("/healthz while draining: %d, want 200", status)
	}
	if _, body := get(t, base+"/metrics"); !strings.Contains(body, "\nlivegate_draining 1\n") {
		t.Errorf("/metrics while draining lacks livegate_draining 1")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if c, resp, err := websocket.Dial(ctx, "ws://"+lg.srv.Addr().String()+"/api/v1/publish", nil); err == nil {
		c.CloseNow()
		t.Error("a new publish socket was taken while draining")
	} else if resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("a new publish socket while draining: %v, want 503", err)
	}
	time.Sleep(time.Second)
	b.ping() // still live, a second into the drain

	if m := b.next("error"); m["code"] != "shutting_down" {
		t.Fatalf("at the end of the grace: %v, want shutting_down", m)
	}
	if code := b.closeStatus(); code != websocket.StatusGoingAway {
		t.Errorf("close %d, want 1001", code)
	}
	if took := time.Since(began); took < 1800*time.Millisecond || took > 4*time.Second {
		t.Errorf("the broadcast ended %v after SIGTERM, want at shutdown_grace (2 s)", took)
	}
	if err := lg.wait(10 * time.Second); err != nil {
		t.Fatalf("serve: %v", err)
	}
	for _, want := range []string{`msg="stopping: draining`, "grace=2s broadcasts=1", `msg="shutdown_grace has passed: ending the broadcasts left"`, `msg=stopped`} {
		if !strings.Contains(log.String(), want) {
			t.Errorf("the log does not say %s\n%s", want, log.String())
		}
	}
}

// TestDrainEndsEarly: with nothing live the drain ends at once; a second SIGTERM ends a
// drain at once.
func TestDrainEndsEarly(t *testing.T) {
	for _, ca := range []struct {
		name      string
		broadcast bool
		second    bool
	}{
		{"nothing live", false, false},
		{"second signal", true, true},
	} {
		t.Run(ca.name, func(t *testing.T) {
			cfg := config.Default()
			cfg.Listen = "127.0.0.1:0"
			cfg.Receiver.Listen = "127.0.0.1:0"
			cfg.ShutdownGrace = time.Minute
			lg := startLivegate(t, cfg, slog.New(slog.DiscardHandler), nil)
			var b *broadcaster
			if ca.broadcast {
				b = startBroadcast(t, lg.srv, "local")
			}
			began := time.Now()
			lg.stop <- syscall.SIGTERM
			if b != nil {
				b.next("draining")
			}
			if ca.second {
				lg.stop <- syscall.SIGTERM
			}
			if b != nil {
				if m := b.next("error"); m["code"] != "shutting_down" {
					t.Fatalf("after the second signal: %v, want shutting_down", m)
				}
				b.closeStatus()
			}
			if err := lg.wait(10 * time.Second); err != nil {
				t.Fatalf("serve: %v", err)
			}
			if took := time.Since(began); took > 5*time.Second {
				t.Errorf("serve took %v to stop, want far less than the minute of grace", took)
			}
		})
	}
}

// TestReload: SIGHUP reads the file again. A destination added can be used at once and
// is listed; one removed is refused to new broadcasts but the broadcast in progress to it
// goes on; a token added is accepted; a change that needs a restart is logged and
// ignored; a file with mistakes is refused, each mistake logged, and the running
// configuration kept.
func TestReload(t *testing.T) {
	tok := auth.NewToken()
	first := "listen: 127.0.0.1:0\nreceiver: {listen: 127.0.0.1:0}\ndestinations:\n  local: {builtin: true}\n"
	file := writeConfig(t, first)
	args := []string{"-config", file}
	cfg, err := configure(args, os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	var log syncBuffer
	lg := startLivegate(t, cfg, slog.New(slog.NewTextHandler(&log, nil)), func() (*config.Config, error) { return configure(args, io.Discard) })
	base := "http://" + lg.srv.Addr().String()
	live := startBroadcast(t, lg.srv, "local")

	reload := func(yaml, wait string) {
		t.Helper()
		if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		lg.reload <- syscall.SIGHUP
		deadline := time.Now().Add(5 * time.Second)
		for !strings.Contains(log.String(), wait) {
			if time.Now().After(deadline) {
				t.Fatalf("the log does not say %s after SIGHUP:\n%s", wait, log.String())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}

	// "local" removed, "other" added; a token, so that publishing needs one; a new listen
	// address, which needs a restart.
	reload("listen: 127.0.0.1:1\nreceiver: {listen: 127.0.0.1:0}\nlog: {level: debug}\n"+
		"auth: {tokens: [{name: cam, hash: "+auth.HashToken(tok)+"}]}\n"+
		"destinations:\n  other: {builtin: true, description: Added by a reload}\n",
		`msg="configuration reloaded: broadcasts in progress keep what they began with; new ones take the new settings" changed="auth.tokens: added cam; log.level; destinations: added other; removed local"`)
	if want := `level=WARN msg="configuration reload: this change needs a restart, and is ignored until then" field=listen`; !strings.Contains(log.String(), want) {
		t.Errorf("the log does not say %s", want)
	}
	if status, body := get(t, base+"/api/v1/destinations"); status != 200 || !strings.Contains(body, `"name":"other"`) || strings.Contains(body, `"name":"local"`) {
		t.Errorf("/api/v1/destinations after the reload: %d %s, want other and not local", status, body)
	}
	if typ, code := publishStartTo(t, lg.srv.Addr(), "other", ""); typ != "error" || code != "unauthorized" {
		t.Errorf("a start without a token after the reload: %s %s, want unauthorized", typ, code)
	}
	if typ, code := publishStartTo(t, lg.srv.Addr(), "other", tok); typ != "ready" {
		t.Errorf("a start to the added destination with the added token: %s %s, want ready", typ, code)
	}
	live.ping() // the broadcast to the removed destination goes on, without a token

	// Mistakes: refused, each said, and nothing changes.
	reload("listen: 127.0.0.1:1\nlimits: {max_sessions: 0}\ndestinations:\n  x: {url: 'file:///etc/passwd'}\n",
		`msg="configuration reload refused: livegate goes on with the configuration it had; fix the file and reload again (SIGHUP)"`)
	for _, want := range []string{
		`level=ERROR msg="configuration reload refused" problem="config ` + file + `: line 2: limits.max_sessions: 0 is out of range; use 1..10000"`,
		`problem="config ` + file + `: line 4: destinations.x.url:`,
	} {
		if !strings.Contains(log.String(), want) {
			t.Errorf("the log does not say %s\n%s", want, log.String())
		}
	}
	if status, body := get(t, base+"/api/v1/destinations"); status != 200 || !strings.Contains(body, `"name":"other"`) {
		t.Errorf("/api/v1/destinations after a refused reload: %d %s, want it unchanged", status, body)
	}
	if typ, _ := publishStartTo(t, lg.srv.Addr(), "other", tok); typ != "ready" {
		t.Errorf("a start after a refused reload: %s, want ready", typ)
	}
	live.ping()
	_, metricsBody := get(t, base+"/metrics")
	for _, want := range []string{`livegate_config_reloads_total{result="ok"} 1`, `livegate_config_reloads_total{result="error"} 1`} {
		if !strings.Contains(metricsBody, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if strings.Contains(log.String(), tok) {
		t.Error("the log holds the token")
	}
}

// TestAdminAPI runs livegate with an admin token: the operator lists the broadcasts and
// ends one, whose browser is told why.
func TestAdminAPI(t *testing.T) {
	admin := auth.NewToken()
	cfg := config.Default()
	cfg.Listen = "127.0.0.1:0"
	cfg.Receiver.Listen = "127.0.0.1:0"
	cfg.Admin.TokenHash = auth.HashToken(admin)
	lg := startLivegate(t, cfg, slog.New(slog.DiscardHandler), nil)
	base := "http://" + lg.srv.Addr().String()
	b := startBroadcast(t, lg.srv, "local")

	do := func(method, path, token string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	if status, _ := do("GET", "/api/v1/admin/sessions", auth.NewToken()); status != 401 {
		t.Errorf("a wrong admin token: %d, want 401", status)
	}
	status, body := do("GET", "/api/v1/admin/sessions", admin)
	if status != 200 || !strings.Contains(body, `"id":"`+b.id+`"`) || !strings.Contains(body, `"subject":"anonymous"`) || strings.Contains(body, "rtmp") {
		t.Fatalf("GET /api/v1/admin/sessions: %d %s", status, body)
	}
	// DELETE answers once the broadcast has ended, which takes the browser's answer to
	// the close: the browser reads meanwhile.
	deleted := make(chan int, 1)
	go func() { // the test's client; the test waits for it below
		req, _ := http.NewRequest("DELETE", base+"/api/v1/admin/sessions/"+b.id, nil)
		req.Header.Set("Authorization", "Bearer "+admin)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			deleted <- 0
			return
		}
		resp.Body.Close()
		deleted <- resp.StatusCode
	}()
	if m := b.next("error"); m["code"] != "stopped_by_operator" {
		t.Fatalf("the browser got %v, want stopped_by_operator", m)
	}
	if code := b.closeStatus(); code != 4410 {
		t.Errorf("close %d, want 4410", code)
	}
	if status := <-deleted; status != 204 {
		t.Fatalf("DELETE: %d, want 204", status)
	}
	if status, _ := do("DELETE", "/api/v1/admin/sessions/"+b.id, admin); status != 404 {
		t.Errorf("DELETE of an ended broadcast: %d, want 404", status)
	}
	_, metricsBody := get(t, base+"/metrics")
	if !strings.Contains(metricsBody, `livegate_admin_refused_total{reason="unauthorized"} 1`) {
		t.Errorf("/metrics does not count the refused call")
	}
}
