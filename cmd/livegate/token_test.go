package main

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/livegate/livegate/internal/auth"
	"github.com/livegate/livegate/internal/config"
)

// runCmd runs livegate with args and stdin, and returns its output.
func runCmd(t *testing.T, stdin string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err = run(args, strings.NewReader(stdin), &out, &errOut)
	return out.String(), errOut.String(), err
}

var (
	staticTokenRE = regexp.MustCompile(`(?m)^lgt_[A-Za-z0-9_-]{43}$`)
	signedTokenRE = regexp.MustCompile(`^lg1\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\n$`)
)

// TestTokenNew checks that livegate token new prints a token and a config entry that,
// pasted into a configuration, lets that token publish.
func TestTokenNew(t *testing.T) {
	out, _, err := runCmd(t, "", "token", "new", "-name", "cam-1")
	if err != nil {
		t.Fatalf("token new: %v", err)
	}
	tok := staticTokenRE.FindString(out)
	if tok == "" {
		t.Fatalf("no token in the output:\n%s", out)
	}
	if strings.Count(out, tok) != 1 {
		t.Errorf("the token is printed more than once:\n%s", out)
	}
	i := strings.Index(out, "auth:\n")
	if i < 0 {
		t.Fatalf("no auth: entry in the output:\n%s", out)
	}
	// On all interfaces, as a configuration with tokens may listen.
	cfg, err := config.Parse([]byte("listen: :8080\n" + out[i:]))
	if err != nil {
		t.Fatalf("the printed entry does not parse: %v\n%s", err, out[i:])
	}
	if want := []config.Token{{Name: "cam-1", Hash: auth.HashToken(tok)}}; !reflect.DeepEqual(cfg.Auth.Tokens, want) {
		t.Fatalf("tokens = %+v, want %+v", cfg.Auth.Tokens, want)
	}
	v, err := verifier(cfg.Auth)
	if err != nil {
		t.Fatal(err)
	}
	if g, err := v.Verify(tok); err != nil || g.Subject != "cam-1" {
		t.Fatalf("Verify(the new token) = %+v, %v", g, err)
	}
	if _, err := v.Verify(""); !errors.Is(err, auth.ErrNoToken) {
		t.Fatalf("Verify(no token) = %v, want ErrNoToken", err)
	}

	// livegate token hash agrees.
	hash, _, err := runCmd(t, tok+"\n", "token", "hash")
	if err != nil || hash != auth.HashToken(tok)+"\n" {
		t.Fatalf("token hash = %q, %v; want %s", hash, err, auth.HashToken(tok))
	}

	// Each is new; the default name is studio.
	out2, _, err := runCmd(t, "", "token", "new")
	if err != nil {
		t.Fatal(err)
	}
	if tok2 := staticTokenRE.FindString(out2); tok2 == "" || tok2 == tok || !strings.Contains(out2, "- name: studio\n") {
		t.Fatalf("a second token new printed:\n%s", out2)
	}

	for _, ca := range []struct {
		args []string
		want string
	}{
		{[]string{"-name", "Cam 1"}, `-name: the name "Cam 1" is not allowed; use 1..32 of a-z, 0-9, _ and -, starting with a-z or 0-9`},
		{[]string{"-name", ""}, `-name: the name "" is not allowed`},
		{[]string{"studio"}, `livegate token new: unexpected argument "studio"; see livegate token new -help`},
		{[]string{"-ttl", "1h"}, "flag provided but not defined: -ttl"},
	} {
		out, _, err := runCmd(t, "", append([]string{"token", "new"}, ca.args...)...)
		if err == nil || !strings.Contains(err.Error(), ca.want) {
			t.Errorf("token new %q: %v, want %q", ca.args, err, ca.want)
		}
		if out != "" {
			t.Errorf("token new %q printed %q with its error", ca.args, out)
		}
	}
}

