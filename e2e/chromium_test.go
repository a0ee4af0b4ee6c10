package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// chromiumPath is the Debian package's launcher; it is a shell script that
// execs /usr/lib/chromium/chromium.
const chromiumPath = "/usr/bin/chromium"

// chromium is a headless Chromium driven over the DevTools protocol
// (chromedp), with a fake camera (30 fps) and microphone that pages may use
// without a prompt.
type chromium struct {
	// Launch is how long the browser took to start and open a tab.
	Launch time.Duration

	t           testing.TB
	allocCancel context.CancelFunc // kills the browser and waits for it
	ctx         context.Context    // the tab
	cancel      context.CancelFunc
	cmd         *exec.Cmd // set by ModifyCmdFunc before the start
	console     syncBuffer
	output      syncBuffer // browser stdout/stderr and chromedp errors
	consoleDone chan struct{}
	closeOnce   sync.Once
}

// startChromium starts Chromium with a fresh profile and one blank tab. The
// browser's console (console.*, uncaught exceptions, browser log entries)
// and its stderr are shown with t.Log if the test fails; a screenshot of the
// page goes to t.ArtifactDir() when go test
// runs with -artifacts.
func startChromium(t testing.TB) *chromium {
	t.Helper()
	return startChromiumWith(t)
}

// startChromiumWith is startChromium with more allocator options, which come
// after the usual ones (a flag given again replaces it): for example
// chromedp.Flag("use-file-for-fake-video-capture", path).
func startChromiumWith(t testing.TB, extra ...chromedp.ExecAllocatorOption) *chromium {
	t.Helper()
	requireE2E(t)
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Fatalf("e2e: %s not found (%v): install the Debian package %q (apt-get install -y chromium)",
			chromiumPath, err, "chromium")
	}
	c := &chromium{t: t, consoleDone: make(chan struct{})}
	profile := t.TempDir()

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath),
		chromedp.UserDataDir(profile),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.WindowSize(1280, 900),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("use-fake-device-for-media-stream", "fps=30"),
		chromedp.Flag("use-fake-ui-for-media-stream", true),
		chromedp.Flag("autoplay-policy", "no-user-gesture-required"),
		// getDisplayMedia without a picker: the screen-share tests.
		chromedp.Flag("auto-select-desktop-capture-source", "Entire screen"),
		chromedp.Flag("auto-accept-this-tab-capture", true),
		chromedp.CombinedOutput(&c.output),
		chromedp.ModifyCmdFunc(func(cmd *exec.Cmd) {
			// Own process group, so Close can make sure every helper
			// process (zygote, GPU, renderers) is gone; and die with us.
			cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
			c.cmd = cmd
		}),
	)
	opts = append(opts, extra...)
	actx, allocCancel := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx,
		chromedp.WithErrorf(func(f string, a ...any) { c.output.Printf("chromedp: "+f, a...) }),
		chromedp.WithLogf(func(f string, a ...any) { c.output.Printf("chromedp: "+f, a...) }),
	)
	c.allocCancel, c.ctx, c.cancel = allocCancel, ctx, cancel

	logOnFailure(t, "chromium stderr (D-Bus errors left out)", func() string {
		return dropLines(c.output.String(), "ERROR:dbus/")
	})
	logOnFailure(t, "chromium console", c.console.String)

	// The first action starts the browser, and the browser lives as long as
	// the context of that action: so no timeout on it, but a watchdog.
	began := time.Now()
	started := make(chan error, 1)
	go func() { started <- chromedp.Do(ctx, chromedp.Navigate("about:blank")) }()
	select {
	case err := <-started:
		if err != nil {
			cancel()
			allocCancel()
			t.Fatalf("chromium: start: %v\n%s", err, tail(c.output.String(), 4096))
		}
	case <-time.After(30 * time.Second):
		cancel()
		allocCancel()
		<-started
		t.Fatalf("chromium: did not start within 30 s\n%s", tail(c.output.String(), 4096))
	}
	c.Launch = time.Since(began)
	t.Logf("chromium: started in %v", c.Launch.Round(time.Millisecond))

	// Console subscribes now; the goroutine ends when the tab context ends
	// (Close).
	msgs := chromedp.Console(ctx)
	go func() {
		defer close(c.consoleDone)
		for m, err := range msgs {
			if err != nil {
				return
			}
			where := ""
			if m.URL != "" {
				where = fmt.Sprintf(" (%s:%d)", m.URL, m.Line+1)
			}
			c.console.Printf("%s %s%s", m.Time.Format("15:04:05.000"), m.String(), where)
		}
	}()

	t.Cleanup(c.Close)
	screenshotOnFailure(t, "chromium", c)
	return c
}

