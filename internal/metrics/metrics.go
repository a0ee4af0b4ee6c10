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
	Reconnects     *prometheus.CounterVec // by destination
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
		Reconnects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "livegate_destination_reconnects_total", Help: "Times a publisher lost its destination and reconnected.",
		}, []string{"destination"}),
	}
	m.Registry.MustRegister(
		m.SessionsActive, m.SessionsTotal, m.SessionErrors, m.BytesIn, m.BytesOut, m.Dropped, m.DestinationUp, m.Reconnects,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{})
}
