package load

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/livegate/livegate/internal/demux/webm"
	"github.com/livegate/livegate/internal/media"
	"github.com/livegate/livegate/internal/session"
	"github.com/livegate/livegate/internal/transcode"
)

// BenchmarkSessions runs livegate's hot path in this process, to profile
// it: LIVEGATE_LOAD_STREAMS (default 20) sessions, each given a Chromium
// H.264/Opus recording (LIVEGATE_LOAD_RECORDING, default the committed
// one) at real-time pace for LIVEGATE_LOAD_SECONDS (default 10), demuxing
// it, passing the H.264 through, encoding the Opus with one ffmpeg each
// and publishing to the generator's RTMP receiver. What the browsers'
// WebSockets cost is not in it; the ffmpeg children are not in the Go
// profile but are in the reported cores.
//
//	go test -run XXX -bench Sessions -benchtime 1x -cpuprofile cpu.out ./bench/load/
//	go tool pprof -top -focus 'livegate/internal' bench/load/load.test cpu.out
func BenchmarkSessions(b *testing.B) {
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		b.Skip("ffmpeg is not installed")
	}
	n := envInt("LIVEGATE_LOAD_STREAMS", 20)
	d := time.Duration(envInt("LIVEGATE_LOAD_SECONDS", 10)) * time.Second
	src := committed()
	if p := os.Getenv("LIVEGATE_LOAD_RECORDING"); p != "" {
		src.MKV = p
	}
	r, err := LoadReplay(KindMKV, src, 100*time.Millisecond)
	if err != nil {
		b.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	rcv := &Receiver{Listen: "127.0.0.1:0", Log: log}
	if err := rcv.Initialize(); err != nil {
		b.Fatal(err)
	}
	defer rcv.Close()
	b.ResetTimer()
	for range b.N {
		var self0, kids0 syscall.Rusage
		_ = syscall.Getrusage(syscall.RUSAGE_SELF, &self0)
		_ = syscall.Getrusage(syscall.RUSAGE_CHILDREN, &kids0)
		var wg sync.WaitGroup
		errs := make(chan error, n)
		t0 := time.Now()
		for i := range n {
			key := fmt.Sprintf("bench-%04d", i)
			rcv.Expect(key)
			u, _ := url.Parse(rcv.URL() + "#" + key)
			start := t0.Add(time.Duration(i) * time.Second / time.Duration(n))
			wg.Add(1)
			go func() { // owned here: waited for below
				defer wg.Done()
				errs <- runSession(key, u, r, start, d, log)
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				b.Fatal(err)
			}
		}
		var self1, kids1 syscall.Rusage
		_ = syscall.Getrusage(syscall.RUSAGE_SELF, &self1)
		_ = syscall.Getrusage(syscall.RUSAGE_CHILDREN, &kids1)
		media := d.Seconds() * float64(n)
		b.ReportMetric(cpu(self1)-cpu(self0), "go-cpu-s")
		b.ReportMetric(cpu(kids1)-cpu(kids0), "ffmpeg-cpu-s")
		b.ReportMetric((cpu(self1)-cpu(self0))/media, "go-cores/stream")
		b.ReportMetric((cpu(kids1)-cpu(kids0))/media, "ffmpeg-cores/stream")
	}
}

// runSession is one broadcast through a session, fed at real-time pace.
func runSession(key string, u *url.URL, r *Replay, start time.Time, d time.Duration, log *slog.Logger) error {
	s := &session.Session{
		ID: key, Log: log, FFmpegPath: "ffmpeg",
		Encode: transcode.Options{VideoBitrate: 2_500_000, KeyframeInterval: 2 * time.Second, X264Preset: "veryfast",
			AudioBitrate: 128_000, AudioSampleRate: 48000},
		NewDemuxer:   func(rd io.Reader) (media.Demuxer, error) { return webm.NewReader(rd) },
		Destinations: []session.Destination{{Name: "bench", URL: u}},
	}
	if err := s.Start(context.Background()); err != nil {
		return fmt.Errorf("%s: %w", key, err)
	}
	p := &publisher{Key: key, Replay: r}
	err := p.pace(context.Background(), start, d, start.Add(2*d+10*time.Second), s.Ended(),
		func() error { return s.Restart(time.Millisecond) }, s.Write)
	s.Finish()
	if err == nil {
		err = s.Err()
	}
	if err != nil && !errors.Is(err, errStopped) {
		return fmt.Errorf("%s: %w", key, err)
	}
	return nil
}

func cpu(r syscall.Rusage) float64 {
	return time.Duration(syscall.TimevalToNsec(r.Utime) + syscall.TimevalToNsec(r.Stime)).Seconds()
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}
