package load

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"strings"
	"time"
)

// Report is the result of a run (the JSON the generator writes).
type Report struct {
	Date    string       `json:"date"`
	Machine Machine      `json:"machine"`
	Config  ReportConfig `json:"config"`
	Steps   []Step       `json:"steps"`
	// MaxNoDrops is, by side, the largest step of an unbroken run from the
	// first with no drops: every frame sent in time and received, nothing
	// dropped, every stream ended cleanly (0: not even the first).
	MaxNoDrops map[string]int `json:"max_no_drops"`
	// MaxSustained is the same where the side also kept up with real time
	// (its delay did not grow by more than the bound over the step).
	MaxSustained map[string]int `json:"max_sustained"`
	// IdleHeapMB and IdleRSSMB are livegate's before any stream.
	IdleHeapMB float64 `json:"livegate_idle_heap_mb"`
	IdleRSSMB  float64 `json:"livegate_idle_rss_mb"`
}

// Machine is where the run happened.
type Machine struct {
	CPUs     int     `json:"cpus"`
	CPU      string  `json:"cpu,omitempty"`
	MemoryGB float64 `json:"memory_gb,omitempty"`
	OS       string  `json:"os"`
	Kernel   string  `json:"kernel,omitempty"`
	Go       string  `json:"go"`
	FFmpeg   string  `json:"ffmpeg,omitempty"`
}

// ReportConfig is what was run.
type ReportConfig struct {
	Kinds          []string           `json:"kinds"`
	Recordings     map[string]string  `json:"recordings"`
	StepSeconds    float64            `json:"step_seconds"`
	TimesliceMS    float64            `json:"timeslice_ms"`
	Destination    string             `json:"destination"`
	Sides          []string           `json:"sides"`
	Mode           string             `json:"mode"`
	MaxGrowthMS    float64            `json:"max_delay_growth_ms"`
	SeedArgs       string             `json:"seed_args"`
	Ramp           []int              `json:"ramp"`
	LoopSeconds    map[string]float64 `json:"loop_seconds"`
	VideoFPS       map[string]float64 `json:"video_fps"`
	LivegateBinary string             `json:"livegate_binary,omitempty"`
}

// Step is one stream count of the ramp.
type Step struct {
	Streams  int         `json:"streams"`
	Livegate *SideResult `json:"livegate,omitempty"`
	Seed     *SideResult `json:"seed,omitempty"`
	// Ratio is the seed's cores per stream over livegate's.
	Ratio float64 `json:"seed_over_livegate,omitempty"`
}

