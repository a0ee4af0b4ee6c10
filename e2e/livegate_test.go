package e2e

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// The livegate binary is built once per test run, on first use (so the
// harness self-tests run even while ./cmd/livegate does not build).
var (
	binDir       string // removed after all tests
	buildOnce    sync.Once
	livegateBin  string
	buildErr     error
	buildOutput  []byte
	buildElapsed time.Duration
	buildLogged  atomic.Bool
)

func TestMain(m *testing.M) {
	if mode := os.Getenv(fakeLivegateEnv); mode != "" {
		// This process is a stand-in server started by a self-test.
		fakeLivegateMain(mode)
		return
	}
	flag.Parse()
	dir, err := os.MkdirTemp("", "livegate-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(2)
	}
	binDir = dir
	// Every test must end what it started: goroutines here, processes in
	// the helpers' cleanups.
	goleak.VerifyTestMain(m, goleak.Cleanup(func(int) { _ = os.RemoveAll(binDir) }))
}

// buildLivegate builds ./cmd/livegate from the module root (..) once.
func buildLivegate(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		began := time.Now()
		bin := filepath.Join(binDir, "livegate")
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		args := []string{"build", "-o", bin}
		if raceEnabled {
			// A data race in the server then makes it exit with status 66,
			// which Stop reports.
			args = append(args, "-race")
		}
		cmd := exec.CommandContext(ctx, "go", append(args, "./cmd/livegate")...)
		cmd.Dir = ".."
		buildOutput, buildErr = cmd.CombinedOutput()
		buildElapsed = time.Since(began)
		if buildErr == nil {
			livegateBin = bin
		}
	})
	if buildErr == nil && !buildLogged.Swap(true) {
		t.Logf("livegate: built %s in %v", livegateBin, buildElapsed.Round(time.Millisecond))
	}
	if buildErr != nil {
		t.Fatalf("e2e: cannot build the server: `go build ./cmd/livegate` in the module root failed: %v\n%s",
			buildErr, buildOutput)
	}
	return livegateBin
}

// livegate is a running livegate server on 127.0.0.1.
type livegate struct {
	BaseURL string // http://127.0.0.1:PORT
	PID     int
	Port    int

	t        testing.TB
	proc     *proc
	out      syncBuffer
	stopOnce sync.Once
}

// startLivegate writes configYAML plus a `listen: 127.0.0.1:PORT` line (on a
// free port), and `shutdown_grace: 2s` unless it sets one, to a file,
// starts the binary with -config FILE in its own process group and
// working directory (a temp dir), and waits until
// GET /healthz answers 200. The server's output is shown with t.Log if the
// test fails; the test's cleanup calls Stop.
func startLivegate(t testing.TB, configYAML string) *livegate {
	t.Helper()
	requireE2E(t)
	return runLivegate(t, buildLivegate(t), nil, configYAML)
}

