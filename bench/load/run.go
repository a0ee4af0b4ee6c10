package load

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Destinations: where livegate and the seed publish.
const (
	// DestReceiver is the load generator's own RTMP server (Receiver):
	// arrival times on the generator's clock, so ingest-to-publish delays
	// come from timestamps.
	DestReceiver = "receiver"
	// DestBuiltin is livegate's built-in receiver (at most 64
	// connections); frames are counted through its /api/v1/receiver and
	// the delay is livegate's own histogram (no per-frame delay).
	DestBuiltin = "builtin"
	// DestNginx is nginx-rtmp started by the generator; one RTMP player
	// per stream, connected before the stream begins, notes arrivals.
	DestNginx = "nginx"
)

// Sides of the comparison.
const (
	SideLivegate = "livegate"
	SideSeed     = "seed"
)

// DefaultRamp is the stream counts tried, in order.
var defaultRamp = []int{1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000}

// Ramp returns the default ramp up to max streams (max itself last if it
// is not on it).
func Ramp(maxStreams int) []int {
	var out []int
	for _, n := range defaultRamp {
		if n > maxStreams {
			break
		}
		out = append(out, n)
	}
	if len(out) == 0 || out[len(out)-1] != maxStreams {
		out = append(out, maxStreams)
	}
	return out
}

// Config is a load run.
type Config struct {
	// Livegate is the livegate binary; FFmpeg and Nginx the programs the
	// seed and the nginx destination need (found on PATH when empty).
	Livegate, FFmpeg, Nginx string
	Sources                 Sources
	// Kinds are given to the streams in turn.
	Kinds []string
	// Ramp is the stream counts of the steps.
	Ramp []int
	// Step is how long each step's streams publish (media time).
	Step time.Duration
	// Timeslice is MediaRecorder's: a chunk this often (the client's
	// default is 100 ms).
	Timeslice time.Duration
	// Dest is DestReceiver, DestBuiltin or DestNginx.
	Dest string
	// Sides are SideLivegate and/or SideSeed.
	Sides []string
	// Together runs both sides of a step at the same time; otherwise one
	// after the other (livegate first).
	Together bool
	// MaxGrowth: a side whose delay grows by more than this over a step's
	// window falls behind real time: it did not sustain the step, even
	// without drops (its ramp goes on until it drops).
	MaxGrowth time.Duration
	Log       *slog.Logger
	// Progress gets a line per side and step as the run goes.
	Progress io.Writer
}

