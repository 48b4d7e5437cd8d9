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
	"strings"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
	"github.com/orgconn/orgconn/jobs"
	"github.com/orgconn/orgconn/worker"
	"github.com/orgconn/orgconn/worker/apimode"
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
	// APIMode is the configured API mode (--api): apimode.Legacy, apimode.Connections or
	// apimode.Auto, which New resolves at once (one probe through the paced client, unless
	// the fleet remembers the tenant's answer) and the worker again while undecided. Empty
	// means apimode.Legacy: no probe.
	APIMode apimode.Mode
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
	// APIMode resolves the tenant's API mode; the worker holds the same resolver.
	APIMode *apimode.Resolver
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
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg)
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	paced, err := NewAPI(ctx, APIConfig{
		Redis: cfg.Redis, Prefix: cfg.Ledger.Name(), BaseURL: cfg.BaseURL, Tokens: cfg.Tokens,
		Start: cfg.Start, Override: cfg.Override, APITimeout: cfg.APITimeout, UserAgent: cfg.UserAgent,
		Logger: log, Wrap: m.Pacer,
	})
	if err != nil {
		return nil, err
	}
	lim, api := paced.Limiter, paced.Client
	defer func() {
		if err != nil {
			lim.Close()
		}
	}()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		metrics.NewLimiterCollector(lim, log), metrics.NewQueueCollector(asynq.NewInspectorFromRedisClient(cfg.Redis), log, cmp.Or(cfg.Worker.Queue, worker.DefaultQueue)))

	mode := cfg.APIMode
	if mode == "" {
		mode = apimode.Legacy
	}
	tenant := ratelimit.TenantOf(cfg.BaseURL)
	resolver, err := apimode.NewResolver(apimode.Config{Mode: mode, Tenant: tenant, Store: apimode.NewStore(cfg.Redis, cfg.Ledger.Name(), 0), API: api, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("--api: %w", err)
	}
	if res, err := resolver.Resolve(ctx); err != nil {
		log.Warn("API mode not resolved at start; the worker tries again", "tenant", tenant, "configured", string(mode), "error", err)
	} else {
		log.Info("API mode", "tenant", tenant, "configured", string(mode), "mode", string(res.Mode), "source", string(res.Source))
	}

	wc := cfg.Worker
	wc.Redis, wc.Ledger, wc.API, wc.Limiter, wc.Logger = cfg.Redis, cfg.Ledger, api, lim, log
	wc.APIMode = resolver
	wc.Tenant = tenant
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
	return &Worker{Worker: w, Limiter: lim, API: api, APIMode: resolver, Registry: reg, redis: cfg.Redis}, nil
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

// APIConfig is what a paced Management API client is built from.
type APIConfig struct {
	// Redis holds the fleet's budget and token. Required.
	Redis redis.UniversalClient
	// Prefix is the key prefix of the fleet's budget and token, without
	// braces (ledger.Name(): the packages add their hash tag, and
	// `orgconn limits --prefix` reads the same keys). Required.
	Prefix string
	// BaseURL is the tenant's Management API base URL. Required.
	BaseURL string
	// Tokens are the credentials; client credentials are shared by the
	// fleet through Redis. Required.
	Tokens mgmt.TokenSource
	// Start and Override: see Config.
	Start    ratelimit.Buckets
	Override bool
	// APITimeout bounds one request; zero means the client's default.
	APITimeout time.Duration
	// UserAgent names the caller; empty means the client's default.
	UserAgent string
	// Logger receives the limiter's logs; nil means slog.Default().
	Logger *slog.Logger
	// Wrap, when not nil, decorates the pacer the client uses (metrics).
	Wrap func(mgmt.Pacer) mgmt.Pacer
}

// API is a Management API client paced by the fleet's shared budget:
// every call it makes waits for the budget every worker draws from.
type API struct {
	// Client makes the calls.
	Client *mgmt.Client
	// Limiter is the process's view of the fleet's budget. Stop it to make
	// calls waiting for budget give up; Close it when done.
	Limiter *ratelimit.Limiter
	counter *countingPacer
}

// NewAPI builds a paced client the way a worker's is built: the fleet's
// token (shared through Redis when the credentials are client
// credentials), the fleet's rate limiter, and a check of the credentials
// (one token fetch), so that a bad secret fails here. Close releases it.
func NewAPI(ctx context.Context, cfg APIConfig) (*API, error) {
	if cfg.Redis == nil || cfg.Prefix == "" || cfg.Tokens == nil || cfg.BaseURL == "" {
		return nil, errors.New("assembly: APIConfig.Redis, Prefix, Tokens and BaseURL are required")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	tokens := cfg.Tokens
	if cc, ok := tokens.(*mgmt.ClientCredentials); ok {
		// One token for the whole fleet: the token endpoint has its own
		// small rate limit.
		tokens = tokencache.New(cfg.Redis, cfg.Prefix, cc.Identity(), cc)
	}
	lim, err := ratelimit.New(ctx, ratelimit.Config{
		Redis: cfg.Redis, Prefix: cfg.Prefix, Tenant: ratelimit.TenantOf(cfg.BaseURL),
		Start: cfg.Start, Override: cfg.Override, Logger: log,
	})
	if err != nil {
		return nil, err
	}
	tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if _, err := tokens.Token(tctx); err != nil {
		lim.Close()
		return nil, fmt.Errorf("check credentials: %w", err)
	}
	counter := &countingPacer{next: lim}
	var pacer mgmt.Pacer = counter
	if cfg.Wrap != nil {
		pacer = cfg.Wrap(counter)
	}
	api, err := mgmt.New(mgmt.Config{BaseURL: cfg.BaseURL, Tokens: tokens, Pacer: pacer, Timeout: cfg.APITimeout, UserAgent: cfg.UserAgent})
	if err != nil {
		lim.Close()
		return nil, err
	}
	return &API{Client: api, Limiter: lim, counter: counter}, nil
}

// Requests is the number of requests the client has sent (answered or
// not) so far.
func (a *API) Requests() int64 { return a.counter.n.Load() }

// ReadPace is the pace of reads the fleet's budget allows, in calls per
// second: the slowest bucket pacing reads as the fleet has learned it;
// false when none is known.
func (a *API) ReadPace(ctx context.Context) (float64, bool) {
	st, err := a.Limiter.State(ctx)
	if err != nil {
		return 0, false
	}
	pace := 0.0
	for _, b := range st.Buckets {
		if strings.Contains(b.Classes, "r") && b.Rate > 0 && (pace == 0 || b.Rate < pace) {
			pace = b.Rate
		}
	}
	return pace, pace > 0
}

// Close releases the limiter.
func (a *API) Close() { a.Limiter.Close() }

// countingPacer counts the requests it is told about and passes
// everything on, Release included.
type countingPacer struct {
	next mgmt.Pacer
	n    atomic.Int64
}

func (p *countingPacer) Wait(ctx context.Context, c mgmt.Class) (mgmt.Ticket, error) {
	return p.next.Wait(ctx, c)
}

func (p *countingPacer) Observe(t mgmt.Ticket, e mgmt.Exchange) {
	p.n.Add(1)
	p.next.Observe(t, e)
}

// Release gives back a slot granted but not used, when the wrapped pacer
// can.
func (p *countingPacer) Release(t mgmt.Ticket) {
	if r, ok := p.next.(mgmt.Releaser); ok {
		r.Release(t)
	}
}
