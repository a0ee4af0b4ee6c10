package testutil

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// MetricValue is the value of one sample line of a Prometheus text
// endpoint ("name{labels}"), or "" when it is absent.
func MetricValue(t testing.TB, h http.Handler, line string) string {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	for l := range strings.SplitSeq(rec.Body.String(), "\n") {
		if v, ok := strings.CutPrefix(l, line+" "); ok {
			return v
		}
	}
	return ""
}
