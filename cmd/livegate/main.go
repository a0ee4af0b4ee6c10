// Command livegate lets a person go live from a web page: it takes the
// browser's stream over a WebSocket and publishes it over RTMP(S) to the
// destinations the operator configured.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/livegate/livegate/internal/config"
	"github.com/livegate/livegate/internal/ingest/mediarecorder"
	"github.com/livegate/livegate/internal/metrics"
	"github.com/livegate/livegate/internal/receiver"
	"github.com/livegate/livegate/internal/server"
	"github.com/livegate/livegate/internal/session"
	"github.com/livegate/livegate/internal/transcode"
	"github.com/livegate/livegate/web"
)

// shutdownGrace bounds how long livegate waits for broadcasts to end after
// SIGTERM or Ctrl-C.
const shutdownGrace = 10 * time.Second

func main() {
	if err := run(os.Args[1:], os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "livegate:", err)
			os.Exit(1)
		}
	}
}

func run(args []string, stderr io.Writer) error {
	fl := flag.NewFlagSet("livegate", flag.ContinueOnError)
	fl.SetOutput(stderr)
	fl.Usage = func() {
		fmt.Fprintf(stderr, "Usage: livegate [flags]\n\nlivegate publishes a browser's camera and microphone to RTMP(S) destinations.\nWith no flags it runs on defaults: the studio page on http://127.0.0.1:8080 and\nthe built-in RTMP receiver as its one destination.\n\nFlags:\n")
		fl.PrintDefaults()
	}
	configPath := fl.String("config", "", "YAML configuration `file` (all fields optional; see docs/config.example.yaml)")
	listen := fl.String("listen", "", "HTTP listen `address`, overrides listen: in the config (default 127.0.0.1:8080)")
	receiverListen := fl.String("receiver-listen", "", "built-in RTMP receiver `address`, overrides receiver.listen (default 127.0.0.1:1935)")
	logLevel := fl.String("log-level", "", "log `level`: debug, info, warn or error (overrides log.level)")
	logFormat := fl.String("log-format", "", "log `format`: text or json (overrides log.format)")
	if err := fl.Parse(args); err != nil {
		return err
	}
	if fl.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q; see livegate -help", fl.Arg(0))
	}

	cfg := config.Default()
	if *configPath != "" {
		var err error
		if cfg, err = config.Load(*configPath); err != nil {
			return err
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
	if err := cfg.Validate(); err != nil {
		return err
	}
	ffmpeg, err := exec.LookPath(cfg.FFmpeg.Path)
	if err != nil {
		return fmt.Errorf("ffmpeg is needed for audio (Opus to AAC) and VP8 video: install it (apt-get install ffmpeg) or set ffmpeg.path in the config: %w", err)
	}
	cfg.FFmpeg.Path = ffmpeg
	log := newLogger(cfg.Log, stderr)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return serve(ctx, cfg, log)
}

func newLogger(c config.Log, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(c.Level)) // validated by config
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func serve(ctx context.Context, cfg *config.Config, log *slog.Logger) error {
	var rcv *receiver.Receiver
	if cfg.Receiver.Enabled {
		rcv = &receiver.Receiver{Listen: cfg.Receiver.Listen, Log: log.With("component", "receiver")}
		if err := rcv.Initialize(); err != nil {
			return err
		}
		defer rcv.Close()
	}

	dests := make(map[string]mediarecorder.Destination, len(cfg.Destinations))
	var infos []server.DestinationInfo
	for name, d := range cfg.Destinations {
		md := mediarecorder.Destination{Name: name, KeyFromClient: d.KeyFromClient, Profile: d.Profile, Profiles: d.Profiles}
		if d.Builtin {
			u, err := url.Parse(fmt.Sprintf("rtmp://%s/live#%s", rcv.Addr().String(), name))
			if err != nil {
				return fmt.Errorf("destination %s: %w", name, err)
			}
			md.Target = func(key string) (*url.URL, error) {
				if key != "" {
					return nil, fmt.Errorf("destination %q takes no stream key", name)
				}
				return u, nil
			}
		} else {
			if !d.KeyFromClient {
				// Check the operator's URL now, not at the first broadcast.
				if _, err := d.Target(""); err != nil {
					return fmt.Errorf("destination %s: %w", name, err)
				}
			}
			md.Target = d.Target
		}
		dests[name] = md
		infos = append(infos, server.DestinationInfo{Name: name, Description: d.Description, Builtin: d.Builtin,
			KeyFromClient: d.KeyFromClient, Profile: d.Profile, Profiles: d.Profiles})
	}
	profiles := make(map[string]session.Profile, len(cfg.Profiles))
	var profileInfos []server.ProfileInfo
	for _, name := range cfg.ProfileNames() {
		p := cfg.Profiles[name]
		profiles[name] = session.Profile{Name: name, Width: p.Width, Height: p.Height, FPS: p.FPS,
			VideoBitrate: p.VideoBitrate, AudioBitrate: p.AudioBitrate, KeyframeInterval: p.KeyframeInterval}
		profileInfos = append(profileInfos, server.ProfileInfo{Name: name, Width: p.Width, Height: p.Height, FPS: p.FPS, VideoBitrate: p.VideoBitrate})
	}

	m := metrics.New()
	pubCtx, cancelPub := context.WithCancel(context.Background())
	defer cancelPub()
	pub := &mediarecorder.Handler{
		Log:        log.With("component", "publish"),
		Metrics:    m,
		FFmpegPath: cfg.FFmpeg.Path,
		Encode: transcode.Options{
			VideoBitrate:     cfg.Encode.VideoBitrate,
			KeyframeInterval: cfg.Encode.KeyframeInterval,
			X264Preset:       cfg.Encode.X264Preset,
			AudioBitrate:     cfg.Encode.AudioBitrate,
			AudioSampleRate:  cfg.Encode.AudioSampleRate,
		},
		Destinations:      dests,
		Profiles:          profiles,
		MaxSessions:       cfg.Limits.MaxSessions,
		MaxMessageBytes:   cfg.Limits.MaxMessageBytes,
		FirstMediaTimeout: cfg.Limits.FirstMediaTimeout,
		IdleTimeout:       cfg.Limits.IdleTimeout,
		ResumeWindow:      cfg.Limits.ResumeWindow,
	}
	pub.Initialize(pubCtx)

	srv := &server.Server{
		Listen:       cfg.Listen,
		Log:          log.With("component", "http"),
		Static:       web.Files(),
		Publish:      pub,
		Metrics:      m.Handler(),
		Receiver:     rcv,
		Destinations: infos,
		Profiles:     profileInfos,
	}
	if err := srv.Initialize(); err != nil {
		return err
	}
	names := make([]string, 0, len(infos))
	for _, d := range infos {
		names = append(names, d.Name)
	}
	log.Info("livegate ready: open the studio page", "url", "http://"+srv.Addr().String()+"/", "destinations", strings.Join(names, ","))

	<-ctx.Done()
	log.Info("shutting down: ending broadcasts", "grace", shutdownGrace)
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	err := srv.Close(sctx)
	cancelPub()
	pub.Wait()
	log.Info("stopped")
	if err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return nil
}
