package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"syscall"
	"time"

	"github.com/orgconn/orgconn/cmd/orgconn/internal/assembly"
	"github.com/orgconn/orgconn/jobs"
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

The worker serves, on --metrics-addr:
  GET /metrics  Prometheus metrics; with a metrics token (ORGCONN_METRICS_TOKEN
                or --metrics-token-file) only to "Authorization: Bearer <token>"
  GET /healthz  200 while the process runs
  GET /readyz   200 while it works on the queue and Redis answers, else 503
The default, 127.0.0.1:9464, is this machine only; when another worker on this
machine holds it, the worker takes a free loopback port instead and logs it
("serving metrics" addr=…). Other hosts reach it only when asked:
--metrics-addr :9464 (or 0.0.0.0:9464) listens on every interface. An address
given explicitly that is taken is an error; --metrics-addr '' serves nothing.

--read says when this worker reads an organization's connections (one list
call, from the read budget) before its first write to it: never, auto (read
when the read is expected to save more write time than it costs, from the
learned read and write paces and the batch's rows for the organization) or
always. Without --read the worker follows each batch's mode (orgconn import
--read; auto for batches that have none). Knowing the state, a worker skips
changes already in effect (outcome "unchanged"), sends an enable of an
existing pair as one PATCH, and records each pair's prior state for orgconn
rollback. A read older than --state-max-age, or a write refused because the
state moved (404, 409), is read again or written blind, never trusted.

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
	apiFlag := f.withAPIMode()
	concurrency := f.Int("concurrency", worker.DefaultConcurrency, "changes worked on at once by this process (1 or more)")
	maxAttempts := f.Int("max-attempts", worker.DefaultMaxAttempts, "failed attempts (5xx, network, timeout) before a change is dead-lettered (1 or more)")
	readFlag := f.String("read", e.getenv("ORGCONN_READ"), "when to read an organization's connections before writing to it: never, auto or always; empty follows each batch's mode (env ORGCONN_READ)")
	stateMaxAge := f.Duration("state-max-age", worker.DefaultStateMaxAge, "the oldest read of an organization's connections the worker trusts")
	metricsAddr := f.String("metrics-addr", envOr(e, "ORGCONN_METRICS_ADDR", defaultMetricsAddr), "address of /metrics, /healthz and /readyz: loopback unless asked (:9464 is every interface); a taken default falls back to a free loopback port; empty: none (env ORGCONN_METRICS_ADDR)")
	mt := f.withMetricsToken()
	maxCrashes := f.Int("max-crashes", worker.DefaultMaxCrashes, "times in a row a worker may stop (crash, OOM kill) while acting on one change before it is dead-lettered as crashed_worker (1 or more)")
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
	case *maxCrashes < 1:
		return errorf(e, exitUsage, "worker: --max-crashes %d: want 1 or more", *maxCrashes)
	case *orphanCheck < 0:
		return errorf(e, exitUsage, "worker: --orphan-check %v: want a positive interval, or 0 for none", *orphanCheck)
	case *stateMaxAge <= 0:
		return errorf(e, exitUsage, "worker: --state-max-age %v: want a positive duration", *stateMaxAge)
	}
	var readMode jobs.ReadMode
	if *readFlag != "" {
		m, err := jobs.ParseReadMode(*readFlag)
		if err != nil {
			return errorf(e, exitUsage, "worker: --read: %v", err)
		}
		readMode = m
	}
	mode, err := apiMode(*apiFlag)
	if err != nil {
		return errorf(e, exitUsage, "worker: %v", err)
	}
	log, err := f.logger()
	if err != nil {
		return errorf(e, exitUsage, "worker: %v", err)
	}
	metricsToken, err := mt.token(e)
	if err != nil {
		return errorf(e, exitUsage, "worker: %v", err)
	}
	// Only the default may fall back to another port: an address someone
	// chose is where they will scrape.
	explicitMetricsAddr := e.getenv("ORGCONN_METRICS_ADDR") != ""
	f.Visit(func(fl *flag.Flag) { explicitMetricsAddr = explicitMetricsAddr || fl.Name == "metrics-addr" })
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
		Start: start, Override: a.overrides(), APITimeout: a.timeout, UserAgent: userAgent(), APIMode: mode,
		Worker: worker.Config{
			Queue: q.queue, Concurrency: *concurrency, MaxAttempts: *maxAttempts, MaxCrashes: *maxCrashes,
			OrphanCheck: *orphanCheck, NoOrphanCheck: *orphanCheck == 0,
			ReadMode: readMode, StateMaxAge: *stateMaxAge,
		},
		Logger: log,
	})
	if err != nil {
		return errorf(e, exitUnavailable, "worker: %v", err)
	}
	defer w.Close()
	stopMetrics, err := serveMetrics(metricsServer{addr: *metricsAddr, explicit: explicitMetricsAddr, token: metricsToken}, w.Registry, w.Ready, log)
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

// metricsServer says where and how serveMetrics serves.
type metricsServer struct {
	addr string
	// explicit: addr was chosen (flag or environment), so a taken addr is
	// an error rather than a reason to fall back to a free loopback port.
	explicit bool
	// token, if not empty, must come with every GET /metrics as a bearer
	// token.
	token string
}

// serveMetrics serves /metrics, /healthz and /readyz as ms says until stop
// is called; an empty address serves nothing.
func serveMetrics(ms metricsServer, g prometheus.Gatherer, ready func(context.Context) error, log *slog.Logger) (stop func(), err error) {
	if ms.addr == "" {
		return func() {}, nil
	}
	ln, err := net.Listen("tcp", ms.addr)
	if err != nil && !ms.explicit && errors.Is(err, syscall.EADDRINUSE) {
		// Another worker on this machine has the default: take any free
		// loopback port, so that several workers start with no flags.
		var ferr error
		if ln, ferr = net.Listen("tcp", "127.0.0.1:0"); ferr == nil {
			log.Info("the default metrics address is taken (another worker on this machine?): serving on a free loopback port instead",
				"default", ms.addr, "addr", ln.Addr().String())
			err = nil
		}
	}
	if err != nil {
		return nil, fmt.Errorf("--metrics-addr %s: %w (give another address, leave --metrics-addr and ORGCONN_METRICS_ADDR unset for a free loopback port, or --metrics-addr '' for none)", ms.addr, err)
	}
	srv := metrics.NewServer(ms.addr, metrics.ProtectMetrics(ms.token, metrics.Handler(g, ready)))
	srv.ErrorLog = slog.NewLogLogger(log.Handler(), slog.LevelWarn)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server stopped", "err", err)
		}
	}()
	log.Info("serving metrics", "addr", ln.Addr().String(), "paths", metrics.PathMetrics+","+metrics.PathHealthz+","+metrics.PathReadyz,
		"metrics_token", ms.token != "", "loopback_only", isLoopback(ln.Addr()))
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			_ = srv.Close()
		}
		<-done
	}, nil
}

// isLoopback reports whether a listener's address is reachable from this
// machine only.
func isLoopback(a net.Addr) bool {
	tcp, ok := a.(*net.TCPAddr)
	return ok && tcp.IP.IsLoopback()
}