// Console returns the console messages so far, one per line.
func (c *chromium) Console() string { return c.console.String() }

func (c *chromium) timeout(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(c.ctx, d)
}

// Navigate loads url and waits for the load event (30 s at most).
func (c *chromium) Navigate(url string) error {
	ctx, cancel := c.timeout(30 * time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Navigate(url)); err != nil {
		return fmt.Errorf("chromium: navigate %s: %w", url, err)
	}
	return nil
}

// Eval evaluates expr as if the user had clicked (user activation, like
// Firefox's Eval), awaits a promise (60 s at most) and returns the JSON of
// the result.
func (c *chromium) Eval(expr string) (string, error) {
	ctx, cancel := c.timeout(60 * time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[string](jsonWrap(expr), chromedp.EvalAwaitPromise, userGesture))
	if err != nil {
		return "", fmt.Errorf("chromium: eval %q: %w", expr, err)
	}
	return v, nil
}

// userGesture makes an evaluation count as a user action.
func userGesture(p *runtime.EvaluateParams) {
	yes := true
	p.UserGesture = &yes
}

// WaitFor polls expr every 100 ms until it is truthy.
func (c *chromium) WaitFor(expr string, timeout time.Duration) error {
	if err := waitForExpr(c.Eval, expr, timeout); err != nil {
		return fmt.Errorf("chromium: %w", err)
	}
	return nil
}

// Screenshot writes a full-page PNG to path.
func (c *chromium) Screenshot(path string) error {
	ctx, cancel := c.timeout(30 * time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		return fmt.Errorf("chromium: screenshot: %w", err)
	}
	return os.WriteFile(path, png, 0o644)
}

// SetViewport makes the page width × height CSS pixels, as a phone
// (touch, device scale 2) when mobile.
func (c *chromium) SetViewport(width, height int, mobile bool) error {
	ctx, cancel := c.timeout(10 * time.Second)
	defer cancel()
	scale := 1.0
	if mobile {
		scale = 2
	}
	_, err := chromedp.Run(ctx, chromedp.EmulateViewport(int64(width), int64(height), func(p *emulation.SetDeviceMetricsOverrideParams, _ *emulation.SetTouchEmulationEnabledParams) {
		p.DeviceScaleFactor = scale
		p.Mobile = mobile
	}))
	return err
}

// Close closes the browser gracefully (10 s at most), then makes sure no
// process of its group is left. It may be called more than once.
func (c *chromium) Close() {
	c.closeOnce.Do(func() {
		ctx, cancel := c.timeout(10 * time.Second)
		err := chromedp.Cancel(ctx)
		cancel()
		if err != nil {
			c.output.Printf("chromium: graceful close: %v", err)
		}
		c.cancel()
		c.allocCancel() // waits until the browser process was reaped
		<-c.consoleDone
		if c.cmd != nil && c.cmd.Process != nil {
			if err := waitGroupGone(c.cmd.Process.Pid, 10*time.Second); err != nil {
				c.t.Errorf("chromium: %v", err)
			}
		}
	})
}

// dropLines removes the lines that contain substr (Chromium without D-Bus
// prints dozens of D-Bus errors that mean nothing here).
func dropLines(s, substr string) string {
	var b strings.Builder
	for line := range strings.Lines(s) {
		if !strings.Contains(line, substr) {
			b.WriteString(line)
		}
	}
	return b.String()
}
