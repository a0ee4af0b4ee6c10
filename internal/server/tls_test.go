package server

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"io"
	"log/slog"
	"net"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/coder/websocket"

	"github.com/livegate/livegate/internal/testutil"
)

// tlsFixture is a server speaking HTTPS with a certificate made by NewSelfSigned, and
// clients that trust that certificate.
type tlsFixture struct {
	*fixture
	cert     *tls.Certificate
	roots    *x509.CertPool
	redirect string // http://... of the redirecting listener; empty without TLSListen
}

func selfSigned(t *testing.T) *tls.Certificate {
	t.Helper()
	c, err := NewSelfSigned([]string{"localhost", "127.0.0.1", "::1"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// newTLSServer starts a Server with a fresh self-signed certificate; tweak may change
// it before it starts (set TLSListen, HSTSMaxAge...).
func newTLSServer(t *testing.T, tweak func(*Server)) *tlsFixture {
	t.Helper()
	cert := selfSigned(t)
	f := newServer(t, func(s *Server) {
		s.Certificate = cert
		if tweak != nil {
			tweak(s)
		}
	})
	roots := x509.NewCertPool()
	roots.AddCert(cert.Leaf)
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}, ForceAttemptHTTP2: true}
	t.Cleanup(tr.CloseIdleConnections)
	f.client = &http.Client{
		Transport: tr,
		Timeout:   5 * time.Second,
		// The redirect is what some tests look at.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	f.base = "https://" + f.srv.Addr().String()
	tf := &tlsFixture{fixture: f, cert: cert, roots: roots}
	if a := f.srv.RedirectAddr(); a != nil {
		tf.redirect = "http://" + a.String()
	}
	return tf
}

func TestHTTPS(t *testing.T) {
	f := newTLSServer(t, func(s *Server) { s.HSTSMaxAge = 24 * time.Hour })
	resp, body := f.do(t, http.MethodGet, "/")
	if resp.StatusCode != http.StatusOK || body != indexHTML {
		t.Fatalf("GET / = %d %q, want 200 and index.html", resp.StatusCode, body)
	}
	for _, ca := range []struct {
		name, got, want string
	}{
		{"HTTP/2", resp.Proto, "HTTP/2.0"},
		{"HSTS", resp.Header.Get("Strict-Transport-Security"), "max-age=86400"},
		{"page headers still there", resp.Header.Get("X-Frame-Options"), "DENY"},
	} {
		if ca.got != ca.want {
			t.Errorf("%s: %q, want %q", ca.name, ca.got, ca.want)
		}
	}
	// HSTS is on every HTTPS answer, the API's and errors too.
	for _, path := range []string{"/healthz", "/api/v1/destinations", "/nothing-here"} {
		if resp, _ := f.do(t, http.MethodGet, path); resp.Header.Get("Strict-Transport-Security") != "max-age=86400" {
			t.Errorf("GET %s: Strict-Transport-Security %q", path, resp.Header.Get("Strict-Transport-Security"))
		}
	}
	if f.srv.RedirectAddr() != nil {
		t.Errorf("RedirectAddr = %v without TLSListen", f.srv.RedirectAddr())
	}

	// Plain HTTP to the HTTPS port gets Go's own refusal, not the page.
	plain := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{}}
	defer plain.CloseIdleConnections()
	presp, err := plain.Get("http://" + f.srv.Addr().String() + "/")
	if err != nil {
		t.Fatal(err)
	}
	pbody, _ := io.ReadAll(presp.Body)
	presp.Body.Close()
	if presp.StatusCode != http.StatusBadRequest || !strings.Contains(string(pbody), "HTTPS") {
		t.Errorf("plain HTTP to the HTTPS port: %d %q", presp.StatusCode, pbody)
	}
}

func TestHTTPSWithoutHSTS(t *testing.T) {
	f := newTLSServer(t, nil)
	resp, _ := f.do(t, http.MethodGet, "/")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET / = %d", resp.StatusCode)
	}
	if v, ok := resp.Header["Strict-Transport-Security"]; ok {
		t.Errorf("Strict-Transport-Security %q with HSTSMaxAge 0", v)
	}
}