// SideResult is one side of one step.
type SideResult struct {
	Side    string         `json:"side"`
	Streams int            `json:"streams"`
	Kinds   map[string]int `json:"kinds"`

	// CPU from /proc (livegate and its children, the encoders; or the
	// seed's ffmpeg processes) over the whole step, from before the first
	// stream began to after the last ended and its processes were
	// reaped: start-ups and ends included, and robust to a busy machine
	// (work delayed is still counted once done).
	CPUSeconds float64 `json:"cpu_seconds"`
	// MediaSeconds is the media the step carried: streams × step.
	MediaSeconds float64 `json:"media_seconds"`
	// CoresPerStream is CPU seconds per media second; Cores is CPU seconds
	// per second of the step (what the streams together need).
	CoresPerStream float64 `json:"cores_per_stream"`
	Cores          float64 `json:"cores"`
	// Steady: CPU over the window in which every stream has started and
	// warmed up and none has ended. Meaningful for livegate; the seed's
	// ffmpeg buffers its first seconds (it probes its input) and encodes
	// them in a burst, in or out of the window.
	SteadyWindowSeconds  float64 `json:"steady_window_seconds"`
	SteadyCPUSeconds     float64 `json:"steady_cpu_seconds"`
	SteadyCoresPerStream float64 `json:"steady_cores_per_stream"`

	// Peaks while the step ran.
	RSSMB                 float64 `json:"rss_mb"`                               // livegate and children, or every seed ffmpeg
	ProcessRSSMB          float64 `json:"livegate_rss_mb,omitempty"`            // livegate's own process
	ProcessRSSPerStreamMB float64 `json:"livegate_rss_per_stream_mb,omitempty"` // above idle, per stream
	GoHeapMB              float64 `json:"go_heap_mb,omitempty"`                 // go_memstats_heap_inuse_bytes
	GoHeapPerStreamMB     float64 `json:"go_heap_per_stream_mb,omitempty"`      // above idle, per stream
	Goroutines            int     `json:"goroutines,omitempty"`
	Children              int     `json:"children"` // livegate's child processes, or the seed's ffmpegs

	// Ingest-to-publish delay of video frames, from the time each was due
	// to be sent to its arrival at the destination, matched by timestamp.
	DelayMinMS float64 `json:"delay_min_ms"`
	DelayP50MS float64 `json:"delay_p50_ms"`
	DelayP99MS float64 `json:"delay_p99_ms"`
	DelayMaxMS float64 `json:"delay_max_ms"`
	// DelayFrames is how many frames those figures are of (those due in
	// the window).
	DelayFrames int `json:"delay_frames"`
	// DelayByKind splits the delay by kind of stream.
	DelayByKind map[string]KindDelay `json:"delay_by_kind,omitempty"`
	// DelayGrowthMS is the median delay of the window's last quarter less
	// that of its first: a side that falls behind real time grows.
	DelayGrowthMS float64 `json:"delay_growth_ms"`
	// Start-up: from a stream's first message to its first video frame at
	// the destination (median and largest over the streams).
	StartupP50MS float64 `json:"startup_p50_ms"`
	StartupMaxMS float64 `json:"startup_max_ms"`
	// livegate's own view: livegate_ingest_to_publish_seconds over the
	// step (arrival at livegate to the write to the destination).
	LivegateDelayP50MS float64 `json:"livegate_metric_delay_p50_ms,omitempty"`
	LivegateDelayP99MS float64 `json:"livegate_metric_delay_p99_ms,omitempty"`
	// SendLagMaxMS is the most a message went out after it was due: the
	// generator's (or the seed's input's) own lateness.
	SendLagMaxMS float64 `json:"send_lag_max_ms"`

	// Video frames: due in the step (sent, and not sent in time),
	// received, matched to one sent, lost (due and never received), and
	// received but matched to none (duplicates, or the part of a write cut
	// at the deadline that still went through).
	FramesSent          int `json:"video_frames_sent"`
	FramesUnsent        int `json:"video_frames_not_sent_in_time"`
	FramesReceived      int `json:"video_frames_received"`
	FramesMatched       int `json:"video_frames_matched"`
	FramesLost          int `json:"video_frames_lost"`
	FramesUnmatched     int `json:"video_frames_unmatched"`
	AudioFramesReceived int `json:"audio_frames_received"`

	DroppedPackets int            `json:"livegate_dropped_packets"`
	SessionErrors  map[string]int `json:"session_errors,omitempty"`
	Outcomes       map[string]int `json:"outcomes"`
	Errors         []string       `json:"errors,omitempty"`

	LoadgenCores     float64 `json:"loadgen_cores"`
	LoadAverageStart float64 `json:"load_average_start"`
	LoadAverageEnd   float64 `json:"load_average_end"`

	NoDrops   bool   `json:"no_drops"`
	Sustained bool   `json:"sustained"`
	Behind    bool   `json:"behind"`
	Why       string `json:"why,omitempty"`
}

// KindDelay is the delay of one kind of stream.
type KindDelay struct {
	P50MS  float64 `json:"p50_ms"`
	P99MS  float64 `json:"p99_ms"`
	Frames int     `json:"frames"`
}

