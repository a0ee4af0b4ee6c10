package testutil

import (
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/livegate/livegate/internal/media"
)

// TestOnlyTestsImport: no file of the module but a _test.go imports this
// package, so that nothing of it is built into livegate.
func TestOnlyTestsImport(t *testing.T) {
	const self = "github.com/livegate/livegate/internal/testutil"
	root := "."
	for {
		if _, err := os.Stat(filepath.Join(root, "go.mod")); err == nil {
			break
		}
		if abs, _ := filepath.Abs(root); abs == filepath.Dir(abs) {
			t.Fatal("go.mod not found above the package")
		}
		root = filepath.Join(root, "..")
	}
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if n := d.Name(); path != root && (strings.HasPrefix(n, ".") || n == "testdata") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		for _, imp := range f.Imports {
			if p, _ := strconv.Unquote(imp.Path.Value); p == self {
				t.Errorf("%s imports %s, which is for tests only", path, self)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestLoop(t *testing.T) {
	tr := &media.Track{Codec: media.CodecAAC}
	pkts := []*media.Packet{
		{Track: tr, PTS: 10 * time.Millisecond, DTS: 5 * time.Millisecond, Data: []byte{1}},
		{Track: tr, PTS: 20 * time.Millisecond, DTS: 15 * time.Millisecond, Data: []byte{2}},
	}
	got := Loop(pkts, 3, time.Second)
	if len(got) != 6 {
		t.Fatalf("%d packets, want 6", len(got))
	}
	for i, p := range got {
		src, shift := pkts[i%2], time.Duration(i/2)*time.Second
		if p == src || p.Track != tr || &p.Data[0] != &src.Data[0] {
			t.Errorf("packet %d: not a copy sharing the source's track and payload", i)
		}
		if p.PTS != src.PTS+shift || p.DTS != src.DTS+shift {
			t.Errorf("packet %d: PTS %v DTS %v, want %v %v", i, p.PTS, p.DTS, src.PTS+shift, src.DTS+shift)
		}
	}
	if pkts[0].PTS != 10*time.Millisecond {
		t.Error("Loop changed its input")
	}
}
