package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
	"unicode"

	"github.com/livegate/livegate/internal/auth"
	"github.com/livegate/livegate/internal/config"
)

const tokenUsage = `Usage:
  livegate token new [-name NAME]
      Makes a static token and prints it, once, with the entry to add to the
      config's auth.tokens. livegate keeps only the token's hash: the token itself
      is stored nowhere, so give it to the streamer or the application now.
  livegate token hash < token.txt
      Reads a static token from standard input and prints its hash, for auth.tokens.
      (Not from an argument, which the shell's history and ps would keep.)
  livegate token sign -config FILE [-key ID] [-ttl 1h] [-destinations a,b]
                      [-profiles 720p] [-max-bitrate 4M] [-subject NAME]
      Mints a short-lived signed token with a key of the config's auth.signing_keys,
      as a web application's backend does, and prints it.

Run livegate token COMMAND -help for the flags of each.
`

// maxTokenTTL bounds what livegate token sign mints: a signed token cannot be revoked
// before it expires, short of removing its key (which ends every token that key signed).
const maxTokenTTL = 24 * time.Hour

// minStaticToken is the shortest static token livegate token hash takes: a token is
// kept as a fast hash, so it must be too long to guess.
const minStaticToken = 32

// runToken runs "livegate token COMMAND".
func runToken(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, tokenUsage)
		return errors.New("livegate token needs a command: new, hash or sign")
	}
	switch args[0] {
	case "new":
		return tokenNew(args[1:], stdout, stderr)
	case "hash":
		return tokenHash(args[1:], stdin, stdout, stderr)
	case "sign":
		return tokenSign(args[1:], stdout, stderr)
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stderr, tokenUsage)
		return flag.ErrHelp
	}
	return fmt.Errorf("livegate token: unknown command %q; use new, hash or sign (livegate token -help)", args[0])
}

// tokenFlags returns the flag set of "livegate token NAME".
func tokenFlags(name, synopsis string, stderr io.Writer) *flag.FlagSet {
	fl := flag.NewFlagSet("livegate token "+name, flag.ContinueOnError)
	fl.SetOutput(stderr)
	fl.Usage = func() {
		fmt.Fprintf(stderr, "Usage: livegate token %s\n\n", synopsis)
		fl.PrintDefaults()
	}
	return fl
}

// parseNoArgs parses args, which must hold only flags.
func parseNoArgs(fl *flag.FlagSet, args []string) error {
	if err := fl.Parse(args); err != nil {
		return err
	}
	if fl.NArg() > 0 {
		return fmt.Errorf("%s: unexpected argument %q; see %s -help", fl.Name(), fl.Arg(0), fl.Name())
	}
	return nil
}

// tokenNew prints a new static token and the config entry with its hash.
func tokenNew(args []string, stdout, stderr io.Writer) error {
	fl := tokenFlags("new", "new [-name NAME]", stderr)
	name := fl.String("name", "studio", "the token's `name` in the config and in the logs: 1..32 of a-z, 0-9, _ and -")
	if err := parseNoArgs(fl, args); err != nil {
		return err
	}
	if err := config.CheckName(*name); err != nil {
		return fmt.Errorf("-name: %w", err)
	}
	tok := auth.NewToken()
	_, err := fmt.Fprintf(stdout, `A new token, shown only this once: livegate keeps only its hash. Give it to the
streamer or to the application that publishes (the token option of publish()):

%s

Add this to livegate's configuration (next to the tokens already under auth:), then
restart livegate:

auth:
  tokens:
    - name: %s
      hash: %s
      # destinations: [local]   # only these destinations (default: all)
      # profiles: [720p]        # only these profiles (default: all)
      # max_bitrate: 4M         # at most this ingest bit rate
`, tok, *name, auth.HashToken(tok))
	return err
}

// tokenHash reads a static token from stdin and prints its hash.
func tokenHash(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fl := tokenFlags("hash", "hash < token.txt", stderr)
	if err := fl.Parse(args); err != nil {
		return err
	}
	if fl.NArg() > 0 {
		// Not shown: it is likely the token.
		return errors.New("livegate token hash reads the token from standard input, not from an argument (the shell's history and ps keep arguments): livegate token hash < token.txt")
	}
	if f, ok := stdin.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			fmt.Fprintln(stderr, "Paste the token, then press Enter:")
		}
	}
	// One line, bounded: the longest token the server reads, its newline, and one more
	// byte to tell that it is longer.
	const maxLine = 2048 + 2
	line, err := bufio.NewReaderSize(io.LimitReader(stdin, maxLine+1), maxLine+1).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("read the token from standard input: %w", err)
	}
	tok := strings.TrimSpace(line)
	switch {
	case tok == "":
		return errors.New("no token on standard input; give it there: livegate token hash < token.txt")
	case len(line) > maxLine:
		return errors.New("the token on standard input is longer than 2048 bytes; give one token on one line")
	case strings.ContainsFunc(tok, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }):
		return errors.New("the token holds a space or a control character; give one token on one line")
	case strings.HasPrefix(tok, "lg1."):
		return errors.New("this is a signed token: livegate checks it with its signing key (auth.signing_keys), and it has no hash to configure")
	case len(tok) < minStaticToken:
		return fmt.Errorf("the token is %d characters long; a static token needs at least %d, since its hash alone would give a shorter one away (livegate token new makes one)", len(tok), minStaticToken)
	}
	_, err = fmt.Fprintln(stdout, auth.HashToken(tok))
	return err
}

