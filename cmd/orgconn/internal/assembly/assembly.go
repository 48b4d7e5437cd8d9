// Package assembly builds one worker process out of orgconn's parts: the
// fleet's shared rate limiter, the fleet's shared token, a Management API
// client paced by the limiter, a Prometheus registry with the worker's
// metrics and collectors, and the worker itself. "orgconn worker", the demo
// and the bench's in-process workers all run this one assembly, so the demo
// and the bench exercise the path production takes.
package assembly

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
	"github.com/orgconn/orgconn/jobs"
	"github.com/orgconn/orgconn/worker"
	"github.com/orgconn/orgconn/worker/ledger"
	"github.com/orgconn/orgconn/worker/metrics"
	"github.com/orgconn/orgconn/worker/mgmt"
	"github.com/orgconn/orgconn/worker/ratelimit"
	"github.com/orgconn/orgconn/worker/tokencache"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/redis/go-redis/v9"
)

// Config is what a worker process is built from.
type Config struct {
	// Redis holds the queue, the ledger, the fleet's budget and its token.
	// Required.
	Redis redis.UniversalClient
	// Ledger is the record of accepted changes; its prefix also names the
	// fleet's shared budget and token. Required.
	Ledger *ledger.Ledger
	// BaseURL is the tenant's Management API base URL (mgmt.BaseURL).
	// Required.
	BaseURL string
	// Tokens are the credentials. Client credentials (*mgmt.ClientCredentials)
	// are shared by the fleet through Redis: one token for every process.
	// Required.
	Tokens mgmt.TokenSource
	// Start is the budget the limiter starts from until it has learned the
	// tenant's; Override makes it replace a learned one (--rate, --burst).
	Start    ratelimit.Buckets
	Override bool
	// APITimeout bounds one Management API request. Zero means the
	// client's default.
	APITimeout time.Duration
	// UserAgent names the caller. Empty means the client's default.
	UserAgent string
	// Worker is the worker's configuration. Its Redis, Ledger, API,
	// Limiter, Budget and Logger are set by New; Observe, if set, is called besides
	// the metrics.
	Worker worker.Config
	// Logger receives the worker's, the limiter's and the collectors'
	// logs. Nil means slog.Default().
	Logger *slog.Logger
}

// Worker is an assembled worker process. Start, Shutdown and Close it in
// that order.
type Worker struct {
	*worker.Worker
	// Limiter is the process's view of the fleet's budget.
	Limiter *ratelimit.Limiter
	// API is the paced Management API client the worker calls.
	API *mgmt.Client
	// Registry holds the worker's metrics, the limiter's and the queue's
	// collectors and the Go and process collectors: serve it at /metrics.
	Registry *prometheus.Registry

	redis   redis.UniversalClient
	working atomic.Bool
}

// New builds a worker process. It checks the credentials by getting a
// token, so that a bad secret fails here rather than change by change. The
// caller still owns cfg.Redis; Close releases what New made.
func New(ctx context.Context, cfg Config) (_ *Worker, err error) {
	if cfg.Redis == nil || cfg.Ledger == nil || cfg.Tokens == nil || cfg.BaseURL == "" {
		return nil, errors.New("assembly: Config.Redis, Config.Ledger, Config.Tokens and Config.BaseURL are required")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	prefix := cfg.Ledger.Prefix()
	tokens := cfg.Tokens
	if cc, ok := tokens.(*mgmt.ClientCredentials); ok {
		// One token for the whole fleet: the token endpoint has its own
		// small rate limit.
		tokens = tokencache.New(cfg.Redis, prefix, cc.Identity(), cc)
	}
	lim, err := ratelimit.New(ctx, ratelimit.Config{
		Redis: cfg.Redis, Prefix: prefix, Tenant: ratelimit.TenantOf(cfg.BaseURL),
		Start: cfg.Start, Override: cfg.Override, Logger: log,
	})
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			lim.Close()
		}
	}()
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg)
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		metrics.NewLimiterCollector(lim, log), metrics.NewQueueCollector(asynq.NewInspectorFromRedisClient(cfg.Redis), log, cmp.Or(cfg.Worker.Queue, worker.DefaultQueue)))

	tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if _, err := tokens.Token(tctx); err != nil {
		return nil, fmt.Errorf("check credentials: %w", err)
	}
	api, err := mgmt.New(mgmt.Config{BaseURL: cfg.BaseURL, Tokens: tokens, Pacer: m.Pacer(lim), Timeout: cfg.APITimeout, UserAgent: cfg.UserAgent})
	if err != nil {
		return nil, err
	}

	wc := cfg.Worker
	wc.Redis, wc.Ledger, wc.API, wc.Limiter, wc.Logger = cfg.Redis, cfg.Ledger, api, lim, log
	wc.Budget = lim
	wc.Observe = m.Task
	if also := cfg.Worker.Observe; also != nil {
		wc.Observe = func(a jobs.Action, o worker.Outcome) { m.Task(a, o); also(a, o) }
	}
	w, err := worker.New(wc)
	if err != nil {
		return nil, err
	}
	m.SetWorker(w.Config().Queue, w.Config().Concurrency)
	return &Worker{Worker: w, Limiter: lim, API: api, Registry: reg, redis: cfg.Redis}, nil
}

// Start begins taking tasks; from then on Ready reports the worker ready
// while Redis answers.
func (w *Worker) Start() error {
	if err := w.Worker.Start(); err != nil {
		return err
	}
	w.working.Store(true)
	return nil
}

// Shutdown makes the worker not ready, then stops it gracefully
// (worker.Worker.Shutdown).
func (w *Worker) Shutdown() {
	w.working.Store(false)
	w.Worker.Shutdown()
}

// Close releases the limiter. Call it after Shutdown.
func (w *Worker) Close() { w.Limiter.Close() }

// Ready returns nil while the worker takes tasks and Redis answers: the
// readiness probe (/readyz).
func (w *Worker) Ready(ctx context.Context) error {
	if !w.working.Load() {
		return errors.New("the worker is not working on the queue (starting or stopping)")
	}
	return w.redis.Ping(ctx).Err()
}
