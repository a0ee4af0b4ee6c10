// Package metrics holds livegate's Prometheus collectors on a registry of
// its own (never the global one), so tests can run several servers side by
// side.
package metrics

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics are the collectors every stage reports to.
type Metrics struct {
	Registry       *prometheus.Registry
	SessionsActive prometheus.Gauge
	SessionsTotal  prometheus.Counter
	SessionErrors  *prometheus.CounterVec // by error code
	BytesIn        prometheus.Counter
	BytesOut       *prometheus.CounterVec // by destination
	Dropped        *prometheus.CounterVec // by destination
	DestinationUp  *prometheus.GaugeVec   // publishers live, by destination
	// Publishers counts the publishers of the broadcasts in progress, in any state, by
	// destination: with DestinationUp, how many are not live.
	Publishers *prometheus.GaugeVec
	Reconnects *prometheus.CounterVec // by destination
	// PublishDelay is the time from a packet's arrival at livegate to its
	// write to a destination's connection.
	PublishDelay *prometheus.HistogramVec // by destination
	Resumes      prometheus.Counter
	Restarts     prometheus.Counter
	// EncoderRestarts counts the ffmpeg children started again after they died
	// mid-broadcast.
	EncoderRestarts prometheus.Counter
	// Draining is 1 from SIGTERM (or Ctrl-C) until livegate exits.
	Draining prometheus.Gauge
	// ConfigReloads counts SIGHUP reloads, by result: ok or error.
	ConfigReloads *prometheus.CounterVec
	// AdminRefused counts the admin API calls refused, by reason: unauthorized (no
	// token or a wrong one) or insecure (over plain HTTP from another machine).
	AdminRefused *prometheus.CounterVec
}

// New makes the collectors and registers them with a fresh registry.
func New() *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		SessionsActive: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "livegate_sessions_active", Help: "Broadcasts in progress.",
		}),
		SessionsTotal: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "livegate_sessions_total", Help: "Broadcasts started since livegate started.",
		}),
		SessionErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "livegate_session_errors_total", Help: "Broadcasts ended with an error, by protocol error code.",
		}, []string{"code"}),
		BytesIn: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "livegate_ingest_bytes_total", Help: "Media bytes received from browsers.",
		}),
		BytesOut: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "livegate_destination_bytes_total", Help: "Bytes sent to each destination.",
		}, []string{"destination"}),
		Dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "livegate_destination_dropped_packets_total", Help: "Packets dropped because a destination could not keep up.",
		}, []string{"destination"}),
		DestinationUp: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "livegate_destination_live", Help: "Publishers currently live, by destination.",
		}, []string{"destination"}),
		Publishers: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "livegate_destination_publishers", Help: "Publishers of the broadcasts in progress, live or not, by destination.",
		}, []string{"destination"}),
		Reconnects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "livegate_destination_reconnects_total", Help: "Times a publisher lost its destination and reconnected.",
		}, []string{"destination"}),
		PublishDelay: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "livegate_ingest_to_publish_seconds",
			Help: "Time from a frame's arrival at livegate to its write to a destination (includes the audio encoder for transcoded tracks).",
			// 5 ms to 10 s: the good case is tens of milliseconds; a slow
			// destination's backlog shows up as seconds.
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 12),
		}, []string{"destination"}),
		Resumes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "livegate_session_resumes_total", Help: "Broadcasts taken over by a new WebSocket after a network loss.",
		}),
		Restarts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "livegate_stream_restarts_total", Help: "New streams started inside a broadcast (a MediaRecorder restarted at another bitrate, or a resume).",
		}),
		EncoderRestarts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "livegate_encoder_restarts_total", Help: "ffmpeg children started again after they died mid-broadcast.",
		}),
		Draining: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "livegate_draining", Help: "1 while livegate drains after SIGTERM: it takes no new broadcasts and ends the live ones at the end of shutdown_grace.",
		}),
		ConfigReloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "livegate_config_reloads_total", Help: "Configuration reloads (SIGHUP), by result: ok, or error (the file was refused and the running configuration kept).",
		}, []string{"result"}),
		AdminRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "livegate_admin_refused_total", Help: "Admin API calls refused, by reason: unauthorized (no token or a wrong one), insecure (plain HTTP from another machine while HTTPS is served).",
		}, []string{"reason"}),
	}
	// The series of each label value exist from the start, at 0, so that rate() and
	// alerts see the first increase.
	for _, r := range []string{"ok", "error"} {
		m.ConfigReloads.WithLabelValues(r)
	}
	for _, r := range []string{"unauthorized", "insecure"} {
		m.AdminRefused.WithLabelValues(r)
	}
	m.Registry.MustRegister(
		m.SessionsActive, m.SessionsTotal, m.SessionErrors, m.BytesIn, m.BytesOut, m.Dropped, m.DestinationUp, m.Publishers, m.Reconnects,
		m.PublishDelay, m.Resumes, m.Restarts, m.EncoderRestarts, m.Draining, m.ConfigReloads, m.AdminRefused,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{})
}