// tokenSign mints a signed token with a signing key of the configuration.
func tokenSign(args []string, stdout, stderr io.Writer) error {
	fl := tokenFlags("sign", "sign -config FILE [-key ID] [-ttl 1h] [-destinations a,b] [-profiles 720p] [-max-bitrate 4M] [-subject NAME]", stderr)
	configPath := fl.String("config", "", "livegate's configuration `file`, whose auth.signing_keys hold the key (required)")
	keyID := fl.String("key", "", "the `id` of the signing key (default: the only one)")
	ttl := fl.Duration("ttl", time.Hour, fmt.Sprintf("how long the token is valid, at most %v", maxTokenTTL))
	dests := fl.String("destinations", "", "the destinations the token allows, comma-separated `names` (default: all)")
	profiles := fl.String("profiles", "", "the profiles the token allows, comma-separated `names` (default: all)")
	maxBitrate := fl.String("max-bitrate", "", "the highest ingest `bitrate` the token allows, such as 4M or 2500k (default: limits.max_ingest_bitrate)")
	subject := fl.String("subject", "", "who the token is for, in livegate's logs, such as a user id (default: signed:KEY)")
	if err := parseNoArgs(fl, args); err != nil {
		return err
	}
	if *configPath == "" {
		return errors.New("livegate token sign: -config is required: the signing key's secret is read as livegate reads it, from the environment variable or file the config names")
	}
	switch {
	case *ttl <= 0:
		return fmt.Errorf("-ttl %v: give a positive duration, such as 15m or 1h", *ttl)
	case *ttl > maxTokenTTL:
		return fmt.Errorf("-ttl %v is longer than %v: a signed token cannot be revoked before it expires, short of removing its key (which ends every token that key signed); mint short-lived ones, or give a long-lived streamer a static token (livegate token new), which can be removed from the config", *ttl, maxTokenTTL)
	case len(*subject) > 128 || strings.ContainsFunc(*subject, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }):
		return errors.New("-subject: use at most 128 characters, without spaces or control characters")
	}
	cfg, err := config.Load(*configPath)
	if err != nil {
		return err
	}
	key, err := signingKey(cfg.Auth.SigningKeys, *keyID, *configPath)
	if err != nil {
		return err
	}

	c := auth.Claims{Subject: *subject, Destinations: splitList(*dests), Profiles: splitList(*profiles)}
	if *maxBitrate != "" {
		mbr, err := config.ParseBitrate(*maxBitrate)
		if err != nil {
			return fmt.Errorf("-max-bitrate: %w", err)
		}
		c.MaxBitrate = int64(mbr)
	}
	for _, check := range []struct {
		flag string
		err  error
	}{
		{"-destinations", cfg.CheckGrant(c.Destinations, nil, 0)},
		{"-profiles", cfg.CheckGrant(nil, c.Profiles, 0)},
		{"-max-bitrate", cfg.CheckGrant(nil, nil, int(c.MaxBitrate))},
	} {
		if check.err != nil {
			return fmt.Errorf("%s: %w", check.flag, check.err)
		}
	}
	expires := time.Now().Add(*ttl)
	c.Expires = expires.Unix()
	tok, err := auth.Sign(auth.SigningKey{ID: key.ID, Secret: key.Secret}, c)
	if err != nil {
		return fmt.Errorf("sign the token with key %s: %w", key.ID, err)
	}
	if _, err := fmt.Fprintln(stdout, tok); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "signed with key %s; valid until %s (%v); destinations: %s; profiles: %s; max bitrate: %s\n",
		key.ID, expires.UTC().Format(time.RFC3339), *ttl, listOrAll(c.Destinations), listOrAll(c.Profiles), bitrateOrLimit(*maxBitrate))
	return nil
}

// signingKey picks the key named id, or the only one when id is empty.
func signingKey(keys []config.SigningKey, id, file string) (config.SigningKey, error) {
	ids := make([]string, len(keys))
	for i, k := range keys {
		if k.ID == id || (id == "" && len(keys) == 1) {
			return k, nil
		}
		ids[i] = k.ID
	}
	switch {
	case len(keys) == 0:
		return config.SigningKey{}, fmt.Errorf("%s has no auth.signing_keys; add one (see docs/config.example.yaml): an id, and secret_env or secret_file", file)
	case id == "":
		return config.SigningKey{}, fmt.Errorf("%s has %d signing keys; say which with -key (%s)", file, len(keys), strings.Join(ids, ", "))
	}
	return config.SigningKey{}, fmt.Errorf("-key %q is not among the signing keys of %s; use one of %s", id, file, strings.Join(ids, ", "))
}

// splitList splits a comma-separated flag value; "" is nil (all).
func splitList(s string) []string {
	if s == "" {
		return nil
	}
	parts := strings.Split(s, ",")
	for i, p := range parts {
		parts[i] = strings.TrimSpace(p)
	}
	return parts
}

func listOrAll(l []string) string {
	if len(l) == 0 {
		return "all"
	}
	return strings.Join(l, ",")
}

func bitrateOrLimit(s string) string {
	if s == "" {
		return "limits.max_ingest_bitrate"
	}
	return s
}
