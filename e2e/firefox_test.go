package e2e

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// firefoxPath is the Debian package's Firefox ESR.
const firefoxPath = "/usr/bin/firefox-esr"

// firefoxPrefs go into user.js of the fresh profile: fake camera and
// microphone without a prompt, autoplay allowed, and nothing that reaches
// the network on its own (telemetry, updates, safe browsing, captive portal
// detection, remote settings, the OpenH264 download).
var firefoxPrefs = map[string]any{
	"media.navigator.streams.fake":        true,
	"media.navigator.permission.disabled": true,
	// The fake camera's default size when the page gives no constraints.
	"media.navigator.video.default_width":  1280,
	"media.navigator.video.default_height": 720,
	"media.navigator.video.default_fps":    30,
	"media.autoplay.default":               0,
	"media.autoplay.blocking_policy":       0,
	"media.gmp-manager.updateEnabled":      false,
	"media.gmp-gmpopenh264.autoupdate":     false,
	"media.gmp-gmpopenh264.enabled":        false,

	"toolkit.telemetry.enabled":                   false,
	"toolkit.telemetry.unified":                   false,
	"toolkit.telemetry.archive.enabled":           false,
	"toolkit.telemetry.server":                    "",
	"datareporting.healthreport.uploadEnabled":    false,
	"datareporting.policy.dataSubmissionEnabled":  false,
	"datareporting.policy.firstRunURL":            "",
	"app.normandy.enabled":                        false,
	"messaging-system.rsexperimentloader.enabled": false,
	"app.shield.optoutstudies.enabled":            false,
	"browser.ping-centre.telemetry":               false,

	"app.update.enabled":                 false,
	"app.update.auto":                    false,
	"app.update.checkInstallTime":        false,
	"app.update.disabledForTesting":      true,
	"extensions.update.enabled":          false,
	"extensions.getAddons.cache.enabled": false,
	"extensions.blocklist.enabled":       false,

	"browser.safebrowsing.malware.enabled":          false,
	"browser.safebrowsing.phishing.enabled":         false,
	"browser.safebrowsing.downloads.enabled":        false,
	"browser.safebrowsing.downloads.remote.enabled": false,
	"browser.safebrowsing.blockedURIs.enabled":      false,
	"browser.safebrowsing.update.enabled":           false,

	"network.captive-portal-service.enabled":  false,
	"network.connectivity-service.enabled":    false,
	"services.settings.server":                "data:,#remote-settings-dummy/v1",
	"browser.region.network.url":              "",
	"browser.search.update":                   false,
	"network.dns.disablePrefetch":             true,
	"network.prefetch-next":                   false,
	"network.http.speculative-parallel-limit": 0,

	"browser.shell.checkDefaultBrowser":             false,
	"browser.startup.homepage_override.mstone":      "ignore",
	"browser.aboutwelcome.enabled":                  false,
	"browser.newtabpage.enabled":                    false,
	"browser.tabs.warnOnClose":                      false,
	"browser.sessionstore.resume_from_crash":        false,
	"toolkit.startup.max_resumed_crashes":           -1,
	"browser.crashReports.unsubmittedCheck.enabled": false,
}

// firefox is a headless Firefox ESR driven over WebDriver BiDi, which
// Firefox has built in (no geckodriver; Debian has none).
type firefox struct {
	// Launch is how long Firefox took until a BiDi session had a tab.
	Launch time.Duration

	t       testing.TB
	proc    *proc
	output  syncBuffer // stdout/stderr
	console syncBuffer // log.entryAdded events
	conn    *websocket.Conn
	context string // the top-level browsing context

	mu       sync.Mutex
	nextID   int
	pending  map[int]chan bidiResponse
	readErr  error
	closed   bool // readLoop has ended; guarded by mu
	readDone chan struct{}

	closeOnce sync.Once
}

type bidiResponse struct {
	Type    string          `json:"type"` // "success", "error", "event"
	ID      *int            `json:"id"`
	Result  json.RawMessage `json:"result"`
	Error   string          `json:"error"`
	Message string          `json:"message"`
	Method  string          `json:"method"` // events
	Params  json.RawMessage `json:"params"` // events
}