// TestTLSHandshakes checks what the HTTPS listener accepts: TLS 1.2 and 1.3, ECDHE with
// an AEAD, X25519 or P-256, and h2 or http/1.1.
func TestTLSHandshakes(t *testing.T) {
	f := newTLSServer(t, nil)
	for _, ca := range []struct {
		name    string
		cfg     *tls.Config
		ok      bool
		version uint16
		alpn    string
	}{
		{"TLS 1.3", &tls.Config{NextProtos: []string{"h2", "http/1.1"}}, true, tls.VersionTLS13, "h2"},
		{"TLS 1.3 over HTTP/1.1", &tls.Config{NextProtos: []string{"http/1.1"}}, true, tls.VersionTLS13, "http/1.1"},
		{"TLS 1.3 with P-256", &tls.Config{CurvePreferences: []tls.CurveID{tls.CurveP256}}, true, tls.VersionTLS13, ""},
		{"TLS 1.3 with X25519", &tls.Config{CurvePreferences: []tls.CurveID{tls.X25519}}, true, tls.VersionTLS13, ""},
		{"TLS 1.2 AES-GCM", &tls.Config{MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}}, true, tls.VersionTLS12, ""},
		{"TLS 1.2 ChaCha20", &tls.Config{MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256}}, true, tls.VersionTLS12, ""},
		{"TLS 1.2 CBC refused", &tls.Config{MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA}}, false, 0, ""},
		{"TLS 1.1 refused", &tls.Config{MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11}, false, 0, ""},
		{"TLS 1.0 refused", &tls.Config{MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS10}, false, 0, ""},
		{"P-384 only refused", &tls.Config{CurvePreferences: []tls.CurveID{tls.CurveP384}}, false, 0, ""},
	} {
		t.Run(ca.name, func(t *testing.T) {
			cfg := ca.cfg.Clone()
			cfg.RootCAs = f.roots
			cfg.ServerName = "localhost"
			d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: 5 * time.Second}, Config: cfg}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			c, err := d.DialContext(ctx, "tcp", f.srv.Addr().String())
			if !ca.ok {
				if err == nil {
					st := c.(*tls.Conn).ConnectionState()
					c.Close()
					t.Fatalf("handshake succeeded: version %x, suite %s", st.Version, tls.CipherSuiteName(st.CipherSuite))
				}
				// The server said no, rather than the client distrusting it.
				if !strings.Contains(err.Error(), "remote error: tls: ") {
					t.Fatalf("handshake: %v, want the server's refusal", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("handshake: %v", err)
			}
			defer c.Close()
			st := c.(*tls.Conn).ConnectionState()
			if st.Version != ca.version || st.NegotiatedProtocol != ca.alpn {
				t.Errorf("version %x, ALPN %q; want %x, %q", st.Version, st.NegotiatedProtocol, ca.version, ca.alpn)
			}
			if len(st.PeerCertificates) != 1 || !st.PeerCertificates[0].Equal(f.cert.Leaf) {
				t.Errorf("the server presented another certificate")
			}
		})
	}
}

