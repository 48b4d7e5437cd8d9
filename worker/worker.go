// Package worker executes queued changes against the Auth0 Management API.
//
// Any number of worker processes may run against one Redis. Each task is one
// change; before acting, a task claims its change in the ledger, which lets
// only the oldest pending change of an (organization, connection) pair act,
// so a pair's changes take effect in the order they were accepted whatever
// the concurrency. A change whose successor makes it obsolete is skipped as
// superseded. The attempt's error is classified in one place (Classify):
// done, throttled (wait for budget, no attempt spent), retry (back-off, up to
// MaxAttempts), or dead (recorded with its reason and archived).
package worker

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/orgconn/orgconn/jobs"
	"github.com/orgconn/orgconn/worker/apimode"
	"github.com/orgconn/orgconn/worker/ledger"
	"github.com/redis/go-redis/v9"
)

// DefaultQueue is the asynq queue orgconn uses unless told otherwise.
const DefaultQueue = "orgconn"

// The defaults a zero Config field stands for. They live here only; the
// command's flags start from them.
const (
	DefaultConcurrency  = 10
	DefaultMaxAttempts  = 8
	DefaultBackoffBase  = time.Second
	DefaultBackoffMax   = 5 * time.Minute
	DefaultWaitDelay    = 500 * time.Millisecond
	DefaultWaitDelayMax = 15 * time.Second
	DefaultMaxCrashes   = 3
	DefaultPollInterval = 500 * time.Millisecond
	DefaultLease        = 30 * time.Second
	DefaultOrphanCheck  = 5 * time.Second
	DefaultOrphanGrace  = 5 * time.Second
	// DefaultShutdownTimeout is how long a stopping worker waits for calls
	// in flight: the API client's 30 s request timeout plus margin. A
	// supervisor's grace period (Kubernetes' terminationGracePeriodSeconds,
	// Compose's stop_grace_period) must be longer.
	DefaultShutdownTimeout = 40 * time.Second
	// DefaultStateMaxAge is the oldest read of an organization's
	// associations a worker trusts.
	DefaultStateMaxAge = 30 * time.Second
)

// Stopper is a limiter that can be told to stop handing out budget.
type Stopper interface{ Stop() }

