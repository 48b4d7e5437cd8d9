package metrics

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// The paths Handler serves.
const (
	PathMetrics = "/metrics"
	PathHealthz = "/healthz"
	PathReadyz  = "/readyz"
)

// readyTimeout bounds one readiness check.
const readyTimeout = 2 * time.Second

// Handler serves a worker process's operational endpoints:
//
//	GET /metrics  g in the Prometheus exposition format
//	GET /healthz  200 "ok" while the process serves (liveness: it does not
//	              depend on Redis, so a Redis outage does not restart workers)
//	GET /readyz   200 "ready" when ready returns nil, else 503 with its error
//
// ready is called with a context that ends after two seconds.
func Handler(g prometheus.Gatherer, ready func(context.Context) error) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET "+PathMetrics, promhttp.HandlerFor(g, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET "+PathHealthz, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET "+PathReadyz, func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
		defer cancel()
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if err := ready(ctx); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte("not ready: " + err.Error() + "\n"))
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	return mux
}

// NewServer returns an HTTP server for h at addr with timeouts fit for
// scrapes and probes: a slow or idle client cannot hold a connection.
func NewServer(addr string, h http.Handler) *http.Server {
	return &http.Server{
		Addr:              addr,
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second, // a scrape reads Redis; collectors stop at 3 s each
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
	}
}

// ProtectMetrics returns h with PathMetrics behind a bearer token: a request
// for it (in any spelling that cleans to it) without "Authorization: Bearer
// token" gets 401 and never reaches h. Other paths (/healthz and /readyz,
// which probes call without credentials, serve's webhooks, which have their
// own authentication) pass through. The token is compared in constant time
// (of its SHA-256, so its length does not show either) and never written
// anywhere. An empty token returns h unchanged.
func ProtectMetrics(token string, h http.Handler) http.Handler {
	if token == "" {
		return h
	}
	want := sha256.Sum256([]byte(token))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if path.Clean("/"+r.URL.Path) != PathMetrics {
			h.ServeHTTP(w, r)
			return
		}
		scheme, got, ok := strings.Cut(r.Header.Get("Authorization"), " ")
		sum := sha256.Sum256([]byte(strings.TrimSpace(got)))
		if subtle.ConstantTimeCompare(sum[:], want[:]) != 1 || !ok || !strings.EqualFold(scheme, "Bearer") {
			w.Header().Set("WWW-Authenticate", `Bearer realm="orgconn metrics"`)
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte("unauthorized: /metrics needs Authorization: Bearer <the metrics token>\n"))
			return
		}
		h.ServeHTTP(w, r)
	})
}
