package load

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"sort"
	"strconv"
	"strings"
)

// metrics is one scrape of livegate's /metrics: each sample line's value
// by its series ("name{labels}", as written).
type metrics map[string]float64

// parseMetrics reads the Prometheus text format (comments and blank lines
// are skipped; a line that does not parse is left out).
func parseMetrics(text string) metrics {
	m := make(metrics)
	for line := range strings.SplitSeq(text, "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		m[line[:i]] = v
	}
	return m
}

// scrapeMetrics fetches url (http://host/metrics).
func scrapeMetrics(ctx context.Context, client *http.Client, url string) (metrics, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("metrics: GET %s: %s", url, resp.Status)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	return parseMetrics(string(body)), nil
}

// sum adds the values of every series of the metric name (any labels).
func (m metrics) sum(name string) float64 {
	var total float64
	for k, v := range m {
		if k == name || strings.HasPrefix(k, name+"{") {
			total += v
		}
	}
	return total
}

// byLabel gives the values of the series of name by the value of one
// label ("code" of livegate_session_errors_total).
func (m metrics) byLabel(name, label string) map[string]float64 {
	out := make(map[string]float64)
	for k, v := range m {
		rest, ok := strings.CutPrefix(k, name+"{")
		if !ok {
			continue
		}
		out[labelValue(rest, label)] += v
	}
	return out
}

// labelValue finds label="value" in a series' label list.
func labelValue(labels, label string) string {
	_, after, ok := strings.Cut(labels, label+`="`)
	if !ok {
		return ""
	}
	v, _, _ := strings.Cut(after, `"`)
	return v
}

// histogram is a Prometheus histogram's cumulative buckets, summed over
// its label sets: upper bound -> count.
type histogram map[float64]float64

// histogramOf reads the buckets of name (its "_bucket" series).
func (m metrics) histogramOf(name string) histogram {
	h := make(histogram)
	for k, v := range m {
		rest, ok := strings.CutPrefix(k, name+"_bucket{")
		if !ok {
			continue
		}
		le := labelValue(rest, "le")
		b, err := strconv.ParseFloat(le, 64) // "+Inf" parses as +Inf
		if err != nil {
			continue
		}
		h[b] += v
	}
	return h
}

// minus is h - base, bucket by bucket: what was observed in between.
func (h histogram) minus(base histogram) histogram {
	out := make(histogram, len(h))
	for b, v := range h {
		out[b] = v - base[b]
	}
	return out
}

// quantile estimates the q-quantile as Prometheus' histogram_quantile does:
// linear within the bucket it falls in. ok is false without observations.
func (h histogram) quantile(q float64) (v float64, ok bool) {
	bounds := make([]float64, 0, len(h))
	for b := range h {
		bounds = append(bounds, b)
	}
	sort.Float64s(bounds)
	if len(bounds) == 0 {
		return 0, false
	}
	total := h[bounds[len(bounds)-1]]
	if total <= 0 {
		return 0, false
	}
	rank := q * total
	prevBound, prevCount := 0.0, 0.0
	for _, b := range bounds {
		c := h[b]
		if c >= rank {
			if math.IsInf(b, 1) {
				return prevBound, true // above the largest finite bound
			}
			if c == prevCount {
				return b, true
			}
			return prevBound + (b-prevBound)*(rank-prevCount)/(c-prevCount), true
		}
		prevBound, prevCount = b, c
	}
	return prevBound, true
}