func TestTokenHash(t *testing.T) {
	const tok = "lgt_0123456789abcdefghijklmnopqrstuvwxyzABCDEFG"
	for _, in := range []string{tok, tok + "\n", "  " + tok + " \r\n", tok + "\nsecond line ignored\n"} {
		out, _, err := runCmd(t, in, "token", "hash")
		if err != nil || out != auth.HashToken(tok)+"\n" {
			t.Errorf("token hash < %q = %q, %v; want %s", in, out, err, auth.HashToken(tok))
		}
	}
	// Any token of 32 characters or more, not only livegate's.
	if out, _, err := runCmd(t, strings.Repeat("x", 32), "token", "hash"); err != nil || out != auth.HashToken(strings.Repeat("x", 32))+"\n" {
		t.Errorf("token hash of 32 x = %q, %v", out, err)
	}

	for _, ca := range []struct {
		name, stdin string
		args        []string
		want        string
	}{
		{"nothing", "", nil, "no token on standard input; give it there: livegate token hash < token.txt"},
		{"blank line", " \n" + tok, nil, "no token on standard input; give it there: livegate token hash < token.txt"},
		{"an argument", "", []string{"lgt_SECRET"}, "livegate token hash reads the token from standard input, not from an argument (the shell's history and ps keep arguments): livegate token hash < token.txt"},
		{"a space inside", "lgt_SECRET " + tok + "\n", nil, "the token holds a space or a control character; give one token on one line"},
		{"a signed token", "lg1.SECRETSECRETSECRETSECRETSECRETSECRET.SECRET\n", nil, "this is a signed token: livegate checks it with its signing key (auth.signing_keys), and it has no hash to configure"},
		{"short", "SECRET-short\n", nil, "the token is 12 characters long; a static token needs at least 32, since its hash alone would give a shorter one away (livegate token new makes one)"},
		{"long", strings.Repeat("S", 5000), nil, "the token on standard input is longer than 2048 bytes; give one token on one line"},
	} {
		t.Run(ca.name, func(t *testing.T) {
			out, errOut, err := runCmd(t, ca.stdin, append([]string{"token", "hash"}, ca.args...)...)
			if err == nil || err.Error() != ca.want {
				t.Fatalf("token hash: %v, want %q", err, ca.want)
			}
			if out != "" || strings.Contains(errOut+err.Error(), "SECRET") {
				t.Fatalf("token hash printed %q, %q, %v", out, errOut, err)
			}
		})
	}
}

// signConfig writes a configuration with two signing keys, one from the environment and
// one from a file, and returns its path and the secrets.
func signConfig(t *testing.T, extra string) (path string, envSecret, fileSecret []byte) {
	t.Helper()
	dir := t.TempDir()
	envSecret = []byte("s3cr3t-env-" + strings.Repeat("e", 32))
	fileSecret = []byte("s3cr3t-file-" + strings.Repeat("f", 32))
	t.Setenv("LIVEGATE_TEST_SIGNING", string(envSecret))
	secretFile := filepath.Join(dir, "signing-key")
	if err := os.WriteFile(secretFile, append(fileSecret, '\n'), 0o600); err != nil {
		t.Fatal(err)
	}
	path = filepath.Join(dir, "livegate.yaml")
	yaml := "auth:\n  signing_keys:\n    - {id: k1, secret_env: LIVEGATE_TEST_SIGNING}\n    - {id: k2, secret_file: " + secretFile + "}\n" + extra
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, envSecret, fileSecret
}

