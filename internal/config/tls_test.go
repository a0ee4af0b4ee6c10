package config

import (
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// testCert makes a certificate for key, valid for an hour around now for live.example.com
// and 192.0.2.1, changed by tweak; it returns it in PEM.
func testCert(t *testing.T, key crypto.Signer, tweak func(*x509.Certificate)) []byte {
	t.Helper()
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "live.example.com"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(time.Hour),
		DNSNames:     []string{"live.example.com"},
		IPAddresses:  []net.IP{net.ParseIP("192.0.2.1")},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if tweak != nil {
		tweak(tmpl)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func newECKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func pkcs8PEM(t *testing.T, key any) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// tlsFiles is a directory of PEM files for the tests: a good pair, and the wrong ones.
type tlsFiles struct {
	dir            string
	cert, key      string // a good pair (PKCS #8 ECDSA key)
	otherKey       string // a key that does not go with cert
	rsaCert        string // a pair with an RSA key in PKCS #1
	rsaKey         string
	ecCert, ecKey  string // a pair with an ECDSA key in SEC 1
	expired        string // certificates for key that are not valid now
	notYet         string
	noNames        string
	der            string
	garbage        string
	empty          string
	encrypted      string // keys
	encryptedPKCS8 string
	x25519         string
}

func newTLSFiles(t *testing.T) *tlsFiles {
	t.Helper()
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	key := newECKey(t)
	certPEM := testCert(t, key, nil)
	block, _ := pem.Decode(certPEM)
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ecKey := newECKey(t)
	ecDER, err := x509.MarshalECPrivateKey(ecKey)
	if err != nil {
		t.Fatal(err)
	}
	xKey, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	keyBlock, _ := pem.Decode(pkcs8PEM(t, key))
	return &tlsFiles{
		dir:      dir,
		cert:     write("fullchain.pem", certPEM),
		key:      write("privkey.pem", pkcs8PEM(t, key)),
		otherKey: write("other-key.pem", pkcs8PEM(t, newECKey(t))),
		rsaCert:  write("rsa-cert.pem", testCert(t, rsaKey, nil)),
		rsaKey:   write("rsa-key.pem", pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rsaKey)})),
		ecCert:   write("ec-cert.pem", testCert(t, ecKey, nil)),
		ecKey:    write("ec-key.pem", pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: ecDER})),
		expired: write("expired.pem", testCert(t, key, func(c *x509.Certificate) {
			c.NotBefore = time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
			c.NotAfter = time.Date(2020, 4, 1, 12, 30, 0, 0, time.UTC)
		})),
		notYet: write("not-yet.pem", testCert(t, key, func(c *x509.Certificate) {
			c.NotBefore = time.Now().Add(48 * time.Hour)
			c.NotAfter = time.Now().Add(96 * time.Hour)
		})),
		noNames: write("no-names.pem", testCert(t, key, func(c *x509.Certificate) {
			c.DNSNames, c.IPAddresses = nil, nil
		})),
		der:            write("cert.der", block.Bytes),
		garbage:        write("garbage.pem", []byte("this is not a certificate\n")),
		empty:          write("empty.pem", []byte("\n\n")),
		encrypted:      write("encrypted.pem", pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Headers: map[string]string{"Proc-Type": "4,ENCRYPTED", "DEK-Info": "AES-128-CBC,00"}, Bytes: ecDER})),
		encryptedPKCS8: write("encrypted-pkcs8.pem", pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: keyBlock.Bytes})),
		x25519:         write("x25519.pem", pkcs8PEM(t, xKey)),
	}
}