func (c *Config) check() error {
	if c.Livegate == "" && (slicesContains(c.Sides, SideLivegate) || c.Dest == DestBuiltin) {
		return errors.New("no livegate binary (make build makes bin/livegate)")
	}
	if c.Livegate != "" {
		// It runs in a directory of its own.
		abs, err := filepath.Abs(c.Livegate)
		if err != nil {
			return fmt.Errorf("livegate binary: %w", err)
		}
		c.Livegate = abs
	}
	if c.FFmpeg == "" {
		c.FFmpeg = "ffmpeg"
	}
	if c.Nginx == "" {
		c.Nginx = "nginx"
	}
	if len(c.Kinds) == 0 {
		return errors.New("no kind of stream")
	}
	for _, k := range c.Kinds {
		if !slicesContains(allKinds, k) {
			return fmt.Errorf("unknown kind %q (one of %s)", k, strings.Join(allKinds, ", "))
		}
	}
	if len(c.Ramp) == 0 {
		return errors.New("no step in the ramp")
	}
	for _, n := range c.Ramp {
		if n < 1 {
			return fmt.Errorf("a step of %d streams", n)
		}
	}
	if c.Step < time.Second {
		return fmt.Errorf("steps of %v: at least 1 s", c.Step)
	}
	if c.Timeslice <= 0 {
		c.Timeslice = 100 * time.Millisecond
	}
	switch c.Dest {
	case "":
		c.Dest = DestReceiver
	case DestReceiver, DestBuiltin, DestNginx:
	default:
		return fmt.Errorf("unknown destination %q (receiver, builtin or nginx)", c.Dest)
	}
	if len(c.Sides) == 0 {
		return errors.New("neither livegate nor the seed to run")
	}
	for _, s := range c.Sides {
		if s != SideLivegate && s != SideSeed {
			return fmt.Errorf("unknown side %q", s)
		}
	}
	if c.MaxGrowth <= 0 {
		c.MaxGrowth = time.Second
	}
	if c.Log == nil {
		c.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if c.Progress == nil {
		c.Progress = io.Discard
	}
	return nil
}

func slicesContains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

// runner holds what lives for the whole run.
type runner struct {
	cfg      Config
	dir      string
	lg       *livegateProc
	rcv      *Receiver
	nginx    *nginxProc
	destURL  string // rtmp://host:port/live of the seed's destination
	replays  map[string]*Replay
	seeds    map[string]*Replay
	http     *http.Client
	idleHeap float64 // livegate's Go heap before any stream
	idleRSS  float64
}

// Run runs the ramp and returns the report. Every process it starts has
// ended when it returns.
func Run(ctx context.Context, cfg Config) (rep *Report, err error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "livegate-load-")
	if err != nil {
		return nil, fmt.Errorf("work directory: %w", err)
	}
	defer os.RemoveAll(dir)
	rn := &runner{cfg: cfg, dir: dir, replays: map[string]*Replay{}, seeds: map[string]*Replay{},
		http: &http.Client{Timeout: 5 * time.Second}}
	defer rn.http.CloseIdleConnections()

	if slicesContains(cfg.Sides, SideSeed) {
		if _, err := exec.LookPath(cfg.FFmpeg); err != nil {
			return nil, fmt.Errorf("the seed needs ffmpeg: %w", err)
		}
	}
	for _, k := range cfg.Kinds {
		if slicesContains(cfg.Sides, SideLivegate) {
			if rn.replays[k], err = LoadReplay(k, cfg.Sources, cfg.Timeslice); err != nil {
				return nil, err
			}
		}
		if slicesContains(cfg.Sides, SideSeed) {
			// Long enough for a step and the stagger of the starts.
			if rn.seeds[k], err = seedReplay(ctx, cfg.FFmpeg, k, cfg.Sources, cfg.Timeslice, cfg.Step+2*time.Second, dir); err != nil {
				return nil, err
			}
		}
	}

	switch cfg.Dest {
	case DestReceiver:
		rn.rcv = &Receiver{Listen: "127.0.0.1:0", Log: cfg.Log}
		if err := rn.rcv.Initialize(); err != nil {
			return nil, err
		}
		defer rn.rcv.Close()
		rn.destURL = rn.rcv.URL()
	case DestNginx:
		bin, err := exec.LookPath(cfg.Nginx)
		if err != nil {
			return nil, fmt.Errorf("destination nginx: %w", err)
		}
		ndir := dir + "/nginx"
		if err := os.MkdirAll(ndir, 0o755); err != nil {
			return nil, fmt.Errorf("nginx: %w", err)
		}
		if rn.nginx, err = startNginx(bin, ndir); err != nil {
			return nil, err
		}
		defer func() {
			if _, serr := rn.nginx.stop(syscall.SIGQUIT, 3*time.Second); serr != nil && err == nil {
				err = serr
			}
		}()
		rn.destURL = rn.nginx.URL
	}
	if slicesContains(cfg.Sides, SideLivegate) || cfg.Dest == DestBuiltin {
		ldir := dir + "/livegate"
		if err := os.MkdirAll(ldir, 0o755); err != nil {
			return nil, fmt.Errorf("livegate: %w", err)
		}
		if rn.lg, err = startLivegate(ctx, cfg.Livegate, ldir, rn.destURL, cfg.Dest == DestBuiltin); err != nil {
			return nil, err
		}
		defer func() {
			clean, serr := rn.lg.stop(syscall.SIGTERM, 15*time.Second)
			if err == nil && (!clean || serr != nil || rn.lg.err != nil) {
				err = fmt.Errorf("livegate did not stop cleanly on SIGTERM: %w: %s", errors.Join(serr, rn.lg.err), rn.lg.out.String())
			}
		}()
		if cfg.Dest == DestBuiltin {
			rn.destURL = rn.lg.ReceiverURL
		}
		time.Sleep(500 * time.Millisecond) // let it settle before the idle figures
		if m, err := scrapeMetrics(ctx, rn.http, rn.lg.BaseURL+"/metrics"); err == nil {
			rn.idleHeap = m["go_memstats_heap_inuse_bytes"]
		}
		if s, err := sampleTree(rn.lg.pid()); err == nil {
			rn.idleRSS = float64(s.RootRSS)
		}
	}

	rep = newReport(cfg, rn)
	active := map[string]bool{}
	for _, s := range cfg.Sides {
		active[s] = true
	}
	for i, n := range cfg.Ramp {
		var sides []string
		for _, s := range []string{SideLivegate, SideSeed} {
			if active[s] {
				sides = append(sides, s)
			}
		}
		if len(sides) == 0 {
			break
		}
		step := Step{Streams: n}
		var groups [][]string
		if cfg.Together {
			groups = [][]string{sides}
		} else {
			for _, s := range sides {
				groups = append(groups, []string{s})
			}
		}
		for _, g := range groups {
			res, err := rn.runGroup(ctx, g, n, i)
			if err != nil {
				return rep, err
			}
			for _, r := range res {
				if r.Side == SideLivegate {
					step.Livegate = r
				} else {
					step.Seed = r
				}
				fmt.Fprintln(cfg.Progress, r.progressLine())
				if !r.NoDrops { // the ramp goes on until frames drop
					active[r.Side] = false
				}
			}
		}
		if step.Livegate != nil && step.Seed != nil && step.Livegate.CoresPerStream > 0 {
			step.Ratio = round(step.Seed.CoresPerStream/step.Livegate.CoresPerStream, 1)
		}
		rep.Steps = append(rep.Steps, step)
		if ctx.Err() != nil {
			return rep, ctx.Err()
		}
	}
	rep.finish()
	return rep, nil
}