func TestRedirectToHTTPS(t *testing.T) {
	f := newTLSServer(t, func(s *Server) {
		s.TLSListen = "127.0.0.1:0"
		s.HSTSMaxAge = time.Hour
	})
	if f.redirect == "" {
		t.Fatal("no redirecting listener with TLSListen set")
	}
	port := portOf(f.srv.Addr())
	for _, ca := range []struct {
		name, method, path, host string
		header                   http.Header
		status                   int
		location                 string // the whole Location, https://HOST:PORT replaced
		body                     []string
	}{
		{name: "page", method: http.MethodGet, path: "/", status: http.StatusPermanentRedirect, location: "https://127.0.0.1:PORT/"},
		{name: "path and query kept", method: http.MethodGet, path: "/a/b%2Fc?x=1&y=%20z#frag", status: http.StatusPermanentRedirect, location: "https://127.0.0.1:PORT/a/b%2Fc?x=1&y=%20z"},
		{name: "head", method: http.MethodHead, path: "/client.js", status: http.StatusPermanentRedirect, location: "https://127.0.0.1:PORT/client.js"},
		{name: "host from the request", method: http.MethodGet, path: "/x", host: "live.example.com:8080", status: http.StatusPermanentRedirect, location: "https://live.example.com:PORT/x"},
		{name: "host without a port", method: http.MethodGet, path: "/", host: "studio.lan", status: http.StatusPermanentRedirect, location: "https://studio.lan:PORT/"},
		{name: "IPv6 host", method: http.MethodGet, path: "/", host: "[::1]:8080", status: http.StatusPermanentRedirect, location: "https://[::1]:PORT/"},
		{name: "double slash stays a path", method: http.MethodGet, path: "//evil.example/x", status: http.StatusPermanentRedirect, location: "https://127.0.0.1:PORT//evil.example/x"},
		{name: "post refused", method: http.MethodPost, path: "/api/v1/x?a=b", status: http.StatusBadRequest,
			body: []string{"only a redirect to HTTPS", "for GET and HEAD", "send POST requests to https://127.0.0.1:PORT/api/v1/x?a=b instead"}},
		{name: "put refused", method: http.MethodPut, path: "/", status: http.StatusBadRequest, body: []string{"send PUT requests to https://127.0.0.1:PORT/"}},
		{name: "websocket refused", method: http.MethodGet, path: "/api/v1/publish", status: http.StatusBadRequest,
			header: http.Header{"Connection": {"Upgrade"}, "Upgrade": {"websocket"}, "Sec-Websocket-Version": {"13"}, "Sec-Websocket-Key": {"dGhlIHNhbXBsZSBub25jZQ=="}},
			body:   []string{"open the WebSocket at wss://127.0.0.1:PORT/api/v1/publish instead"}},
	} {
		t.Run(ca.name, func(t *testing.T) {
			req, err := http.NewRequest(ca.method, f.redirect+ca.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			if ca.host != "" {
				req.Host = ca.host
			}
			for k, v := range ca.header {
				req.Header[k] = v
			}
			resp, err := f.client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != ca.status {
				t.Fatalf("%s %s = %d %q, want %d", ca.method, ca.path, resp.StatusCode, body, ca.status)
			}
			if want := strings.ReplaceAll(ca.location, "PORT", port); resp.Header.Get("Location") != want {
				t.Errorf("Location %q, want %q", resp.Header.Get("Location"), want)
			}
			for _, w := range ca.body {
				if w = strings.ReplaceAll(w, "PORT", port); !strings.Contains(string(body), w) {
					t.Errorf("body %q does not contain %q", body, w)
				}
			}
			// HSTS means nothing over plain HTTP (RFC 6797 8.1): it is not sent there.
			if v := resp.Header.Get("Strict-Transport-Security"); v != "" {
				t.Errorf("Strict-Transport-Security %q over plain HTTP", v)
			}
			if ca.status == http.StatusPermanentRedirect && resp.Header.Get("Cache-Control") != "max-age=3600" {
				t.Errorf("Cache-Control %q on the redirect, want max-age=3600", resp.Header.Get("Cache-Control"))
			}
		})
	}

	// A browser that follows the redirect lands on the page, over HTTPS.
	follow := *f.client
	follow.CheckRedirect = nil
	resp, err := follow.Get(f.redirect + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(body) != "ok\n" || resp.TLS == nil || resp.Request.URL.Scheme != "https" {
		t.Fatalf("following the redirect: %d %q over %v", resp.StatusCode, body, resp.Request.URL)
	}
	if resp.Header.Get("Strict-Transport-Security") != "max-age=3600" {
		t.Errorf("Strict-Transport-Security %q after the redirect", resp.Header.Get("Strict-Transport-Security"))
	}
}

func TestRedirectWithoutHost(t *testing.T) {
	h := redirectToHTTPS("8443")
	for _, ca := range []struct {
		host, want string
	}{
		{"", "names no host"},
		{"[::1]", "https://[::1]:8443/p"},
	} {
		rec := &recorder{header: http.Header{}}
		req, _ := http.NewRequest(http.MethodGet, "/p", nil)
		req.Host = ca.host
		h.ServeHTTP(rec, req)
		if got := rec.header.Get("Location") + rec.body.String(); !strings.Contains(got, ca.want) {
			t.Errorf("Host %q: %d %q, want %q", ca.host, rec.status, got, ca.want)
		}
	}
}

// recorder is a minimal http.ResponseWriter.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header         { return r.header }
func (r *recorder) Write(b []byte) (int, error) { return r.body.Write(b) }
func (r *recorder) WriteHeader(status int)      { r.status = status }

func TestHostPort(t *testing.T) {
	for _, ca := range []struct {
		host, port, def, want string
	}{
		{"example.com", "443", "443", "example.com"},
		{"example.com", "8443", "443", "example.com:8443"},
		{"::1", "443", "443", "[::1]"},
		{"::1", "8443", "443", "[::1]:8443"},
		{"10.0.0.2", "80", "80", "10.0.0.2"},
	} {
		if got := hostPort(ca.host, ca.port, ca.def); got != ca.want {
			t.Errorf("hostPort(%q, %q, %q) = %q, want %q", ca.host, ca.port, ca.def, got, ca.want)
		}
	}
}

// TestPublishOverTLS checks that the publish WebSocket opens over wss:// (HTTP/1.1
// within TLS, even though the listener offers h2) and carries messages both ways.
func TestPublishOverTLS(t *testing.T) {
	f := newTLSServer(t, func(s *Server) {
		s.HSTSMaxAge = time.Hour
		s.Publish = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c, err := websocket.Accept(w, r, nil)
			if err != nil {
				return
			}
			defer c.CloseNow()
			typ, msg, err := c.Read(r.Context())
			if err != nil {
				return
			}
			_ = c.Write(r.Context(), typ, append([]byte("echo "), msg...))
			_ = c.Close(websocket.StatusNormalClosure, "")
		})
	})
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: f.roots}}
	defer tr.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, "wss://"+f.srv.Addr().String()+"/api/v1/publish", &websocket.DialOptions{HTTPClient: &http.Client{Transport: tr}})
	if err != nil {
		t.Fatalf("dial wss: %v", err)
	}
	defer c.CloseNow()
	if resp.StatusCode != http.StatusSwitchingProtocols || resp.Header.Get("Strict-Transport-Security") != "max-age=3600" {
		t.Errorf("handshake: %d, Strict-Transport-Security %q", resp.StatusCode, resp.Header.Get("Strict-Transport-Security"))
	}
	if err := c.Write(ctx, websocket.MessageText, []byte(`{"type":"start"}`)); err != nil {
		t.Fatal(err)
	}
	_, msg, err := c.Read(ctx)
	if err != nil || string(msg) != `echo {"type":"start"}` {
		t.Fatalf("read %q, %v", msg, err)
	}
	if _, _, err := c.Read(ctx); websocket.CloseStatus(err) != websocket.StatusNormalClosure {
		t.Fatalf("after the echo: %v, want a normal close", err)
	}
}