// TestTokenSign mints signed tokens and checks them with the verifier livegate serves with.
func TestTokenSign(t *testing.T) {
	file, envSecret, fileSecret := signConfig(t, "")
	cfg, err := config.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	v, err := verifier(cfg.Auth)
	if err != nil {
		t.Fatal(err)
	}
	if v.Anonymous {
		t.Fatal("a configuration with signing keys is anonymous")
	}

	before := time.Now()
	out, errOut, err := runCmd(t, "", "token", "sign", "-config", file, "-key", "k1", "-ttl", "1h",
		"-destinations", "local", "-profiles", "720p,480p", "-max-bitrate", "4M", "-subject", "user-7")
	if err != nil {
		t.Fatalf("token sign: %v\n%s", err, errOut)
	}
	if !signedTokenRE.MatchString(out) {
		t.Fatalf("token sign printed %q, want one signed token", out)
	}
	tok := strings.TrimSpace(out)
	g, err := v.Verify(tok)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	want := &auth.Grant{Subject: "user-7", Destinations: []string{"local"}, Profiles: []string{"720p", "480p"}, MaxBitrate: 4_000_000}
	if !reflect.DeepEqual(g, want) {
		t.Fatalf("grant = %+v, want %+v", g, want)
	}
	if !strings.Contains(errOut, "signed with key k1; valid until ") || !strings.Contains(errOut, "(1h0m0s); destinations: local; profiles: 720p,480p; max bitrate: 4M") {
		t.Errorf("stderr: %q", errOut)
	}
	for _, s := range []string{string(envSecret), string(fileSecret), "s3cr3t"} {
		if strings.Contains(out+errOut, s) {
			t.Fatalf("token sign printed a secret:\n%s%s", out, errOut)
		}
	}

	// It expires in an hour (and 30 s of clock difference).
	v.Now = func() time.Time { return before.Add(time.Hour + 20*time.Second) }
	if _, err := v.Verify(tok); err != nil {
		t.Errorf("Verify just after the hour, within the skew: %v", err)
	}
	v.Now = func() time.Time { return time.Now().Add(time.Hour + time.Minute) }
	if _, err := v.Verify(tok); !errors.Is(err, auth.ErrExpired) {
		t.Errorf("Verify after 1h1m: %v, want ErrExpired", err)
	}
	v.Now = nil

	// The key from the file, with everything allowed.
	out, _, err = runCmd(t, "", "token", "sign", "-config", file, "-key", "k2", "-ttl", "10m")
	if err != nil {
		t.Fatal(err)
	}
	g, err = v.Verify(strings.TrimSpace(out))
	if err != nil || !reflect.DeepEqual(g, &auth.Grant{Subject: "signed:k2"}) {
		t.Fatalf("Verify(k2's token) = %+v, %v", g, err)
	}
	// Signed with k2, it is refused by a livegate that knows only k1.
	only1 := &auth.Verifier{Keys: v.Keys[:1]}
	if _, err := only1.Verify(strings.TrimSpace(out)); !errors.Is(err, auth.ErrBadToken) {
		t.Fatalf("Verify without k2: %v, want ErrBadToken", err)
	}

	// With one key, -key may be left out; the ttl defaults to an hour.
	one, _, _ := signConfig(t, "")
	data, _ := os.ReadFile(one)
	oneKey := strings.Replace(string(data), "    - {id: k2", "    # - {id: k2", 1)
	if err := os.WriteFile(one, []byte(oneKey), 0o600); err != nil {
		t.Fatal(err)
	}
	out, errOut, err = runCmd(t, "", "token", "sign", "-config", one)
	if err != nil {
		t.Fatalf("token sign with the only key: %v", err)
	}
	if g, err := v.Verify(strings.TrimSpace(out)); err != nil || g.Subject != "signed:k1" {
		t.Fatalf("Verify = %+v, %v", g, err)
	}
	if !strings.Contains(errOut, "(1h0m0s)") {
		t.Errorf("the default ttl is not an hour: %q", errOut)
	}
}