func newReport(cfg Config, rn *runner) *Report {
	mode := "alternate"
	if cfg.Together {
		mode = "together"
	}
	rep := &Report{
		Date:    time.Now().UTC().Format(time.RFC3339),
		Machine: machine(cfg.FFmpeg),
		Config: ReportConfig{
			Kinds: cfg.Kinds, Recordings: map[string]string{}, StepSeconds: cfg.Step.Seconds(),
			TimesliceMS: float64(cfg.Timeslice.Milliseconds()), Destination: cfg.Dest, Sides: cfg.Sides,
			Mode: mode, MaxGrowthMS: float64(cfg.MaxGrowth.Milliseconds()),
			SeedArgs: "ffmpeg " + strings.Join(seedArgs("rtmp://…"), " "), Ramp: cfg.Ramp,
			LoopSeconds: map[string]float64{}, VideoFPS: map[string]float64{}, LivegateBinary: cfg.Livegate,
		},
		MaxSustained: map[string]int{},
		MaxNoDrops:   map[string]int{},
		IdleHeapMB:   round(rn.idleHeap/(1<<20), 1),
		IdleRSSMB:    round(rn.idleRSS/(1<<20), 1),
	}
	for k, r := range rn.replays {
		rep.Config.Recordings[k] = r.Source
		rep.Config.LoopSeconds[k] = r.Period.Seconds()
		rep.Config.VideoFPS[k] = round(r.VideoFPS, 2)
	}
	for k, r := range rn.seeds {
		rep.Config.Recordings["seed:"+k] = r.Source
	}
	for _, s := range cfg.Sides {
		rep.MaxSustained[s] = 0
		rep.MaxNoDrops[s] = 0
	}
	return rep
}

// finish works out the largest step each side had no drops in, and
// sustained: the last of an unbroken run from the first step.
func (r *Report) finish() {
	largest := func(side string, ok func(*SideResult) bool) int {
		best := 0
		for _, st := range r.Steps {
			res := st.Livegate
			if side == SideSeed {
				res = st.Seed
			}
			if res == nil || !ok(res) {
				break
			}
			best = st.Streams
		}
		return best
	}
	if r.MaxNoDrops == nil {
		r.MaxNoDrops = map[string]int{}
	}
	for side := range r.MaxSustained {
		r.MaxSustained[side] = largest(side, func(s *SideResult) bool { return s.Sustained })
		r.MaxNoDrops[side] = largest(side, func(s *SideResult) bool { return s.NoDrops })
	}
}

// WriteJSON writes the report, indented.
func (r *Report) WriteJSON(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	return nil
}

// progressLine is one side's step, for the run's progress.
func (r *SideResult) progressLine() string {
	s := fmt.Sprintf("%-8s %4d streams: %.3f cores (%.4f/stream), RSS %.0f MB, delay p50 %.0f p99 %.0f ms, frames %d/%d",
		r.Side, r.Streams, r.Cores, r.CoresPerStream, r.RSSMB, r.DelayP50MS, r.DelayP99MS, r.FramesReceived, r.FramesSent+r.FramesUnsent)
	if r.Why != "" {
		s += " — " + r.Why
	}
	return s
}