func TestSetCertificate(t *testing.T) {
	f := newTLSServer(t, nil)
	second := selfSigned(t)
	roots := f.roots.Clone()
	roots.AddCert(second.Leaf)
	presented := func() *x509.Certificate {
		t.Helper()
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", f.srv.Addr().String(), &tls.Config{RootCAs: roots, ServerName: "localhost"})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0]
	}
	if !presented().Equal(f.cert.Leaf) {
		t.Fatal("the server does not present its Certificate")
	}
	if err := f.srv.SetCertificate(second); err != nil {
		t.Fatal(err)
	}
	if !presented().Equal(second.Leaf) {
		t.Fatal("after SetCertificate the server still presents the old certificate")
	}
	// Without its Leaf, it is parsed.
	third := selfSigned(t)
	third.Leaf = nil
	if err := f.srv.SetCertificate(third); err != nil {
		t.Fatal(err)
	}
	for _, ca := range []struct {
		name string
		c    *tls.Certificate
	}{
		{"nil", nil},
		{"empty", &tls.Certificate{}},
		{"garbage", &tls.Certificate{Certificate: [][]byte{[]byte("nope")}}},
	} {
		if err := f.srv.SetCertificate(ca.c); err == nil {
			t.Errorf("SetCertificate(%s) succeeded", ca.name)
		}
	}
	plain := newServer(t, nil)
	if err := plain.srv.SetCertificate(second); err == nil || !strings.Contains(err.Error(), "plain HTTP") {
		t.Errorf("SetCertificate on a plain HTTP server: %v", err)
	}
}

