package config

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode"

	"github.com/livegate/livegate/internal/auth"
)

// SigningKey is a key that signed tokens are verified with. Its Secret is shared with the
// backend that mints the tokens, and is never written to the file: it is read from the
// environment variable SecretEnv or the file SecretFile. String, GoString, LogValue and
// MarshalJSON leave the secret out, so that a SigningKey can be printed or logged as it is.
type SigningKey struct {
	// ID names the key in the tokens it signs, so that keys can be rotated; unique.
	ID string
	// SecretEnv is the environment variable the secret was read from (a name, not a
	// secret), taken as it is.
	SecretEnv string
	// SecretFile is the absolute path of the file the secret was read from, taken as it
	// is but for one newline at its end.
	SecretFile string
	// Secret is the HMAC-SHA256 key, at least 32 bytes. A secret.
	Secret []byte
}

const (
	// minSecretBytes is what a signing secret needs at least: HMAC-SHA256 takes a key of
	// the hash's size.
	minSecretBytes = 32
	// maxSecretFileBytes bounds a secret_file.
	maxSecretFileBytes = 4 << 10
	maxTokens          = 1000
	maxSigningKeys     = 16
	maxAllowedOrigins  = 64
	// The bounds of max_ingest_bitrate and of a token's max_bitrate.
	minIngestBitrate   = 100_000
	maxIngestBitrate   = 1_000_000_000
	ingestBitrateRange = "100k..1G"
	secretHint         = "make one with: openssl rand -hex 32, and give the same to the backend that mints the tokens"
)

// source says where the secret comes from, for messages and printing.
func (k SigningKey) source() string {
	switch {
	case k.SecretEnv != "":
		return "secret_env " + k.SecretEnv
	case k.SecretFile != "":
		return "secret_file " + k.SecretFile
	}
	return "no secret source"
}

// String implements fmt.Stringer without the secret.
func (k SigningKey) String() string { return "signing key " + k.ID + " (" + k.source() + ")" }

// GoString implements fmt.GoStringer, so that %#v does not print the secret either.
func (k SigningKey) GoString() string {
	return fmt.Sprintf("config.SigningKey{ID:%q, SecretEnv:%q, SecretFile:%q, Secret:%d bytes}", k.ID, k.SecretEnv, k.SecretFile, len(k.Secret))
}

// LogValue implements slog.LogValuer without the secret.
func (k SigningKey) LogValue() slog.Value {
	return slog.GroupValue(slog.String("id", k.ID), slog.String("secret", k.source()))
}

// MarshalJSON implements json.Marshaler without the secret.
func (k SigningKey) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		ID         string `json:"id"`
		SecretEnv  string `json:"secret_env,omitempty"`
		SecretFile string `json:"secret_file,omitempty"`
	}{k.ID, k.SecretEnv, k.SecretFile})
}

// LoopbackOnly tells whether livegate can be reached from this machine only: listen, and
// tls.listen when it is set, are loopback addresses (127.0.0.0/8, ::1 or localhost).
// ":8080" and "0.0.0.0:8080" are all interfaces.
func (c *Config) LoopbackOnly() bool {
	return isLoopback(c.Listen) && (c.TLS.Listen == "" || isLoopback(c.TLS.Listen))
}

// isLoopback tells whether a listen address is a loopback one. A host name other than
// localhost is not, whatever it resolves to: nothing is looked up here.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// CheckName checks a destination, profile, token or signing key name: 1..32 of a-z, 0-9,
// _ and -, starting with a-z or 0-9.
func CheckName(name string) error {
	if !nameRE.MatchString(name) {
		return fmt.Errorf("the name %q is not allowed; %s", name, nameHint)
	}
	return nil
}

// CheckGrant checks what a token would allow against the configuration: destinations and
// profiles that are configured, each once, and a bit-rate cap in range and below
// limits.max_ingest_bitrate (0: none). livegate token sign calls it before it mints a
// token; the problems of auth.tokens are the same.
func (c *Config) CheckGrant(destinations, profiles []string, maxBitrate int) error {
	var errs []error
	c.grantProblems("", destinations, profiles, maxBitrate, func(path, format string, args ...any) {
		msg := fmt.Sprintf(format, args...)
		if path != "" {
			msg = path + ": " + msg
		}
		errs = append(errs, errors.New(msg))
	})
	return errors.Join(errs...)
}