// WriteTable writes the steps as a Markdown table.
func (r *Report) WriteTable(w io.Writer) error {
	var b strings.Builder
	b.WriteString("| streams | side | cores | CPU s per media s (steady) | seed ÷ livegate | RSS MB | Go heap MB (/stream) | goroutines | children | delay p50 / p99 ms | video frames recv / due | drops | load avg |\n")
	b.WriteString("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|\n")
	for _, st := range r.Steps {
		for _, res := range []*SideResult{st.Livegate, st.Seed} {
			if res == nil {
				continue
			}
			ratio, heap, gor := "", "", ""
			perStream := fmt.Sprintf("%.4f", res.CoresPerStream)
			if res.Side == SideLivegate {
				perStream += fmt.Sprintf(" (%.4f)", res.SteadyCoresPerStream)
			}
			if res.Side == SideSeed && st.Ratio > 0 {
				ratio = fmt.Sprintf("%.1f", st.Ratio)
			}
			if res.Side == SideLivegate {
				heap = fmt.Sprintf("%.1f (%.2f)", res.GoHeapMB, res.GoHeapPerStreamMB)
				gor = fmt.Sprint(res.Goroutines)
			}
			delay := fmt.Sprintf("%.0f / %.0f", res.DelayP50MS, res.DelayP99MS)
			if res.DelayFrames == 0 && res.LivegateDelayP99MS > 0 {
				delay = fmt.Sprintf("(livegate's %.0f / %.0f)", res.LivegateDelayP50MS, res.LivegateDelayP99MS)
			}
			drops := "0"
			if res.Why != "" {
				drops = res.Why
			}
			fmt.Fprintf(&b, "| %d | %s | %.3f | %s | %s | %.0f | %s | %s | %d | %s | %d / %d | %s | %.1f |\n",
				st.Streams, res.Side, res.Cores, perStream, ratio, res.RSSMB, heap, gor, res.Children,
				delay, res.FramesReceived, res.FramesSent+res.FramesUnsent, drops, res.LoadAverageEnd)
		}
	}
	sides := make([]string, 0, len(r.MaxSustained))
	for s := range r.MaxSustained {
		sides = append(sides, s)
	}
	sort.Strings(sides)
	b.WriteString("\nLargest step with no drops (every frame sent in time and received, none dropped, clean ends):")
	for _, s := range sides {
		fmt.Fprintf(&b, " %s %d;", s, r.MaxNoDrops[s])
	}
	fmt.Fprintf(&b, "\nLargest step sustained (no drops, and the delay grew by less than %.0f ms over the step):", r.Config.MaxGrowthMS)
	for _, s := range sides {
		fmt.Fprintf(&b, " %s %d;", s, r.MaxSustained[s])
	}
	b.WriteString("\n")
	_, err := io.WriteString(w, b.String())
	if err != nil {
		return fmt.Errorf("table: %w", err)
	}
	return nil
}

// WriteSVG plots cores and p99 delay against streams, livegate against
// the seed, with the targets, as a standalone SVG.
func (r *Report) WriteSVG(path string) error {
	if err := os.WriteFile(path, []byte(r.svg()), 0o644); err != nil {
		return fmt.Errorf("plot: %w", err)
	}
	return nil
}

type point struct {
	n    int
	v    float64
	fail bool
}

func (r *Report) series(side string, value func(*SideResult) float64) []point {
	var out []point
	for _, st := range r.Steps {
		res := st.Livegate
		if side == SideSeed {
			res = st.Seed
		}
		if res != nil {
			out = append(out, point{st.Streams, value(res), !res.Sustained})
		}
	}
	return out
}

const (
	svgW, svgH     = 960, 420
	panelW, panelH = 380, 300
	colorLivegate  = "#1f77b4"
	colorSeed      = "#d62728"
)