func TestTokenSignErrors(t *testing.T) {
	file, _, _ := signConfig(t, "")
	noKeys := filepath.Join(t.TempDir(), "none.yaml")
	if err := os.WriteFile(noKeys, []byte("log: {level: info}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, ca := range []struct {
		name string
		args []string
		want string
	}{
		{"no config", []string{"-key", "k1"}, "livegate token sign: -config is required: the signing key's secret is read as livegate reads it, from the environment variable or file the config names"},
		{"no keys", []string{"-config", noKeys}, noKeys + " has no auth.signing_keys; add one (see docs/config.example.yaml): an id, and secret_env or secret_file"},
		{"which key", []string{"-config", file}, file + " has 2 signing keys; say which with -key (k1, k2)"},
		{"unknown key", []string{"-config", file, "-key", "k3"}, `-key "k3" is not among the signing keys of ` + file + "; use one of k1, k2"},
		{"ttl too long", []string{"-config", file, "-key", "k1", "-ttl", "25h"}, "-ttl 25h0m0s is longer than 24h0m0s: a signed token cannot be revoked before it expires, short of removing its key (which ends every token that key signed); mint short-lived ones, or give a long-lived streamer a static token (livegate token new), which can be removed from the config"},
		{"ttl zero", []string{"-config", file, "-key", "k1", "-ttl", "0s"}, "-ttl 0s: give a positive duration, such as 15m or 1h"},
		{"ttl not a duration", []string{"-config", file, "-ttl", "1d"}, `invalid value "1d" for flag -ttl`},
		{"unknown destination", []string{"-config", file, "-key", "k1", "-destinations", "local,mars"}, `-destinations: destinations[1]: "mars" is not a configured destination; use one of local`},
		{"empty destination", []string{"-config", file, "-key", "k1", "-destinations", "local,"}, `-destinations: destinations[1]: "" is not a configured destination`},
		{"unknown profile", []string{"-config", file, "-key", "k1", "-profiles", "4k"}, `-profiles: profiles[0]: "4k" is not a profile; use one of 1080p, 720p, 480p`},
		{"bitrate syntax", []string{"-config", file, "-key", "k1", "-max-bitrate", "4Mbps"}, `-max-bitrate: "4Mbps" is not a bitrate; use bits per second or a rate such as 128k, 2500k or 2.5M`},
		{"bitrate above the limit", []string{"-config", file, "-key", "k1", "-max-bitrate", "30M"}, "-max-bitrate: max_bitrate: 30M is above limits.max_ingest_bitrate (20M), which bounds every broadcast; lower it, or raise the limit"},
		{"subject with a space", []string{"-config", file, "-key", "k1", "-subject", "user 7"}, "-subject: use at most 128 characters, without spaces or control characters"},
		{"an argument", []string{"-config", file, "k1"}, `livegate token sign: unexpected argument "k1"; see livegate token sign -help`},
		{"a bad config", []string{"-config", file + ".missing"}, "config " + file + ".missing: open " + file + ".missing: no such file or directory"},
	} {
		t.Run(ca.name, func(t *testing.T) {
			out, _, err := runCmd(t, "", append([]string{"token", "sign"}, ca.args...)...)
			if err == nil || !strings.Contains(err.Error(), ca.want) {
				t.Fatalf("token sign: %v, want %q", err, ca.want)
			}
			if out != "" {
				t.Fatalf("token sign printed %q with its error", out)
			}
		})
	}
}

func TestTokenCommand(t *testing.T) {
	_, errOut, err := runCmd(t, "", "token")
	if err == nil || err.Error() != "livegate token needs a command: new, hash or sign" || !strings.Contains(errOut, "livegate token sign -config FILE") {
		t.Fatalf("token: %v\n%s", err, errOut)
	}
	if _, errOut, err = runCmd(t, "", "token", "-help"); !errors.Is(err, flag.ErrHelp) || !strings.Contains(errOut, "livegate token new [-name NAME]") {
		t.Fatalf("token -help: %v\n%s", err, errOut)
	}
	if _, _, err = runCmd(t, "", "token", "mint"); err == nil || err.Error() != `livegate token: unknown command "mint"; use new, hash or sign (livegate token -help)` {
		t.Fatalf("token mint: %v", err)
	}
	if _, errOut, err = runCmd(t, "", "token", "sign", "-help"); !errors.Is(err, flag.ErrHelp) || !strings.Contains(errOut, "-max-bitrate bitrate") {
		t.Fatalf("token sign -help: %v\n%s", err, errOut)
	}
}
