package transcode

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/livegate/livegate/internal/demux/flv"
	"github.com/livegate/livegate/internal/testutil"
)

const h264MKV = "../ingest/mediarecorder/testdata/h264.mkv"

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

// startFFmpeg starts a Process and closes it when the test ends.
func startFFmpeg(t *testing.T, o Options) *Process {
	t.Helper()
	testutil.NeedTool(t, "ffmpeg")
	p := &Process{Path: "ffmpeg", Options: o, Log: discard()}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close(200 * time.Millisecond) })
	return p
}

// feed writes data to the process's stdin, then closes it, in a goroutine;
// the returned channel gives the write error once it is done.
func feed(p *Process, data []byte) <-chan error {
	ch := make(chan error, 1)
	go func() { // ends when the data is written or stdin is closed
		_, err := p.Stdin().Write(data)
		if cerr := p.Stdin().Close(); err == nil {
			err = cerr
		}
		ch <- err
	}()
	return ch
}

func TestProcessCopiesToFLV(t *testing.T) {
	in, err := os.ReadFile(h264MKV)
	if err != nil {
		t.Fatal(err)
	}
	p := startFFmpeg(t, copyOptions())
	fed := feed(p, in)
	out, err := io.ReadAll(p.Stdout())
	if err != nil {
		t.Fatalf("read stdout: %v", err)
	}
	if err := <-fed; err != nil {
		t.Fatalf("write stdin: %v", err)
	}
	<-p.Done()
	if err := p.Err(); err != nil {
		t.Fatalf("ffmpeg failed: %v", err)
	}
	if !bytes.HasPrefix(out, []byte("FLV")) {
		t.Fatalf("output does not begin with FLV: %q", out[:min(len(out), 16)])
	}
	if len(out) < 9 || out[4] != 0x04 {
		t.Errorf("FLV header flags = %#x, want audio only (0x04): the H.264 passes by ffmpeg", out[4])
	}
	// 4 s of 48 kHz audio is about 187 AAC frames of 1024 samples.
	r, err := flv.NewReader(bytes.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	frames := 0
	for {
		if _, err := r.ReadPacket(); err != nil {
			break
		}
		frames++
	}
	if frames < 180 {
		t.Errorf("%d AAC frames for 4 s of audio: media is missing", frames)
	}

	start := time.Now()
	p.Close(10 * time.Second)
	if d := time.Since(start); d > time.Second {
		t.Errorf("Close after a normal end took %v", d)
	}
}

// TestStdoutOutlivesProcess: output ffmpeg wrote before exiting can still be
// read after it has exited (exec's StdoutPipe would have been closed by Wait).
func TestStdoutOutlivesProcess(t *testing.T) {
	in, err := os.ReadFile(h264MKV)
	if err != nil {
		t.Fatal(err)
	}
	p := startFFmpeg(t, copyOptions())
	// Little enough that all the output fits in the pipe: ffmpeg exits
	// without anyone reading.
	if err := <-feed(p, in[:20_000]); err != nil {
		t.Fatal(err)
	}
	<-p.Done()
	out, err := io.ReadAll(p.Stdout())
	if err != nil {
		t.Fatalf("read stdout after exit: %v", err)
	}
	if !bytes.HasPrefix(out, []byte("FLV")) {
		t.Fatalf("output after exit does not begin with FLV (%d bytes)", len(out))
	}
}

func TestProcessClose(t *testing.T) {
	for _, ca := range []struct {
		name string
		// stop freezes ffmpeg so that it cannot end on its own when its
		// input closes: only the kill after the grace ends it.
		stop bool
	}{
		{name: "no input"},
		{name: "stuck, killed after grace", stop: true},
	} {
		t.Run(ca.name, func(t *testing.T) {
			p := startFFmpeg(t, copyOptions())
			pid := p.PID()
			if ca.stop {
				if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
					t.Fatal(err)
				}
			}
			const grace = 200 * time.Millisecond
			start := time.Now()
			p.Close(grace)
			d := time.Since(start)
			if d > 2*time.Second {
				t.Errorf("Close took %v with a grace of %v", d, grace)
			}
			select {
			case <-p.Done():
			default:
				t.Fatal("Close returned before the process ended")
			}
			// Wait has reaped it: the pid is gone, not a zombie.
			if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
				t.Errorf("kill(%d, 0) = %v after Close, want ESRCH", pid, err)
			}
			if ca.stop {
				if err := p.Err(); err == nil || !strings.Contains(err.Error(), "killed") {
					t.Errorf("a stuck ffmpeg ended with %v, want killed", err)
				}
				if d < grace {
					t.Errorf("killed after %v, before the grace of %v", d, grace)
				}
			}
			// Stdout is closed.
			if _, err := p.Stdout().Read(make([]byte, 1)); err == nil {
				t.Error("Stdout still readable after Close")
			}
		})
	}
}