// Config configures a Worker. Redis, Ledger and API are required. A zero
// field means its default (the Default… constants); a negative number or
// duration is an error that New reports naming the field, never a value
// silently replaced.
type Config struct {
	// Redis is the server holding the queue and the ledger. Required.
	Redis redis.UniversalClient
	// Ledger is the record of accepted changes. Required.
	Ledger *ledger.Ledger
	// API makes the Management API calls; it must be paced by a limiter
	// (mgmt.Config.Pacer). Required.
	API API
	// Limiter, if not nil, is stopped first at shutdown so that calls
	// waiting for budget give up at once instead of holding shutdown.
	Limiter Stopper
	// Queue is the asynq queue. Empty means DefaultQueue.
	Queue string
	// Concurrency is how many changes this process works on at once. Zero
	// means DefaultConcurrency (10).
	Concurrency int
	// MaxAttempts is how many failed attempts (5xx, network, timeout) a
	// change gets before it is dead-lettered; throttling and waiting for its
	// turn do not count. Zero means DefaultMaxAttempts (8).
	MaxAttempts int
	// BackoffBase and BackoffMax shape the back-off after a failed attempt:
	// BackoffBase·2^(attempt-1), capped at BackoffMax, with jitter. Zero
	// means DefaultBackoffBase (1 s) and DefaultBackoffMax (5 min);
	// BackoffMax must not be below BackoffBase.
	BackoffBase, BackoffMax time.Duration
	// WaitDelay is how soon a change that found an earlier change of its pair
	// pending looks again at first; the waits then grow with how long the
	// pair has waited (about doubling) up to WaitDelayMax. A waiting change
	// is also woken as soon as the change before it resolves. Zero means
	// DefaultWaitDelay (500 ms).
	WaitDelay time.Duration
	// WaitDelayMax caps the waits of WaitDelay; it must not be below
	// WaitDelay. Zero means DefaultWaitDelayMax (15 s), or WaitDelay when
	// that is longer.
	WaitDelayMax time.Duration
	// MaxCrashes is how many times in a row a worker may stop while acting
	// on one change (a crash, an OOM kill, a lost node: its task is put
	// back by the orphan check or asynq's recoverer) before the change is
	// dead-lettered with reason crashed_worker, so that its pair moves on.
	// Zero means DefaultMaxCrashes (3).
	MaxCrashes int
	// PollInterval is how often asynq looks for due retries and for new
	// tasks in an empty queue. Zero means DefaultPollInterval (500 ms).
	PollInterval time.Duration
	// Lease is how long a claim on a pair lasts unless renewed; a worker that
	// dies holding one delays its pair by at most this. Zero means
	// DefaultLease (30 s).
	Lease time.Duration
	// OrphanCheck is how often this worker looks for tasks left active by a
	// worker that died (see orphans.go). Zero means DefaultOrphanCheck
	// (5 s). NoOrphanCheck turns the check off instead.
	OrphanCheck time.Duration
	// NoOrphanCheck turns the orphan check off, leaving orphaned tasks to
	// asynq's recoverer (55 s to 2 min). OrphanCheck must then be zero.
	NoOrphanCheck bool
	// OrphanGrace is how long after its asynq lease expired a task counts
	// as orphaned: a margin for clock differences between hosts. Zero means
	// DefaultOrphanGrace (5 s).
	OrphanGrace time.Duration
	// ShutdownTimeout is how long shutdown waits for calls in flight. Zero
	// means DefaultShutdownTimeout (40 s).
	ShutdownTimeout time.Duration
	// Logger receives structured logs. Nil means slog.Default().
	Logger *slog.Logger
	// Instance names this process in logs and leases. Empty means
	// hostname-pid.
	Instance string
	// ReadMode is when this worker reads an organization's associations
	// before writing to it (see state.go): jobs.ReadNever, ReadAuto or
	// ReadAlways. Empty follows each batch's mode (stored by import and
	// apply), and auto for a batch that has none.
	ReadMode jobs.ReadMode
	// Budget gives the fleet's learned read and write paces, which the
	// auto read mode weighs. Nil means auto never reads.
	Budget Budget
	// StateMaxAge is the oldest read of an organization's associations the
	// worker trusts; an older one is read again (or the change is written
	// blind). Zero means DefaultStateMaxAge (30 s).
	StateMaxAge time.Duration
	// Observe, if not nil, is called with the action and outcome of every
	// delivery that reached one (a change put back because an earlier change
	// of its pair is pending reaches none). A Dead outcome is reported once
	// its dead letter is recorded, so each dead letter is reported once.
	// It must be safe for concurrent use and quick (metrics).
	Observe func(jobs.Action, Outcome)
	// APIMode resolves which endpoints the tenant's organization connections are reached
	// through (legacy enabled_connections, or the newer Organization connections endpoints);
	// the handler may call its Resolve per change (cheap once decided). Nil means legacy.
	APIMode *apimode.Resolver
	// Tenant names the tenant (ratelimit.TenantOf its base URL): the key of
	// the fleet's cache of organization and connection names in Redis.
	// Empty means "default".
	Tenant string
}

