// Package testutil holds small helpers that the tests of several livegate
// packages share: a logger, polling for a condition, the tools a test needs
// on PATH, a loopback port nothing listens on, an RTMP destination URL, the
// ffmpeg children of the test process, reading a demuxer to its end, and
// the livegate binary built for a test.
//
// It is for tests only: no package but a _test.go file may import it
// (TestOnlyTestsImport checks). It imports nothing of livegate but media, so
// that any package's tests can use it without an import cycle.
package testutil

import (
	"io"
	"log/slog"
	"os"
	"os/exec"
	"testing"
	"time"
)

// Logger returns a logger for the code under test: debug and up to stderr
// when the tests run with -v, discarded otherwise.
func Logger() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// WaitFor polls cond every 10 ms and fails the test, saying what was
// awaited, if it does not hold within timeout.
func WaitFor(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// NeedTool fails the test when the program name (ffmpeg, ffprobe) is not
// on PATH: the tests that need it must not pass by skipping.
func NeedTool(t testing.TB, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Fatalf("%s is not installed: apt-get install ffmpeg", name)
	}
}