// grantProblems checks a grant whose fields are at path.destinations and so on.
func (c *Config) grantProblems(path string, destinations, profiles []string, maxBitrate int, add func(path, format string, args ...any)) {
	at := func(field string) string {
		if path == "" {
			return field
		}
		return path + "." + field
	}
	if destinations != nil && len(destinations) == 0 {
		add(at("destinations"), "is empty, which would allow no destination; list the destinations allowed, or remove destinations to allow all")
	}
	for i, d := range destinations {
		p := fmt.Sprintf("%s[%d]", at("destinations"), i)
		switch {
		case slices.Index(destinations, d) < i:
			add(p, "%q is listed twice; keep one", d)
		case !mapHas(c.Destinations, d):
			add(p, "%q is not a configured destination; use one of %s", d, strings.Join(c.DestinationNames(), ", "))
		}
	}
	if profiles != nil && len(profiles) == 0 {
		add(at("profiles"), "is empty; list the profiles allowed, or remove profiles to allow all (a broadcast that asks for no profile is allowed either way)")
	}
	for i, p := range profiles {
		pp := fmt.Sprintf("%s[%d]", at("profiles"), i)
		switch {
		case slices.Index(profiles, p) < i:
			add(pp, "%q is listed twice; keep one", p)
		case !mapHas(c.Profiles, p):
			add(pp, "%s", c.unknownProfile(p))
		}
	}
	limit := c.Limits.MaxIngestBitrate
	switch {
	case maxBitrate == 0:
	case maxBitrate < minIngestBitrate || maxBitrate > maxIngestBitrate:
		add(at("max_bitrate"), "%s is out of range; use 0 (only limits.max_ingest_bitrate) or %s", formatBitrate(maxBitrate), ingestBitrateRange)
	case limit > 0 && maxBitrate > limit:
		add(at("max_bitrate"), "%s is above limits.max_ingest_bitrate (%s), which bounds every broadcast; lower it, or raise the limit", formatBitrate(maxBitrate), formatBitrate(limit))
	}
}

