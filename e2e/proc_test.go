package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// This file holds the small pieces the other helpers share: free ports,
// binaries that must exist, child processes in their own process group,
// output buffers that are shown when a test fails, and polling.

// requireE2E skips the test under -short: e2e tests need real binaries
// (browsers, nginx, ffmpeg) and take seconds.
func requireE2E(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("e2e: skipped with -short (needs real binaries)")
	}
}

// requireBinary returns the path of a binary that an e2e test needs. A
// missing binary is a failure, not a skip: a skipped e2e test would hide a
// CI machine where nothing was installed. aptPackage names the Debian
// package that provides it.
func requireBinary(t testing.TB, name, aptPackage string) string {
	t.Helper()
	requireE2E(t)
	path, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("e2e: %s not found (%v): install the Debian package %q (apt-get install -y %s)",
			name, err, aptPackage, aptPackage)
	}
	return path
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
// Another process can take it before the caller binds it; helpers that start
// a server detect that because the server exits early.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		t.Fatalf("free port: %v", err)
	}
	return port
}

// errPollTimeout is returned by poll when the condition did not become true
// in time.
var errPollTimeout = errors.New("timed out")

// poll calls cond every interval until it returns true, returns an error, or
// timeout passes. On timeout the error wraps errPollTimeout.
func poll(timeout, interval time.Duration, cond func() (bool, error)) error {
	deadline := time.Now().Add(timeout)
	for {
		ok, err := cond()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after %v: %w", timeout, errPollTimeout)
		}
		time.Sleep(interval)
	}
}

// waitTCP polls until something accepts TCP connections on addr, or until
// exited is closed (the server died), or timeout.
func waitTCP(addr string, timeout time.Duration, exited <-chan struct{}) error {
	return poll(timeout, 20*time.Millisecond, func() (bool, error) {
		select {
		case <-exited:
			return false, errors.New("process exited before it listened on " + addr)
		default:
		}
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return false, nil
		}
		_ = c.Close()
		return true, nil
	})
}

// syncBuffer is an io.Writer that many goroutines may write to and read
// from; it collects the output of a child process or a browser console.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Printf appends one formatted line.
func (b *syncBuffer) Printf(format string, args ...any) {
	line := fmt.Sprintf(format, args...)
	if !strings.HasSuffix(line, "\n") {
		line += "\n"
	}
	_, _ = b.Write([]byte(line))
}

// tail returns the last max bytes of s, marked when cut.
func tail(s string, maxBytes int) string {
	if len(s) <= maxBytes {
		return s
	}
	return "[... " + strconv.Itoa(len(s)-maxBytes) + " bytes cut ...]\n" + s[len(s)-maxBytes:]
}

// logOnFailure registers a cleanup that shows what() with t.Log when the test
// has failed. Register it before the cleanup that stops the process, so that
// it runs after it (cleanups run last-in first-out) and sees all the output.
func logOnFailure(t testing.TB, title string, what func() string) {
	t.Helper()
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		s := what()
		if s == "" {
			s = "(empty)\n"
		}
		t.Logf("---- %s ----\n%s---- end of %s ----", title, tail(s, 64<<10), title)
	})
}

// proc is a child process in its own process group. Wait runs in a
// goroutine that proc owns; done closes when the process has exited and
// its output was copied.
type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	err  error // of cmd.Wait, valid after done
}