// validate reports every problem with c, each naming its field; none means
// withDefaults may fill in the zero fields.
func (c *Config) validate() error {
	var errs []error
	if c.Redis == nil {
		errs = append(errs, errors.New("worker: Config.Redis is required"))
	}
	if c.Ledger == nil {
		errs = append(errs, errors.New("worker: Config.Ledger is required"))
	}
	if c.API == nil {
		errs = append(errs, errors.New("worker: Config.API is required"))
	}
	for _, f := range []struct {
		name      string
		negative  bool
		value, is any // the value given, the default zero stands for
	}{
		{"Concurrency", c.Concurrency < 0, c.Concurrency, DefaultConcurrency},
		{"MaxAttempts", c.MaxAttempts < 0, c.MaxAttempts, DefaultMaxAttempts},
		{"BackoffBase", c.BackoffBase < 0, c.BackoffBase, DefaultBackoffBase},
		{"BackoffMax", c.BackoffMax < 0, c.BackoffMax, DefaultBackoffMax},
		{"WaitDelay", c.WaitDelay < 0, c.WaitDelay, DefaultWaitDelay},
		{"WaitDelayMax", c.WaitDelayMax < 0, c.WaitDelayMax, DefaultWaitDelayMax},
		{"MaxCrashes", c.MaxCrashes < 0, c.MaxCrashes, DefaultMaxCrashes},
		{"PollInterval", c.PollInterval < 0, c.PollInterval, DefaultPollInterval},
		{"Lease", c.Lease < 0, c.Lease, DefaultLease},
		{"OrphanCheck", c.OrphanCheck < 0, c.OrphanCheck, DefaultOrphanCheck},
		{"OrphanGrace", c.OrphanGrace < 0, c.OrphanGrace, DefaultOrphanGrace},
		{"ShutdownTimeout", c.ShutdownTimeout < 0, c.ShutdownTimeout, DefaultShutdownTimeout},
		{"StateMaxAge", c.StateMaxAge < 0, c.StateMaxAge, DefaultStateMaxAge},
	} {
		if f.negative {
			errs = append(errs, fmt.Errorf("worker: Config.%s is %v: want a positive value (0: %v)", f.name, f.value, f.is))
		}
	}
	if c.ReadMode != "" {
		if _, err := jobs.ParseReadMode(string(c.ReadMode)); err != nil || string(c.ReadMode) != strings.ToLower(string(c.ReadMode)) {
			errs = append(errs, fmt.Errorf("worker: Config.ReadMode %q: want never, auto, always or empty (follow the batch)", c.ReadMode))
		}
	}
	if c.NoOrphanCheck && c.OrphanCheck != 0 {
		errs = append(errs, fmt.Errorf("worker: Config.OrphanCheck is %v but Config.NoOrphanCheck is set: give one", c.OrphanCheck))
	}
	if wd, wm := cmp.Or(c.WaitDelay, DefaultWaitDelay), c.WaitDelayMax; c.WaitDelay >= 0 && wm > 0 && wm < wd {
		errs = append(errs, fmt.Errorf("worker: Config.WaitDelayMax (%v) is below Config.WaitDelay (%v)", wm, wd))
	}
	base, maxDelay := cmp.Or(c.BackoffBase, DefaultBackoffBase), cmp.Or(c.BackoffMax, DefaultBackoffMax)
	if c.BackoffBase >= 0 && c.BackoffMax >= 0 && maxDelay < base {
		errs = append(errs, fmt.Errorf("worker: Config.BackoffMax (%v) is below Config.BackoffBase (%v)", maxDelay, base))
	}
	return errors.Join(errs...)
}

// withDefaults returns c with every zero field replaced by its default; c
// must be valid.
func (c Config) withDefaults() Config {
	c.Queue = cmp.Or(c.Queue, DefaultQueue)
	c.Concurrency = cmp.Or(c.Concurrency, DefaultConcurrency)
	c.MaxAttempts = cmp.Or(c.MaxAttempts, DefaultMaxAttempts)
	c.BackoffBase = cmp.Or(c.BackoffBase, DefaultBackoffBase)
	c.BackoffMax = cmp.Or(c.BackoffMax, DefaultBackoffMax)
	c.WaitDelay = cmp.Or(c.WaitDelay, DefaultWaitDelay)
	c.WaitDelayMax = max(cmp.Or(c.WaitDelayMax, DefaultWaitDelayMax), c.WaitDelay)
	c.MaxCrashes = cmp.Or(c.MaxCrashes, DefaultMaxCrashes)
	c.PollInterval = cmp.Or(c.PollInterval, DefaultPollInterval)
	c.Lease = cmp.Or(c.Lease, DefaultLease)
	if !c.NoOrphanCheck {
		c.OrphanCheck = cmp.Or(c.OrphanCheck, DefaultOrphanCheck)
	}
	c.OrphanGrace = cmp.Or(c.OrphanGrace, DefaultOrphanGrace)
	c.ShutdownTimeout = cmp.Or(c.ShutdownTimeout, DefaultShutdownTimeout)
	c.StateMaxAge = cmp.Or(c.StateMaxAge, DefaultStateMaxAge)
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Instance == "" {
		host, _ := os.Hostname()
		c.Instance = fmt.Sprintf("%s-%d", host, os.Getpid())
	}
	return c
}

