// Command livegate lets a person go live from a web page: it takes the
// browser's stream over a WebSocket and publishes it over RTMP(S) to the
// destinations the operator configured.
package main

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/livegate/livegate/internal/auth"
	"github.com/livegate/livegate/internal/config"
	"github.com/livegate/livegate/internal/ingest/mediarecorder"
	"github.com/livegate/livegate/internal/metrics"
	"github.com/livegate/livegate/internal/receiver"
	"github.com/livegate/livegate/internal/server"
	"github.com/livegate/livegate/internal/session"
	"github.com/livegate/livegate/internal/transcode"
	"github.com/livegate/livegate/web"
)

// httpCloseWait bounds how long livegate waits, at the very end, for the plain HTTP
// requests in flight (the broadcasts have ended by then).
const httpCloseWait = 5 * time.Second

func main() {
	if err := run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "livegate:", err)
			os.Exit(1)
		}
	}
}

// run is livegate with its command-line arguments: the token commands, or the server
// until SIGTERM or Ctrl-C (which drain first; a second one ends at once). SIGHUP reads
// the configuration file again.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "token" {
		return runToken(args[1:], stdin, stdout, stderr)
	}
	cfg, err := configure(args, stderr)
	if err != nil {
		return err
	}
	level := new(slog.LevelVar)
	log := newLogger(cfg.Log, level, stderr)
	stop := make(chan os.Signal, 2)
	signal.Notify(stop, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(stop)
	reload := make(chan os.Signal, 1)
	signal.Notify(reload, syscall.SIGHUP)
	defer signal.Stop(reload)
	ctl := control{
		stop:   stop,
		reload: reload,
		// The same file and flags as at start: a flag still overrides the file.
		load:  func() (*config.Config, error) { return configure(args, io.Discard) },
		level: level,
	}
	return serve(ctl, cfg, log, nil)
}

// control is what drives serve while it runs: the process's signals in main, channels of
// their own in tests.
type control struct {
	// stop: the first value starts the drain (SIGTERM, Ctrl-C); the next ends every
	// broadcast at once. Closing it ends everything at once.
	stop <-chan os.Signal
	// reload asks for the configuration to be read again (SIGHUP); nil: never.
	reload <-chan os.Signal
	// load reads the configuration as at start; nil: there is nothing to read again.
	load func() (*config.Config, error)
	// level is the logger's level, which a reload may change; nil: it stays.
	level *slog.LevelVar
}

const usage = `Usage: livegate [flags]
       livegate token new|hash|sign [flags]   (tokens to publish with; livegate token -help)

livegate publishes a browser's camera and microphone to RTMP(S) destinations.
With no flags it runs on defaults: the studio page on http://127.0.0.1:8080 and
the built-in RTMP receiver as its one destination, and anyone on this machine may
publish. On an address other machines reach, livegate needs tokens (auth.tokens
in the config; livegate token new) or, to let anyone there publish,
auth.allow_anonymous: true. Browsers allow the camera only on localhost or over
HTTPS: for other machines on a LAN you trust, try
  echo 'auth: {allow_anonymous: true}' > lan.yaml
  livegate -config lan.yaml -listen :8443 -tls-self-signed

Flags:
`