func (r *Report) svg() string {
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", svgW, svgH, svgW, svgH)
	b.WriteString(`<rect width="100%" height="100%" fill="white"/>` + "\n")
	title := fmt.Sprintf("livegate against the seed (one ffmpeg per stream): %s, %.0f s steps, %d CPUs",
		strings.Join(r.Config.Kinds, "+"), r.Config.StepSeconds, r.Machine.CPUs)
	fmt.Fprintf(&b, `<text x="%d" y="22" text-anchor="middle" font-size="14">%s</text>`+"\n", svgW/2, xmlEscape(title))

	maxN := 1
	for _, st := range r.Steps {
		maxN = max(maxN, st.Streams)
	}
	cores := func(s *SideResult) float64 { return s.Cores }
	delay := func(s *SideResult) float64 {
		if s.DelayFrames == 0 {
			return s.LivegateDelayP99MS
		}
		return s.DelayP99MS
	}
	lgC, seedC := r.series(SideLivegate, cores), r.series(SideSeed, cores)
	lgD, seedD := r.series(SideLivegate, delay), r.series(SideSeed, delay)

	// Cores: the machine's CPUs and the target (0.02 cores a stream).
	yMax := float64(r.Machine.CPUs)
	for _, p := range append(lgC, seedC...) {
		yMax = math.Max(yMax, p.v)
	}
	p1 := panel{x: 70, y: 50, maxN: maxN, yMax: niceCeil(yMax * 1.05), title: "CPU (cores) against streams", ylabel: "cores"}
	p1.frame(&b)
	p1.hline(&b, float64(r.Machine.CPUs), fmt.Sprintf("%d CPUs", r.Machine.CPUs), "#888")
	p1.target(&b, func(n float64) float64 { return 0.02 * n }, "target: 0.02 cores a stream")
	p1.line(&b, seedC, colorSeed)
	p1.line(&b, lgC, colorLivegate)

	// Delay, on a log scale (livegate's tens of milliseconds and the
	// seed's seconds): the target p99 (100 ms).
	yMax = 200
	for _, p := range append(lgD, seedD...) {
		yMax = math.Max(yMax, p.v)
	}
	p2 := panel{x: 70 + panelW + 110, y: 50, maxN: maxN, yMin: 1, yMax: niceCeil(yMax * 1.05), log: true,
		title: "ingest-to-publish delay p99 (ms) against streams", ylabel: "ms (log scale)"}
	p2.frame(&b)
	p2.hline(&b, 100, "target: 100 ms", "#2ca02c")
	p2.line(&b, seedD, colorSeed)
	p2.line(&b, lgD, colorLivegate)

	// Legend.
	ly := 50 + panelH + 55
	fmt.Fprintf(&b, `<line x1="70" y1="%d" x2="100" y2="%d" stroke="%s" stroke-width="2.5"/><text x="106" y="%d">livegate (process + its ffmpeg children)</text>`+"\n", ly, ly, colorLivegate, ly+4)
	fmt.Fprintf(&b, `<line x1="380" y1="%d" x2="410" y2="%d" stroke="%s" stroke-width="2.5"/><text x="416" y="%d">seed: one ffmpeg per stream (x264 + AAC)</text>`+"\n", ly, ly, colorSeed, ly+4)
	fmt.Fprintf(&b, `<text x="700" y="%d" fill="#444">✕ drops, or falling behind real time</text>`+"\n", ly+4)
	b.WriteString("</svg>\n")
	return b.String()
}

// panel is one chart: x is the stream count on a log scale, y linear.
type panel struct {
	x, y          int
	maxN          int
	yMin, yMax    float64 // yMin only on a log scale
	log           bool
	title, ylabel string
}

func (p panel) px(n float64) float64 {
	hi := math.Log10(math.Max(float64(p.maxN), 2))
	return float64(p.x) + math.Log10(math.Max(n, 1))/hi*panelW
}

func (p panel) py(v float64) float64 {
	v = math.Min(v, p.yMax)
	if p.log {
		v = math.Max(v, p.yMin)
		return float64(p.y+panelH) - math.Log10(v/p.yMin)/math.Log10(p.yMax/p.yMin)*panelH
	}
	return float64(p.y+panelH) - v/p.yMax*panelH
}

// yTicks are the values marked on the y axis.
func (p panel) yTicks() []float64 {
	var out []float64
	if p.log {
		for e := math.Pow(10, math.Floor(math.Log10(p.yMin))); e <= p.yMax; e *= 10 {
			for _, m := range []float64{1, 2, 5} {
				if v := m * e; v >= p.yMin && v <= p.yMax {
					out = append(out, v)
				}
			}
		}
		return out
	}
	for i := 0; i <= 5; i++ {
		out = append(out, p.yMax*float64(i)/5)
	}
	return out
}

