package metrics_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/orgconn/orgconn/worker/metrics"
)

func TestProtectMetricsNeedsTheBearerToken(t *testing.T) {
	const token = "metrics-token-0123456789abcdef"
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "reached "+r.URL.Path) })
	srv := httptest.NewServer(metrics.ProtectMetrics(token, ok))
	t.Cleanup(srv.Close)
	for _, tc := range []struct {
		path, auth string
		want       int
	}{
		{"/metrics", "", http.StatusUnauthorized},
		{"/metrics", "Bearer wrong-token-0123456789abcdef", http.StatusUnauthorized},
		{"/metrics", "Bearer " + token[:len(token)-1], http.StatusUnauthorized},
		{"/metrics", "Bearer " + token + "x", http.StatusUnauthorized},
		{"/metrics", "Basic " + token, http.StatusUnauthorized},
		{"/metrics", token, http.StatusUnauthorized},
		{"/metrics", "Bearer", http.StatusUnauthorized},
		{"/metrics/", "", http.StatusUnauthorized},
		{"//metrics", "", http.StatusUnauthorized},
		{"/x/../metrics", "", http.StatusUnauthorized},
		{"/%6Detrics", "", http.StatusUnauthorized},
		{"/metrics", "Bearer " + token, http.StatusOK},
		{"/metrics", "bearer " + token, http.StatusOK},
		{"/healthz", "", http.StatusOK},
		{"/readyz", "", http.StatusOK},
	} {
		req, err := http.NewRequest(http.MethodGet, srv.URL+tc.path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if tc.auth != "" {
			req.Header.Set("Authorization", tc.auth)
		}
		// No redirects: a cleaned path must be refused, not followed.
		resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("GET %s with %q: %d %q, want %d", tc.path, tc.auth, resp.StatusCode, body, tc.want)
		}
		if resp.StatusCode == http.StatusUnauthorized && resp.Header.Get("WWW-Authenticate") == "" {
			t.Errorf("GET %s: 401 without WWW-Authenticate", tc.path)
		}
	}
	if h := metrics.ProtectMetrics("", ok); h == nil {
		t.Fatal("ProtectMetrics with no token returned nil")
	}
}