func TestTLSInitializeErrors(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	cert := selfSigned(t)
	for _, ca := range []struct {
		name              string
		listen, tlsListen string
		cert              *tls.Certificate
		wants             []string
	}{
		{"TLSListen without a certificate", "127.0.0.1:0", "127.0.0.1:0", nil, []string{"TLSListen is set without a Certificate"}},
		{"HTTPS port busy", "127.0.0.1:0", busy.Addr().String(), cert, []string{"listen on " + busy.Addr().String(), "tls.listen"}},
		{"redirect port busy", busy.Addr().String(), "127.0.0.1:0", cert, []string{"listen on " + busy.Addr().String(), "to redirect plain HTTP to HTTPS", "-listen"}},
	} {
		t.Run(ca.name, func(t *testing.T) {
			s := &Server{Listen: ca.listen, TLSListen: ca.tlsListen, Certificate: ca.cert, Log: testutil.Logger(), Static: fstest.MapFS{}}
			err := s.Initialize()
			if err == nil {
				t.Fatal("Initialize succeeded")
			}
			for _, w := range ca.wants {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestNewSelfSigned(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	names := []string{"localhost", "studio.lan", "127.0.0.1", "::1", "192.168.1.20", "fd00::20"}
	c, err := NewSelfSigned(names, now)
	if err != nil {
		t.Fatal(err)
	}
	leaf := c.Leaf
	var ips []string
	for _, ip := range leaf.IPAddresses {
		ips = append(ips, ip.String())
	}
	for _, ca := range []struct {
		name      string
		got, want any
	}{
		{"DNS names", leaf.DNSNames, []string{"localhost", "studio.lan"}},
		{"IP addresses", ips, []string{"127.0.0.1", "::1", "192.168.1.20", "fd00::20"}},
		{"not before", leaf.NotBefore, now.Add(-time.Hour)},
		{"not after", leaf.NotAfter, now.Add(30 * 24 * time.Hour)},
		{"key", leaf.PublicKeyAlgorithm, x509.ECDSA},
		{"curve", leaf.PublicKey.(*ecdsa.PublicKey).Curve, elliptic.P256()},
		{"signature", leaf.SignatureAlgorithm, x509.ECDSAWithSHA256},
		{"not a CA", leaf.IsCA, false},
		{"server auth", leaf.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}},
		{"one certificate", len(c.Certificate), 1},
		{"leaf is the certificate", bytes.Equal(leaf.Raw, c.Certificate[0]), true},
	} {
		if !equalAny(ca.got, ca.want) {
			t.Errorf("%s: %v, want %v", ca.name, ca.got, ca.want)
		}
	}
	// A browser that trusts it accepts it for each of the names, and no other.
	roots := x509.NewCertPool()
	roots.AddCert(leaf)
	for _, n := range append(names, "other.lan", "192.168.1.21") {
		_, err := leaf.Verify(x509.VerifyOptions{DNSName: n, Roots: roots, CurrentTime: now})
		if want := slices.Contains(names, n); (err == nil) != want {
			t.Errorf("verify for %s: %v, want ok %v", n, err, want)
		}
	}
	if _, err := leaf.Verify(x509.VerifyOptions{DNSName: "localhost", Roots: roots, CurrentTime: now.Add(31 * 24 * time.Hour)}); err == nil {
		t.Error("still valid after 31 days")
	}
	// The key goes with it.
	if _, err := tls.X509KeyPair(pemOf(t, c)); err != nil {
		t.Errorf("key and certificate do not match: %v", err)
	}
	// Each is its own.
	d, err := NewSelfSigned(names, now)
	if err != nil {
		t.Fatal(err)
	}
	if Fingerprint(d.Leaf.Raw) == Fingerprint(leaf.Raw) || d.Leaf.SerialNumber.Cmp(leaf.SerialNumber) == 0 {
		t.Error("two certificates made alike have the same fingerprint or serial number")
	}
	if _, err := NewSelfSigned(nil, now); err == nil {
		t.Error("NewSelfSigned with no names succeeded")
	}
}

func TestFingerprint(t *testing.T) {
	// SHA-256 of "abc" (FIPS 180-2, appendix B.1).
	if got, want := Fingerprint([]byte("abc")), "BA:78:16:BF:8F:01:CF:EA:41:41:40:DE:5D:AE:22:23:B0:03:61:A3:96:17:7A:9C:B4:10:FF:61:F2:00:15:AD"; got != want {
		t.Errorf("Fingerprint(abc) = %s, want %s", got, want)
	}
	c := selfSigned(t)
	fp := Fingerprint(c.Leaf.Raw)
	if !regexp.MustCompile(`^([0-9A-F]{2}:){31}[0-9A-F]{2}$`).MatchString(fp) {
		t.Errorf("Fingerprint = %q", fp)
	}
	sum := sha256.Sum256(c.Certificate[0])
	if strings.ReplaceAll(fp, ":", "") != strings.ToUpper(hex.EncodeToString(sum[:])) {
		t.Errorf("Fingerprint %s is not the SHA-256 of the DER", fp)
	}
}

func TestSelfSignedNames(t *testing.T) {
	lan := []net.IP{net.ParseIP("192.168.1.20").To4(), net.ParseIP("fd00::20")}
	for _, ca := range []struct {
		name     string
		listen   []string
		hostname string
		ips      []net.IP
		want     []string
	}{
		{"all interfaces", []string{":8443"}, "studio", lan,
			[]string{"localhost", "127.0.0.1", "::1", "studio", "studio.local", "192.168.1.20", "fd00::20"}},
		{"a LAN address", []string{"192.168.1.20:8443", "0.0.0.0:8080"}, "studio", lan,
			[]string{"localhost", "192.168.1.20", "127.0.0.1", "::1", "studio", "studio.local", "fd00::20"}},
		{"a host name", []string{"Live.Example.com:443"}, "host.example.com.", nil,
			[]string{"localhost", "live.example.com", "127.0.0.1", "::1", "host.example.com"}},
		{"IPv6 listen", []string{"[fd00::20]:8443"}, "", lan,
			[]string{"localhost", "fd00::20", "127.0.0.1", "::1", "192.168.1.20"}},
		{"a host name that cannot be in a certificate", []string{"bad_name:1"}, "my_host", nil,
			[]string{"localhost", "127.0.0.1", "::1"}},
		{"localhost as host name", []string{"localhost:8443"}, "localhost", nil,
			[]string{"localhost", "127.0.0.1", "::1"}},
		{"not host:port", []string{"nonsense"}, "studio", nil,
			[]string{"localhost", "127.0.0.1", "::1", "studio", "studio.local"}},
	} {
		t.Run(ca.name, func(t *testing.T) {
			if got := selfSignedNames(ca.listen, ca.hostname, ca.ips); !slices.Equal(got, ca.want) {
				t.Errorf("selfSignedNames = %v, want %v", got, ca.want)
			}
		})
	}
	// On this machine: the fixed names at least, and each non-loopback address.
	got := SelfSignedNames(":0")
	for _, w := range []string{"localhost", "127.0.0.1", "::1"} {
		if !slices.Contains(got, w) {
			t.Errorf("SelfSignedNames() = %v lacks %s", got, w)
		}
	}
	for _, ip := range machineIPs() {
		if ip.IsLoopback() || ip.IsLinkLocalUnicast() || !slices.Contains(got, ip.String()) {
			t.Errorf("machine address %v: loopback or link-local, or not in %v", ip, got)
		}
	}
}

func TestListenURLs(t *testing.T) {
	lan := []net.IP{net.ParseIP("192.168.1.20").To4(), net.ParseIP("fd00::20")}
	addr := func(s string) net.Addr {
		a, err := net.ResolveTCPAddr("tcp", s)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	for _, ca := range []struct {
		name, scheme, configured string
		actual                   net.Addr
		want                     []string
	}{
		{"loopback", "http", "127.0.0.1:8080", addr("127.0.0.1:8080"), []string{"http://127.0.0.1:8080/"}},
		{"port 0", "https", "127.0.0.1:0", addr("127.0.0.1:41234"), []string{"https://127.0.0.1:41234/"}},
		{"host name kept", "https", "live.example.com:443", addr("203.0.113.5:443"), []string{"https://live.example.com/"}},
		{"default http port", "http", "10.0.0.1:80", addr("10.0.0.1:80"), []string{"http://10.0.0.1/"}},
		{"all interfaces", "https", ":8443", addr("[::]:8443"),
			[]string{"https://localhost:8443/", "https://192.168.1.20:8443/", "https://[fd00::20]:8443/"}},
		{"all IPv4 interfaces", "https", "0.0.0.0:443", addr("0.0.0.0:443"),
			[]string{"https://localhost/", "https://192.168.1.20/", "https://[fd00::20]/"}},
	} {
		t.Run(ca.name, func(t *testing.T) {
			if got := listenURLs(ca.scheme, ca.configured, ca.actual, lan); !slices.Equal(got, ca.want) {
				t.Errorf("listenURLs = %v, want %v", got, ca.want)
			}
		})
	}
	f := newTLSServer(t, func(s *Server) { s.TLSListen = "127.0.0.1:0" })
	if got, want := f.srv.URLs(), []string{"https://127.0.0.1:" + portOf(f.srv.Addr()) + "/"}; !slices.Equal(got, want) {
		t.Errorf("URLs() = %v, want %v", got, want)
	}
}

// TestHandshakeErrorsAtDebug checks that failed TLS handshakes, which scanners and
// browsers that distrust a self-signed certificate cause all day, are logged at debug
// level only, and the server's other errors as before.
func TestHandshakeErrorsAtDebug(t *testing.T) {
	for _, level := range []slog.Level{slog.LevelInfo, slog.LevelDebug} {
		var buf bytes.Buffer
		h := handshakeErrorsAtDebug{slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: level})}
		l := slog.NewLogLogger(h.WithAttrs([]slog.Attr{slog.String("component", "http")}), slog.LevelWarn)
		l.Print("http: TLS handshake error from 127.0.0.1:5555: tls: client offered only unsupported versions: [302 301]")
		l.Print("http: Accept error: too many open files; retrying in 5ms")
		out := buf.String()
		if !strings.Contains(out, "level=WARN msg=\"http: Accept error") || !strings.Contains(out, "component=http") {
			t.Errorf("level %v: other errors not at warn: %q", level, out)
		}
		if got := strings.Contains(out, "level=DEBUG msg=\"http: TLS handshake error"); got != (level == slog.LevelDebug) {
			t.Errorf("level %v: handshake error logged at debug: %v: %q", level, got, out)
		}
		if strings.Contains(out, "level=WARN msg=\"http: TLS handshake") {
			t.Errorf("level %v: handshake error at warn: %q", level, out)
		}
	}
	// And through a real server.
	var buf syncBuffer
	f := newTLSServer(t, func(s *Server) { s.Log = slog.New(slog.NewTextHandler(&buf, nil)) })
	c, err := tls.Dial("tcp", f.srv.Addr().String(), &tls.Config{MaxVersion: tls.VersionTLS11, MinVersion: tls.VersionTLS10, RootCAs: f.roots, ServerName: "localhost"})
	if err == nil {
		c.Close()
		t.Fatal("a TLS 1.1 handshake succeeded")
	}
	if resp, _ := f.do(t, http.MethodGet, "/healthz"); resp.StatusCode != http.StatusOK {
		t.Fatalf("healthz = %d", resp.StatusCode)
	}
	if s := buf.String(); strings.Contains(s, "handshake") {
		t.Errorf("handshake error logged at info level: %q", s)
	}
}

func equalAny(a, b any) bool {
	switch a := a.(type) {
	case []string:
		return slices.Equal(a, b.([]string))
	case []x509.ExtKeyUsage:
		return slices.Equal(a, b.([]x509.ExtKeyUsage))
	case time.Time:
		return a.Equal(b.(time.Time))
	}
	return a == b
}

// pemOf returns a certificate and its key in PEM, as tls.X509KeyPair takes them.
func pemOf(t *testing.T, c *tls.Certificate) ([]byte, []byte) {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(c.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Certificate[0]}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// syncBuffer is a bytes.Buffer that a server's goroutines may write to.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestCertificateLog checks that the server says which certificate it serves, and warns
// when it is about to end.
func TestCertificateLog(t *testing.T) {
	for _, ca := range []struct {
		name    string
		made    time.Time // NewSelfSigned's now: the certificate ends 30 days later
		warning bool
	}{
		{"fresh", time.Now(), false},
		{"ends in a day", time.Now().Add(-29 * 24 * time.Hour), true},
	} {
		t.Run(ca.name, func(t *testing.T) {
			cert, err := NewSelfSigned([]string{"localhost"}, ca.made)
			if err != nil {
				t.Fatal(err)
			}
			var buf syncBuffer
			newServer(t, func(s *Server) {
				s.Certificate = cert
				s.Log = slog.New(slog.NewTextHandler(&buf, nil))
			})
			out := buf.String()
			if !strings.Contains(out, `msg="serving HTTPS" names=localhost`) || !strings.Contains(out, "sha256="+Fingerprint(cert.Leaf.Raw)) {
				t.Errorf("log %q does not name the certificate", out)
			}
			if got := strings.Contains(out, `level=WARN msg="the TLS certificate expires soon: renew it"`); got != ca.warning {
				t.Errorf("warning %v, want %v: %q", got, ca.warning, out)
			}
		})
	}
}
