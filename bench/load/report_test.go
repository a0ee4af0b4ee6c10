package load

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// sampleReport is a ramp where the seed drops at 10 streams and livegate
// at 100.
func sampleReport() *Report {
	r := &Report{Machine: Machine{CPUs: 2}, MaxSustained: map[string]int{SideLivegate: 0, SideSeed: 0}, MaxNoDrops: map[string]int{},
		Config: ReportConfig{Kinds: []string{KindMKV, KindWebCodecs}, StepSeconds: 10}}
	for _, n := range []int{1, 2, 5, 10, 25, 50, 100} {
		st := Step{Streams: n}
		lg := &SideResult{Side: SideLivegate, Streams: n, Cores: 0.012 * float64(n), CoresPerStream: 0.012,
			DelayP50MS: 40, DelayP99MS: 60 + float64(n), DelayFrames: 200 * n, FramesMatched: 300 * n, FramesSent: 300 * n, FramesReceived: 300 * n, Sustained: n < 100, NoDrops: n < 100}
		if !lg.Sustained {
			lg.Why = "12 video frames lost"
		}
		st.Livegate = lg
		if n <= 10 {
			seed := &SideResult{Side: SideSeed, Streams: n, Cores: 0.15 * float64(n), CoresPerStream: 0.15,
				DelayP99MS: 2500, DelayFrames: 200 * n, FramesMatched: 300 * n, Sustained: n < 10, NoDrops: n <= 10, Behind: n == 10}
			st.Seed = seed
			st.Ratio = 12.5
		}
		r.Steps = append(r.Steps, st)
	}
	r.finish()
	return r
}

func TestReport(t *testing.T) {
	r := sampleReport()
	if r.MaxSustained[SideLivegate] != 50 || r.MaxSustained[SideSeed] != 5 {
		t.Fatalf("largest sustained: %v", r.MaxSustained)
	}
	if r.MaxNoDrops[SideLivegate] != 50 || r.MaxNoDrops[SideSeed] != 10 {
		t.Fatalf("largest with no drops: %v", r.MaxNoDrops)
	}
	var table bytes.Buffer
	if err := r.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	if rows := strings.Count(table.String(), "\n| "); rows != 7+4 {
		t.Errorf("%d rows:\n%s", rows, table.String())
	}
	if !strings.Contains(table.String(), "livegate 50; seed 10;") || !strings.Contains(table.String(), "livegate 50; seed 5;") {
		t.Errorf("no summary:\n%s", table.String())
	}

	dir := t.TempDir()
	js := filepath.Join(dir, "load.json")
	if err := r.WriteJSON(js); err != nil {
		t.Fatal(err)
	}
	var back Report
	b, _ := os.ReadFile(js)
	if err := json.Unmarshal(b, &back); err != nil || len(back.Steps) != 7 || back.Steps[3].Seed.CoresPerStream != 0.15 {
		t.Fatalf("JSON: %v, %+v", err, back.Steps)
	}

	svg := filepath.Join(dir, "load.svg")
	if err := r.WriteSVG(svg); err != nil {
		t.Fatal(err)
	}
	checkSVG(t, svg)
	if out := os.Getenv("LOADGEN_SAMPLE_SVG"); out != "" { // to look at it
		_ = r.WriteSVG(out)
	}
}

// checkSVG fails unless path holds well-formed XML with an svg root, two
// lines of points per panel and the markers.
func checkSVG(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	d := xml.NewDecoder(bytes.NewReader(b))
	var root string
	polylines := 0
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s: not well-formed: %v", path, err)
		}
		if se, ok := tok.(xml.StartElement); ok {
			if root == "" {
				root = se.Name.Local
			}
			if se.Name.Local == "polyline" {
				polylines++
			}
		}
	}
	if root != "svg" || polylines < 4 {
		t.Fatalf("%s: root %q, %d polylines", path, root, polylines)
	}
}
