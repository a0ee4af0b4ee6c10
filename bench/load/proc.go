package load

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// clockTicks is the kernel's USER_HZ: /proc/PID/stat counts CPU time in
// these. It is 100 on every Linux that Go supports.
const clockTicks = 100

// procStat is what the load generator reads of /proc/PID/stat.
type procStat struct {
	pid, ppid int
	state     byte
	comm      string
	// CPU seconds: the process's own (user + system, all its threads) and
	// that of its children it has waited for.
	self, children float64
}

// readStat parses /proc/PID/stat. The command name is in parentheses and
// may hold spaces and parentheses itself: the fields start after the last
// ')'.
func readStat(pid int) (procStat, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procStat{}, fmt.Errorf("process %d: %w", pid, err)
	}
	return parseStat(pid, b)
}

func parseStat(pid int, b []byte) (procStat, error) {
	open, end := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
	if open < 0 || end < open {
		return procStat{}, fmt.Errorf("process %d: unreadable stat %q", pid, b)
	}
	f := strings.Fields(string(b[end+1:]))
	// f[0] state, f[1] ppid, ... f[11] utime, f[12] stime, f[13] cutime, f[14] cstime
	if len(f) < 15 || len(f[0]) != 1 {
		return procStat{}, fmt.Errorf("process %d: unreadable stat %q", pid, b)
	}
	st := procStat{pid: pid, state: f[0][0], comm: string(b[open+1 : end])}
	st.ppid, _ = strconv.Atoi(f[1])
	var t [4]float64
	for i := range t {
		v, err := strconv.ParseFloat(f[11+i], 64)
		if err != nil {
			return procStat{}, fmt.Errorf("process %d: field %d of stat: %w", pid, 14+i, err)
		}
		t[i] = v / clockTicks
	}
	st.self, st.children = t[0]+t[1], t[2]+t[3]
	return st, nil
}

// allStats reads the stat of every process.
func allStats() []procStat {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	out := make([]procStat, 0, len(entries))
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st, err := readStat(pid); err == nil { // a process may vanish meanwhile
			out = append(out, st)
		}
	}
	return out
}

// descendants are the processes below root (zombies included: their CPU
// time is not yet in their parent's children time).
func descendants(root int, all []procStat) []procStat {
	kids := make(map[int][]procStat)
	for _, st := range all {
		kids[st.ppid] = append(kids[st.ppid], st)
	}
	var out []procStat
	queue := []int{root}
	for len(queue) > 0 {
		pid := queue[0]
		queue = queue[1:]
		for _, c := range kids[pid] {
			out = append(out, c)
			queue = append(queue, c.pid)
		}
	}
	return out
}

// treeSample is a process tree at one moment.
type treeSample struct {
	// CPU seconds of the root, of the children it has waited for, and of
	// the descendants that still run (or are zombies): every CPU second
	// the tree ever used, so that the difference of two samples is what
	// it used in between, whether children exited meanwhile or not.
	CPU float64
	// Live counts the descendants that run (not zombies).
	Live int
	// RSS of the root and of its live descendants, in bytes.
	RootRSS, ChildrenRSS int64
}

// sampleTree samples the process tree under pid.
func sampleTree(pid int) (treeSample, error) {
	root, err := readStat(pid)
	if err != nil {
		return treeSample{}, err
	}
	s := treeSample{CPU: root.self + root.children, RootRSS: rss(pid)}
	for _, d := range descendants(pid, allStats()) {
		s.CPU += d.self + d.children
		if d.state != 'Z' {
			s.Live++
			s.ChildrenRSS += rss(d.pid)
		}
	}
	return s, nil
}

// rss is VmRSS of pid in bytes (0 if it cannot be read: a zombie, or a
// process that has gone).
func rss(pid int) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	return parseRSS(b)
}

func parseRSS(status []byte) int64 {
	for line := range strings.SplitSeq(string(status), "\n") {
		v, ok := strings.CutPrefix(line, "VmRSS:")
		if !ok {
			continue
		}
		f := strings.Fields(v) // "12345 kB"
		if len(f) == 0 {
			return 0
		}
		kb, _ := strconv.ParseInt(f[0], 10, 64)
		return kb << 10
	}
	return 0
}

// loadAverage is the 1-minute load average (0 if unknown).
func loadAverage() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}
