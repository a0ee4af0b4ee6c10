package load

import (
	"os"
	"os/exec"
	"testing"
	"time"
)

func TestParseStat(t *testing.T) {
	// A command name with spaces and parentheses.
	line := "4242 (a (weird) name) S 1 4242 4242 0 -1 4194304 100 0 0 0 250 50 30 20 20 0 4 0 1234 1000000 300 18446744073709551615"
	st, err := parseStat(4242, []byte(line))
	if err != nil {
		t.Fatal(err)
	}
	if st.comm != "a (weird) name" || st.ppid != 1 || st.state != 'S' || st.self != 3 || st.children != 0.5 {
		t.Fatalf("%+v", st)
	}
	if _, err := parseStat(1, []byte("1 (x) S 1")); err == nil {
		t.Fatal("a short line parsed")
	}
}

func TestParseRSS(t *testing.T) {
	if v := parseRSS([]byte("Name:\tx\nVmPeak:\t 9 kB\nVmRSS:\t   2048 kB\n")); v != 2048<<10 {
		t.Fatalf("%d", v)
	}
}

// TestSampleTree: a child that uses CPU and exits is counted, before and
// after it is waited for.
func TestSampleTree(t *testing.T) {
	before, err := sampleTree(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if before.RootRSS <= 0 {
		t.Fatal("no RSS")
	}
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh")
	}
	// About 0.2 s of CPU.
	cmd := exec.Command(sh, "-c", "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done")
	start := time.Now()
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	used := cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	after, err := sampleTree(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if got := after.CPU - before.CPU; got < used.Seconds()-0.02 {
		t.Fatalf("the tree used %.2f CPU s meanwhile; the child alone %.2f (in %v)", got, used.Seconds(), time.Since(start))
	}
}