// configure reads the flags and the configuration file, and checks the result.
func configure(args []string, stderr io.Writer) (*config.Config, error) {
	fl := flag.NewFlagSet("livegate", flag.ContinueOnError)
	fl.SetOutput(stderr)
	fl.Usage = func() {
		fmt.Fprint(stderr, usage)
		fl.PrintDefaults()
	}
	configPath := fl.String("config", "", "YAML configuration `file` (all fields optional; see docs/config.example.yaml)")
	listen := fl.String("listen", "", "listen `address` of the studio page, HTTP or HTTPS (see tls: in the config), overrides listen: (default 127.0.0.1:8080)")
	receiverListen := fl.String("receiver-listen", "", "built-in RTMP receiver `address`, overrides receiver.listen (default 127.0.0.1:1935)")
	logLevel := fl.String("log-level", "", "log `level`: debug, info, warn or error (overrides log.level)")
	logFormat := fl.String("log-format", "", "log `format`: text or json (overrides log.format)")
	tlsSelfSigned := fl.Bool("tls-self-signed", false, "serve HTTPS with a certificate made at start, for a LAN; its fingerprint is logged\nand changes at each start (same as tls.self_signed: true)")
	if err := fl.Parse(args); err != nil {
		return nil, err
	}
	if fl.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q; see livegate -help", fl.Arg(0))
	}

	cfg := config.Default()
	if *configPath != "" {
		var err error
		if cfg, err = config.Load(*configPath); err != nil {
			return nil, err
		}
	}
	if *listen != "" {
		cfg.Listen = *listen
	}
	if *receiverListen != "" {
		cfg.Receiver.Listen = *receiverListen
	}
	if *logLevel != "" {
		cfg.Log.Level = *logLevel
	}
	if *logFormat != "" {
		cfg.Log.Format = *logFormat
	}
	if *tlsSelfSigned {
		cfg.TLS.SelfSigned = true
	}
	// Flags change the file's settings, so the whole is checked again: -listen :8443
	// needs tokens or auth.allow_anonymous as listen: :8443 does.
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	ffmpeg, err := exec.LookPath(cfg.FFmpeg.Path)
	if err != nil {
		return nil, fmt.Errorf("ffmpeg is needed for audio (Opus to AAC) and VP8 video: install it (apt-get install ffmpeg) or set ffmpeg.path in the config: %w", err)
	}
	cfg.FFmpeg.Path = ffmpeg
	return cfg, nil
}