func TestParseTLS(t *testing.T) {
	f := newTLSFiles(t)
	for _, ca := range []struct {
		name      string
		in        string
		want      TLS // without Certificate
		certNames []string
	}{
		{"none", "tls:\n", TLS{}, nil},
		{"empty", "tls: {}", TLS{}, nil},
		{"self-signed off", "tls: {self_signed: false}", TLS{}, nil},
		{"self-signed", "tls: {self_signed: true}", TLS{SelfSigned: true}, nil},
		{"self-signed with listen", "tls: {self_signed: true, listen: '127.0.0.1:8443'}", TLS{SelfSigned: true, Listen: "127.0.0.1:8443"}, nil},
		{"self-signed on all interfaces", "tls: {self_signed: true, listen: ':8443'}\nauth: {allow_anonymous: true}", TLS{SelfSigned: true, Listen: ":8443"}, nil},
		{"pair, PKCS #8 ECDSA key", fmt.Sprintf("tls: {cert: %s, key: %s}", f.cert, f.key), TLS{Cert: f.cert, Key: f.key}, []string{"live.example.com"}},
		{"pair, PKCS #1 RSA key", fmt.Sprintf("tls: {cert: %s, key: %s}", f.rsaCert, f.rsaKey), TLS{Cert: f.rsaCert, Key: f.rsaKey}, []string{"live.example.com"}},
		{"pair, SEC 1 ECDSA key", fmt.Sprintf("tls: {cert: %s, key: %s}", f.ecCert, f.ecKey), TLS{Cert: f.ecCert, Key: f.ecKey}, []string{"live.example.com"}},
		{
			"pair with its own listen",
			fmt.Sprintf("listen: ':80'\ntls:\n  cert: %s\n  key: %s\n  listen: ':443'\nauth: {allow_anonymous: true}\n", f.cert, f.key),
			TLS{Cert: f.cert, Key: f.key, Listen: ":443"},
			[]string{"live.example.com"},
		},
	} {
		t.Run(ca.name, func(t *testing.T) {
			c, err := Parse([]byte(ca.in))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			got := c.TLS
			got.Certificate = nil
			if got != ca.want {
				t.Fatalf("TLS = %+v, want %+v", got, ca.want)
			}
			if got.Enabled() != (ca.want.Cert != "" || ca.want.SelfSigned) {
				t.Errorf("Enabled() = %v", got.Enabled())
			}
			switch cert := c.TLS.Certificate; {
			case ca.certNames == nil && cert != nil:
				t.Errorf("Certificate is set without cert and key")
			case ca.certNames != nil && (cert == nil || cert.Leaf == nil):
				t.Fatalf("Certificate = %v, want it read with its Leaf", cert)
			case ca.certNames != nil:
				if !slices.Equal(cert.Leaf.DNSNames, ca.certNames) || cert.PrivateKey == nil {
					t.Errorf("Certificate for %v, key %T", cert.Leaf.DNSNames, cert.PrivateKey)
				}
			}
		})
	}
}