// startProc starts cmd in a new process group, to be killed if the test
// binary dies. It sets WaitDelay so that a
// leftover grandchild holding stdout open cannot block Wait forever.
func startProc(name string, cmd *exec.Cmd) (*proc, error) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	if cmd.SysProcAttr.Pdeathsig == 0 {
		// If the test binary dies, the child dies too. (The signal goes
		// when the OS thread that started the child exits; Go keeps its
		// threads unless a goroutine exits locked to one.)
		cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	}
	if cmd.WaitDelay == 0 {
		cmd.WaitDelay = 3 * time.Second
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// pid is the process id, which is also the process group id.
func (p *proc) pid() int { return p.cmd.Process.Pid }

// exited reports whether the process has exited.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// signal sends sig to the process only (not its group).
func (p *proc) signal(sig syscall.Signal) {
	if !p.exited() {
		_ = syscall.Kill(p.pid(), sig)
	}
}

// wait waits up to d for the process to exit and reports whether it did.
func (p *proc) wait(d time.Duration) bool {
	select {
	case <-p.done:
		return true
	case <-time.After(d):
		return false
	}
}

// exitCode is the exit status after done; -1 for a signal.
func (p *proc) exitCode() int {
	if p.cmd.ProcessState == nil {
		return -1
	}
	return p.cmd.ProcessState.ExitCode()
}

// kill sends SIGKILL to the whole process group, waits for the leader, and
// then until no member of the group is left (up to 10 s). It returns an
// error if something survived.
func (p *proc) kill() error {
	_ = syscall.Kill(-p.pid(), syscall.SIGKILL)
	if !p.wait(10 * time.Second) {
		return fmt.Errorf("%s (pid %d) did not exit 10 s after SIGKILL", p.name, p.pid())
	}
	return waitGroupGone(p.pid(), 10*time.Second)
}

// waitGroupGone polls until no live (non-zombie) process is in group pgid.
// It kills stragglers it finds on the way.
func waitGroupGone(pgid int, timeout time.Duration) error {
	var left []procInfo
	err := poll(timeout, 10*time.Millisecond, func() (bool, error) {
		left = nil
		for _, pi := range readProcs() {
			if pi.pgrp == pgid && pi.state != 'Z' {
				left = append(left, pi)
			}
		}
		if len(left) > 0 {
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
		}
		return len(left) == 0, nil
	})
	if err != nil {
		return fmt.Errorf("process group %d still has %v: %w", pgid, left, err)
	}
	return nil
}

// procInfo is one line of /proc/PID/stat, the fields we use.
type procInfo struct {
	pid, ppid, pgrp int
	state           byte
	comm            string
	startTime       uint64 // clock ticks since boot; with pid it names a process uniquely
}

func (pi procInfo) String() string {
	return fmt.Sprintf("%d(%s,%c)", pi.pid, pi.comm, pi.state)
}

// readProcs reads /proc/*/stat. Processes that vanish while it reads are
// left out.
func readProcs() []procInfo {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []procInfo
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		pi, ok := readProc(pid)
		if ok {
			out = append(out, pi)
		}
	}
	return out
}

// readProc parses /proc/PID/stat. The command name is in parentheses and
// may itself hold spaces and parentheses, so the fields start after the
// last ')'.
func readProc(pid int) (procInfo, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procInfo{}, false
	}
	s := string(b)
	open, closing := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || closing < open {
		return procInfo{}, false
	}
	f := strings.Fields(s[closing+1:])
	// f[0]=state f[1]=ppid f[2]=pgrp ... f[19]=starttime (field 22 of stat)
	if len(f) < 20 || len(f[0]) != 1 {
		return procInfo{}, false
	}
	pi := procInfo{pid: pid, comm: s[open+1 : closing], state: f[0][0]}
	pi.ppid, _ = strconv.Atoi(f[1])
	pi.pgrp, _ = strconv.Atoi(f[2])
	pi.startTime, _ = strconv.ParseUint(f[19], 10, 64)
	return pi, true
}

// descendants returns the live (non-zombie) processes below root, walking
// parent pids.
func descendants(root int) []procInfo {
	all := readProcs()
	children := make(map[int][]procInfo)
	for _, pi := range all {
		children[pi.ppid] = append(children[pi.ppid], pi)
	}
	var out []procInfo
	queue := []int{root}
	for len(queue) > 0 {
		pid := queue[0]
		queue = queue[1:]
		for _, c := range children[pid] {
			queue = append(queue, c.pid)
			if c.state != 'Z' {
				out = append(out, c)
			}
		}
	}
	return out
}

// stillAlive returns those of ps that still run (same pid and start time,
// not a zombie).
func stillAlive(ps []procInfo) []procInfo {
	var out []procInfo
	for _, p := range ps {
		now, ok := readProc(p.pid)
		if ok && now.startTime == p.startTime && now.state != 'Z' {
			out = append(out, now)
		}
	}
	return out
}