// authProblems checks the auth: section, and that livegate is not reachable from other
// machines without tokens unless the operator said so; add reports a problem at a field
// path.
func (c *Config) authProblems(add func(path, format string, args ...any)) {
	a := c.Auth
	if len(a.Tokens) > maxTokens {
		add("auth.tokens", "%d are configured; at most %d are allowed", len(a.Tokens), maxTokens)
	}
	hashes := make(map[[sha256.Size]byte]int, len(a.Tokens)) // the index of each hash's first token
	for i, t := range a.Tokens {
		path := fmt.Sprintf("auth.tokens[%d]", i)
		switch {
		case t.Name == "":
			add(path+".name", "is missing; give the token a name for the logs (%s)", nameHint)
		case !nameRE.MatchString(t.Name):
			add(path+".name", "%q is not allowed; %s", t.Name, nameHint)
		default:
			if j := slices.IndexFunc(a.Tokens[:i], func(o Token) bool { return o.Name == t.Name }); j >= 0 {
				add(path+".name", "%q is the name of auth.tokens[%d] too; give each token its own, so that the logs tell them apart", t.Name, j)
			}
		}
		// The hash is never shown: a token pasted there by mistake must not reach the logs.
		switch {
		case t.Hash == "":
			add(path+".hash", "is missing; make a token and its hash with: livegate token new")
		case strings.HasPrefix(t.Hash, "lgt_") || strings.HasPrefix(t.Hash, "lg1."):
			add(path+".hash", "holds a token, not its hash; keep only the hash here (livegate token hash prints it), and since this token has been written down, better make a new one: livegate token new")
		default:
			h, err := auth.ParseHash(t.Hash)
			if err != nil {
				add(path+".hash", "%v", err)
				break
			}
			if j, dup := hashes[h]; dup {
				add(path+".hash", "is the hash of auth.tokens[%d] (%s) too: two entries for the same token; keep one, or make another token with: livegate token new", j, a.Tokens[j].Name)
			} else {
				hashes[h] = i
			}
		}
		c.grantProblems(path, t.Destinations, t.Profiles, t.MaxBitrate, add)
	}

	if len(a.SigningKeys) > maxSigningKeys {
		add("auth.signing_keys", "%d are configured; at most %d are allowed", len(a.SigningKeys), maxSigningKeys)
	}
	for i, k := range a.SigningKeys {
		signingKeyProblems(fmt.Sprintf("auth.signing_keys[%d]", i), k, a.SigningKeys[:i], add)
	}

	if len(a.AllowedOrigins) > maxAllowedOrigins {
		add("auth.allowed_origins", "%d are configured; at most %d are allowed", len(a.AllowedOrigins), maxAllowedOrigins)
	}
	for i, o := range a.AllowedOrigins {
		p := fmt.Sprintf("auth.allowed_origins[%d]", i)
		if err := checkOrigin(o); err != nil {
			add(p, "%v", err)
		} else if j := slices.IndexFunc(a.AllowedOrigins[:i], func(x string) bool { return strings.EqualFold(x, o) }); j >= 0 {
			add(p, "%q is listed twice; keep one", o)
		}
	}

	if a.AllowAnonymous && !a.Anonymous() {
		add("auth.allow_anonymous", "is true, which lets anyone publish to every destination without a token, and tokens or signing keys are configured too, which then restrict no one; remove allow_anonymous to require a token, or remove auth.tokens and auth.signing_keys to let anyone publish")
	}
	if !a.Anonymous() || a.AllowAnonymous {
		return
	}
	// Issue #5: with no auth configured, livegate listens on loopback only, unless the
	// operator opts in. One problem, at the first address reached from outside: the fix is
	// the same for both.
	type address struct{ field, addr, local string }
	var exposed []address
	for _, a := range []address{{"listen", c.Listen, ""}, {"tls.listen", c.TLS.Listen, ""}} {
		if a.addr == "" || checkListen(a.addr) != nil || isLoopback(a.addr) || (a.field == "tls.listen" && !c.TLS.Enabled()) {
			continue
		}
		_, port, _ := net.SplitHostPort(a.addr)
		a.local = fmt.Sprintf("%s: 127.0.0.1:%s", a.field, port)
		if a.field == "listen" {
			a.local += fmt.Sprintf(" or -listen 127.0.0.1:%s", port)
		}
		exposed = append(exposed, a)
	}
	if len(exposed) == 0 {
		return
	}
	what, local := fmt.Sprintf("%q", exposed[0].addr), exposed[0].local
	if len(exposed) == 2 {
		what = fmt.Sprintf("%q and tls.listen %q", exposed[0].addr, exposed[1].addr)
		local += ", and " + exposed[1].local
	}
	add(exposed[0].field, "%s can be reached from other machines, and no token is needed to publish (auth: has no tokens or signing_keys); do one of: add a token under auth.tokens (livegate token new) or a key under auth.signing_keys; set auth.allow_anonymous: true to let anyone who reaches livegate publish; or listen on this machine only (%s)", what, local)
}

// adminProblems checks the admin: section; add reports a problem at a field path. The
// hash is never shown, as a token's.
func (c *Config) adminProblems(add func(path, format string, args ...any)) {
	h := c.Admin.TokenHash
	switch {
	case h == "":
		return
	case strings.HasPrefix(h, "lgt_") || strings.HasPrefix(h, "lg1."):
		add("admin.token_hash", "holds a token, not its hash; keep only the hash here (livegate token hash prints it), and since this token has been written down, better make a new one: livegate token new -name admin")
		return
	}
	sum, err := auth.ParseHash(h)
	if err != nil {
		add("admin.token_hash", "%v", err)
		return
	}
	for i, t := range c.Auth.Tokens {
		if th, err := auth.ParseHash(t.Hash); err == nil && th == sum {
			add("admin.token_hash", "is the hash of auth.tokens[%d] (%s) too: the admin token must be one of its own, which no streamer holds; make one with: livegate token new -name admin", i, t.Name)
		}
	}
}

