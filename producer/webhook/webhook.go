// Package webhook serves orgconn's HTTP intake: signed change requests from
// the customer's own systems (POST /v1/changes) and Auth0 Event Streams
// deliveries (POST /v1/auth0/events), which become the same jobs.Change
// values, validated the same way, and reach the same queue through a
// producer.Submitter.
//
// Every request is validated in full before anything is written, so a
// request is either refused whole or accepted whole; when Redis fails midway
// the answer is a 5xx and the retry resumes the same batch without
// duplicates. /v1/changes is authenticated by an HMAC-SHA256 signature and
// made idempotent by the Idempotency-Key header; events are authenticated
// the ways Auth0 can send (bearer token, basic auth, a custom header) and
// deduplicated by their CloudEvent id. /healthz, /readyz and /metrics serve
// operations.
//
// A Handler is safe for concurrent use.
package webhook

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/orgconn/orgconn/producer"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"
)

// Paths served.
const (
	PathChanges = "/v1/changes"
	PathEvents  = "/v1/auth0/events"
	PathHealthz = "/healthz"
	PathReadyz  = "/readyz"
	PathMetrics = "/metrics"
)

// Defaults of Config.
const (
	DefaultMaxBodyBytes   = 1 << 20
	DefaultEventTTL       = 7 * 24 * time.Hour
	DefaultRequestTimeout = 20 * time.Second
)

// Submitter accepts a batch of validated changes and queues them;
// *producer.Submitter is the implementation.
type Submitter interface {
	Submit(ctx context.Context, sub producer.Submission) (producer.Receipt, error)
}

// Config configures a Handler. Submitter, Redis and KeyPrefix are required,
// and at least one of Secrets and EventAuth.
type Config struct {
	// Submitter accepts and queues the changes.
	Submitter Submitter
	// Redis holds the idempotency records and event markers, and is pinged
	// by /readyz.
	Redis redis.UniversalClient
	// KeyPrefix starts every key this package writes; pass ledger.Prefix()
	// (e.g. "{orgconn}") so that the keys share the ledger's hash tag.
	KeyPrefix string

	// Secrets are the HMAC-SHA256 secrets of /v1/changes: the current one,
	// and during a rotation the next. Empty means /v1/changes is not served
	// (404).
	Secrets []string
	// EventAuth authenticates /v1/auth0/events. The zero value means the
	// endpoint is not served (404).
	EventAuth EventAuth
	// Rules turn events into changes. Required when EventAuth is
	// configured; events of types no rule names are acknowledged and
	// ignored.
	Rules *Rules

	// Mode tells the tenant's API mode, asked once per request that
	// carries changes. In legacy mode a change that needs the Organization
	// connections API is refused: /v1/changes answers 422 naming each
	// such change, and an event whose rules call for one is "refused". Nil
	// means the mode is unknown: such changes are let through and the
	// worker decides.
	Mode producer.ModeSource
	// Resolver, if not nil, looks up every org_name and connection_name
	// given without its id before anything is submitted (a
	// producer.NameResolver with a TTL): an unknown name makes /v1/changes
	// answer 422 naming the change and field, and an event "refused". Nil
	// means names are submitted as given, for the worker to resolve.
	Resolver producer.Resolver

	// MaxChanges bounds the changes of one /v1/changes request. Zero means
	// DefaultMaxChanges (1000); at most producer.MaxSubmitChanges.
	MaxChanges int
	// MaxBodyBytes bounds a request body; a larger one is answered 413.
	// Zero means DefaultMaxBodyBytes (1 MiB).
	MaxBodyBytes int64
	// SignatureTolerance is how far a signature's timestamp may be from now.
	// Zero means DefaultSignatureTolerance (5 min).
	SignatureTolerance time.Duration
	// IdempotencyTTL is how long the response to an Idempotency-Key is
	// replayed. Zero means DefaultIdempotencyTTL (24 h).
	IdempotencyTTL time.Duration
	// EventTTL is how long an event id is remembered as seen (the ledger
	// remembers it longer). Zero means DefaultEventTTL (7 days).
	EventTTL time.Duration
	// RequestTimeout bounds the Redis work of one request; past it the
	// answer is 503. Zero means DefaultRequestTimeout (20 s); keep it below
	// the http.Server's WriteTimeout.
	RequestTimeout time.Duration

	// Registerer receives the metrics. Nil means a new registry.
	Registerer prometheus.Registerer
	// Gatherer is served at /metrics. Nil means the Registerer when it is a
	// prometheus.Gatherer (a *prometheus.Registry); otherwise /metrics is
	// not served.
	Gatherer prometheus.Gatherer
	// Logger receives the access log and the event log. Nil means
	// slog.Default().
	Logger *slog.Logger
	// Now is the clock for signatures and batch names. Nil means time.Now.
	Now func() time.Time
}

// Handler serves the endpoints. Create it with New.
type Handler struct {
	cfg     Config
	secrets [][]byte
	idem    *idemStore
	metrics *metrics
	mux     *http.ServeMux
	log     *slog.Logger
}

