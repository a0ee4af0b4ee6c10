package config

import (
	"bytes"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// maxPEMFileBytes bounds tls.cert and tls.key: a chain of a few certificates, or one key.
const maxPEMFileBytes = 1 << 20

// LoadKeyPair reads a certificate chain and its private key from PEM files and checks them
// as Load does: both files readable, the key matching the first certificate, that
// certificate valid at now and naming at least one host. Its error says what to fix, one
// problem per line. The certificate it returns has its Leaf set.
//
// Load and Parse call it for tls.cert and tls.key; call it to read the files again (to
// reload a renewed certificate, say).
func LoadKeyPair(certFile, keyFile string, now time.Time) (*tls.Certificate, error) {
	cert, probs := loadKeyPair(certFile, keyFile, now)
	if len(probs) > 0 {
		return nil, joinProblems(probs, "")
	}
	return cert, nil
}

// loadKeyPair is LoadKeyPair; its problems are at tls.cert or tls.key (a key that does
// not go with the certificate is the key's problem). They mask what validation would say
// about the same fields, and that the pair was not read.
func loadKeyPair(certFile, keyFile string, now time.Time) (*tls.Certificate, []*problem) {
	var probs []*problem
	add := func(path, format string, args ...any) {
		probs = append(probs, &problem{path: path, msg: fmt.Sprintf(format, args...), masks: true})
	}

	certPEM, leaf, err := readCertificate(certFile, now)
	if err != nil {
		add("tls.cert", "%v", err)
	}
	keyPEM, key, err := readPrivateKey(keyFile)
	if err != nil {
		add("tls.key", "%v", err)
	}
	if len(probs) > 0 {
		return nil, probs
	}
	if pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool }); !ok || !pub.Equal(leaf.PublicKey) {
		add("tls.key", "the private key in %s does not match the certificate in %s; give the key the certificate was made for (and put the server's own certificate first in %s, before the intermediates)", keyFile, certFile, certFile)
		return nil, probs
	}
	// crypto/tls has the last word on what it can serve.
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		add("tls.key", "cannot use %s with %s: %v", keyFile, certFile, err)
		return nil, probs
	}
	return &cert, nil
}

// readCertificate reads the PEM certificate chain at path and checks its first
// certificate, the server's own.
func readCertificate(path string, now time.Time) ([]byte, *x509.Certificate, error) {
	data, err := readPEMFile(path)
	if err != nil {
		return nil, nil, err
	}
	var first *pem.Block
	var types []string
	for rest := data; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		if b.Type == "CERTIFICATE" && first == nil {
			first = b
		}
		types = append(types, b.Type)
	}
	if first == nil {
		switch {
		case slices.ContainsFunc(types, isKeyBlock):
			return nil, nil, fmt.Errorf("%s holds a private key, not a certificate; are tls.cert and tls.key swapped?", path)
		case len(data) > 0 && data[0] == 0x30: // an ASN.1 SEQUENCE: DER
			return nil, nil, fmt.Errorf("%s is not PEM (it looks like DER); convert it: openssl x509 -inform der -in %s -out cert.pem", path, path)
		default:
			return nil, nil, fmt.Errorf("%s holds no PEM certificate (-----BEGIN CERTIFICATE-----); give the certificate chain in PEM, such as Let's Encrypt's fullchain.pem", path)
		}
	}
	leaf, err := x509.ParseCertificate(first.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("the first certificate in %s cannot be read: %w; give an X.509 certificate in PEM", path, err)
	}
	const day = 24 * time.Hour
	switch {
	case now.After(leaf.NotAfter):
		// Refused rather than served: every browser would refuse it, without even a way
		// past the warning once it has seen our Strict-Transport-Security header.
		return nil, nil, fmt.Errorf("the certificate in %s expired on %s (%d days ago); renew it", path, formatTime(leaf.NotAfter), int(now.Sub(leaf.NotAfter)/day))
	case now.Before(leaf.NotBefore):
		return nil, nil, fmt.Errorf("the certificate in %s is valid only from %s on, and it is %s here; check this machine's clock, or wait", path, formatTime(leaf.NotBefore), formatTime(now))
	case len(leaf.DNSNames) == 0 && len(leaf.IPAddresses) == 0:
		return nil, nil, fmt.Errorf("the certificate in %s names no host (it has no subject alternative names), and browsers refuse such a certificate; make one with the site's host names in subjectAltName", path)
	}
	return data, leaf, nil
}

