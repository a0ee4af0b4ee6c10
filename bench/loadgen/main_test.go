package main

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"flag"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/livegate/livegate/bench/load"
	"github.com/livegate/livegate/internal/testutil"
)

// TestSmoke runs the load generator as `make bench-load` does, small: 2
// streams of 2 kinds for a few seconds against a real livegate and the
// seed's ffmpeg, and checks that the tools work: frames arrive, the JSON
// parses, the plot is written, the delays are positive and finite. It
// checks no timing: the machine may be busy.
func TestSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped with -short: runs livegate and ffmpeg for a few seconds")
	}
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		t.Skip("ffmpeg is not installed (apt-get install ffmpeg): the seed's side and livegate's audio encoder need it")
	}
	defer goleak.VerifyNone(t)
	bin := testutil.BuildLivegate(t)
	dir := t.TempDir()
	jsonPath, svgPath := filepath.Join(dir, "load.json"), filepath.Join(dir, "load.svg")
	var stdout, stderr bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	began := time.Now()
	err := run(ctx, []string{"-livegate", bin, "-ramp", "2", "-step", "3s", "-kinds", "mkv,webcodecs",
		"-json", jsonPath, "-svg", svgPath}, &stdout, &stderr)
	t.Logf("ran in %v\n%s%s", time.Since(began).Round(time.Millisecond), stderr.String(), stdout.String())
	if err != nil {
		t.Fatal(err)
	}

	b, err := os.ReadFile(jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	var rep load.Report
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatalf("the JSON does not parse: %v", err)
	}
	if len(rep.Steps) != 1 || rep.Steps[0].Streams != 2 {
		t.Fatalf("steps %+v, want one of 2 streams", rep.Steps)
	}
	st := rep.Steps[0]
	for _, r := range []*load.SideResult{st.Livegate, st.Seed} {
		if r == nil {
			t.Fatalf("a side is missing: %+v", st)
		}
		if r.FramesSent == 0 || r.FramesReceived == 0 || r.FramesMatched == 0 {
			t.Errorf("%s: %d video frames sent, %d received, %d matched", r.Side, r.FramesSent, r.FramesReceived, r.FramesMatched)
		}
		if r.Kinds[load.KindMKV] != 1 || r.Kinds[load.KindWebCodecs] != 1 {
			t.Errorf("%s: kinds %v", r.Side, r.Kinds)
		}
		for name, v := range map[string]float64{"p50": r.DelayP50MS, "p99": r.DelayP99MS, "min": r.DelayMinMS} {
			if !(v > 0) || math.IsInf(v, 0) {
				t.Errorf("%s: delay %s %v ms, want positive and finite", r.Side, name, v)
			}
		}
		if r.CPUSeconds <= 0 || r.RSSMB <= 0 || r.Children < 1 {
			t.Errorf("%s: %v CPU s, RSS %v MB, %d children", r.Side, r.CPUSeconds, r.RSSMB, r.Children)
		}
		if r.Outcomes["ok"] != 2 {
			t.Errorf("%s: streams ended %v", r.Side, r.Outcomes)
		}
	}
	if st.Livegate.Goroutines == 0 || st.Livegate.GoHeapMB <= 0 {
		t.Errorf("livegate: %d goroutines, heap %v MB", st.Livegate.Goroutines, st.Livegate.GoHeapMB)
	}
	if !strings.Contains(stdout.String(), "| 2 | livegate |") || !strings.Contains(stdout.String(), "| 2 | seed |") {
		t.Errorf("no table on stdout:\n%s", stdout.String())
	}
	checkSVG(t, svgPath)
	// Every process it started has ended.
	if kids := children(t); len(kids) > 0 {
		t.Errorf("processes left behind: %v", kids)
	}
}

// TestHelp: -h prints the flags and is not an error for main.
func TestHelp(t *testing.T) {
	var stderr bytes.Buffer
	err := run(context.Background(), []string{"-h"}, io.Discard, &stderr)
	if !errors.Is(err, flag.ErrHelp) || !strings.Contains(stderr.String(), "-kinds") {
		t.Fatalf("err %v, output %q", err, stderr.String())
	}
	if err := run(context.Background(), []string{"-kinds", "nope", "-sides", "seed", "-ramp", "1"}, io.Discard, io.Discard); err == nil {
		t.Fatal("an unknown kind was taken")
	}
}

func checkSVG(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("no plot: %v", err)
	}
	d := xml.NewDecoder(bytes.NewReader(b))
	var root string
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("the plot is not well-formed XML: %v", err)
		}
		if se, ok := tok.(xml.StartElement); ok && root == "" {
			root = se.Name.Local
		}
	}
	if root != "svg" {
		t.Fatalf("the plot's root is %q", root)
	}
}

// children are the live processes whose parent is the test process.
func children(t *testing.T) []string {
	t.Helper()
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	var out []string
	for _, p := range stats {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		end := bytes.LastIndexByte(b, ')')
		if end < 0 {
			continue
		}
		f := strings.Fields(string(b[end+1:]))
		if len(f) > 1 && f[0] != "Z" && f[1] == strconv.Itoa(os.Getpid()) {
			out = append(out, string(b[:end+1]))
		}
	}
	return out
}
