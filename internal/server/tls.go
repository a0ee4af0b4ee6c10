package server

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// tlsConfig is the HTTPS listener's configuration. Its certificate comes from s.cert at
// each handshake, so that SetCertificate can replace it while the server runs.
//
// Go's defaults are already good (TLS 1.2 at least for a server, no RSA key exchange, no
// 3DES or RC4, its own order of preference). The settings below pin that down, so that a
// GODEBUG setting or a new default cannot loosen it, and drop what no browser of the last
// ten years needs.
func (s *Server) tlsConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		// X25519 and P-256; with them the hybrid post-quantum X25519MLKEM768 that Go
		// enables by default and current Chrome, Firefox and Safari offer. Not P-384 or
		// P-521: slower, and no browser needs them. The order is Go's own.
		CurvePreferences: []tls.CurveID{tls.X25519MLKEM768, tls.X25519, tls.CurveP256},
		// TLS 1.2 only: ECDHE (forward secrecy) with an AEAD. This drops the CBC suites
		// that Go still enables by default. TLS 1.3's suites are all AEAD and not
		// configurable. HTTP/2 needs ECDHE_RSA_WITH_AES_128_GCM_SHA256, which is here.
		CipherSuites: []uint16{
			tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
			tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
		},
		// WebSockets stay on HTTP/1.1: browsers open them over HTTP/2 only where the
		// server offers extended CONNECT (RFC 8441), which Go's server does not by default,
		// and the publish and watch-back handlers take the connection over (Hijack).
		NextProtos: []string{"h2", "http/1.1"},
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return s.cert.Load(), nil
		},
	}
}

// SetCertificate replaces the certificate of a running HTTPS server: handshakes from now
// on present it; connections already open keep the one they began with.
func (s *Server) SetCertificate(c *tls.Certificate) error {
	if s.cert.Load() == nil {
		return errors.New("server: SetCertificate on a server that speaks plain HTTP; set Certificate before Initialize")
	}
	leaf, err := leafOf(c)
	if err != nil {
		return err
	}
	s.cert.Store(c)
	s.logCertificate("TLS certificate replaced", leaf)
	return nil
}

// leafOf returns the server's own certificate of c, parsed.
func leafOf(c *tls.Certificate) (*x509.Certificate, error) {
	if c == nil || len(c.Certificate) == 0 {
		return nil, errors.New("server: no certificate given")
	}
	if c.Leaf != nil {
		return c.Leaf, nil
	}
	leaf, err := x509.ParseCertificate(c.Certificate[0])
	if err != nil {
		return nil, fmt.Errorf("server: read the certificate: %w", err)
	}
	return leaf, nil
}

// expiryWarning is how long before its end a certificate is said to need renewing.
const expiryWarning = 14 * 24 * time.Hour

// logCertificate says which certificate is served, and warns when it ends soon.
func (s *Server) logCertificate(msg string, leaf *x509.Certificate) {
	s.Log.Info(msg, "names", strings.Join(certNames(leaf), ","),
		"not_after", leaf.NotAfter.UTC().Format(time.RFC3339), "sha256", Fingerprint(leaf.Raw))
	if left := time.Until(leaf.NotAfter); left < expiryWarning {
		s.Log.Warn("the TLS certificate expires soon: renew it", "not_after", leaf.NotAfter.UTC().Format(time.RFC3339),
			"days_left", int(left.Hours()/24))
	}
}

// Fingerprint is the SHA-256 of a certificate (its DER), in upper-case hex bytes joined
// with colons, as Firefox and openssl x509 -fingerprint -sha256 show it (Chrome shows the
// same bytes separated by spaces).
func Fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	var b strings.Builder
	for i, c := range sum {
		if i > 0 {
			b.WriteByte(':')
		}
		fmt.Fprintf(&b, "%02X", c)
	}
	return b.String()
}

// certNames lists the host names and addresses a certificate is valid for.
func certNames(c *x509.Certificate) []string {
	names := append([]string(nil), c.DNSNames...)
	for _, ip := range c.IPAddresses {
		names = append(names, ip.String())
	}
	return names
}

// hsts adds Strict-Transport-Security to every response: browsers that saw it go
// straight to https:// for maxAge. It is kept short and without includeSubDomains or
// preload, so that an operator who turns HTTPS off again is not locked out for long, and
// so that it says nothing about other sites of the domain.
func hsts(maxAge time.Duration, next http.Handler) http.Handler {
	v := "max-age=" + strconv.FormatInt(int64(maxAge/time.Second), 10)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Strict-Transport-Security", v)
		next.ServeHTTP(w, r)
	})
}