// readPrivateKey reads the PEM private key at path.
func readPrivateKey(path string) ([]byte, crypto.Signer, error) {
	data, err := readPEMFile(path)
	if err != nil {
		return nil, nil, err
	}
	var key *pem.Block
	var types []string
	for rest := data; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		if key == nil && isKeyBlock(b.Type) {
			key = b
		}
		types = append(types, b.Type)
	}
	switch {
	case key == nil && slices.Contains(types, "CERTIFICATE"):
		return nil, nil, fmt.Errorf("%s holds a certificate, not a private key; are tls.cert and tls.key swapped?", path)
	case key == nil:
		return nil, nil, fmt.Errorf("%s holds no PEM private key (-----BEGIN PRIVATE KEY-----); give the key the certificate was made for, in PEM", path)
	case key.Type == "ENCRYPTED PRIVATE KEY" || strings.Contains(key.Headers["Proc-Type"], "ENCRYPTED"):
		return nil, nil, fmt.Errorf("%s is encrypted with a passphrase, which livegate cannot ask for; decrypt it (openssl pkey -in %s -out key.pem) and let only livegate's user read the result", path, path)
	}
	signer, err := parsePrivateKey(key.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("the private key in %s cannot be read: %w; give an RSA, ECDSA or Ed25519 key in PEM (PKCS #8, PKCS #1 or SEC 1)", path, err)
	}
	return data, signer, nil
}

// parsePrivateKey reads a DER private key in the forms crypto/tls takes.
func parsePrivateKey(der []byte) (crypto.Signer, error) {
	if k, err := x509.ParsePKCS1PrivateKey(der); err == nil {
		return k, nil
	}
	if k, err := x509.ParseECPrivateKey(der); err == nil {
		return k, nil
	}
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, errors.New("it is not a PKCS #8, PKCS #1 or SEC 1 key")
	}
	if s, ok := k.(crypto.Signer); ok { // RSA, ECDSA or Ed25519; not X25519
		return s, nil
	}
	return nil, fmt.Errorf("a %T is not a key type TLS can use", k)
}

// readPEMFile reads a small regular file; its errors name the file and say what to do.
func readPEMFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fileError(path, err)
	}
	defer f.Close()
	// Not a FIFO or a device, which could block the start or never end.
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file; give the path of a PEM file", path)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxPEMFileBytes+1))
	switch {
	case err != nil:
		return nil, fileError(path, err)
	case len(data) > maxPEMFileBytes:
		return nil, fmt.Errorf("%s is larger than %s, which is too large for a PEM certificate or key; check the path", path, formatSize(maxPEMFileBytes))
	case len(bytes.TrimSpace(data)) == 0:
		return nil, fmt.Errorf("%s is empty", path)
	}
	return data, nil
}

// fileError says why a file could not be read, and what to do about it.
func fileError(path string, err error) error {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("cannot read %s: %w; check the path", path, pathErr(err))
	case errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("cannot read %s: %w; let the user livegate runs as (uid %d) read it", path, pathErr(err), os.Getuid())
	}
	return fmt.Errorf("cannot read %s: %w", path, pathErr(err))
}

// isKeyBlock tells whether a PEM block type is a private key's.
func isKeyBlock(typ string) bool {
	return typ == "PRIVATE KEY" || strings.HasSuffix(typ, " PRIVATE KEY")
}

func formatTime(t time.Time) string {
	return t.UTC().Format("2006-01-02 15:04 UTC")
}

// tlsProblems checks the tls: section; add reports a problem at a field path.
func (c *Config) tlsProblems(add func(path, format string, args ...any)) {
	t := c.TLS
	switch {
	case t.SelfSigned && (t.Cert != "" || t.Key != ""):
		add("tls", "has both self_signed: true (or -tls-self-signed) and cert/key; keep one: your certificate, or one made at start")
	case t.Cert != "" && t.Key == "":
		add("tls.key", "is missing; tls.cert needs the private key it was made for (key: /path/to/privkey.pem)")
	case t.Key != "" && t.Cert == "":
		add("tls.cert", "is missing; tls.key needs the certificate that goes with it (cert: /path/to/fullchain.pem)")
	case t.Cert != "":
		relative := false
		for _, f := range []struct{ field, path string }{{"cert", t.Cert}, {"key", t.Key}} {
			if !filepath.IsAbs(f.path) {
				add("tls."+f.field, "%q is a relative path; use an absolute path", f.path)
				relative = true
			}
		}
		if !relative && t.Certificate == nil {
			add("tls", "cert and key were not read into Certificate: Load and Parse read them; in code, set Certificate too (LoadKeyPair)")
		}
	}
	if t.Listen == "" {
		return
	}
	switch err := checkListen(t.Listen); {
	case err != nil:
		add("tls.listen", "%v", err)
	case !t.Enabled():
		add("tls.listen", "there is no certificate to serve HTTPS with; give tls.cert and tls.key, or tls.self_signed: true (or -tls-self-signed), or remove tls.listen")
	case sameAddress(c.Listen, t.Listen):
		add("tls.listen", "%q is the address of listen, which then serves plain HTTP to redirect to HTTPS; give them different ports, or remove tls.listen to serve HTTPS on listen", t.Listen)
	}
}

// sameAddress tells whether two listen addresses would take the same port: the same
// port, other than 0, on the same host or with one of them on all interfaces.
func sameAddress(a, b string) bool {
	ha, pa, errA := net.SplitHostPort(a)
	hb, pb, errB := net.SplitHostPort(b)
	if errA != nil || errB != nil || pa != pb || pa == "0" {
		return false
	}
	wildcard := func(h string) bool {
		ip := net.ParseIP(h)
		return h == "" || (ip != nil && ip.IsUnspecified())
	}
	return ha == hb || wildcard(ha) || wildcard(hb)
}
