package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// nginxRTMP is an nginx with the RTMP module, listening on 127.0.0.1:Port.
// Every stream published to application "live" is recorded to
// RecordPath(key). Stop and Start may be called again and again (a test can
// stop the server mid-broadcast and bring it back on the same port); the
// test's cleanup stops it.
//
// A restart does not keep recordings apart: a new publish with the same key
// truncates RecordPath(key). Copy the file first, or use another key.
type nginxRTMP struct {
	Port int

	t       testing.TB
	bin     string
	dir     string // conf, pid, logs
	conf    string
	errLog  string
	recDir  string
	mu      sync.Mutex
	proc    *proc
	console syncBuffer // nginx stdout/stderr
}

// rtmpModuleCandidates are where distributions put the dynamic RTMP module.
// Debian's libnginx-mod-rtmp installs /usr/lib/nginx/modules/ngx_rtmp_module.so.
var rtmpModuleCandidates = []string{
	"/usr/lib/nginx/modules/ngx_rtmp_module.so",
	"/usr/lib64/nginx/modules/ngx_rtmp_module.so",
	"/usr/share/nginx/modules/ngx_rtmp_module.so",
	"/usr/local/nginx/modules/ngx_rtmp_module.so",
}

func findRTMPModule(t testing.TB) string {
	t.Helper()
	for _, p := range rtmpModuleCandidates {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	for _, pattern := range []string{"/usr/lib/nginx/modules/*rtmp*.so", "/usr/lib*/nginx/modules/*rtmp*.so"} {
		if m, _ := filepath.Glob(pattern); len(m) > 0 {
			return m[0]
		}
	}
	t.Fatalf("e2e: nginx RTMP module not found in %v: install the Debian package %q (apt-get install -y libnginx-mod-rtmp)",
		rtmpModuleCandidates, "libnginx-mod-rtmp")
	return ""
}

// startNginx starts nginx with the RTMP module on a free loopback port and
// waits until it accepts connections.
func startNginx(t testing.TB) *nginxRTMP {
	t.Helper()
	bin := requireBinary(t, "nginx", "nginx")
	module := findRTMPModule(t)

	dir := t.TempDir()
	n := &nginxRTMP{
		Port:   freePort(t),
		t:      t,
		bin:    bin,
		dir:    dir,
		conf:   filepath.Join(dir, "nginx.conf"),
		errLog: filepath.Join(dir, "error.log"),
		recDir: filepath.Join(dir, "record"),
	}
	if err := os.MkdirAll(n.recDir, 0o777); err != nil {
		t.Fatal(err)
	}
	// Workers may run as another user (nobody) when nginx does not run as
	// root or ignores "user root"; let them write the recordings anyway.
	if err := os.Chmod(n.recDir, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(n.conf, []byte(n.config(module)), 0o644); err != nil {
		t.Fatal(err)
	}
	logOnFailure(t, "nginx error.log", func() string {
		b, _ := os.ReadFile(n.errLog)
		return n.console.String() + string(b)
	})
	t.Cleanup(n.Stop)
	n.Start()
	return n
}

// config is the nginx.conf. There is no http block, so nginx needs no http
// temp paths; every path nginx writes is inside the temp dir. "user root"
// only matters when nginx runs as root (it does in CI); otherwise nginx
// ignores it with a warning.
func (n *nginxRTMP) config(module string) string {
	user := ""
	if os.Geteuid() == 0 {
		user = "user root;\n"
	}
	return fmt.Sprintf(`load_module %s;
%sdaemon off;
master_process on;
worker_processes 1;
pid %s;
lock_file %s;
error_log %s info;
events { worker_connections 256; }
rtmp {
    server {
        listen 127.0.0.1:%d;
        chunk_size 4096;
        application live {
            live on;
            record all;
            record_path %s;
            record_unique off;
        }
    }
}
`, module, user, filepath.Join(n.dir, "nginx.pid"), filepath.Join(n.dir, "nginx.lock"),
		n.errLog, n.Port, n.recDir)
}

// URL is the RTMP URL to publish or play stream key.
func (n *nginxRTMP) URL(key string) string {
	return "rtmp://127.0.0.1:" + strconv.Itoa(n.Port) + "/live/" + key
}

// RecordPath is where nginx records stream key (FLV). The file is complete
// once the publisher has disconnected (or nginx has stopped).
func (n *nginxRTMP) RecordPath(key string) string {
	return filepath.Join(n.recDir, key+".flv")
}

// ErrorLog returns nginx's error log so far.
func (n *nginxRTMP) ErrorLog() string {
	b, _ := os.ReadFile(n.errLog)
	return string(b)
}

// Start starts nginx (again) on the same port and waits until it accepts
// TCP connections. It fails the test if nginx does not come up in 10 s.
func (n *nginxRTMP) Start() {
	n.t.Helper()
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.proc != nil && !n.proc.exited() {
		n.t.Fatalf("nginx: Start while running (pid %d)", n.proc.pid())
	}
	began := time.Now()
	cmd := exec.Command(n.bin, "-p", n.dir, "-c", n.conf, "-e", n.errLog)
	cmd.Dir = n.dir
	cmd.Stdout = &n.console
	cmd.Stderr = &n.console
	p, err := startProc("nginx", cmd)
	if err != nil {
		n.t.Fatalf("nginx: %v", err)
	}
	n.proc = p
	addr := "127.0.0.1:" + strconv.Itoa(n.Port)
	if err := waitTCP(addr, 10*time.Second, p.done); err != nil {
		_ = p.kill()
		n.t.Fatalf("nginx did not come up on %s: %v (exit code %d)\nerror.log:\n%s%s",
			addr, err, p.exitCode(), n.console.String(), tail(n.ErrorLog(), 4096))
	}
	n.t.Logf("nginx: listening on %s after %v (pid %d)", addr, time.Since(began).Round(time.Millisecond), p.pid())
}

// Stop stops nginx and waits until the master and its worker have exited.
// It first asks for a graceful shutdown (SIGQUIT), which ends at once when
// no stream is live; nginx-rtmp does not end live RTMP connections on a
// graceful shutdown (worker_shutdown_timeout does not reach them), so after
// 2 s Stop asks for a fast shutdown (SIGTERM, as `nginx -s stop`), which
// closes them; what was recorded stays on disk. After 10 s more it kills
// the group and reports an error. Stop is a no-op when nginx is not
// running.
func (n *nginxRTMP) Stop() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.proc == nil {
		return
	}
	p := n.proc
	n.proc = nil
	began := time.Now()
	p.signal(syscall.SIGQUIT)
	if !p.wait(2 * time.Second) {
		p.signal(syscall.SIGTERM)
		if !p.wait(10 * time.Second) {
			n.t.Errorf("nginx: did not stop within 10 s of SIGTERM; killing it")
		} else {
			n.t.Logf("nginx: live connections kept it from a graceful stop; fast stop (SIGTERM) after %v",
				time.Since(began).Round(time.Millisecond))
		}
	}
	if err := p.kill(); err != nil {
		n.t.Errorf("nginx: %v", err)
	}
}

// Kill kills nginx with SIGKILL (master and worker), as a crash would, and
// waits until they are gone. Recordings are left as they are.
func (n *nginxRTMP) Kill() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.proc == nil {
		return
	}
	p := n.proc
	n.proc = nil
	if err := p.kill(); err != nil {
		n.t.Errorf("nginx: %v", err)
	}
}
