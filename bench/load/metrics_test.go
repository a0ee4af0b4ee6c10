package load

import (
	"math"
	"testing"
)

const sampleMetrics = `# HELP go_goroutines Number of goroutines that currently exist.
# TYPE go_goroutines gauge
go_goroutines 42
livegate_destination_dropped_packets_total{destination="load"} 3
livegate_destination_dropped_packets_total{destination="other"} 2
livegate_session_errors_total{code="bad_media"} 1
livegate_session_errors_total{code="encoder_failed"} 4
livegate_ingest_to_publish_seconds_bucket{destination="load",le="0.005"} 10
livegate_ingest_to_publish_seconds_bucket{destination="load",le="0.01"} 50
livegate_ingest_to_publish_seconds_bucket{destination="load",le="0.02"} 90
livegate_ingest_to_publish_seconds_bucket{destination="load",le="0.04"} 100
livegate_ingest_to_publish_seconds_bucket{destination="load",le="+Inf"} 100
livegate_ingest_to_publish_seconds_sum{destination="load"} 1.2
livegate_ingest_to_publish_seconds_count{destination="load"} 100
`

func TestMetrics(t *testing.T) {
	m := parseMetrics(sampleMetrics)
	if m["go_goroutines"] != 42 {
		t.Errorf("go_goroutines = %v", m["go_goroutines"])
	}
	if v := m.sum("livegate_destination_dropped_packets_total"); v != 5 {
		t.Errorf("dropped = %v, want 5", v)
	}
	errs := m.byLabel("livegate_session_errors_total", "code")
	if errs["bad_media"] != 1 || errs["encoder_failed"] != 4 || len(errs) != 2 {
		t.Errorf("errors by code = %v", errs)
	}
	h := m.histogramOf("livegate_ingest_to_publish_seconds")
	for _, ca := range []struct{ q, want float64 }{{0.5, 0.01}, {0.1, 0.005}, {0.3, 0.0075}, {0.99, 0.038}} {
		if v, ok := h.quantile(ca.q); !ok || math.Abs(v-ca.want) > 1e-9 {
			t.Errorf("quantile %v = %v, want %v", ca.q, v, ca.want)
		}
	}
	base := parseMetrics(`livegate_ingest_to_publish_seconds_bucket{destination="load",le="0.005"} 10
livegate_ingest_to_publish_seconds_bucket{destination="load",le="0.01"} 10
livegate_ingest_to_publish_seconds_bucket{destination="load",le="0.02"} 10
livegate_ingest_to_publish_seconds_bucket{destination="load",le="0.04"} 10
livegate_ingest_to_publish_seconds_bucket{destination="load",le="+Inf"} 10
`).histogramOf("livegate_ingest_to_publish_seconds")
	// 0, 40, 80, 90, 90: the 45th of 90 is in (0.01, 0.02], 5 of its 40.
	if v, ok := h.minus(base).quantile(0.5); !ok || math.Abs(v-0.01125) > 1e-9 {
		t.Errorf("quantile of the difference = %v", v)
	}
	if _, ok := base.minus(base).quantile(0.5); ok {
		t.Error("a quantile of nothing")
	}
}
