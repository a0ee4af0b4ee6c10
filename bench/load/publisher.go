package load

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/coder/websocket"
)

// publisher is one stream: a replay sent at real-time pace to livegate
// (over its publish WebSocket, as a browser) or to the seed's ffmpeg (on
// its standard input).
type publisher struct {
	Key    string
	Replay *Replay

	// Filled by the run.
	sent []sentFrame
	// scheduled counts the video frames of the replay for the step; those
	// not in sent could not be sent in time.
	scheduled int
	// lag is the most a message was sent after it was due (the
	// destination, or the generator itself, could not keep up).
	lag time.Duration
	// outcome is "ok" or why the stream did not end cleanly (livegate's
	// error code, a close status, ffmpeg's exit status).
	outcome string
	// cpu is the seed's ffmpeg's CPU seconds (rusage), once it ended.
	cpu float64
}

// pace sends the replay's messages at their times from t0, for d of media
// time, looping the recording. restart is called before each loop after
// the first when the replay restarts its byte stream; write sends one
// message. It stops early when stop closes, and gives up at hard: what
// it could not send by then is counted as not sent.
func (p *publisher) pace(ctx context.Context, t0 time.Time, d time.Duration, hard time.Time, stop <-chan struct{},
	restart func() error, write func([]byte) error,
) error {
	r := p.Replay
	type item struct {
		m    *sendable
		k    int
		base time.Duration
	}
	var plan []item
	for k := 0; time.Duration(k)*r.Period < d; k++ {
		base := time.Duration(k) * r.Period
		for i := range r.Messages {
			m := &r.Messages[i]
			if (m.Config && k > 0) || base+m.At >= d {
				continue
			}
			plan = append(plan, item{m, k, base})
			p.scheduled += len(m.Video)
		}
		if !r.Restart && r.Ingest != "webcodecs" {
			break // the seed's input: one pass, already as long as the step
		}
	}
	timer := time.NewTimer(0)
	defer timer.Stop()
	<-timer.C
	var buf []byte
	for i, it := range plan {
		due := t0.Add(it.base + it.m.At)
		if wait := time.Until(due); wait > 0 {
			timer.Reset(wait)
			select {
			case <-timer.C:
			case <-ctx.Done():
				return ctx.Err()
			case <-stop:
				return errStopped
			}
		}
		if time.Now().After(hard) {
			return errBehind
		}
		if it.k > 0 && r.Restart && restart != nil && (i == 0 || plan[i-1].k != it.k) {
			if err := restart(); err != nil {
				return err
			}
		}
		data := it.m.Data
		if r.Ingest == "webcodecs" && !it.m.Config {
			// The frame's timestamp goes on from loop to loop.
			buf = append(buf[:0], data...)
			binary.BigEndian.PutUint64(buf[2:10], uint64((it.m.TS + it.base).Microseconds()))
			data = buf
		}
		if err := write(data); err != nil {
			if time.Now().After(hard) {
				return errBehind
			}
			return err
		}
		p.lag = max(p.lag, time.Since(due))
		for _, v := range it.m.Video {
			f := sentFrame{Rel: v, Due: due}
			if r.Restart {
				f.Seg = it.k
			} else {
				f.Rel += it.base
			}
			p.sent = append(p.sent, f)
		}
	}
	return nil
}

// errBehind: the stream could not be sent in time (the destination took
// it too slowly).
var errBehind = errors.New("could not send the stream in time")

// errStopped: the other side ended the stream first.
var errStopped = errors.New("the stream was ended by the other side")