// bidiURL is the line Firefox prints on stderr when the BiDi server runs.
var bidiURL = regexp.MustCompile(`WebDriver BiDi listening on (ws://[0-9.:\[\]a-zA-Z]+)`)

// urlWatcher copies output to buf and sends the first BiDi URL it sees.
type urlWatcher struct {
	buf   *syncBuffer
	found chan string
	mu    sync.Mutex
	seen  bool
	line  []byte
}

func (w *urlWatcher) Write(p []byte) (int, error) {
	n, err := w.buf.Write(p)
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.seen {
		return n, err
	}
	w.line = append(w.line, p...)
	for {
		i := strings.IndexByte(string(w.line), '\n')
		if i < 0 {
			break
		}
		if m := bidiURL.FindSubmatch(w.line[:i]); m != nil {
			w.seen = true
			w.found <- string(m[1])
			w.line = nil
			break
		}
		w.line = w.line[i+1:]
	}
	return n, err
}

// startFirefox starts Firefox ESR with a fresh profile, opens a BiDi session
// and subscribes to console messages, which are shown with t.Log if the
// test fails.
func startFirefox(t testing.TB) *firefox {
	t.Helper()
	requireE2E(t)
	if _, err := os.Stat(firefoxPath); err != nil {
		t.Fatalf("e2e: %s not found (%v): install the Debian package %q (apt-get install -y firefox-esr)",
			firefoxPath, err, "firefox-esr")
	}
	profile := t.TempDir()
	if err := os.WriteFile(filepath.Join(profile, "user.js"), []byte(userJS(firefoxPrefs)), 0o644); err != nil {
		t.Fatal(err)
	}
	f := &firefox{t: t, pending: make(map[int]chan bidiResponse), readDone: make(chan struct{})}
	logOnFailure(t, "firefox stderr", f.output.String)
	logOnFailure(t, "firefox console", f.console.String)

	began := time.Now()
	watcher := &urlWatcher{buf: &f.output, found: make(chan string, 1)}
	cmd := exec.Command(firefoxPath, "--headless", "--no-remote", "--profile", profile,
		"--remote-debugging-port", "0", "--remote-allow-hosts", "127.0.0.1", "about:blank")
	cmd.Env = append(os.Environ(), "MOZ_HEADLESS=1", "MOZ_CRASHREPORTER_DISABLE=1")
	cmd.Stdout = &f.output
	cmd.Stderr = watcher
	p, err := startProc("firefox", cmd)
	if err != nil {
		t.Fatalf("firefox: %v", err)
	}
	f.proc = p
	// From here on Close cleans up, also after a failed start.
	t.Cleanup(f.Close)

	var wsURL string
	select {
	case wsURL = <-watcher.found:
	case <-p.done:
		t.Fatalf("firefox exited (code %d) before WebDriver BiDi listened\n%s", p.exitCode(), tail(f.output.String(), 4096))
	case <-time.After(30 * time.Second):
		t.Fatalf("firefox: no \"WebDriver BiDi listening\" line within 30 s\n%s", tail(f.output.String(), 4096))
	}
	listening := time.Since(began)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, wsURL+"/session", nil) //nolint:bodyclose // websocket.Dial owns the body
	if err != nil {
		t.Fatalf("firefox: connect to %s/session: %v", wsURL, err)
	}
	conn.SetReadLimit(256 << 20) // screenshots are big
	f.conn = conn
	go f.readLoop()

	if _, err := f.call(ctx, "session.new", map[string]any{"capabilities": map[string]any{}}); err != nil {
		t.Fatalf("firefox: %v", err)
	}
	if _, err := f.call(ctx, "session.subscribe", map[string]any{"events": []string{"log.entryAdded"}}); err != nil {
		t.Fatalf("firefox: %v", err)
	}
	res, err := f.call(ctx, "browsingContext.getTree", map[string]any{})
	if err != nil {
		t.Fatalf("firefox: %v", err)
	}
	var tree struct {
		Contexts []struct {
			Context string `json:"context"`
		} `json:"contexts"`
	}
	if err := json.Unmarshal(res, &tree); err != nil || len(tree.Contexts) == 0 {
		t.Fatalf("firefox: browsingContext.getTree: %v %s", err, res)
	}
	f.context = tree.Contexts[0].Context
	f.Launch = time.Since(began)
	t.Logf("firefox: BiDi listening after %v, session ready after %v (pid %d)",
		listening.Round(time.Millisecond), f.Launch.Round(time.Millisecond), p.pid())

	screenshotOnFailure(t, "firefox", f)
	return f
}

