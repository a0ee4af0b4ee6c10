package server

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"
)

// SelfSignedValidity is how long a certificate made by NewSelfSigned is valid. It lives
// in memory only: a new one, with a new fingerprint, is made at each start.
const SelfSignedValidity = 30 * 24 * time.Hour

// NewSelfSigned makes a self-signed ECDSA P-256 certificate for names (host names and IP
// addresses), valid from an hour before now (for clocks a little behind) until
// SelfSignedValidity after now. It is a server certificate, not a CA: trusting it lets a
// browser trust this server and nothing else.
func NewSelfSigned(names []string, now time.Time) (*tls.Certificate, error) {
	if len(names) == 0 {
		return nil, errors.New("a self-signed certificate needs at least one host name or address")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate a P-256 key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("generate a serial number: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{Organization: []string{"livegate self-signed"}, CommonName: names[0]},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(SelfSignedValidity),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("make a self-signed certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("read back the self-signed certificate: %w", err)
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}

// SelfSignedNames are the names a certificate for a LAN should hold, so that a browser
// can reach this machine by any of them: localhost, the hosts of the listen addresses
// (unless they listen on all interfaces), 127.0.0.1 and ::1, the machine's host name
// (and, for a name without a dot, name.local, as mDNS announces it) and its
// non-loopback addresses.
func SelfSignedNames(listen ...string) []string {
	hostname, _ := os.Hostname()
	return selfSignedNames(listen, hostname, machineIPs())
}

// hostnameRE is what a host name in a certificate may be.
var hostnameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$`)

func selfSignedNames(listen []string, hostname string, ips []net.IP) []string {
	names := []string{"localhost"}
	add := func(n string) {
		if !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	for _, l := range listen {
		host, _, err := net.SplitHostPort(l)
		if err != nil || host == "" {
			continue
		}
		if ip := net.ParseIP(host); ip != nil {
			if !ip.IsUnspecified() {
				add(ip.String())
			}
		} else if h := strings.ToLower(host); hostnameRE.MatchString(h) {
			add(h)
		}
	}
	add("127.0.0.1")
	add("::1")
	if h := strings.ToLower(strings.TrimSuffix(hostname, ".")); hostnameRE.MatchString(h) && h != "localhost" {
		add(h)
		if !strings.Contains(h, ".") {
			add(h + ".local")
		}
	}
	for _, ip := range ips {
		add(ip.String())
	}
	return names
}

// machineIPs are the machine's addresses that another machine on the LAN can reach:
// not loopback, not link-local (which would need a zone), not multicast.
func machineIPs() []net.IP {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil
	}
	var ips []net.IP
	for _, a := range addrs {
		ipn, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		ip := ipn.IP
		if ip.IsLoopback() || ip.IsLinkLocalUnicast() || ip.IsMulticast() || ip.IsUnspecified() {
			continue
		}
		if v4 := ip.To4(); v4 != nil {
			ip = v4
		}
		ips = append(ips, ip)
	}
	return ips
}