func (p panel) frame(b *strings.Builder) {
	fmt.Fprintf(b, `<text x="%d" y="%d" text-anchor="middle" font-size="13">%s</text>`+"\n", p.x+panelW/2, p.y-10, xmlEscape(p.title))
	fmt.Fprintf(b, `<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#333"/>`+"\n", p.x, p.y, panelW, panelH)
	for _, n := range []int{1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000} {
		if n > max(p.maxN, 2) {
			break
		}
		x := p.px(float64(n))
		fmt.Fprintf(b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#eee"/><text x="%.1f" y="%d" text-anchor="middle">%d</text>`+"\n",
			x, p.y, x, p.y+panelH, x, p.y+panelH+16, n)
	}
	fmt.Fprintf(b, `<text x="%d" y="%d" text-anchor="middle">streams (log scale)</text>`+"\n", p.x+panelW/2, p.y+panelH+34)
	for _, v := range p.yTicks() {
		y := p.py(v)
		fmt.Fprintf(b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#eee"/><text x="%d" y="%.1f" text-anchor="end">%s</text>`+"\n",
			p.x, y, p.x+panelW, y, p.x-6, y+4, trimFloat(v))
	}
	fmt.Fprintf(b, `<text x="%d" y="%d" text-anchor="middle" transform="rotate(-90 %d %d)">%s</text>`+"\n",
		p.x-48, p.y+panelH/2, p.x-48, p.y+panelH/2, p.ylabel)
}

func (p panel) hline(b *strings.Builder, v float64, label, color string) {
	if v > p.yMax {
		return
	}
	y := p.py(v)
	fmt.Fprintf(b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="%s" stroke-dasharray="6 4"/><text x="%d" y="%.1f" fill="%s">%s</text>`+"\n",
		p.x, y, p.x+panelW, y, color, p.x+6, y-4, color, xmlEscape(label))
}

// target draws f(streams) as a dotted line.
func (p panel) target(b *strings.Builder, f func(float64) float64, label string) {
	var pts []string
	for i := 0; i <= 40; i++ {
		n := math.Pow(10, math.Log10(math.Max(float64(p.maxN), 2))*float64(i)/40)
		pts = append(pts, fmt.Sprintf("%.1f,%.1f", p.px(n), p.py(f(n))))
	}
	fmt.Fprintf(b, `<polyline points="%s" fill="none" stroke="%s" stroke-dasharray="2 3"/>`+"\n", strings.Join(pts, " "), colorLivegate)
	fmt.Fprintf(b, `<text x="%d" y="%d" fill="%s">%s</text>`+"\n", p.x+6, p.y+16, colorLivegate, xmlEscape(label))
}

func (p panel) line(b *strings.Builder, pts []point, color string) {
	if len(pts) == 0 {
		return
	}
	var xy []string
	for _, q := range pts {
		xy = append(xy, fmt.Sprintf("%.1f,%.1f", p.px(float64(q.n)), p.py(q.v)))
	}
	fmt.Fprintf(b, `<polyline points="%s" fill="none" stroke="%s" stroke-width="2.5"/>`+"\n", strings.Join(xy, " "), color)
	for _, q := range pts {
		x, y := p.px(float64(q.n)), p.py(q.v)
		if q.fail {
			fmt.Fprintf(b, `<path d="M%.1f %.1fl8 8m0 -8l-8 8" stroke="%s" stroke-width="2.5"/>`+"\n", x-4, y-4, color)
		} else {
			fmt.Fprintf(b, `<circle cx="%.1f" cy="%.1f" r="3.5" fill="%s"/>`+"\n", x, y, color)
		}
		fmt.Fprintf(b, `<title>%d streams: %s</title>`+"\n", q.n, trimFloat(q.v))
	}
}

// niceCeil rounds up to 1, 2 or 5 times a power of ten.
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	e := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10} {
		if m*e >= v {
			return m * e
		}
	}
	return 10 * e
}

func trimFloat(v float64) string {
	s := fmt.Sprintf("%.3f", v)
	s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	return s
}

func xmlEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;").Replace(s)
}