// serverMessage is what the generator reads of livegate's messages.
type serverMessage struct {
	Type    string `json:"type"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

// runLivegate publishes to livegate at wsURL, to destination dest with the
// publisher's key, from t0 for d, then stops and waits for livegate to
// close the broadcast.
func (p *publisher) runLivegate(ctx context.Context, wsURL, dest string, t0 time.Time, d time.Duration, hard time.Time) error {
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(dctx, wsURL, nil)
	if err != nil {
		p.outcome = "dial"
		return fmt.Errorf("%s: dial: %w", p.Key, err)
	}
	defer c.CloseNow()
	c.SetReadLimit(1 << 20)
	r := p.Replay
	start := map[string]any{"type": "start", "version": 1, "ingest": r.Ingest,
		"destinations": []string{dest}, "keys": map[string]string{dest: p.Key}}
	if r.Mime != "" {
		start["mime"] = r.Mime
	} else {
		start["codecs"] = r.Codecs
	}
	b, _ := json.Marshal(start)
	if err := c.Write(dctx, websocket.MessageText, b); err != nil {
		p.outcome = "start"
		return fmt.Errorf("%s: start: %w", p.Key, err)
	}
	_, msg, err := c.Read(dctx)
	var m serverMessage
	if err == nil {
		err = json.Unmarshal(msg, &m)
	}
	if err != nil || m.Type != "ready" {
		p.outcome = "no_ready"
		if m.Code != "" {
			p.outcome = m.Code
		}
		if err == nil {
			err = errors.New(string(msg))
		}
		return fmt.Errorf("%s: no ready: %w", p.Key, err)
	}

	// livegate's messages (stats, destination, keyframe, error) are read
	// until it closes; an error's code is kept.
	var code string
	var mu sync.Mutex
	closed := make(chan error, 1)
	readerDone := make(chan struct{})
	go func() { // owned here: waited for below
		defer close(readerDone)
		for {
			_, msg, err := c.Read(ctx)
			if err != nil {
				closed <- err
				return
			}
			var m serverMessage
			if json.Unmarshal(msg, &m) == nil && m.Type == "error" {
				mu.Lock()
				code = m.Code
				mu.Unlock()
			}
		}
	}()
	defer func() { c.CloseNow(); <-readerDone }()
	var endErr error
	wctx, cancelWrites := context.WithDeadline(ctx, hard)
	defer cancelWrites()
	write := func(b []byte) error { return c.Write(wctx, websocket.MessageBinary, b) }
	restart := func() error { return c.Write(wctx, websocket.MessageText, []byte(`{"type":"restart"}`)) }
	err = p.pace(ctx, t0, d, hard, readerDone, restart, write)
	if err == nil {
		err = c.Write(ctx, websocket.MessageText, []byte(`{"type":"stop"}`))
	}
	if err != nil {
		c.CloseNow() // nothing more to say: the reader ends
	}
	t := time.NewTimer(20 * time.Second)
	defer t.Stop()
	select {
	case endErr = <-closed:
	case <-t.C:
		endErr = errors.New("livegate did not close the broadcast within 20 s of stop")
	case <-ctx.Done():
		endErr = ctx.Err()
	}
	mu.Lock()
	defer mu.Unlock()
	switch st := websocket.CloseStatus(endErr); {
	case st == websocket.StatusNormalClosure && err == nil:
		p.outcome = "ok"
		return nil
	case errors.Is(err, errBehind):
		p.outcome = "behind"
	case code != "":
		p.outcome = code
	case st != -1:
		p.outcome = fmt.Sprintf("close_%d", int(st))
	default:
		p.outcome = "connection"
	}
	return fmt.Errorf("%s: %w", p.Key, errors.Join(err, endErr))
}

// seedArgs are the seed's ffmpeg arguments: everything re-encoded, to FLV
// over RTMP.
func seedArgs(url string) []string {
	return []string{"-hide_banner", "-loglevel", "error", "-i", "-",
		"-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency",
		"-c:a", "aac", "-ar", "44100", "-b:a", "64k", "-f", "flv", url}
}

// runSeed runs the seed's approach for this stream: one ffmpeg reading the
// recording's bytes on its standard input at real-time pace and publishing
// to url. started is called with its pid.
func (p *publisher) runSeed(ctx context.Context, ffmpeg, url string, t0 time.Time, d time.Duration, hard time.Time, started func(pid int)) error {
	cmd := exec.Command(ffmpeg, seedArgs(url)...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		p.outcome = "start"
		return fmt.Errorf("%s: %w", p.Key, err)
	}
	var stderr syncBuffer
	cmd.Stdout, cmd.Stderr = io.Discard, &stderr
	c, err := startChild("ffmpeg", cmd)
	if err != nil {
		p.outcome = "start"
		return fmt.Errorf("%s: %w", p.Key, err)
	}
	started(c.pid())
	// A write that blocks (ffmpeg does not keep up) is cut at hard.
	unblock := time.AfterFunc(time.Until(hard), func() { _ = stdin.Close() })
	werr := p.pace(ctx, t0, d, hard, c.done, nil, func(b []byte) error { _, err := stdin.Write(b); return err })
	unblock.Stop()
	_ = stdin.Close()
	// ffmpeg flushes its encoders and ends on the end of its input.
	t := time.NewTimer(20 * time.Second)
	defer t.Stop()
	select {
	case <-c.done:
	case <-t.C:
	case <-ctx.Done():
	}
	clean, serr := c.stop(syscall.SIGKILL, 0)
	if st := c.cmd.ProcessState; st != nil {
		p.cpu = (st.UserTime() + st.SystemTime()).Seconds()
	}
	switch {
	case !clean || serr != nil:
		p.outcome = "killed"
	case errors.Is(werr, errBehind):
		p.outcome = "behind"
	case c.err != nil:
		p.outcome = "exit_" + strings.TrimPrefix(c.err.Error(), "exit status ")
	case werr != nil:
		p.outcome = "input"
	default:
		p.outcome = "ok"
		return nil
	}
	return fmt.Errorf("%s: the seed's ffmpeg (%s): %w", p.Key, strings.TrimSpace(stderr.String()), errors.Join(werr, c.err, serr))
}