// runLivegate is startLivegate with a given binary and extra environment
// variables (the self-tests run a fake server).
func runLivegate(t testing.TB, bin string, env []string, configYAML string) *livegate {
	t.Helper()
	dir := t.TempDir()
	port := freePort(t)
	cfg := filepath.Join(dir, "livegate.yaml")
	yaml := configYAML
	if yaml != "" && yaml[len(yaml)-1] != '\n' {
		yaml += "\n"
	}
	yaml += "listen: 127.0.0.1:" + strconv.Itoa(port) + "\n"
	if !strings.Contains(yaml, "shutdown_grace:") {
		// A broadcast still live at Stop drains for this long (the default, 10 s, is
		// all of Stop's wait); a test of the drain sets its own.
		yaml += "shutdown_grace: 2s\n"
	}
	if err := os.WriteFile(cfg, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}

	lg := &livegate{BaseURL: "http://127.0.0.1:" + strconv.Itoa(port), Port: port, t: t}
	logOnFailure(t, "livegate output", lg.out.String)

	began := time.Now()
	cmd := exec.Command(bin, "-config", cfg)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	if _, ok := os.LookupEnv("GORACE"); !ok && raceEnabled {
		// The race runtime sleeps 1 s at exit by default; every Stop
		// would pay for it.
		cmd.Env = append(cmd.Env, "GORACE=atexit_sleep_ms=100")
	}
	cmd.Stdout = &lg.out
	cmd.Stderr = &lg.out
	p, err := startProc("livegate", cmd)
	if err != nil {
		t.Fatalf("livegate: %v", err)
	}
	lg.proc, lg.PID = p, p.pid()
	t.Cleanup(lg.Stop)

	client := &http.Client{Timeout: time.Second}
	var lastErr error
	err = poll(15*time.Second, 25*time.Millisecond, func() (bool, error) {
		if p.exited() {
			return false, fmt.Errorf("livegate exited with code %d before /healthz answered", p.exitCode())
		}
		resp, err := client.Get(lg.BaseURL + "/healthz")
		if err != nil {
			lastErr = err
			return false, nil
		}
		_ = resp.Body.Close()
		lastErr = fmt.Errorf("GET /healthz: %s", resp.Status)
		return resp.StatusCode == http.StatusOK, nil
	})
	client.CloseIdleConnections()
	if err != nil {
		// The output follows (logOnFailure).
		t.Fatalf("livegate did not become healthy: %v (last: %v)\nconfig:\n%s", err, lastErr, yaml)
	}
	t.Logf("livegate: healthy after %v on %s (pid %d)",
		time.Since(began).Round(time.Millisecond), lg.BaseURL, lg.PID)
	return lg
}

// URL is BaseURL + path.
func (lg *livegate) URL(path string) string { return lg.BaseURL + path }

// WSURL is the ws:// URL of path.
func (lg *livegate) WSURL(path string) string {
	return "ws://127.0.0.1:" + strconv.Itoa(lg.Port) + path
}

// Metric is the value of one sample line of /metrics ("name{labels}"),
// or "" when it is absent.
func (lg *livegate) Metric(line string) string {
	resp, err := http.Get(lg.URL("/metrics")) //nolint:noctx // a test on loopback
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for l := range strings.SplitSeq(string(body), "\n") {
		if v, ok := strings.CutPrefix(l, line+" "); ok {
			return v
		}
	}
	return ""
}

// Log returns the server's stdout and stderr so far.
func (lg *livegate) Log() string { return lg.out.String() }

// Children counts the live processes below the server (ffmpeg and anything
// else it started), walking parent pids in /proc.
func (lg *livegate) Children() int { return len(descendants(lg.PID)) }

// Stop sends SIGTERM and waits up to 10 s. It reports as test errors: a
// server that does not exit in time (then SIGKILL), an exit status other
// than 0, and child processes that outlive the server (they are killed).
// It may be called more than once.
func (lg *livegate) Stop() {
	lg.stopOnce.Do(func() {
		t := lg.t
		p := lg.proc
		if p.exited() {
			if !t.Failed() {
				t.Errorf("livegate exited on its own before Stop (code %d)", p.exitCode())
			}
			_ = p.kill()
			return
		}
		kids := descendants(lg.PID)
		p.signal(syscall.SIGTERM)
		began := time.Now()
		if !p.wait(10 * time.Second) {
			t.Errorf("livegate did not exit within 10 s of SIGTERM; killing it (children: %v)", descendants(lg.PID))
		} else if code := p.exitCode(); code != 0 {
			t.Errorf("livegate exited with status %d after SIGTERM, want 0 (%v)", code, p.err)
		} else {
			t.Logf("livegate: exited 0, %v after SIGTERM", time.Since(began).Round(time.Millisecond))
		}
		// Children in other process groups are not reached by the group
		// kill below: find them by pid and start time.
		if left := stillAlive(kids); len(left) > 0 {
			t.Errorf("livegate left child processes running after it exited: %v", left)
			for _, c := range left {
				_ = syscall.Kill(c.pid, syscall.SIGKILL)
			}
			// A killed process takes a moment to go.
			if err := poll(2*time.Second, 10*time.Millisecond, func() (bool, error) { return len(stillAlive(left)) == 0, nil }); err != nil {
				t.Errorf("could not kill %v: %v", stillAlive(left), err)
			}
		}
		if err := p.kill(); err != nil {
			t.Errorf("livegate: %v", err)
		}
	})
}