// TestParseTLSBad checks each problem of the tls: section: its line, its field path, and
// a message that says what to do.
func TestParseTLSBad(t *testing.T) {
	f := newTLSFiles(t)
	missing := filepath.Join(f.dir, "missing.pem")
	pair := func(cert, key string) string { return fmt.Sprintf("tls:\n  cert: %s\n  key: %s\n", cert, key) }
	for _, ca := range []struct {
		name string
		in   string
		want []string // one problem each, in order; each line starts with it
	}{
		{"cert missing", pair(missing, f.key), []string{
			"config: line 2: tls.cert: cannot read " + missing + ": no such file or directory; check the path",
		}},
		{"key missing", pair(f.cert, missing), []string{
			"config: line 3: tls.key: cannot read " + missing + ": no such file or directory; check the path",
		}},
		{"both missing", pair(missing, missing), []string{
			"config: line 2: tls.cert: cannot read " + missing,
			"config: line 3: tls.key: cannot read " + missing,
		}},
		{"cert is a directory", pair(f.dir, f.key), []string{
			"config: line 2: tls.cert: " + f.dir + " is not a regular file; give the path of a PEM file",
		}},
		{"cert empty", pair(f.empty, f.key), []string{"config: line 2: tls.cert: " + f.empty + " is empty"}},
		{"swapped", pair(f.key, f.cert), []string{
			"config: line 2: tls.cert: " + f.key + " holds a private key, not a certificate; are tls.cert and tls.key swapped?",
			"config: line 3: tls.key: " + f.cert + " holds a certificate, not a private key; are tls.cert and tls.key swapped?",
		}},
		{"cert in DER", pair(f.der, f.key), []string{
			"config: line 2: tls.cert: " + f.der + " is not PEM (it looks like DER); convert it: openssl x509 -inform der -in " + f.der + " -out cert.pem",
		}},
		{"cert not PEM", pair(f.garbage, f.key), []string{
			"config: line 2: tls.cert: " + f.garbage + " holds no PEM certificate (-----BEGIN CERTIFICATE-----); give the certificate chain in PEM",
		}},
		{"key not PEM", pair(f.cert, f.garbage), []string{
			"config: line 3: tls.key: " + f.garbage + " holds no PEM private key (-----BEGIN PRIVATE KEY-----)",
		}},
		{"key does not match", pair(f.cert, f.otherKey), []string{
			"config: line 3: tls.key: the private key in " + f.otherKey + " does not match the certificate in " + f.cert + "; give the key the certificate was made for",
		}},
		{"key of another type does not match", pair(f.cert, f.rsaKey), []string{
			"config: line 3: tls.key: the private key in " + f.rsaKey + " does not match the certificate in " + f.cert,
		}},
		{"expired", pair(f.expired, f.key), []string{
			"config: line 2: tls.cert: the certificate in " + f.expired + " expired on 2020-04-01 12:30 UTC (",
		}},
		{"not yet valid", pair(f.notYet, f.key), []string{
			"config: line 2: tls.cert: the certificate in " + f.notYet + " is valid only from ",
			"check this machine's clock",
		}},
		{"no host names", pair(f.noNames, f.key), []string{
			"config: line 2: tls.cert: the certificate in " + f.noNames + " names no host (it has no subject alternative names), and browsers refuse such a certificate",
		}},
		{"encrypted key", pair(f.cert, f.encrypted), []string{
			"config: line 3: tls.key: " + f.encrypted + " is encrypted with a passphrase, which livegate cannot ask for; decrypt it (openssl pkey -in " + f.encrypted + " -out key.pem)",
		}},
		{"encrypted PKCS #8 key", pair(f.cert, f.encryptedPKCS8), []string{
			"config: line 3: tls.key: " + f.encryptedPKCS8 + " is encrypted with a passphrase",
		}},
		{"X25519 key", pair(f.cert, f.x25519), []string{
			"config: line 3: tls.key: the private key in " + f.x25519 + " cannot be read: a *ecdh.PrivateKey is not a key type TLS can use; give an RSA, ECDSA or Ed25519 key",
		}},
		{"cert without key", "tls:\n  cert: " + f.cert + "\n", []string{
			"config: line 1: tls.key: is missing; tls.cert needs the private key it was made for (key: /path/to/privkey.pem)",
		}},
		{"key without cert", "tls: {key: " + f.key + "}", []string{
			"config: line 1: tls.cert: is missing; tls.key needs the certificate that goes with it",
		}},
		{"relative cert", pair("fullchain.pem", f.key), []string{
			`config: line 2: tls.cert: "fullchain.pem" is a relative path; use an absolute path`,
		}},
		{"relative both", pair("cert.pem", "key.pem"), []string{
			`config: line 2: tls.cert: "cert.pem" is a relative path`,
			`config: line 3: tls.key: "key.pem" is a relative path`,
		}},
		{"self-signed and a pair", "tls:\n  self_signed: true\n  cert: " + f.cert + "\n  key: " + f.key + "\n", []string{
			"config: line 1: tls: has both self_signed: true (or -tls-self-signed) and cert/key; keep one",
		}},
		{"empty cert", "tls:\n  cert: ''\n  key: " + f.key + "\n", []string{
			"config: line 2: tls.cert: is empty; give the absolute path of the certificate chain's PEM file, or remove tls.cert",
		}},
		{"empty key", "tls:\n  cert: " + f.cert + "\n  key: \"\"\n", []string{
			"config: line 3: tls.key: is empty; give the absolute path of the private key's PEM file, or remove tls.key",
		}},
		{"empty listen", "tls: {self_signed: true, listen: ''}", []string{
			"config: line 1: tls.listen: is empty; give host:port to serve HTTPS there, or remove tls.listen to serve HTTPS on listen",
		}},
		{"listen without a certificate", "tls:\n  listen: ':8443'\n", []string{
			"config: line 2: tls.listen: there is no certificate to serve HTTPS with; give tls.cert and tls.key, or tls.self_signed: true (or -tls-self-signed), or remove tls.listen",
		}},
		{"listen not host:port", "tls: {self_signed: true, listen: '8443'}", []string{
			`config: line 1: tls.listen: "8443" is not host:port`,
		}},
		{"listen same as listen", "listen: ':8443'\ntls:\n  self_signed: true\n  listen: 0.0.0.0:8443\nauth: {allow_anonymous: true}\n", []string{
			`config: line 4: tls.listen: "0.0.0.0:8443" is the address of listen, which then serves plain HTTP to redirect to HTTPS; give them different ports, or remove tls.listen`,
		}},
		{"self_signed not a bool", "tls: {self_signed: yes please}", []string{
			`config: line 1: tls.self_signed: "yes please" is not true or false`,
		}},
		{"unknown field", "tls:\n  crt: /etc/cert.pem\n", []string{
			`config: line 2: tls: field "crt" is not known; allowed fields here: cert, key, self_signed, listen`,
		}},
		{"not a mapping", "tls: on", []string{
			`config: line 1: tls: "on" is not a mapping; tls holds the fields cert, key, self_signed, listen`,
		}},
	} {
		t.Run(ca.name, func(t *testing.T) {
			c, err := Parse([]byte(ca.in))
			if err == nil {
				t.Fatalf("Parse(%q) = %+v, want an error", ca.in, c.TLS)
			}
			got := strings.Split(err.Error(), "\n")
			if strings.HasPrefix(ca.want[len(ca.want)-1], "config: ") && len(got) != len(ca.want) {
				t.Errorf("got %d problems, want %d:\n%s", len(got), len(ca.want), err)
			}
			for i, w := range ca.want {
				if !strings.HasPrefix(w, "config: ") { // a part of the line before
					if !strings.Contains(got[i-1], w) {
						t.Errorf("problem %d:\n%s\ndoes not contain\n%s", i-1, got[i-1], w)
					}
					continue
				}
				if i >= len(got) || !strings.HasPrefix(got[i], w) {
					t.Errorf("problems:\n%s\nwant line %d to start with\n%s", err, i, w)
				}
			}
		})
	}
}

