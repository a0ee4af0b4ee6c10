// Command loadgen measures how many browser broadcasts one machine carries
// through livegate, against the seed's approach (one ffmpeg per stream
// re-encoding everything), side by side in one run.
//
// N publishers speak livegate's publish WebSocket as browsers do, each
// replaying a real browser recording at real-time pace (Chromium's
// MediaRecorder Matroska and fragmented MP4, the same H.264 and Opus as
// WebCodecs frames, Firefox's VP8 WebM), looped for longer steps; the
// seed's ffmpeg gets the same recordings on its standard input. Both
// publish to the same RTMP server: by default one inside the generator,
// which notes when each video frame arrives, so that the ingest-to-publish
// delay comes from timestamps. The number of streams ramps 1, 2, 5, 10,
// 25, 50, 100, ... until a side drops frames or falls behind.
//
//	go run ./bench/loadgen -max 100 -json docs/load.json -svg docs/img/load.svg
//
// See docs/benchmarks.md ("Load") for the method and the figures.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/livegate/livegate/bench/load"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

// run is the command with its arguments and outputs.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	root, _ := moduleRoot()
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `loadgen: N browser broadcasts through livegate against the seed's ffmpeg per stream.

Usage: go run ./bench/loadgen [flags]

The table goes to standard output (Markdown), progress to standard error.

Flags:
`)
		fs.PrintDefaults()
	}
	src := load.DefaultSources(root)
	livegate := fs.String("livegate", filepath.Join(root, "bin/livegate"), "the livegate `binary` (make build)")
	ffmpeg := fs.String("ffmpeg", "ffmpeg", "ffmpeg `program`, for the seed")
	nginx := fs.String("nginx", "nginx", "nginx `program` (with the RTMP module), for -dest nginx")
	kinds := fs.String("kinds", "mkv,fmp4,webcodecs", "kinds of stream, given to the streams in turn: `list` of mkv, fmp4, webcodecs, webcodecs-annexb, firefox")
	maxN := fs.Int("max", 100, "ramp 1, 2, 5, 10, 25, 50, 100, ... up to this many `streams`")
	ramp := fs.String("ramp", "", "the stream counts of the steps, a comma-separated `list` (instead of -max)")
	step := fs.Duration("step", 10*time.Second, "how long each step publishes")
	timeslice := fs.Duration("timeslice", 100*time.Millisecond, "MediaRecorder's timeslice: a chunk this often")
	dest := fs.String("dest", load.DestReceiver, "`destination`: receiver (the generator's own RTMP server: delays from timestamps), builtin (livegate's, at most 64 connections) or nginx")
	sides := fs.String("sides", "livegate,seed", "what to run: livegate, seed or both")
	together := fs.Bool("together", false, "run livegate and the seed at the same time in each step (default: one after the other)")
	maxGrowth := fs.Duration("max-growth", time.Second, "a side whose delay grows by more than this over a step is noted as falling behind real time")
	jsonOut := fs.String("json", "", "write the report as JSON to `file`")
	svgOut := fs.String("svg", "", "write the plot (cores and p99 delay against streams) as SVG to `file`")
	fs.StringVar(&src.MKV, "mkv", src.MKV, "Chromium H.264/Opus Matroska `recording` (default: the 60 s one `make bench` caches, else the committed one)")
	fs.StringVar(&src.FMP4, "fmp4", src.FMP4, "Chromium H.264/Opus fragmented MP4 `recording`")
	fs.StringVar(&src.Firefox, "firefox", src.Firefox, "Firefox VP8/Opus WebM `recording`")
	verbose := fs.Bool("v", false, "log what the generator does")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}

	cfg := load.Config{
		Livegate: *livegate, FFmpeg: *ffmpeg, Nginx: *nginx, Sources: src,
		Kinds: splitList(*kinds), Step: *step, Timeslice: *timeslice, Dest: *dest,
		Sides: splitList(*sides), Together: *together, MaxGrowth: *maxGrowth,
		Progress: stderr,
		Log:      slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	if *verbose {
		cfg.Log = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	if *ramp != "" {
		for _, s := range splitList(*ramp) {
			n, err := strconv.Atoi(s)
			if err != nil {
				return fmt.Errorf("-ramp: %w", err)
			}
			cfg.Ramp = append(cfg.Ramp, n)
		}
	} else {
		if *maxN < 1 {
			return errors.New("-max: at least 1")
		}
		cfg.Ramp = load.Ramp(*maxN)
	}

	rep, err := load.Run(ctx, cfg)
	if rep != nil {
		if werr := output(rep, stdout, *jsonOut, *svgOut); werr != nil && err == nil {
			err = werr
		}
	}
	return err
}

// output writes the table, and the JSON and the plot when asked.
func output(rep *load.Report, stdout io.Writer, jsonOut, svgOut string) error {
	if err := rep.WriteTable(stdout); err != nil {
		return err
	}
	if jsonOut != "" {
		if err := rep.WriteJSON(jsonOut); err != nil {
			return err
		}
	}
	if svgOut != "" {
		if err := rep.WriteSVG(svgOut); err != nil {
			return err
		}
	}
	return nil
}

func splitList(s string) []string {
	var out []string
	for f := range strings.SplitSeq(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// moduleRoot is the directory above the working directory that holds
// go.mod (the working directory itself when none does).
func moduleRoot() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return ".", fmt.Errorf("working directory: %w", err)
	}
	for dir := wd; ; dir = filepath.Dir(dir) {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		if dir == filepath.Dir(dir) {
			return wd, nil
		}
	}
}
