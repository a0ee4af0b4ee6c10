package testutil

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Throttle is a TCP proxy on loopback that forwards to Target with the
// client-to-target direction limited to Rate bytes a second (changeable
// while it runs): a slow link for congestion tests. Close (also run at the
// test's cleanup) ends it and every connection.
type Throttle struct {
	Addr   string
	rate   atomic.Int64
	refuse atomic.Bool
	ln     net.Listener
	wg     sync.WaitGroup
	mu     sync.Mutex
	conn   []net.Conn
}

// StartThrottle starts a proxy to target at rate bytes a second.
func StartThrottle(t testing.TB, target string, rate int64) *Throttle {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Throttle{Addr: ln.Addr().String(), ln: ln}
	p.rate.Store(rate)
	p.wg.Add(1)
	go func() { // owned by p: Close waits
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if p.refuse.Load() {
				_ = c.Close() // the network is down
				continue
			}
			// A small receive buffer: a slow link does not hide megabytes
			// in the kernel.
			_ = c.(*net.TCPConn).SetReadBuffer(32 << 10)
			up, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conn = append(p.conn, c, up)
			p.mu.Unlock()
			p.wg.Add(2)
			go func() { defer p.wg.Done(); p.copySlow(up, c); up.Close() }()
			go func() { defer p.wg.Done(); _, _ = io.Copy(c, up); c.Close() }()
		}
	}()
	t.Cleanup(p.Close)
	return p
}

// Refuse makes the proxy close new connections at once (on), as a network
// that is down; off lets them through again.
func (p *Throttle) Refuse(on bool) { p.refuse.Store(on) }

// SetRate changes the limit.
func (p *Throttle) SetRate(rate int64) { p.rate.Store(rate) }

// copySlow copies in slices of a tenth of a second's allowance.
func (p *Throttle) copySlow(dst io.Writer, src io.Reader) {
	buf := make([]byte, 64<<10)
	for {
		n := int(max(p.rate.Load()/10, 1))
		m, err := src.Read(buf[:min(n, len(buf))])
		if m > 0 {
			if _, werr := dst.Write(buf[:m]); werr != nil {
				return
			}
			time.Sleep(time.Duration(float64(m) / float64(p.rate.Load()) * float64(time.Second)))
		}
		if err != nil {
			return
		}
	}
}

// Cut drops every connection open through the proxy at once, with no
// close handshake, as a network loss would; new ones are still accepted.
func (p *Throttle) Cut() {
	p.mu.Lock()
	conns := p.conn
	p.conn = nil
	p.mu.Unlock()
	for _, c := range conns {
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetLinger(0) // a reset, not a FIN: nothing more is read or sent
		}
		_ = c.Close()
	}
}

// Close stops the proxy and waits for its goroutines.
func (p *Throttle) Close() {
	_ = p.ln.Close()
	p.mu.Lock()
	for _, c := range p.conn {
		_ = c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}