func TestParseTLSUnreadable(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root reads any file")
	}
	f := newTLSFiles(t)
	if err := os.Chmod(f.key, 0); err != nil {
		t.Fatal(err)
	}
	_, err := Parse([]byte(fmt.Sprintf("tls: {cert: %s, key: %s}", f.cert, f.key)))
	want := fmt.Sprintf("config: line 1: tls.key: cannot read %s: permission denied; let the user livegate runs as (uid %d) read it", f.key, os.Getuid())
	if err == nil || err.Error() != want {
		t.Fatalf("error\n%v\nwant\n%s", err, want)
	}
}

// TestTLSProblemsTogether checks that problems of the tls: section come with the others,
// in the order of the file, and that a bad certificate does not hide them.
func TestTLSProblemsTogether(t *testing.T) {
	f := newTLSFiles(t)
	for _, ca := range []struct {
		name string
		in   string
		want []string // prefixes of the problems, in order
	}{
		{
			"expired, and the others",
			fmt.Sprintf("listen: localhost\ntls:\n  cert: %s\n  key: %s\n  listen: ':99999'\nlimits:\n  max_sessions: 0\n", f.expired, f.otherKey),
			[]string{
				`config: line 1: listen: "localhost" is not host:port`,
				"config: line 3: tls.cert: the certificate in " + f.expired + " expired on 2020-04-01 12:30 UTC",
				`config: line 5: tls.listen: port "99999" is not allowed; use a number 0..65535`,
				"config: line 7: limits.max_sessions: 0 is out of range",
			},
		},
		{
			"key does not match, and the same port twice",
			fmt.Sprintf("listen: ':8080'\ntls:\n  cert: %s\n  key: %s\n  listen: ':8080'\nauth: {allow_anonymous: true}\n", f.cert, f.otherKey),
			[]string{
				"config: line 4: tls.key: the private key in " + f.otherKey + " does not match",
				`config: line 5: tls.listen: ":8080" is the address of listen`,
			},
		},
	} {
		t.Run(ca.name, func(t *testing.T) {
			_, err := Parse([]byte(ca.in))
			if err == nil {
				t.Fatal("Parse: no error")
			}
			got := strings.Split(err.Error(), "\n")
			if len(got) != len(ca.want) {
				t.Fatalf("got\n%s\nwant %d problems", err, len(ca.want))
			}
			for i := range ca.want {
				if !strings.HasPrefix(got[i], ca.want[i]) {
					t.Errorf("problem %d:\n%s\nwant prefix\n%s", i, got[i], ca.want[i])
				}
			}
		})
	}
}