// Worker is one worker process's asynq server.
type Worker struct {
	cfg        Config
	h          *handler
	srv        *asynq.Server
	mux        *asynq.ServeMux
	stopOrphan chan struct{}
	orphanDone chan struct{}
}

// New builds a worker; Start runs it. Every Config problem is returned, each
// naming its field.
func New(cfg Config) (*Worker, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	h := &handler{
		ledger:      cfg.Ledger,
		api:         cfg.API,
		inspector:   asynq.NewInspectorFromRedisClient(cfg.Redis),
		queue:       cfg.Queue,
		maxAttempts: cfg.MaxAttempts,
		lease:       cfg.Lease,
		waitDelay:   cfg.WaitDelay,
		waitMax:     cfg.WaitDelayMax,
		maxCrashes:  cfg.MaxCrashes,
		enqueue:     asynq.NewClientFromRedisClient(cfg.Redis).EnqueueContext,
		instance:    cfg.Instance,
		log:         cfg.Logger,
		now:         time.Now,
		observe:     cfg.Observe,
		apiMode:     cfg.APIMode,
		names:       newNameCache(cfg.Redis, cfg.Ledger.Name(), cfg.Tenant),
		state:       &stateReader{mode: cfg.ReadMode, budget: cfg.Budget, maxAge: cfg.StateMaxAge},
	}
	srv := asynq.NewServerFromRedisClient(cfg.Redis, asynq.Config{
		Concurrency:              cfg.Concurrency,
		Queues:                   map[string]int{cfg.Queue: 1},
		IsFailure:                isFailure,
		RetryDelayFunc:           retryDelay(cfg.BackoffBase, cfg.BackoffMax),
		TaskCheckInterval:        cfg.PollInterval,
		DelayedTaskCheckInterval: cfg.PollInterval,
		ShutdownTimeout:          cfg.ShutdownTimeout,
		Logger:                   slogAdapter{cfg.Logger.With("component", "asynq")},
		LogLevel:                 asynq.WarnLevel,
	})
	mux := asynq.NewServeMux()
	mux.Handle(jobs.TypeChange, h)
	return &Worker{cfg: cfg, h: h, srv: srv, mux: mux}, nil
}

// Config returns the configuration the worker runs with: the one given, with
// every zero field replaced by its default.
func (w *Worker) Config() Config { return w.cfg }

// Start begins processing in the background.
func (w *Worker) Start() error {
	if err := w.srv.Start(w.mux); err != nil {
		return fmt.Errorf("worker: start: %w", err)
	}
	// The orphan check (unless NoOrphanCheck) and the sweep of stalled
	// batches (blocked.go).
	w.stopOrphan, w.orphanDone = make(chan struct{}), make(chan struct{})
	go func() { defer close(w.orphanDone); w.watchOrphans(w.stopOrphan) }()
	return nil
}

// Shutdown stops fetching tasks, makes calls waiting for budget give up
// (their tasks go back to the queue without spending an attempt), waits up to
// ShutdownTimeout for calls in flight to finish and returns. Nothing is lost:
// a task interrupted past the timeout is put back by asynq.
func (w *Worker) Shutdown() {
	if w.stopOrphan != nil {
		close(w.stopOrphan)
		<-w.orphanDone
		w.stopOrphan = nil
	}
	w.srv.Stop()
	if w.cfg.Limiter != nil {
		w.cfg.Limiter.Stop()
	}
	w.srv.Shutdown()
}

// slogAdapter lets asynq log through slog.
type slogAdapter struct{ l *slog.Logger }

func (a slogAdapter) Debug(args ...any) { a.l.Debug(fmt.Sprint(args...)) }
func (a slogAdapter) Info(args ...any)  { a.l.Info(fmt.Sprint(args...)) }
func (a slogAdapter) Warn(args ...any)  { a.l.Warn(fmt.Sprint(args...)) }
func (a slogAdapter) Error(args ...any) { a.l.Error(fmt.Sprint(args...)) }
func (a slogAdapter) Fatal(args ...any) { a.l.Error(fmt.Sprint(args...)); os.Exit(1) }