// stream is one publisher of a step and where its frames are noted.
type stream struct {
	side string
	pub  *publisher
	log  *streamLog // nil with the built-in receiver
	err  error
	// start is when it began to publish.
	start time.Time
}

// groupSample is the CPU of each side at one moment.
type groupSample struct {
	at      time.Time
	lg      float64
	seed    map[int]float64 // by ffmpeg pid
	loadgen float64
}

// runGroup runs one step of n streams per side, the sides at the same
// time, and measures it.
func (rn *runner) runGroup(ctx context.Context, sides []string, n, stepIdx int) ([]*SideResult, error) {
	cfg := rn.cfg
	loadStart := loadAverage()
	var streams []*stream
	pctx, cancelPlayers := context.WithCancel(ctx)
	var players sync.WaitGroup
	defer func() { cancelPlayers(); players.Wait() }()
	for _, side := range sides {
		prefix := "lg"
		if side == SideSeed {
			prefix = "seed"
		}
		for i := range n {
			kind := cfg.Kinds[i%len(cfg.Kinds)]
			r := rn.replays[kind]
			if side == SideSeed {
				r = rn.seeds[kind]
			}
			st := &stream{side: side, pub: &publisher{Key: fmt.Sprintf("%s-%02d-%04d", prefix, stepIdx, i), Replay: r}}
			switch cfg.Dest {
			case DestReceiver:
				st.log = rn.rcv.Expect(st.pub.Key)
				defer rn.rcv.Forget(st.pub.Key)
			case DestNginx:
				st.log = &streamLog{}
				if err := play(pctx, &players, rn.destURL+"/"+st.pub.Key, st.log, cfg.Log); err != nil {
					return nil, err
				}
			}
			streams = append(streams, st)
		}
	}

	var before metrics
	var lgBefore treeSample
	if rn.lg != nil {
		var err error
		if before, err = scrapeMetrics(ctx, rn.http, rn.lg.BaseURL+"/metrics"); err != nil {
			return nil, err
		}
		if lgBefore, err = sampleTree(rn.lg.pid()); err != nil {
			return nil, fmt.Errorf("livegate: %w", err)
		}
	}

	// Starts are spread over a second (at most a fifth of the step), as
	// broadcasts begin at different times.
	stagger := min(time.Second, cfg.Step/5)
	warm := min(2*time.Second, cfg.Step/4)
	t0 := time.Now().Add(200 * time.Millisecond)
	var mu sync.Mutex
	pids := map[int]*publisher{}
	var wg sync.WaitGroup
	for i, st := range streams {
		idx := i % n
		start := t0.Add(time.Duration(idx) * stagger / time.Duration(n))
		wg.Add(1)
		go func() { // owned by runGroup: waited for below
			defer wg.Done()
			if !sleepUntil(ctx, start) {
				return
			}
			st.start = start
			// What cannot be sent within the step and as long again (or
			// 10 s) is given up.
			hard := start.Add(cfg.Step + max(cfg.Step, 10*time.Second))
			if st.side == SideLivegate {
				st.err = st.pub.runLivegate(ctx, rn.lg.WSURL, "load", start, cfg.Step, hard)
			} else {
				st.err = st.pub.runSeed(ctx, cfg.FFmpeg, rn.destURL+"/"+st.pub.Key, start, cfg.Step, hard, func(pid int) {
					mu.Lock()
					pids[pid] = st.pub
					mu.Unlock()
				})
			}
		}()
	}

	// Peaks, sampled twice a second while the streams run.
	peaks := &peakSampler{rn: rn, pids: func() []int {
		mu.Lock()
		defer mu.Unlock()
		out := make([]int, 0, len(pids))
		for pid := range pids {
			out = append(out, pid)
		}
		return out
	}}
	stopSampler := make(chan struct{})
	samplerDone := make(chan struct{})
	go func() { // owned by runGroup: stopped and waited for below
		defer close(samplerDone)
		peaks.run(ctx, stopSampler)
	}()

	sample := func() groupSample {
		s := groupSample{at: time.Now(), seed: map[int]float64{}}
		if rn.lg != nil {
			if t, err := sampleTree(rn.lg.pid()); err == nil {
				s.lg = t.CPU
			}
		}
		mu.Lock()
		for pid := range pids {
			if st, err := readStat(pid); err == nil && st.state != 'Z' {
				s.seed[pid] = st.self + st.children
			}
		}
		mu.Unlock()
		if st, err := readStat(os.Getpid()); err == nil {
			s.loadgen = st.self
		}
		return s
	}
	sleepUntil(ctx, t0.Add(stagger+warm))
	w0 := sample()
	sleepUntil(ctx, t0.Add(cfg.Step))
	w1 := sample()
	cfg.Log.Debug("steady window", "from", w0.at.Sub(t0), "to", w1.at.Sub(t0), "seed_processes", len(w1.seed))

	wg.Wait()
	close(stopSampler)
	<-samplerDone
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	// Let what is in flight arrive.
	switch cfg.Dest {
	case DestReceiver:
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			all := true
			for _, st := range streams {
				if !st.log.ended() && st.pub.outcome == "ok" {
					all = false
					break
				}
			}
			if all {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
	case DestNginx:
		sleepUntil(ctx, time.Now().Add(1500*time.Millisecond))
		cancelPlayers()
		players.Wait()
	}
	var after metrics
	var lgAfter treeSample
	var builtin map[string]builtinStream
	if rn.lg != nil {
		// The sessions have ended; their encoders are reaped (their CPU
		// is then in livegate's children's time).
		deadline := time.Now().Add(10 * time.Second)
		for {
			t, err := sampleTree(rn.lg.pid())
			if err != nil {
				return nil, fmt.Errorf("livegate: %w (%s)", err, rn.lg.out.String())
			}
			lgAfter = t
			if t.Live == 0 || time.Now().After(deadline) {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		var err error
		if after, err = scrapeMetrics(ctx, rn.http, rn.lg.BaseURL+"/metrics"); err != nil {
			return nil, err
		}
		if cfg.Dest == DestBuiltin {
			if builtin, err = rn.builtinStreams(ctx); err != nil {
				return nil, err
			}
		}
	}

	var out []*SideResult
	window := w1.at.Sub(w0.at).Seconds()
	for _, side := range sides {
		r := &SideResult{Side: side, Streams: n, SteadyWindowSeconds: round(window, 2),
			LoadAverageStart: loadStart, LoadAverageEnd: loadAverage(),
			Kinds: map[string]int{}, Outcomes: map[string]int{}}
		var delays, startups []time.Duration
		byKind := map[string][]time.Duration{}
		var early, late []time.Duration // window's first and last quarter
		var seedTotal float64
		for _, st := range streams {
			if st.side != side {
				continue
			}
			r.Kinds[st.pub.Replay.Kind]++
			r.Outcomes[st.pub.outcome]++
			r.SendLagMaxMS = max(r.SendLagMaxMS, ms(st.pub.lag))
			var mr matchResult
			switch {
			case st.log != nil:
				video, audio := st.log.snapshot()
				mr = matcher{encoded: side == SideSeed || st.pub.Replay.Transcode != "audio"}.match(st.pub.sent, video)
				r.AudioFramesReceived += audio
			case builtin != nil:
				b := builtin["live/"+st.pub.Key]
				mr = matchResult{Sent: len(st.pub.sent), Received: b.Video, Matched: min(b.Video, len(st.pub.sent))}
				r.AudioFramesReceived += b.Audio
			}
			unsent := st.pub.scheduled - len(st.pub.sent)
			r.FramesSent += mr.Sent
			r.FramesUnsent += unsent
			r.FramesReceived += mr.Received
			r.FramesMatched += mr.Matched
			r.FramesUnmatched += mr.Unmatched
			r.FramesLost += mr.Lost() + unsent
			// The delays of the steady window: start-ups apart.
			quarter := w1.at.Sub(w0.at) / 4
			for _, fd := range mr.Delays {
				if fd.Due.Before(w0.at) || fd.Due.After(w1.at) {
					continue
				}
				delays = append(delays, fd.Delay)
				byKind[st.pub.Replay.Kind] = append(byKind[st.pub.Replay.Kind], fd.Delay)
				switch {
				case fd.Due.Before(w0.at.Add(quarter)):
					early = append(early, fd.Delay)
				case fd.Due.After(w1.at.Add(-quarter)):
					late = append(late, fd.Delay)
				}
			}
			if st.log != nil {
				if v, _ := st.log.snapshot(); len(v) > 0 {
					startups = append(startups, v[0].At.Sub(st.start))
				}
			}
			if st.err != nil && len(r.Errors) < 5 {
				r.Errors = append(r.Errors, st.err.Error())
			}
			seedTotal += st.pub.cpu
		}
		if len(delays) > 0 {
			r.DelayP50MS = ms(percentile(delays, 0.50))
			r.DelayP99MS = ms(percentile(delays, 0.99))
			r.DelayMaxMS = ms(percentile(delays, 1))
			r.DelayMinMS = ms(percentile(delays, 0))
			r.DelayFrames = len(delays)
		}
		for k, ds := range byKind {
			if r.DelayByKind == nil {
				r.DelayByKind = map[string]KindDelay{}
			}
			r.DelayByKind[k] = KindDelay{P50MS: ms(percentile(ds, 0.5)), P99MS: ms(percentile(ds, 0.99)), Frames: len(ds)}
		}
		if len(early) > 0 && len(late) > 0 {
			r.DelayGrowthMS = ms(percentile(late, 0.5) - percentile(early, 0.5))
		}
		if len(startups) > 0 {
			r.StartupP50MS = ms(percentile(startups, 0.5))
			r.StartupMaxMS = ms(percentile(startups, 1))
		}
		r.LoadgenCores = round((w1.loadgen-w0.loadgen)/window, 3)
		switch side {
		case SideLivegate:
			r.SteadyCPUSeconds = w1.lg - w0.lg
			r.CPUSeconds = lgAfter.CPU - lgBefore.CPU
			r.DroppedPackets = int(after.sum("livegate_destination_dropped_packets_total") - before.sum("livegate_destination_dropped_packets_total"))
			r.SessionErrors = map[string]int{}
			ea, eb := after.byLabel("livegate_session_errors_total", "code"), before.byLabel("livegate_session_errors_total", "code")
			for code, v := range ea {
				if d := int(v - eb[code]); d > 0 {
					r.SessionErrors[code] = d
				}
			}
			h := after.histogramOf("livegate_ingest_to_publish_seconds").minus(before.histogramOf("livegate_ingest_to_publish_seconds"))
			if v, ok := h.quantile(0.5); ok {
				r.LivegateDelayP50MS = round(v*1000, 1)
			}
			if v, ok := h.quantile(0.99); ok {
				r.LivegateDelayP99MS = round(v*1000, 1)
			}
			r.RSSMB = round(peaks.lgRSS/(1<<20), 1)
			r.ProcessRSSMB = round(peaks.lgRootRSS/(1<<20), 1)
			r.GoHeapMB = round(peaks.heap/(1<<20), 1)
			r.GoHeapPerStreamMB = round(math.Max(peaks.heap-rn.idleHeap, 0)/(1<<20)/float64(n), 3)
			r.ProcessRSSPerStreamMB = round(math.Max(peaks.lgRootRSS-rn.idleRSS, 0)/(1<<20)/float64(n), 3)
			r.Goroutines = int(peaks.goroutines)
			r.Children = peaks.children
		case SideSeed:
			for pid, v1 := range w1.seed {
				r.SteadyCPUSeconds += v1 - w0.seed[pid]
			}
			r.CPUSeconds = seedTotal
			r.RSSMB = round(peaks.seedRSS/(1<<20), 1)
			r.Children = peaks.seedProcs
		}
		media := cfg.Step.Seconds() * float64(n)
		r.MediaSeconds = media
		r.CoresPerStream = round(r.CPUSeconds/media, 4)
		r.Cores = round(r.CPUSeconds/cfg.Step.Seconds(), 3)
		r.CPUSeconds = round(r.CPUSeconds, 2)
		r.SteadyCoresPerStream = round(r.SteadyCPUSeconds/window/float64(n), 4)
		r.SteadyCPUSeconds = round(r.SteadyCPUSeconds, 2)
		r.judge(cfg.MaxGrowth)
		out = append(out, r)
	}
	return out, nil
}

// sleepUntil waits until t or ctx's end; false at ctx's end.
func sleepUntil(ctx context.Context, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err() == nil
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// peakSampler keeps the largest figures seen while a step runs.
type peakSampler struct {
	rn   *runner
	pids func() []int

	lgRSS, lgRootRSS, heap, goroutines float64
	children                           int
	seedRSS                            float64
	seedProcs                          int
}

func (p *peakSampler) run(ctx context.Context, stop <-chan struct{}) {
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	for i := 0; ; i++ {
		// livegate's /metrics costs it about 1 ms of CPU: every 2 s only
		// (heap and goroutines move slowly), so that the measuring does
		// not weigh on what is measured.
		p.once(ctx, i%4 == 0)
		select {
		case <-t.C:
		case <-stop:
			return
		case <-ctx.Done():
			return
		}
	}
}

func (p *peakSampler) once(ctx context.Context, scrape bool) {
	if lg := p.rn.lg; lg != nil {
		if s, err := sampleTree(lg.pid()); err == nil {
			p.lgRSS = max(p.lgRSS, float64(s.RootRSS+s.ChildrenRSS))
			p.lgRootRSS = max(p.lgRootRSS, float64(s.RootRSS))
			p.children = max(p.children, s.Live)
		}
		if scrape {
			if m, err := scrapeMetrics(ctx, p.rn.http, lg.BaseURL+"/metrics"); err == nil {
				p.heap = max(p.heap, m["go_memstats_heap_inuse_bytes"])
				p.goroutines = max(p.goroutines, m["go_goroutines"])
			}
		}
	}
	var total int64
	n := 0
	for _, pid := range p.pids() {
		if v := rss(pid); v > 0 {
			total += v
			n++
		}
	}
	p.seedRSS = max(p.seedRSS, float64(total))
	p.seedProcs = max(p.seedProcs, n)
}

// builtinStream is a stream of livegate's built-in receiver report.
type builtinStream struct{ Video, Audio int }

// builtinStreams reads GET /api/v1/receiver: frames by path.
func (rn *runner) builtinStreams(ctx context.Context) (map[string]builtinStream, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rn.lg.BaseURL+"/api/v1/receiver", nil)
	if err != nil {
		return nil, fmt.Errorf("receiver report: %w", err)
	}
	resp, err := rn.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("receiver report: %w", err)
	}
	defer resp.Body.Close()
	var body struct {
		Streams []struct {
			Path  string `json:"path"`
			Video *struct {
				Frames int `json:"frames"`
			} `json:"video"`
			Audio *struct {
				Frames int `json:"frames"`
			} `json:"audio"`
		} `json:"streams"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, fmt.Errorf("receiver report: %w", err)
	}
	out := make(map[string]builtinStream, len(body.Streams))
	for _, s := range body.Streams {
		b := out[s.Path]
		if s.Video != nil {
			b.Video += s.Video.Frames
		}
		if s.Audio != nil {
			b.Audio += s.Audio.Frames
		}
		out[s.Path] = b
	}
	return out, nil
}

func ms(d time.Duration) float64 { return round(float64(d)/float64(time.Millisecond), 1) }

func round(v float64, places int) float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0
	}
	p := math.Pow(10, float64(places))
	return math.Round(v*p) / p
}

// judge says whether the side had no drops in the step (every frame was
// sent in time and arrived, nothing was dropped, every stream ended
// cleanly) and whether it sustained it: no drops, and a delay that did not
// grow by more than maxGrowth over the window (it kept up with real
// time).
func (r *SideResult) judge(maxGrowth time.Duration) {
	var why []string
	if r.FramesLost > 0 {
		why = append(why, fmt.Sprintf("%d video frames lost", r.FramesLost))
	}
	if r.DroppedPackets > 0 {
		why = append(why, fmt.Sprintf("livegate dropped %d packets", r.DroppedPackets))
	}
	codes := make([]string, 0, len(r.SessionErrors))
	for c, v := range r.SessionErrors {
		codes = append(codes, fmt.Sprintf("%s×%d", c, v))
	}
	sort.Strings(codes)
	if len(codes) > 0 {
		why = append(why, "session errors "+strings.Join(codes, ", "))
	}
	var bad []string
	for o, v := range r.Outcomes {
		if o != "ok" {
			bad = append(bad, fmt.Sprintf("%s×%d", o, v))
		}
	}
	sort.Strings(bad)
	if len(bad) > 0 {
		why = append(why, "streams ended badly: "+strings.Join(bad, ", "))
	}
	r.NoDrops = len(why) == 0
	if r.DelayGrowthMS > ms(maxGrowth) {
		r.Behind = true
		why = append(why, fmt.Sprintf("falling behind real time: delay grew %.0f ms over the window", r.DelayGrowthMS))
	}
	r.Sustained = r.NoDrops && !r.Behind
	r.Why = strings.Join(why, "; ")
}

// machine describes where the run happened.
func machine(ffmpeg string) Machine {
	m := Machine{CPUs: runtime.NumCPU(), Go: runtime.Version(), OS: runtime.GOOS + "/" + runtime.GOARCH}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "model name"); ok {
				m.CPU = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		m.MemoryGB = round(float64(parseRSS([]byte(strings.Replace(string(b), "MemTotal:", "VmRSS:", 1))))/(1<<30), 1)
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := exec.Command(ffmpeg, "-version").Output(); err == nil {
		m.FFmpeg, _, _ = strings.Cut(string(b), "\n")
		m.FFmpeg = strings.TrimSpace(strings.TrimPrefix(m.FFmpeg, "ffmpeg version "))
		if i := strings.Index(m.FFmpeg, " Copyright"); i > 0 {
			m.FFmpeg = m.FFmpeg[:i]
		}
	}
	return m
}
