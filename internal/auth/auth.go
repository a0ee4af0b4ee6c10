// Package auth decides who may publish: static tokens that the operator
// keeps (hashed) in the configuration, and short-lived signed tokens that
// a web application's backend mints for its users. Either kind carries
// what its holder may do: which destinations, which profiles, and a
// bit-rate cap.
package auth

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Grant is what a token allows.
type Grant struct {
	// Subject names the holder in logs (a static token's name, a signed
	// token's "sub").
	Subject string
	// Destinations the holder may publish to; empty: all.
	Destinations []string
	// Profiles the holder may ask for; empty: all.
	Profiles []string
	// MaxBitrate caps the ingest bit rate, bits a second; 0: no cap.
	MaxBitrate int64
}

// AllowsDestination reports whether the grant covers destination name.
func (g *Grant) AllowsDestination(name string) bool {
	return len(g.Destinations) == 0 || slices.Contains(g.Destinations, name)
}

// AllowsProfile reports whether the grant covers profile name ("" is the
// video as it came, always allowed).
func (g *Grant) AllowsProfile(name string) bool {
	return name == "" || len(g.Profiles) == 0 || slices.Contains(g.Profiles, name)
}

// StaticToken is a token from the configuration. Only its SHA-256 is
// kept: tokens are 256 random bits, so a fast hash is enough (there is
// nothing to brute-force), and the configuration file leaks no usable
// secret.
type StaticToken struct {
	Name  string
	Hash  [sha256.Size]byte
	Grant Grant
}

// SigningKey is a key signed tokens are verified with, named by ID so that
// keys can be rotated (a token says which key signed it).
type SigningKey struct {
	ID     string
	Secret []byte
}

// Errors a token is refused with; the browser is told their text.
var (
	ErrNoToken  = errors.New("this server needs a token to publish")
	ErrBadToken = errors.New("the token is not valid")
	ErrExpired  = errors.New("the token has expired")
)

// Verifier checks tokens. The zero value accepts nothing; Anonymous makes
// it accept everyone (no auth configured).
type Verifier struct {
	Static []StaticToken
	Keys   []SigningKey
	// Anonymous: publishing needs no token, and any token is ignored (the
	// configuration allows it only when no token or key is configured).
	Anonymous bool
	// Now is the clock (tests); time.Now when nil.
	Now func() time.Time
}

// Enabled reports whether any token is configured.
func (v *Verifier) Enabled() bool { return len(v.Static) > 0 || len(v.Keys) > 0 }

// maxSkew is how far a signed token's expiry may be passed, for clocks
// that differ a little between the minting backend and livegate.
const maxSkew = 30 * time.Second

// maxTokenLength bounds what is parsed.
const maxTokenLength = 2048

// Verify returns what token allows: everything when the verifier is
// anonymous, else an empty or bad token is refused. Errors never repeat
// the token.
func (v *Verifier) Verify(token string) (*Grant, error) {
	if v.Anonymous {
		// A page made for a server with tokens still works here.
		return &Grant{Subject: "anonymous"}, nil
	}
	if token == "" {
		return nil, ErrNoToken
	}
	if len(token) > maxTokenLength {
		return nil, fmt.Errorf("%w: longer than %d bytes", ErrBadToken, maxTokenLength)
	}
	if strings.HasPrefix(token, signedPrefix) {
		return v.verifySigned(token)
	}
	sum := sha256.Sum256([]byte(token))
	var found *StaticToken
	for i := range v.Static {
		// Every hash is compared, so the time taken says nothing about
		// which one matched.
		if subtle.ConstantTimeCompare(sum[:], v.Static[i].Hash[:]) == 1 {
			found = &v.Static[i]
		}
	}
	if found == nil {
		return nil, ErrBadToken
	}
	g := found.Grant
	if g.Subject == "" {
		g.Subject = found.Name
	}
	return &g, nil
}

// HashToken returns the form a static token is kept in: "sha256:<hex>".
func HashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// ParseHash reads a "sha256:<hex>" hash.
func ParseHash(s string) ([sha256.Size]byte, error) {
	var h [sha256.Size]byte
	hexPart, ok := strings.CutPrefix(s, "sha256:")
	if !ok {
		return h, errors.New(`a token hash starts with "sha256:"; make one with: livegate token new`)
	}
	b, err := hex.DecodeString(hexPart)
	if err != nil || len(b) != sha256.Size {
		return h, errors.New("a token hash is sha256: and 64 hex digits; make one with: livegate token new")
	}
	copy(h[:], b)
	return h, nil
}

// NewToken returns a new random static token (256 bits, URL-safe).
func NewToken() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return "lgt_" + base64.RawURLEncoding.EncodeToString(b[:])
}

// Signed tokens: "lg1.<claims>.<mac>", both parts base64url without
// padding; mac is HMAC-SHA256 over "lg1.<claims>" with the key named in the
// claims. A JWT would do as well, but needs a library or a JOSE subset
// (algorithm choices to get wrong); this has one algorithm and no header.
const signedPrefix = "lg1."

// Claims are what a signed token carries.
type Claims struct {
	KeyID        string   `json:"kid"`
	Subject      string   `json:"sub,omitempty"`
	Expires      int64    `json:"exp"` // Unix seconds
	Destinations []string `json:"dst,omitempty"`
	Profiles     []string `json:"prf,omitempty"`
	MaxBitrate   int64    `json:"mbr,omitempty"`
}

// Sign mints a signed token.
func Sign(key SigningKey, c Claims) (string, error) {
	if len(key.Secret) < 32 {
		return "", errors.New("a signing key needs at least 32 bytes of secret")
	}
	if c.Expires == 0 {
		return "", errors.New("a signed token needs an expiry")
	}
	c.KeyID = key.ID
	body, err := json.Marshal(c)
	if err != nil {
		return "", fmt.Errorf("encode the claims: %w", err)
	}
	msg := signedPrefix + base64.RawURLEncoding.EncodeToString(body)
	return msg + "." + base64.RawURLEncoding.EncodeToString(mac(key.Secret, msg)), nil
}

func mac(secret []byte, msg string) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(msg))
	return m.Sum(nil)
}

func (v *Verifier) verifySigned(token string) (*Grant, error) {
	dot := strings.LastIndexByte(token, '.')
	if dot <= len(signedPrefix) {
		return nil, fmt.Errorf("%w: malformed", ErrBadToken)
	}
	msg, sig := token[:dot], token[dot+1:]
	got, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil {
		return nil, fmt.Errorf("%w: malformed signature", ErrBadToken)
	}
	body, err := base64.RawURLEncoding.DecodeString(msg[len(signedPrefix):])
	if err != nil {
		return nil, fmt.Errorf("%w: malformed claims", ErrBadToken)
	}
	// The key ID is read before the signature is checked only to pick
	// the key; nothing else in the claims is trusted until it matches.
	var c Claims
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("%w: malformed claims", ErrBadToken)
	}
	var key *SigningKey
	for i := range v.Keys {
		if v.Keys[i].ID == c.KeyID {
			key = &v.Keys[i]
		}
	}
	if key == nil || !hmac.Equal(got, mac(key.Secret, msg)) {
		return nil, ErrBadToken
	}
	now := time.Now
	if v.Now != nil {
		now = v.Now
	}
	if now().After(time.Unix(c.Expires, 0).Add(maxSkew)) {
		return nil, ErrExpired
	}
	sub := c.Subject
	if sub == "" {
		sub = "signed:" + c.KeyID
	}
	return &Grant{Subject: sub, Destinations: c.Destinations, Profiles: c.Profiles, MaxBitrate: c.MaxBitrate}, nil
}
