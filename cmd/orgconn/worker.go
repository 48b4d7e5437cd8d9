package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/orgconn/orgconn/cmd/orgconn/internal/assembly"
	"github.com/orgconn/orgconn/worker"
	"github.com/orgconn/orgconn/worker/metrics"
	"github.com/orgconn/orgconn/worker/ratelimit"
	"github.com/prometheus/client_golang/prometheus"
)

const workerSynopsis = `
Usage: orgconn worker [flags]

Applies queued changes through the Auth0 Management API until stopped
(SIGINT or SIGTERM: calls in flight finish, waiting changes go back to the
queue; nothing is lost). Run as many worker processes as you like against
one Redis: a pair's changes always take effect in the order they were
accepted.

With --metrics-addr (default :9090; empty turns it off) the worker serves
  GET /metrics  Prometheus metrics (unauthenticated: keep it on an internal network)
  GET /healthz  200 while the process runs
  GET /readyz   200 while it works on the queue and Redis answers, else 503

Shutdown waits up to 40 s for calls in flight: give a supervisor's grace
period (Kubernetes terminationGracePeriodSeconds) more than that.

Credentials come from the environment: AUTH0_DOMAIN and AUTH0_CLIENT_ID with
AUTH0_CLIENT_SECRET (or AUTH0_CLIENT_SECRET_FILE), or AUTH0_TOKEN. The
application needs the scopes read:, create:, update: and
delete:organization_connections.

Example:
  AUTH0_DOMAIN=acme.eu.auth0.com AUTH0_CLIENT_ID=… AUTH0_CLIENT_SECRET_FILE=/run/secrets/auth0 \
    orgconn worker --plan essentials`

func runWorker(ctx context.Context, e *env, args []string) int {
	f := newFlags(e, "worker", workerSynopsis).withLogging().withProfile()
	q := f.withQueue()
	a := f.withAPI()
	concurrency := f.Int("concurrency", worker.DefaultConcurrency, "changes worked on at once by this process (1 or more)")
	maxAttempts := f.Int("max-attempts", worker.DefaultMaxAttempts, "failed attempts (5xx, network, timeout) before a change is dead-lettered (1 or more)")
	metricsAddr := f.String("metrics-addr", envOr(e, "ORGCONN_METRICS_ADDR", ":9090"), "address of /metrics, /healthz and /readyz; empty: none (env ORGCONN_METRICS_ADDR)")
	orphanCheck := f.Duration("orphan-check", worker.DefaultOrphanCheck, "how often to put back tasks left active by a worker that died (its asynq lease expired); 0 turns the check off, leaving it to asynq (55 s to 2 min)")
	if code, ok := f.parse(args); !ok {
		return code
	}
	if f.NArg() != 0 {
		return errorf(e, exitUsage, "worker: unexpected argument %q", f.Arg(0))
	}
	switch {
	case *concurrency < 1:
		return errorf(e, exitUsage, "worker: --concurrency %d: want 1 or more", *concurrency)
	case *maxAttempts < 1:
		return errorf(e, exitUsage, "worker: --max-attempts %d: want 1 or more", *maxAttempts)
	case *orphanCheck < 0:
		return errorf(e, exitUsage, "worker: --orphan-check %v: want a positive interval, or 0 for none", *orphanCheck)
	}
	log, err := f.logger()
	if err != nil {
		return errorf(e, exitUsage, "worker: %v", err)
	}
	stopProfile, err := f.startProfile()
	if err != nil {
		return errorf(e, exitUsage, "worker: %v", err)
	}
	defer stopProfile()
	start, err := a.startBuckets()
	if err != nil {
		return errorf(e, exitUsage, "worker: %v", err)
	}
	base, tokens, err := a.credentials(e)
	if err != nil {
		return errorf(e, exitUsage, "worker: %v", err)
	}
	rdb, l, err := q.open(ctx)
	if err != nil {
		return errorf(e, exitUnavailable, "worker: %v", err)
	}
	defer rdb.Close()
	w, err := assembly.New(ctx, assembly.Config{
		Redis: rdb, Ledger: l, BaseURL: base, Tokens: tokens,
		Start: start, Override: a.overrides(), APITimeout: a.timeout, UserAgent: userAgent(),
		Worker: worker.Config{
			Queue: q.queue, Concurrency: *concurrency, MaxAttempts: *maxAttempts,
			OrphanCheck: *orphanCheck, NoOrphanCheck: *orphanCheck == 0,
		},
		Logger: log,
	})
	if err != nil {
		return errorf(e, exitUnavailable, "worker: %v", err)
	}
	defer w.Close()
	stopMetrics, err := serveMetrics(*metricsAddr, w.Registry, w.Ready, log)
	if err != nil {
		return errorf(e, exitUnavailable, "worker: %v", err)
	}
	defer stopMetrics()
	if st, err := w.Limiter.State(ctx); err == nil {
		log.Info("worker starting", "queue", w.Config().Queue, "concurrency", w.Config().Concurrency, "tenant", ratelimit.TenantOf(base), "budget", fmt.Sprint(st.Buckets))
	}
	if err := w.Start(); err != nil {
		return errorf(e, exitUnavailable, "worker: %v", err)
	}
	<-ctx.Done()
	w.Shutdown() // not ready while stopping; /healthz still answers
	st := w.Limiter.Stats()
	log.Info("worker stopped", "calls", st.Calls, "throttled", st.Throttled, "waited", st.Waited.Round(time.Millisecond))
	return exitOK
}

// serveMetrics serves /metrics, /healthz and /readyz at addr until stop is
// called; an empty addr serves nothing.
func serveMetrics(addr string, g prometheus.Gatherer, ready func(context.Context) error, log *slog.Logger) (stop func(), err error) {
	if addr == "" {
		return func() {}, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--metrics-addr %s: %w (a second worker on one machine needs its own --metrics-addr, or --metrics-addr '' for none)", addr, err)
	}
	srv := metrics.NewServer(addr, metrics.Handler(g, ready))
	srv.ErrorLog = slog.NewLogLogger(log.Handler(), slog.LevelWarn)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server stopped", "err", err)
		}
	}()
	log.Info("serving metrics", "addr", ln.Addr().String(), "paths", metrics.PathMetrics+","+metrics.PathHealthz+","+metrics.PathReadyz)
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			_ = srv.Close()
		}
		<-done
	}, nil
}