// userJS renders prefs as user_pref lines, sorted for a stable file.
func userJS(prefs map[string]any) string {
	var lines []string
	for k, v := range prefs {
		b, _ := json.Marshal(v)
		lines = append(lines, fmt.Sprintf("user_pref(%q, %s);", k, b))
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n") + "\n"
}

// readLoop owns reading from the connection: it hands responses to their
// callers and keeps log events. It ends when the connection closes (Close).
func (f *firefox) readLoop() {
	var err error
	defer func() {
		f.mu.Lock()
		f.readErr = err
		f.closed = true
		for id, ch := range f.pending {
			close(ch)
			delete(f.pending, id)
		}
		f.mu.Unlock()
		close(f.readDone)
	}()
	for {
		var data []byte
		_, data, err = f.conn.Read(context.Background())
		if err != nil {
			return
		}
		var msg bidiResponse
		if jerr := json.Unmarshal(data, &msg); jerr != nil {
			f.output.Printf("bidi: bad message %q: %v", data, jerr)
			continue
		}
		if msg.Type == "event" {
			if msg.Method == "log.entryAdded" {
				f.logEntry(msg.Params)
			}
			continue
		}
		if msg.ID == nil {
			f.output.Printf("bidi: message without id: %s", data)
			continue
		}
		f.mu.Lock()
		ch := f.pending[*msg.ID]
		delete(f.pending, *msg.ID)
		f.mu.Unlock()
		if ch != nil {
			ch <- msg
		}
	}
}

func (f *firefox) logEntry(params json.RawMessage) {
	var e struct {
		Type      string  `json:"type"`
		Level     string  `json:"level"`
		Text      string  `json:"text"`
		Timestamp float64 `json:"timestamp"` // ms since the epoch
		Method    string  `json:"method"`
		Stack     *struct {
			CallFrames []struct {
				URL  string `json:"url"`
				Line int    `json:"lineNumber"`
			} `json:"callFrames"`
		} `json:"stackTrace"`
	}
	if err := json.Unmarshal(params, &e); err != nil {
		f.console.Printf("(undecodable log entry %s)", params)
		return
	}
	where := ""
	if e.Stack != nil && len(e.Stack.CallFrames) > 0 {
		cf := e.Stack.CallFrames[0]
		where = fmt.Sprintf(" (%s:%d)", cf.URL, cf.Line+1)
	}
	kind := e.Level
	if e.Type == "javascript" {
		kind = "exception"
	}
	ts := time.UnixMilli(int64(e.Timestamp)).Format("15:04:05.000")
	f.console.Printf("%s %s: %s%s", ts, kind, e.Text, where)
}

// call sends one BiDi command and waits for its result.
func (f *firefox) call(ctx context.Context, method string, params any) (json.RawMessage, error) {
	f.mu.Lock()
	if f.closed {
		err := f.readErr
		f.mu.Unlock()
		return nil, fmt.Errorf("bidi %s: connection closed: %w", method, err)
	}
	f.nextID++
	id := f.nextID
	ch := make(chan bidiResponse, 1)
	f.pending[id] = ch
	f.mu.Unlock()

	msg, err := json.Marshal(map[string]any{"id": id, "method": method, "params": params})
	if err != nil {
		return nil, err
	}
	if err := f.conn.Write(ctx, websocket.MessageText, msg); err != nil {
		f.forget(id)
		return nil, fmt.Errorf("bidi %s: %w", method, err)
	}
	select {
	case resp, ok := <-ch:
		if !ok {
			return nil, fmt.Errorf("bidi %s: connection closed", method)
		}
		if resp.Type == "error" {
			return nil, fmt.Errorf("bidi %s: %s: %s", method, resp.Error, resp.Message)
		}
		return resp.Result, nil
	case <-ctx.Done():
		f.forget(id)
		return nil, fmt.Errorf("bidi %s: %w", method, ctx.Err())
	}
}

func (f *firefox) forget(id int) {
	f.mu.Lock()
	delete(f.pending, id)
	f.mu.Unlock()
}

// Console returns the console messages so far, one per line.
func (f *firefox) Console() string { return f.console.String() }

// Navigate loads url and waits until the document is complete (30 s at
// most).
func (f *firefox) Navigate(url string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := f.call(ctx, "browsingContext.navigate", map[string]any{
		"context": f.context, "url": url, "wait": "complete",
	})
	if err != nil {
		return fmt.Errorf("firefox: navigate %s: %w", url, err)
	}
	return nil
}

// Eval evaluates expr with user activation (as if the user had clicked, so
// getUserMedia/autoplay/fullscreen are allowed), awaits a promise (60 s at
// most) and returns the JSON of the result.
func (f *firefox) Eval(expr string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res, err := f.call(ctx, "script.evaluate", map[string]any{
		"expression":      jsonWrap(expr),
		"target":          map[string]any{"context": f.context},
		"awaitPromise":    true,
		"userActivation":  true,
		"resultOwnership": "none",
	})
	if err != nil {
		return "", fmt.Errorf("firefox: eval %q: %w", expr, err)
	}
	var r struct {
		Type   string `json:"type"` // "success" or "exception"
		Result struct {
			Type  string          `json:"type"`
			Value json.RawMessage `json:"value"`
		} `json:"result"`
		ExceptionDetails struct {
			Text      string `json:"text"`
			Line      int    `json:"lineNumber"`
			Column    int    `json:"columnNumber"`
			Exception struct {
				Type  string          `json:"type"`
				Value json.RawMessage `json:"value"`
			} `json:"exception"`
		} `json:"exceptionDetails"`
	}
	if err := json.Unmarshal(res, &r); err != nil {
		return "", fmt.Errorf("firefox: eval %q: decode %s: %w", expr, res, err)
	}
	if r.Type == "exception" {
		return "", fmt.Errorf("firefox: eval %q: exception %s", expr, r.ExceptionDetails.Text)
	}
	var s string
	if r.Result.Type != "string" || json.Unmarshal(r.Result.Value, &s) != nil {
		return "", fmt.Errorf("firefox: eval %q: unexpected result %s", expr, res)
	}
	return s, nil
}

// WaitFor polls expr every 100 ms until it is truthy.
func (f *firefox) WaitFor(expr string, timeout time.Duration) error {
	if err := waitForExpr(f.Eval, expr, timeout); err != nil {
		return fmt.Errorf("firefox: %w", err)
	}
	return nil
}

// Screenshot writes a PNG of the whole document to path.
func (f *firefox) Screenshot(path string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := f.call(ctx, "browsingContext.captureScreenshot", map[string]any{
		"context": f.context, "origin": "document",
	})
	if err != nil {
		return fmt.Errorf("firefox: screenshot: %w", err)
	}
	var r struct {
		Data string `json:"data"`
	}
	if err := json.Unmarshal(res, &r); err != nil {
		return fmt.Errorf("firefox: screenshot: %w", err)
	}
	png, err := base64.StdEncoding.DecodeString(r.Data)
	if err != nil {
		return fmt.Errorf("firefox: screenshot: %w", err)
	}
	return os.WriteFile(path, png, 0o644)
}

// Close ends the session, closes the browser (browser.close, 10 s at most)
// and then kills whatever is left of its process group. It may be called
// more than once.
func (f *firefox) Close() {
	f.closeOnce.Do(func() {
		if f.conn != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			if _, err := f.call(ctx, "browser.close", map[string]any{}); err != nil && !errors.Is(err, context.DeadlineExceeded) {
				// browser.close may lose its reply when the connection goes first.
				f.output.Printf("firefox: browser.close: %v", err)
			}
			cancel()
			_ = f.conn.CloseNow()
			<-f.readDone
		}
		if !f.proc.wait(10 * time.Second) {
			f.output.Printf("firefox: still running 10 s after browser.close; killing")
		}
		if err := f.proc.kill(); err != nil {
			f.t.Errorf("firefox: %v", err)
		}
	})
}