// signingKeyProblems checks one signing key; before are the keys listed before it.
func signingKeyProblems(path string, k SigningKey, before []SigningKey, add func(path, format string, args ...any)) {
	switch {
	case k.ID == "":
		add(path+".id", "is missing; give the key an id, which the tokens it signs name (%s)", nameHint)
	case !nameRE.MatchString(k.ID):
		add(path+".id", "%q is not allowed; %s", k.ID, nameHint)
	default:
		if j := slices.IndexFunc(before, func(o SigningKey) bool { return o.ID == k.ID }); j >= 0 {
			add(path+".id", "%q is the id of auth.signing_keys[%d] too; give each key its own", k.ID, j)
		}
	}
	switch {
	case k.SecretEnv != "" && k.SecretFile != "":
		add(path, "has both secret_env and secret_file; give exactly one")
	case k.SecretEnv == "" && k.SecretFile == "":
		add(path, "has no secret; give secret_env (an environment variable) or secret_file (an absolute path) that holds at least %d bytes (%s)", minSecretBytes, secretHint)
	case k.SecretFile != "" && !filepath.IsAbs(k.SecretFile):
		// Not shown: it may be the secret itself, written in the wrong field.
		add(path+".secret_file", "is a relative path; use an absolute path")
	case len(k.Secret) == 0:
		add(path+"."+k.secretField(), "was not read into Secret: Load and Parse read it; in code, set Secret too")
	case len(k.Secret) < minSecretBytes:
		add(path+"."+k.secretField(), "the secret in %s is %d bytes long; a signing secret needs at least %d (%s)", k.secretSource(), len(k.Secret), minSecretBytes, secretHint)
	}
}

// secretField names the field the secret came from.
func (k SigningKey) secretField() string {
	if k.SecretEnv != "" {
		return "secret_env"
	}
	return "secret_file"
}

// secretSource is the environment variable or the file the secret came from.
func (k SigningKey) secretSource() string {
	if k.SecretEnv != "" {
		return k.SecretEnv
	}
	return k.SecretFile
}

// checkOrigin checks an allowed origin: scheme://host[:port], where the host may hold
// path.Match wildcards, as the WebSocket handshake compares it with the Origin header.
func checkOrigin(o string) error {
	const form = "write scheme://host[:port], such as https://app.example.com or https://*.example.com"
	scheme, rest, ok := strings.Cut(o, "://")
	switch {
	case o == "*":
		return fmt.Errorf("%q would let every web site publish through its visitors' browsers; list the origins of your pages (%s)", o, form)
	case !ok:
		return fmt.Errorf("%q is not an origin; %s", o, form)
	case scheme != "https" && scheme != "http":
		return fmt.Errorf("%q: scheme %q is not allowed; use https:// (or http:// for a page served without TLS)", o, scheme)
	case strings.ContainsAny(rest, "/#"):
		return fmt.Errorf("%q has a path; an origin is only scheme://host[:port] (%s)", o, form)
	case strings.Contains(rest, "@"):
		return fmt.Errorf("%q has a user name; an origin is only scheme://host[:port]", o)
	case strings.ContainsFunc(rest, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }):
		return fmt.Errorf("%q holds a space or a control character; %s", o, form)
	}
	host, port := rest, ""
	if i := strings.LastIndexByte(rest, ':'); i >= 0 && !strings.HasSuffix(rest, "]") {
		host, port = rest[:i], rest[i+1:]
	}
	if port != "" {
		n, err := strconv.ParseUint(port, 10, 16)
		switch {
		case err != nil || n == 0:
			return fmt.Errorf("%q: port %q is not allowed; use a number 1..65535 (wildcards go in the host only)", o, port)
		case (scheme == "https" && n == 443) || (scheme == "http" && n == 80):
			return fmt.Errorf("%q names the default port, which browsers leave out of the Origin they send; write %s://%s", o, scheme, host)
		}
	}
	switch {
	case host == "":
		return fmt.Errorf("%q has no host; %s", o, form)
	case strings.HasPrefix(host, "["):
		// path.Match would read the brackets as a character class.
		return fmt.Errorf("%q: an IPv6 address cannot be given here; use the page's host name", o)
	case !originHostRE.MatchString(host):
		return fmt.Errorf("%q: the host %q may hold only letters, digits, '.', '-' and the wildcards * and ? (and [...]); %s", o, host, form)
	}
	if strings.Trim(host, "*?.") == "" {
		return fmt.Errorf("%q matches every host, which lets every web site publish through its visitors' browsers; give the domain, such as %s://*.example.com", o, scheme)
	}
	if _, err := path.Match(o, ""); err != nil {
		return fmt.Errorf("%q is not a valid pattern (%v); use * and ? in the host, as in https://*.example.com", o, err)
	}
	return nil
}