// New checks cfg and returns a Handler. Errors name the Config field.
func New(cfg Config) (*Handler, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	h := &Handler{cfg: cfg, log: cfg.Logger}
	for _, s := range cfg.Secrets {
		h.secrets = append(h.secrets, []byte(s))
	}
	h.idem = &idemStore{rdb: cfg.Redis, prefix: cfg.KeyPrefix, ttl: cfg.IdempotencyTTL, pendingTTL: 2 * cfg.RequestTimeout}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, fmt.Errorf("webhook: register metrics: %w", err)
	}
	h.metrics = m

	h.mux = http.NewServeMux()
	if len(h.secrets) > 0 {
		h.mux.HandleFunc(PathChanges, h.serveChanges)
	}
	if cfg.EventAuth.Configured() {
		h.mux.HandleFunc(PathEvents, h.serveEvents)
	}
	h.mux.HandleFunc(PathHealthz, h.serveHealthz)
	h.mux.HandleFunc(PathReadyz, h.serveReadyz)
	if cfg.Gatherer != nil {
		h.mux.Handle(PathMetrics, promhttp.HandlerFor(cfg.Gatherer, promhttp.HandlerOpts{}))
	}
	h.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "not found", "")
	})
	return h, nil
}

func (cfg *Config) defaults() error {
	var errs []error
	if cfg.Submitter == nil {
		errs = append(errs, errors.New("webhook: Config.Submitter is required"))
	}
	if cfg.Redis == nil {
		errs = append(errs, errors.New("webhook: Config.Redis is required"))
	}
	if cfg.KeyPrefix == "" {
		errs = append(errs, errors.New("webhook: Config.KeyPrefix is required (use ledger.Prefix())"))
	}
	if len(cfg.Secrets) == 0 && !cfg.EventAuth.Configured() {
		errs = append(errs, errors.New("webhook: neither Config.Secrets nor Config.EventAuth is set: nothing to serve"))
	}
	if err := checkSecrets(cfg.Secrets); err != nil {
		errs = append(errs, fmt.Errorf("webhook: Config.Secrets: %w", err))
	}
	if err := cfg.EventAuth.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("webhook: Config.EventAuth: %w", err))
	}
	if cfg.EventAuth.Configured() && cfg.Rules == nil {
		errs = append(errs, errors.New("webhook: Config.Rules is required to serve events"))
	}
	if cfg.MaxChanges < 0 || cfg.MaxChanges > producer.MaxSubmitChanges {
		errs = append(errs, fmt.Errorf("webhook: Config.MaxChanges is %d: want 1 to %d (0: %d)", cfg.MaxChanges, producer.MaxSubmitChanges, DefaultMaxChanges))
	}
	if cfg.MaxBodyBytes < 0 {
		errs = append(errs, fmt.Errorf("webhook: Config.MaxBodyBytes is %d: want a positive size (0: %d)", cfg.MaxBodyBytes, DefaultMaxBodyBytes))
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if cfg.MaxChanges == 0 {
		cfg.MaxChanges = DefaultMaxChanges
	}
	if cfg.MaxBodyBytes == 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.SignatureTolerance <= 0 {
		cfg.SignatureTolerance = DefaultSignatureTolerance
	}
	if cfg.IdempotencyTTL <= 0 {
		cfg.IdempotencyTTL = DefaultIdempotencyTTL
	}
	if cfg.EventTTL <= 0 {
		cfg.EventTTL = DefaultEventTTL
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = DefaultRequestTimeout
	}
	if cfg.Registerer == nil {
		reg := prometheus.NewRegistry()
		cfg.Registerer = reg
	}
	if cfg.Gatherer == nil {
		cfg.Gatherer, _ = cfg.Registerer.(prometheus.Gatherer)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return nil
}

// Endpoints returns the webhook paths this Handler serves.
func (h *Handler) Endpoints() []string {
	var out []string
	if len(h.secrets) > 0 {
		out = append(out, PathChanges)
	}
	if h.cfg.EventAuth.Configured() {
		out = append(out, PathEvents)
	}
	return out
}

// ServeHTTP routes the request and writes an access log line for it.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.accessLog(h.mux).ServeHTTP(w, r)
}

func (h *Handler) serveHealthz(w http.ResponseWriter, r *http.Request) {
	if !allowGet(w, r) {
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// readyTimeout bounds the Redis ping of /readyz.
const readyTimeout = 2 * time.Second

func (h *Handler) serveReadyz(w http.ResponseWriter, r *http.Request) {
	if !allowGet(w, r) {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
	defer cancel()
	if err := h.cfg.Redis.Ping(ctx).Err(); err != nil {
		h.log.Warn("not ready: Redis does not answer", "error", err)
		writeError(w, http.StatusServiceUnavailable, "not ready", "Redis does not answer")
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

func allowGet(w http.ResponseWriter, r *http.Request) bool {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		return true
	}
	w.Header().Set("Allow", "GET, HEAD")
	writeError(w, http.StatusMethodNotAllowed, "method not allowed", "use GET")
	return false
}