// newLogger returns the process's logger, at c.Level, which level then holds: setting
// level changes it.
func newLogger(c config.Log, level *slog.LevelVar, w io.Writer) *slog.Logger {
	setLevel(level, c.Level)
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// setLevel sets level to name, one of config's log levels.
func setLevel(level *slog.LevelVar, name string) {
	var l slog.Level
	_ = l.UnmarshalText([]byte(name)) // validated by config
	level.Set(l)
}

// hstsMaxAge is the Strict-Transport-Security max-age with the operator's certificate:
// short, so that turning HTTPS off again does not lock browsers out for long.
const hstsMaxAge = 24 * time.Hour

// serve runs livegate until ctl says stop, and drains first. ready, if not nil, is called
// once the server listens (tests).
func serve(ctl control, cfg *config.Config, log *slog.Logger, ready func(*server.Server)) error {
	cert, hsts, err := tlsCertificate(cfg)
	if err != nil {
		return err
	}

	var rcv *receiver.Receiver
	if cfg.Receiver.Enabled {
		rcv = &receiver.Receiver{Listen: cfg.Receiver.Listen, Log: log.With("component", "receiver")}
		if err := rcv.Initialize(); err != nil {
			return err
		}
		defer rcv.Close()
	}

	cat, err := catalogOf(cfg, rcv)
	if err != nil {
		return err
	}
	m := metrics.New()
	pub, err := publishHandler(cfg, log.With("component", "publish"), m, cat.dests, cat.profiles)
	if err != nil {
		return err
	}
	pubCtx, cancelPub := context.WithCancel(context.Background())
	defer cancelPub()
	pub.Initialize(pubCtx)

	srv := &server.Server{
		Listen:       cfg.Listen,
		Certificate:  cert,
		TLSListen:    cfg.TLS.Listen,
		HSTSMaxAge:   hsts,
		Log:          log.With("component", "http"),
		Static:       web.Files(),
		Publish:      pub,
		Metrics:      m.Handler(),
		Receiver:     rcv,
		Destinations: cat.infos,
		Profiles:     cat.profileInfos,
		Ready: func() error {
			if pub.Draining() {
				return errors.New("livegate is draining (SIGTERM): it takes no new broadcast, and ends those in progress within shutdown_grace")
			}
			return nil
		},
		Sessions:       pub,
		AdminTokenHash: adminHash(cfg.Admin),
		OnAdminRefused: func(reason string) { m.AdminRefused.WithLabelValues(reason).Inc() },
	}
	if err := srv.Initialize(); err != nil {
		return err
	}
	names := make([]string, 0, len(cat.infos))
	for _, d := range cat.infos {
		names = append(names, d.Name)
	}
	urls := srv.URLs()
	if cfg.TLS.SelfSigned {
		log.Info("TLS: this run's certificate is self-signed, and browsers warn about it until you accept it; before you do, check that the SHA-256 fingerprint the browser shows is this one (a new certificate, with a new fingerprint, is made at each start)",
			"sha256", server.Fingerprint(cert.Leaf.Raw), "urls", strings.Join(urls, " "))
		if host, _, _ := net.SplitHostPort(srv.Addr().String()); net.ParseIP(host).IsLoopback() {
			log.Warn("TLS: livegate listens on a loopback address, which only this machine can reach, and where browsers allow the camera without HTTPS; for other machines on the LAN, listen on all interfaces (-listen :8443), with tokens (auth.tokens) or auth.allow_anonymous: true in the config")
		}
	}
	logAuth(log, cfg, urls)
	logAdmin(log, cfg)
	attrs := []any{"url", urls[0], "destinations", strings.Join(names, ",")}
	if len(urls) > 1 {
		attrs = append(attrs, "urls", strings.Join(urls, " "))
	}
	log.Info("livegate ready: open the studio page", attrs...)
	if ready != nil {
		ready(srv)
	}

	r := &reloader{log: log, level: ctl.level, load: ctl.load, rcv: rcv, pub: pub, srv: srv, m: m, cur: cfg, urls: urls}
	for running := true; running; {
		select {
		case <-ctl.reload:
			r.reload()
		case <-ctl.stop:
			running = false
		}
	}
	drain(ctl, r.cur.ShutdownGrace, pub, m, log)
	cancelPub()
	sctx, cancel := context.WithTimeout(context.Background(), httpCloseWait)
	defer cancel()
	err = srv.Close(sctx)
	pub.Wait()
	log.Info("stopped")
	if err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return nil
}

// drain lets the broadcasts in progress go on for up to grace, and takes no new one:
// /readyz answers 503, each browser is told when its broadcast will end, and it returns
// when none is left, when grace has passed, or at a second stop.
func drain(ctl control, grace time.Duration, pub *mediarecorder.Handler, m *metrics.Metrics, log *slog.Logger) {
	m.Draining.Set(1)
	if grace <= 0 {
		log.Info("stopping: ending the broadcasts in progress (shutdown_grace is 0)", "broadcasts", pub.Active())
		return
	}
	log.Info("stopping: draining: livegate takes no new broadcast and lets those in progress go on for up to shutdown_grace; a second SIGTERM or Ctrl-C ends them at once",
		"grace", grace, "broadcasts", pub.Active())
	pub.Drain(grace)
	t := time.NewTimer(grace)
	defer t.Stop()
	for {
		select {
		case <-pub.Drained():
			log.Info("drained: no broadcast is left")
			return
		case <-t.C:
			log.Info("shutdown_grace has passed: ending the broadcasts left", "broadcasts", pub.Active())
			return
		case <-ctl.stop:
			log.Info("stopping again: ending the broadcasts left at once", "broadcasts", pub.Active())
			return
		case <-ctl.reload:
			log.Warn("configuration reload ignored: livegate is draining")
		}
	}
}

// catalog is what the configuration offers the browsers: the publish handler's
// destinations and profiles, and what GET /api/v1/destinations says of them.
type catalog struct {
	dests        map[string]mediarecorder.Destination
	profiles     map[string]session.Profile
	infos        []server.DestinationInfo
	profileInfos []server.ProfileInfo
}

// catalogOf turns the configuration's destinations and profiles into what the publish
// handler and the server take. A built-in destination publishes to rcv.
func catalogOf(cfg *config.Config, rcv *receiver.Receiver) (*catalog, error) {
	c := &catalog{dests: make(map[string]mediarecorder.Destination, len(cfg.Destinations))}
	for _, name := range cfg.DestinationNames() {
		d := cfg.Destinations[name]
		md := mediarecorder.Destination{Name: name, KeyFromClient: d.KeyFromClient, Profile: d.Profile, Profiles: d.Profiles}
		switch {
		case d.Builtin && rcv == nil:
			return nil, fmt.Errorf("destination %s is the built-in receiver, which is not running: enabling it (receiver.enabled) needs a restart", name)
		case d.Builtin:
			u, err := url.Parse(fmt.Sprintf("rtmp://%s/live#%s", rcv.Addr().String(), name))
			if err != nil {
				return nil, fmt.Errorf("destination %s: %w", name, err)
			}
			md.Target = func(key string) (*url.URL, error) {
				if key != "" {
					return nil, fmt.Errorf("destination %q takes no stream key", name)
				}
				return u, nil
			}
		default:
			if !d.KeyFromClient {
				// Check the operator's URL now, not at the first broadcast.
				if _, err := d.Target(""); err != nil {
					return nil, fmt.Errorf("destination %s: %w", name, err)
				}
			}
			md.Target = d.Target
		}
		c.dests[name] = md
		c.infos = append(c.infos, server.DestinationInfo{Name: name, Description: d.Description, Builtin: d.Builtin,
			KeyFromClient: d.KeyFromClient, Profile: d.Profile, Profiles: d.Profiles})
	}
	c.profiles = make(map[string]session.Profile, len(cfg.Profiles))
	for _, name := range cfg.ProfileNames() {
		p := cfg.Profiles[name]
		c.profiles[name] = session.Profile{Name: name, Width: p.Width, Height: p.Height, FPS: p.FPS,
			VideoBitrate: p.VideoBitrate, AudioBitrate: p.AudioBitrate, KeyframeInterval: p.KeyframeInterval}
		c.profileInfos = append(c.profileInfos, server.ProfileInfo{Name: name, Width: p.Width, Height: p.Height, FPS: p.FPS, VideoBitrate: p.VideoBitrate})
	}
	return c, nil
}

// publishSettings are the publish handler's settings as cfg configures them.
func publishSettings(cfg *config.Config, dests map[string]mediarecorder.Destination, profiles map[string]session.Profile) (mediarecorder.Settings, error) {
	verify, err := verifier(cfg.Auth)
	if err != nil {
		return mediarecorder.Settings{}, err
	}
	return mediarecorder.Settings{
		Encode: transcode.Options{
			VideoBitrate:     cfg.Encode.VideoBitrate,
			KeyframeInterval: cfg.Encode.KeyframeInterval,
			X264Preset:       cfg.Encode.X264Preset,
			AudioBitrate:     cfg.Encode.AudioBitrate,
			AudioSampleRate:  cfg.Encode.AudioSampleRate,
		},
		Destinations:          dests,
		Profiles:              profiles,
		MaxSessions:           cfg.Limits.MaxSessions,
		MaxSessionsPerAddress: cfg.Limits.MaxSessionsPerAddress,
		MaxSessionLength:      cfg.Limits.MaxSessionLength,
		MaxIngestBitrate:      int64(cfg.Limits.MaxIngestBitrate),
		MaxMessageBytes:       cfg.Limits.MaxMessageBytes,
		FirstMediaTimeout:     cfg.Limits.FirstMediaTimeout,
		IdleTimeout:           cfg.Limits.IdleTimeout,
		ResumeWindow:          cfg.Limits.ResumeWindow,
		Auth:                  verify,
		AllowedOrigins:        cfg.Auth.AllowedOrigins,
	}, nil
}

// publishHandler returns the publish WebSocket as cfg configures it, not initialized.
func publishHandler(cfg *config.Config, log *slog.Logger, m *metrics.Metrics, dests map[string]mediarecorder.Destination, profiles map[string]session.Profile) (*mediarecorder.Handler, error) {
	s, err := publishSettings(cfg, dests, profiles)
	if err != nil {
		return nil, err
	}
	return &mediarecorder.Handler{
		Log:                   log,
		Metrics:               m,
		FFmpegPath:            cfg.FFmpeg.Path,
		Encode:                s.Encode,
		Destinations:          s.Destinations,
		Profiles:              s.Profiles,
		MaxSessions:           s.MaxSessions,
		MaxSessionsPerAddress: s.MaxSessionsPerAddress,
		MaxSessionLength:      s.MaxSessionLength,
		MaxIngestBitrate:      s.MaxIngestBitrate,
		MaxMessageBytes:       s.MaxMessageBytes,
		FirstMediaTimeout:     s.FirstMediaTimeout,
		IdleTimeout:           s.IdleTimeout,
		ResumeWindow:          s.ResumeWindow,
		Auth:                  s.Auth,
		AllowedOrigins:        s.AllowedOrigins,
	}, nil
}

// adminHash is the admin token's SHA-256 from the configuration, or nil when the admin
// API is off.
func adminHash(a config.Admin) *[sha256.Size]byte {
	if !a.Enabled() {
		return nil
	}
	h, err := auth.ParseHash(a.TokenHash)
	if err != nil { // config has checked it
		return nil
	}
	return &h
}

// verifier returns what the publish handler checks tokens with. Publishing needs no
// token when auth: configures none (on loopback only, which config checks) or allows
// anonymous publishing.
func verifier(a config.Auth) (*auth.Verifier, error) {
	v := &auth.Verifier{Anonymous: a.Anonymous() || a.AllowAnonymous}
	for _, t := range a.Tokens {
		h, err := auth.ParseHash(t.Hash)
		if err != nil { // config has checked it
			return nil, fmt.Errorf("auth.tokens %s: %w", t.Name, err)
		}
		v.Static = append(v.Static, auth.StaticToken{Name: t.Name, Hash: h, Grant: auth.Grant{
			Destinations: t.Destinations, Profiles: t.Profiles, MaxBitrate: int64(t.MaxBitrate)}})
	}
	for _, k := range a.SigningKeys {
		v.Keys = append(v.Keys, auth.SigningKey{ID: k.ID, Secret: k.Secret})
	}
	return v, nil
}

// logAuth says once at start who may publish.
func logAuth(log *slog.Logger, cfg *config.Config, urls []string) {
	a := cfg.Auth
	switch {
	case !a.Anonymous():
		log.Info("publishing needs a token", "tokens", len(a.Tokens), "signing_keys", len(a.SigningKeys), "allowed_origins", strings.Join(a.AllowedOrigins, " "))
	case cfg.LoopbackOnly():
		log.Info("no tokens are configured: anyone on this machine may publish, and livegate listens on loopback only; to let other machines publish, add tokens (livegate token new, then auth.tokens in the config) or a signing key (auth.signing_keys)")
	default:
		log.Warn("auth.allow_anonymous: anyone who reaches livegate may publish to every destination, without a token; to require one, add tokens (livegate token new, then auth.tokens in the config) and remove allow_anonymous",
			"urls", strings.Join(urls, " "))
	}
}

// logAdmin says whether the admin API is on, and warns when its token may cross a network
// in clear.
func logAdmin(log *slog.Logger, cfg *config.Config) {
	switch {
	case !cfg.Admin.Enabled():
		log.Debug("the admin API is off (no admin.token_hash in the config)")
	case !cfg.TLS.Enabled() && !cfg.LoopbackOnly():
		log.Warn("the admin API is on, over plain HTTP on an address other machines reach: its token crosses the network in clear unless a proxy in front of livegate speaks HTTPS; serve HTTPS (tls: in the config) or reach livegate through such a proxy only")
	default:
		log.Info("the admin API is on", "path", "/api/v1/admin/sessions")
	}
}

// tlsCertificate returns the certificate to serve HTTPS with, if any, and the
// Strict-Transport-Security max-age to send with it. A self-signed certificate gets no
// Strict-Transport-Security: a browser that came to trust one certificate would then
// refuse the next start's, with no way past the warning.
func tlsCertificate(cfg *config.Config) (*tls.Certificate, time.Duration, error) {
	switch {
	case cfg.TLS.SelfSigned:
		names := server.SelfSignedNames(cfg.Listen, cfg.TLS.Listen)
		cert, err := server.NewSelfSigned(names, time.Now())
		if err != nil {
			return nil, 0, fmt.Errorf("make the self-signed TLS certificate (or give tls.cert and tls.key in the config): %w", err)
		}
		return cert, 0, nil
	case cfg.TLS.Certificate != nil:
		return cfg.TLS.Certificate, hstsMaxAge, nil
	}
	return nil, 0, nil
}
