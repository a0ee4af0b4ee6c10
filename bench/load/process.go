package load

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// child is a process the load generator started, in its own process group
// (so that what it starts goes with it), killed if the generator dies.
type child struct {
	name string
	cmd  *exec.Cmd
	done chan struct{} // closed when it has exited and been waited for
	err  error         // of Wait, once done
}

// startChild starts cmd. A goroutine owned by the child waits for it.
func startChild(name string, cmd *exec.Cmd) (*child, error) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if cmd.WaitDelay == 0 {
		cmd.WaitDelay = 3 * time.Second
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	c := &child{name: name, cmd: cmd, done: make(chan struct{})}
	go func() { // owned by c: done closes when it ends
		c.err = cmd.Wait()
		close(c.done)
	}()
	return c, nil
}

func (c *child) pid() int { return c.cmd.Process.Pid }

func (c *child) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// stop sends sig, waits up to grace, then kills the whole group and waits
// until nothing of it is left. It reports whether the process ended on the
// signal alone.
func (c *child) stop(sig syscall.Signal, grace time.Duration) (clean bool, err error) {
	if c.exited() {
		clean = true
	} else {
		_ = syscall.Kill(c.pid(), sig)
		t := time.NewTimer(grace)
		select {
		case <-c.done:
			clean = true
		case <-t.C:
		}
		t.Stop()
	}
	_ = syscall.Kill(-c.pid(), syscall.SIGKILL)
	<-c.done
	// Members of the group that outlived the leader.
	deadline := time.Now().Add(5 * time.Second)
	for groupAlive(c.pid()) {
		if time.Now().After(deadline) {
			return clean, fmt.Errorf("%s: process group %d survives SIGKILL", c.name, c.pid())
		}
		_ = syscall.Kill(-c.pid(), syscall.SIGKILL)
		time.Sleep(20 * time.Millisecond)
	}
	return clean, nil
}

// groupAlive tells whether a process of group pgid still runs.
func groupAlive(pgid int) bool {
	pg, err := syscall.Getpgid(pgid)
	if err == nil && pg == pgid {
		return true // the leader itself (a zombie has no group to ask for)
	}
	for _, st := range allStats() {
		if st.state == 'Z' {
			continue
		}
		if pg, err := syscall.Getpgid(st.pid); err == nil && pg == pgid {
			return true
		}
	}
	return false
}

// freePort is a loopback TCP port that was free a moment ago.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// syncBuffer collects a child's output; bounded, it keeps the start.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

const maxOutput = 1 << 20

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if room := maxOutput - b.buf.Len(); room > 0 {
		b.buf.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// livegateProc is the livegate server under load.
type livegateProc struct {
	*child
	BaseURL, WSURL string
	// ReceiverURL is rtmp://ADDR/live of its built-in receiver (when
	// enabled).
	ReceiverURL string
	out         syncBuffer
}

// startLivegate runs bin with a configuration for the load: no session
// bounds, one destination "load" at destURL (rtmp://host:port/app) taking
// the client's key, so that every stream has a path of its own; with
// builtin, destURL is its own built-in receiver.
func startLivegate(ctx context.Context, bin, dir, destURL string, builtin bool) (*livegateProc, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	lg := &livegateProc{
		BaseURL: "http://127.0.0.1:" + strconv.Itoa(port),
		WSURL:   "ws://127.0.0.1:" + strconv.Itoa(port) + "/api/v1/publish",
	}
	receiver := "receiver:\n  enabled: false\n"
	if builtin {
		rport, err := freePort()
		if err != nil {
			return nil, err
		}
		receiver = fmt.Sprintf("receiver:\n  enabled: true\n  listen: 127.0.0.1:%d\n", rport)
		destURL = fmt.Sprintf("rtmp://127.0.0.1:%d/live", rport)
		lg.ReceiverURL = destURL
	}
	cfg := fmt.Sprintf(`listen: 127.0.0.1:%d
log:
  level: warn
limits:
  max_sessions: 10000
  max_sessions_per_address: 0
%sdestinations:
  load:
    preset: custom
    server: %s
    key_from_client: true
    description: load generator
`, port, receiver, destURL)
	path := filepath.Join(dir, "livegate.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		return nil, fmt.Errorf("livegate config: %w", err)
	}
	cmd := exec.Command(bin, "-config", path)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = &lg.out, &lg.out
	c, err := startChild("livegate", cmd)
	if err != nil {
		return nil, err
	}
	lg.child = c
	client := &http.Client{Timeout: time.Second}
	defer client.CloseIdleConnections()
	deadline := time.Now().Add(15 * time.Second)
	for {
		if c.exited() {
			return nil, fmt.Errorf("livegate exited at start: %w: %s", c.err, lg.out.String())
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, lg.BaseURL+"/healthz", nil)
		if resp, err := client.Do(req); err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return lg, nil
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			_, _ = c.stop(syscall.SIGKILL, 0)
			return nil, fmt.Errorf("livegate did not become healthy in 15 s: %s", lg.out.String())
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// nginxProc is nginx with the RTMP module.
type nginxProc struct {
	*child
	URL string // rtmp://127.0.0.1:PORT/live
}

// rtmpModules are where distributions put nginx's RTMP module (Debian:
// libnginx-mod-rtmp).
var rtmpModules = []string{
	"/usr/lib/nginx/modules/ngx_rtmp_module.so",
	"/usr/lib64/nginx/modules/ngx_rtmp_module.so",
	"/usr/share/nginx/modules/ngx_rtmp_module.so",
	"/usr/local/nginx/modules/ngx_rtmp_module.so",
}

// startNginx starts nginx-rtmp on a free port: live only, no recording,
// room for thousands of connections.
func startNginx(bin, dir string) (*nginxProc, error) {
	module := ""
	for _, m := range rtmpModules {
		if _, err := os.Stat(m); err == nil {
			module = m
			break
		}
	}
	if module == "" {
		return nil, fmt.Errorf("nginx's RTMP module is not in %v: apt-get install libnginx-mod-rtmp", rtmpModules)
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	user := ""
	if os.Geteuid() == 0 {
		user = "user root;\n"
	}
	conf := fmt.Sprintf(`load_module %s;
%sdaemon off;
master_process on;
worker_processes 1;
worker_rlimit_nofile 16384;
pid %[3]s/nginx.pid;
lock_file %[3]s/nginx.lock;
error_log %[3]s/error.log warn;
events { worker_connections 8192; }
rtmp {
    server {
        listen 127.0.0.1:%[4]d;
        chunk_size 4096;
        application live {
            live on;
        }
    }
}
`, module, user, dir, port)
	path := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		return nil, fmt.Errorf("nginx config: %w", err)
	}
	var out syncBuffer
	cmd := exec.Command(bin, "-p", dir, "-c", path, "-e", filepath.Join(dir, "error.log"))
	cmd.Stdout, cmd.Stderr = &out, &out
	c, err := startChild("nginx", cmd)
	if err != nil {
		return nil, err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if conn, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			_ = conn.Close()
			return &nginxProc{child: c, URL: "rtmp://" + addr + "/live"}, nil
		}
		if c.exited() || time.Now().After(deadline) {
			_, _ = c.stop(syscall.SIGKILL, 0)
			log, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			return nil, errors.New("nginx did not come up: " + out.String() + string(log))
		}
		time.Sleep(20 * time.Millisecond)
	}
}
