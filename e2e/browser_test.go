package e2e

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// browser is what a test needs from Chromium (chromedp) and Firefox
// (WebDriver BiDi) alike, so one test body can run against both.
type browser interface {
	// Navigate loads url and waits for the load event.
	Navigate(url string) error
	// Eval evaluates a JavaScript expression in the page, awaits it if it is
	// a promise, and returns the result as JSON ("undefined" when the
	// result is undefined). A thrown exception is an error.
	Eval(expr string) (string, error)
	// WaitFor polls the expression every 100 ms until it is truthy (a
	// promise is awaited).
	// The timeout error names the expression and the page state
	// (document.body.dataset.state and the text of #status).
	WaitFor(expr string, timeout time.Duration) error
	// Screenshot writes a PNG of the whole page to path.
	Screenshot(path string) error
	// Close ends the browser and waits for all its processes. The helper
	// that started it also closes it in the test's cleanup.
	Close()
}

var (
	_ browser = (*chromium)(nil)
	_ browser = (*firefox)(nil)
)

// jsonWrap turns an expression into one whose value is the JSON string of
// the awaited result, so both drivers return the same text.
func jsonWrap(expr string) string {
	expr = strings.TrimRight(strings.TrimSpace(expr), "; \n\t")
	return "(async () => { const v = await (" + expr + "\n); " +
		"return v === undefined ? 'undefined' : JSON.stringify(v); })()"
}

// pageStateExpr reads what the studio page shows about itself, for error
// messages.
const pageStateExpr = `({url: location.href,
  state: document.body ? (document.body.dataset.state ?? null) : null,
  status: document.querySelector('#status') ? document.querySelector('#status').textContent : null})`

// waitForExpr is WaitFor for any evaluator.
func waitForExpr(eval func(string) (string, error), expr string, timeout time.Duration) error {
	var lastErr error
	var last string
	err := poll(timeout, 100*time.Millisecond, func() (bool, error) {
		v, err := eval("!!(await (" + strings.TrimRight(strings.TrimSpace(expr), "; \n\t") + "\n))")
		if err != nil {
			lastErr = err // e.g. the page is navigating; keep polling
			return false, nil
		}
		last = v
		return v == "true", nil
	})
	if err == nil {
		return nil
	}
	msg := fmt.Sprintf("WaitFor(%s) %v", expr, err)
	if lastErr != nil && last == "" {
		msg += fmt.Sprintf("; last evaluation error: %v", lastErr)
	}
	if st, serr := eval(pageStateExpr); serr == nil {
		msg += "; page: " + st
	} else {
		msg += fmt.Sprintf("; page state unavailable: %v", serr)
	}
	return errors.New(msg)
}

// evalInto evaluates expr in b and decodes the JSON result into v.
func evalInto(b browser, expr string, v any) error {
	s, err := b.Eval(expr)
	if err != nil {
		return err
	}
	if s == "undefined" {
		return fmt.Errorf("eval %q: result is undefined", expr)
	}
	if err := json.Unmarshal([]byte(s), v); err != nil {
		return fmt.Errorf("eval %q: decode %s: %w", expr, s, err)
	}
	return nil
}

// screenshotOnFailure registers a cleanup that saves a screenshot of b in
// t.ArtifactDir() when the test failed and go test runs with -artifacts
// (without it the directory would be deleted right away). Register it after
// the browser's Close so that it runs before it.
func screenshotOnFailure(t testing.TB, name string, b browser) {
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		if f := flag.Lookup("test.artifacts"); f == nil || f.Value.String() != "true" {
			t.Logf("%s: run go test with -artifacts to keep a screenshot of the failure", name)
			return
		}
		p := filepath.Join(t.ArtifactDir(), name+"-failure.png")
		if err := b.Screenshot(p); err != nil {
			t.Logf("%s: screenshot at failure: %v", name, err)
			return
		}
		t.Logf("%s: screenshot at failure: %s", name, p)
	})
}