func TestValidateTLSInCode(t *testing.T) {
	f := newTLSFiles(t)
	cert, err := LoadKeyPair(f.cert, f.key, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for _, ca := range []struct {
		name string
		tls  TLS
		want string // empty: valid
	}{
		{"off", TLS{}, ""},
		{"self-signed", TLS{SelfSigned: true, Listen: "127.0.0.1:8443"}, ""},
		{"pair read", TLS{Cert: f.cert, Key: f.key, Certificate: cert}, ""},
		{"pair not read", TLS{Cert: f.cert, Key: f.key}, "config: tls: cert and key were not read into Certificate: Load and Parse read them; in code, set Certificate too (LoadKeyPair)"},
		{"flag on top of a pair", TLS{Cert: f.cert, Key: f.key, Certificate: cert, SelfSigned: true}, "config: tls: has both self_signed: true (or -tls-self-signed) and cert/key"},
		{"same port", TLS{SelfSigned: true, Listen: "127.0.0.1:8080"}, `config: tls.listen: "127.0.0.1:8080" is the address of listen`},
	} {
		t.Run(ca.name, func(t *testing.T) {
			c := Default()
			c.TLS = ca.tls
			err := c.Validate()
			switch {
			case ca.want == "" && err != nil:
				t.Fatalf("Validate: %v", err)
			case ca.want != "" && (err == nil || !strings.HasPrefix(err.Error(), ca.want) || strings.Contains(err.Error(), "\n")):
				t.Fatalf("Validate: %v, want one problem starting with %q", err, ca.want)
			}
		})
	}
}

func TestLoadKeyPair(t *testing.T) {
	f := newTLSFiles(t)
	cert, err := LoadKeyPair(f.cert, f.key, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if cert.Leaf == nil || cert.Leaf.Subject.CommonName != "live.example.com" || len(cert.Certificate) != 1 {
		t.Fatalf("LoadKeyPair = %+v", cert)
	}
	// It is valid only for the time given.
	if _, err := LoadKeyPair(f.cert, f.key, time.Now().Add(2*time.Hour)); err == nil || !strings.Contains(err.Error(), "expired on") {
		t.Errorf("LoadKeyPair two hours later: %v, want expired", err)
	}
	// Every problem, one per line, each naming its field.
	_, err = LoadKeyPair(f.garbage, f.garbage, time.Now())
	want := "config: tls.cert: " + f.garbage + " holds no PEM certificate"
	if err == nil || !strings.HasPrefix(err.Error(), want) || !strings.Contains(err.Error(), "\nconfig: tls.key: "+f.garbage+" holds no PEM private key") {
		t.Errorf("LoadKeyPair(garbage) = %v", err)
	}
}

func TestSameAddress(t *testing.T) {
	for _, ca := range []struct {
		a, b string
		want bool
	}{
		{":8080", ":8080", true},
		{"127.0.0.1:8080", "127.0.0.1:8080", true},
		{":8080", "127.0.0.1:8080", true},
		{"[::]:8443", "192.168.1.2:8443", true},
		{"0.0.0.0:443", "localhost:443", true},
		{"127.0.0.1:8080", "127.0.0.1:8443", false},
		{"127.0.0.1:8443", "192.168.1.2:8443", false},
		{"127.0.0.1:0", "127.0.0.1:0", false}, // each gets its own port
		{"nonsense", ":8080", false},
	} {
		if got := sameAddress(ca.a, ca.b); got != ca.want {
			t.Errorf("sameAddress(%q, %q) = %v, want %v", ca.a, ca.b, got, ca.want)
		}
	}
}