// redirectCacheAge bounds how long a browser keeps the redirect to HTTPS (a 308 is
// otherwise kept until the cache is cleared), for an operator who changes the ports.
const redirectCacheAge = time.Hour

// redirectToHTTPS serves the plain HTTP listener when HTTPS has its own. A GET or HEAD
// goes to the same path and query over HTTPS, on the host the request named and on
// httpsPort (308: permanent, method kept). Anything else is refused (400) with the URL to
// use instead: its body, and whatever its headers carry, have already crossed the network
// in clear, and a redirect would hide that mistake in the client. A WebSocket handshake is
// refused for the same reason; browsers would not follow a redirect there anyway.
func redirectToHTTPS(httpsPort string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := r.Host
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
		if host == "" {
			refuse(w, "This address serves only a redirect to HTTPS, and the request names no host (Host header). Open https://HOST:"+httpsPort+"/ instead.")
			return
		}
		target := "https://" + hostPort(host, httpsPort, "443") + r.URL.RequestURI()
		switch {
		case strings.EqualFold(r.Header.Get("Upgrade"), "websocket"):
			refuse(w, "This address serves only a redirect to HTTPS; open the WebSocket at wss://"+hostPort(host, httpsPort, "443")+r.URL.RequestURI()+" instead.")
		case r.Method == http.MethodGet || r.Method == http.MethodHead:
			w.Header().Set("Cache-Control", "max-age="+strconv.Itoa(int(redirectCacheAge/time.Second)))
			http.Redirect(w, r, target, http.StatusPermanentRedirect)
		default:
			refuse(w, "This address serves only a redirect to HTTPS, for GET and HEAD; send "+r.Method+" requests to "+target+" instead.")
		}
	})
}

func refuse(w http.ResponseWriter, msg string) {
	w.Header().Set("Cache-Control", "no-store")
	http.Error(w, msg, http.StatusBadRequest)
}

// hostPort joins host and port for a URL, leaving out the scheme's default port.
func hostPort(host, port, defaultPort string) string {
	if port == defaultPort {
		if strings.Contains(host, ":") { // IPv6
			return "[" + host + "]"
		}
		return host
	}
	return net.JoinHostPort(host, port)
}

func portOf(a net.Addr) string {
	_, port, _ := net.SplitHostPort(a.String())
	return port
}

// URLs are the addresses a browser can open the studio page at: one for the host of the
// listen address as configured (a host name stays a name, so that it matches the
// certificate), or, for a listen address on all interfaces, localhost and each of the
// machine's non-loopback addresses.
func (s *Server) URLs() []string {
	configured := s.Listen
	if s.TLSListen != "" {
		configured = s.TLSListen
	}
	scheme := "http"
	if s.Certificate != nil {
		scheme = "https"
	}
	return listenURLs(scheme, configured, s.ln.Addr(), machineIPs())
}

func listenURLs(scheme, configured string, actual net.Addr, machine []net.IP) []string {
	defaultPort := "80"
	if scheme == "https" {
		defaultPort = "443"
	}
	port := portOf(actual)
	host, _, _ := net.SplitHostPort(configured)
	if ip := net.ParseIP(host); host != "" && (ip == nil || !ip.IsUnspecified()) {
		return []string{scheme + "://" + hostPort(host, port, defaultPort) + "/"}
	}
	urls := []string{scheme + "://" + hostPort("localhost", port, defaultPort) + "/"}
	for _, ip := range machine {
		urls = append(urls, scheme+"://"+hostPort(ip.String(), port, defaultPort)+"/")
	}
	return urls
}

// handshakeErrorsAtDebug passes http.Server's error log through, but at debug level for
// failed TLS handshakes: scanners, old clients and browsers that have not yet accepted a
// self-signed certificate make them all day, and nothing can be done about them.
type handshakeErrorsAtDebug struct{ slog.Handler }

func (h handshakeErrorsAtDebug) Handle(ctx context.Context, r slog.Record) error {
	if strings.HasPrefix(r.Message, "http: TLS handshake error") {
		if !h.Handler.Enabled(ctx, slog.LevelDebug) {
			return nil
		}
		r.Level = slog.LevelDebug
	}
	return h.Handler.Handle(ctx, r)
}

func (h handshakeErrorsAtDebug) WithAttrs(attrs []slog.Attr) slog.Handler {
	return handshakeErrorsAtDebug{h.Handler.WithAttrs(attrs)}
}

func (h handshakeErrorsAtDebug) WithGroup(name string) slog.Handler {
	return handshakeErrorsAtDebug{h.Handler.WithGroup(name)}
}
