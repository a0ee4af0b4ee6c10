package main

import (
	"log/slog"
	"slices"
	"strings"

	"github.com/livegate/livegate/internal/config"
	"github.com/livegate/livegate/internal/ingest/mediarecorder"
	"github.com/livegate/livegate/internal/metrics"
	"github.com/livegate/livegate/internal/receiver"
	"github.com/livegate/livegate/internal/server"
)

// reloader applies the configuration file, read again on SIGHUP, to the running
// livegate, without ending a broadcast: each broadcast in progress keeps what it began
// with (its destinations, its profile, its limits), and the next ones take the new
// settings.
type reloader struct {
	log   *slog.Logger
	level *slog.LevelVar                 // nil: the log level stays
	load  func() (*config.Config, error) // nil: nothing to read again
	rcv   *receiver.Receiver             // nil when disabled
	pub   *mediarecorder.Handler
	srv   *server.Server
	m     *metrics.Metrics
	cur   *config.Config // the running configuration
	urls  []string       // the studio page's, for logAuth
}

// reload reads the configuration again and applies it; a file that cannot be read or is
// not valid is refused with each problem logged, and the running configuration stays.
// What changed is logged by name, never by value.
func (r *reloader) reload() {
	log := r.log
	if r.load == nil {
		log.Warn("configuration reload: there is nothing to read again")
		return
	}
	log.Info("configuration reload: reading the configuration again (SIGHUP)")
	rl, cat, settings, err := r.prepare()
	if err != nil {
		r.m.ConfigReloads.WithLabelValues("error").Inc()
		for _, line := range strings.Split(err.Error(), "\n") {
			log.Error("configuration reload refused", "problem", line)
		}
		log.Error("configuration reload refused: livegate goes on with the configuration it had; fix the file and reload again (SIGHUP)")
		return
	}
	for _, f := range rl.Ignored {
		log.Warn("configuration reload: this change needs a restart, and is ignored until then", "field", f)
	}
	next := rl.Config
	if slices.Contains(rl.Changed, "tls certificate") {
		if err := r.srv.SetCertificate(next.TLS.Certificate); err != nil {
			// The certificate was read and checked: this is not expected.
			r.m.ConfigReloads.WithLabelValues("error").Inc()
			log.Error("configuration reload refused: the new TLS certificate cannot be served; livegate goes on with the configuration it had", "error", err)
			return
		}
	}
	r.pub.Reconfigure(settings)
	r.srv.SetCatalog(cat.infos, cat.profileInfos)
	r.srv.SetAdminToken(adminHash(next.Admin))
	if r.level != nil {
		setLevel(r.level, next.Log.Level)
	}
	r.cur = next
	r.m.ConfigReloads.WithLabelValues("ok").Inc()
	if len(rl.Changed) == 0 {
		log.Info("configuration reloaded: nothing changed")
		return
	}
	for _, c := range rl.Changed {
		if strings.HasPrefix(c, "auth.") {
			logAuth(log, next, r.urls)
			break
		}
	}
	if slices.Contains(rl.Changed, "admin.token_hash") {
		logAdmin(log, next)
	}
	log.Info("configuration reloaded: broadcasts in progress keep what they began with; new ones take the new settings",
		"changed", strings.Join(rl.Changed, "; "))
}

// prepare reads the configuration again and makes everything the reload applies, so
// that a problem refuses the whole of it.
func (r *reloader) prepare() (*config.Reload, *catalog, mediarecorder.Settings, error) {
	next, err := r.load()
	if err != nil {
		return nil, nil, mediarecorder.Settings{}, err
	}
	rl, err := r.cur.Reload(next)
	if err != nil {
		return nil, nil, mediarecorder.Settings{}, err
	}
	cat, err := catalogOf(rl.Config, r.rcv)
	if err != nil {
		return nil, nil, mediarecorder.Settings{}, err
	}
	settings, err := publishSettings(rl.Config, cat.dests, cat.profiles)
	if err != nil {
		return nil, nil, mediarecorder.Settings{}, err
	}
	return rl, cat, settings, nil
}
