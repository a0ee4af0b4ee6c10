package transcode

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// stderrLines is how many of ffmpeg's last stderr lines are kept to explain
// a failure.
const stderrLines = 12

// Process is one ffmpeg child: media in on stdin, FLV out on stdout.
//
// Start it, write the input to Stdin, read Stdout until EOF, then Close.
// The process runs in its own process group so that a stop signal reaches
// everything it might start, and it is killed if livegate dies.
type Process struct {
	Path    string // ffmpeg executable
	Options Options
	Log     *slog.Logger

	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stdout *os.File
	stderr *tailWriter
	done   chan struct{}
	err    error
}

// Start validates the options and starts ffmpeg.
func (p *Process) Start() error {
	if err := p.Options.Validate(); err != nil {
		return err
	}
	path := p.Path
	if path == "" {
		path = "ffmpeg"
	}
	p.stderr = &tailWriter{log: p.Log}
	cmd := exec.Command(path, Args(p.Options)...)
	cmd.Env = []string{} // nothing from our environment reaches it
	cmd.Stderr = p.stderr
	cmd.SysProcAttr = sysProcAttr()
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return fmt.Errorf("transcode: stdin pipe: %w", err)
	}
	// Not cmd.StdoutPipe: Wait closes that pipe as soon as the process has
	// exited, which would throw away the last output still in the pipe
	// while the reader is behind. Our own pipe lives until Close.
	stdout, w, err := os.Pipe()
	if err != nil {
		_ = stdin.Close()
		return fmt.Errorf("transcode: stdout pipe: %w", err)
	}
	cmd.Stdout = w
	err = cmd.Start()
	_ = w.Close() // the child has its own copy
	if err != nil {
		_ = stdout.Close()
		return fmt.Errorf("transcode: start %s (is ffmpeg installed? set ffmpeg.path in the config): %w", path, err)
	}
	p.cmd, p.stdin, p.stdout = cmd, stdin, stdout
	p.done = make(chan struct{})
	p.Log.Debug("ffmpeg started", "pid", cmd.Process.Pid, "args", strings.Join(cmd.Args[1:], " "))
	go func() { // owned by Process: Close waits for it
		p.err = cmd.Wait()
		close(p.done)
	}()
	return nil
}

// PID is the child's process id.
func (p *Process) PID() int { return p.cmd.Process.Pid }

// Stdin is where the input goes. Closing it lets ffmpeg flush and exit.
func (p *Process) Stdin() io.WriteCloser { return p.stdin }

// Stdout is the FLV output. It reads until EOF even after the process has
// exited; Close closes it.
func (p *Process) Stdout() io.Reader { return p.stdout }

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Err tells how the process ended, with the last lines it wrote to stderr.
// Call it after Done is closed.
func (p *Process) Err() error {
	if p.err == nil {
		return nil
	}
	if tail := p.stderr.Tail(); tail != "" {
		return fmt.Errorf("ffmpeg: %w: %s", p.err, tail)
	}
	return fmt.Errorf("ffmpeg: %w", p.err)
}

// Signaled tells whether the process was ended by a signal (killed) rather
// than exiting by itself; valid after Done.
func (p *Process) Signaled() bool {
	if p.cmd.ProcessState == nil {
		return false
	}
	ws, ok := p.cmd.ProcessState.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled()
}

// Stderr returns ffmpeg's last stderr lines.
func (p *Process) Stderr() string { return p.stderr.Tail() }

// CPUTime is the user+system CPU time the process used; valid after Done.
func (p *Process) CPUTime() time.Duration {
	if p.cmd.ProcessState == nil {
		return 0
	}
	return p.cmd.ProcessState.UserTime() + p.cmd.ProcessState.SystemTime()
}

// Close ends the process: it closes stdin so that ffmpeg can finish what it
// has, waits up to grace, then kills the whole process group. It returns
// when the process is gone, and closes Stdout.
func (p *Process) Close(grace time.Duration) {
	if p.cmd == nil {
		return
	}
	defer func() { _ = p.stdout.Close() }()
	_ = p.stdin.Close()
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-p.done:
		return
	case <-t.C:
	}
	// Negative pid: the whole process group.
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
}

// tailWriter logs ffmpeg's stderr line by line and keeps the last lines.
type tailWriter struct {
	log *slog.Logger

	mu          sync.Mutex
	partial     []byte
	lines       []string
	windowStart time.Time
	logged      int
	suppressed  int
}

func (w *tailWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.partial = append(w.partial, b...)
	for {
		i := bytes.IndexByte(w.partial, '\n')
		if i < 0 {
			break
		}
		line := strings.TrimSpace(string(w.partial[:i]))
		w.partial = w.partial[i+1:]
		if line == "" {
			continue
		}
		// Keep every line for Err, but log at most a few a second: a
		// corrupt stream can make ffmpeg complain about every packet.
		if now := time.Now(); now.Sub(w.windowStart) > time.Second {
			if w.suppressed > 0 {
				w.log.Warn("ffmpeg stderr lines not logged", "count", w.suppressed)
			}
			w.windowStart, w.logged, w.suppressed = now, 0, 0
		}
		if w.logged < 5 {
			w.log.Warn("ffmpeg", "stderr", line)
			w.logged++
		} else {
			w.suppressed++
		}
		w.lines = append(w.lines, line)
		if len(w.lines) > stderrLines {
			w.lines = w.lines[1:]
		}
	}
	if len(w.partial) > 4096 { // a line that never ends is not a line
		w.partial = w.partial[:0]
	}
	return len(b), nil
}

// Tail returns the kept lines joined by " | ".
func (w *tailWriter) Tail() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return strings.Join(w.lines, " | ")
}