func TestProcessGroup(t *testing.T) {
	p := startFFmpeg(t, copyOptions()) // waits for input until Close
	pid := p.PID()
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		t.Fatal(err)
	}
	// pid (comm) state ppid pgrp ...: comm may hold spaces and parentheses.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		t.Fatalf("unreadable stat %q", stat)
	}
	fields := strings.Fields(string(stat[i+1:]))
	if len(fields) < 3 {
		t.Fatalf("unreadable stat %q", stat)
	}
	pgrp, err := strconv.Atoi(fields[2])
	if err != nil {
		t.Fatal(err)
	}
	if pgrp != pid {
		t.Errorf("ffmpeg (pid %d) is in process group %d, want its own", pid, pgrp)
	}
	if pgrp == syscall.Getpgrp() {
		t.Errorf("ffmpeg shares the test's process group %d", pgrp)
	}
}

func TestProcessStartErrors(t *testing.T) {
	for _, ca := range []struct {
		name string
		p    Process
		want []string
	}{
		{
			name: "ffmpeg missing",
			p:    Process{Path: "/nonexistent/ffmpeg", Options: copyOptions(), Log: discard()},
			want: []string{"/nonexistent/ffmpeg", "is ffmpeg installed?", "ffmpeg.path"},
		},
		{
			name: "invalid options",
			p:    Process{Path: "ffmpeg", Options: Options{Input: "http"}, Log: discard()},
			want: []string{"input \"http\" is not supported"},
		},
	} {
		t.Run(ca.name, func(t *testing.T) {
			err := ca.p.Start()
			if err == nil {
				ca.p.Close(0)
				t.Fatal("Start succeeded")
			}
			for _, w := range ca.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			ca.p.Close(0) // harmless on a process that never started
		})
	}
}

func TestTailWriter(t *testing.T) {
	for _, ca := range []struct {
		name   string
		writes []string
		want   string
	}{
		{name: "nothing", writes: nil, want: ""},
		{name: "partial line is not kept", writes: []string{"no newline"}, want: ""},
		{name: "lines split across writes", writes: []string{"fir", "st\nsec", "ond\n"}, want: "first | second"},
		{name: "blank lines skipped", writes: []string{"\n  \r\na\n\n"}, want: "a"},
		{
			name:   "last lines only",
			writes: []string{"1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n11\n12\n13\n14\n"},
			want:   "3 | 4 | 5 | 6 | 7 | 8 | 9 | 10 | 11 | 12 | 13 | 14",
		},
		{
			name:   "endless line dropped",
			writes: []string{strings.Repeat("x", 5000), "tail\nnext\n"},
			want:   "tail | next",
		},
	} {
		t.Run(ca.name, func(t *testing.T) {
			w := &tailWriter{log: discard()}
			for _, s := range ca.writes {
				if n, err := w.Write([]byte(s)); n != len(s) || err != nil {
					t.Fatalf("Write = %d, %v", n, err)
				}
			}
			if got := w.Tail(); got != ca.want {
				t.Errorf("Tail = %q, want %q", got, ca.want)
			}
		})
	}
}