// apply sets a from the file and reads the signing keys' secrets. Of a key's two secret
// sources, it keeps the first in the file and reports the other.
func (fa fileAuth) apply(a *Auth, lines map[string]int) []*problem {
	var probs []*problem
	add := func(path, format string, args ...any) {
		probs = append(probs, &problem{path: path, msg: fmt.Sprintf(format, args...)})
	}
	set(&a.AllowAnonymous, fa.AllowAnonymous)
	a.AllowedOrigins = fa.AllowedOrigins
	for _, ft := range fa.Tokens {
		var t Token
		set(&t.Name, ft.Name)
		set(&t.Hash, ft.Hash)
		set(&t.Destinations, ft.Destinations)
		set(&t.Profiles, ft.Profiles)
		if ft.MaxBitrate != nil {
			t.MaxBitrate = int(*ft.MaxBitrate)
		}
		a.Tokens = append(a.Tokens, t)
	}
	for i, fk := range fa.SigningKeys {
		path := fmt.Sprintf("auth.signing_keys[%d]", i)
		k := SigningKey{ID: fk.ID, SecretEnv: fk.SecretEnv, SecretFile: fk.SecretFile}
		if k.SecretEnv != "" && k.SecretFile != "" {
			if lines[path+".secret_env"] <= lines[path+".secret_file"] { // on one line: env first
				add(path+".secret_file", "the secret is already given by secret_env; give exactly one of secret_env or secret_file")
				k.SecretFile = ""
			} else {
				add(path+".secret_env", "the secret is already given by secret_file; give exactly one of secret_env or secret_file")
				k.SecretEnv = ""
			}
		}
		var err error
		switch {
		case k.SecretEnv != "":
			if k.Secret, err = readSecretEnv(k.SecretEnv); err != nil {
				add(path+".secret_env", "%v", err)
			}
		case k.SecretFile != "" && filepath.IsAbs(k.SecretFile):
			if k.Secret, err = readSecretFile(k.SecretFile); err != nil {
				add(path+".secret_file", "%v", err)
			}
		}
		a.SigningKeys = append(a.SigningKeys, k)
	}
	return probs
}

// readSecretEnv reads a signing secret from an environment variable, as it is. Its
// errors name the variable, never its value.
func readSecretEnv(name string) ([]byte, error) {
	if !envNameRE.MatchString(name) {
		// Not shown: it may be the secret itself, written in the wrong field.
		return nil, errors.New("is not an environment variable name; use letters, digits and _, not starting with a digit")
	}
	v, ok := os.LookupEnv(name)
	switch {
	case !ok:
		return nil, fmt.Errorf("the environment variable %s is not set; set it to the signing secret (at least %d bytes; %s)", name, minSecretBytes, secretHint)
	case v == "":
		return nil, fmt.Errorf("the environment variable %s is empty; set it to the signing secret (at least %d bytes; %s)", name, minSecretBytes, secretHint)
	}
	return []byte(v), nil
}

// readSecretFile reads a signing secret from a file, as it is but for one newline at its
// end (\n or \r\n). Its errors name the file, never what it holds.
func readSecretFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fileError(path, err)
	}
	defer f.Close()
	// Not a FIFO or a device, which could block the start or never end.
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file; write the signing secret in a file", path)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxSecretFileBytes+1))
	switch {
	case err != nil:
		return nil, fileError(path, err)
	case len(data) > maxSecretFileBytes:
		return nil, fmt.Errorf("%s is larger than %s; it must hold only the signing secret", path, formatSize(maxSecretFileBytes))
	}
	data = bytes.TrimSuffix(data, []byte("\n"))
	data = bytes.TrimSuffix(data, []byte("\r"))
	if len(data) == 0 {
		return nil, fmt.Errorf("%s is empty; write the signing secret in it (at least %d bytes; %s)", path, minSecretBytes, secretHint)
	}
	return data, nil
}

// originHostRE is what the host of an allowed origin may hold: a host name or an IPv4
// address, with path.Match wildcards.
var originHostRE = regexp.MustCompile(`^[A-Za-z0-9._*?\[\]^!-]+$`)

// hiddenPathRE matches the field paths whose values a message must not show: a token or a
// secret may have been written there by mistake.
var hiddenPathRE = regexp.MustCompile(`^(auth\.(tokens|signing_keys)(\[[0-9]+\](\.(hash|secret_env|secret_file))?)?|admin|admin\.token_hash)$`)
