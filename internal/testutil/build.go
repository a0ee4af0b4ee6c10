package testutil

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// ModuleRoot is the directory holding go.mod, above the test's working
// directory.
func ModuleRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		if dir == filepath.Dir(dir) {
			t.Fatal("go.mod not found above the test's directory")
		}
		dir = filepath.Dir(dir)
	}
}

// BuildLivegate builds ./cmd/livegate into the test's temporary directory
// and returns the binary's path; with the race detector when the test
// itself runs with it (a data race in the server then makes it exit with
// status 66).
func BuildLivegate(t testing.TB) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "livegate")
	args := []string{"build", "-o", bin}
	if RaceEnabled {
		args = append(args, "-race")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", append(args, "./cmd/livegate")...)
	cmd.Dir = ModuleRoot(t)
	began := time.Now()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/livegate: %v\n%s", err, out)
	}
	t.Logf("livegate: built in %v", time.Since(began).Round(time.Millisecond))
	return bin
}
