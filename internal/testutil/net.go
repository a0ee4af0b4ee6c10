package testutil

import (
	"net"
	"net/url"
	"testing"
)

// ClosedPort returns a loopback address that nothing listens on: a port
// taken and given back at once.
func ClosedPort(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// RTMPURL returns the URL of the stream key on the RTMP server at addr in
// the form livegate's destinations take: rtmp://addr/live#key.
func RTMPURL(t testing.TB, addr, key string) *url.URL {
	t.Helper()
	u, err := url.Parse("rtmp://" + addr + "/live#" + key)
	if err != nil {
		t.Fatal(err)
	}
	return u
}
