package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/orgconn/orgconn/cmd/orgconn/internal/assembly"
	"github.com/orgconn/orgconn/producer"
	"github.com/orgconn/orgconn/producer/webhook"
	"github.com/orgconn/orgconn/worker/apimode"
	"github.com/orgconn/orgconn/worker/metrics"
	"github.com/orgconn/orgconn/worker/mgmt"
	"github.com/orgconn/orgconn/worker/ratelimit"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

const serveSynopsis = `
Usage: orgconn serve [flags]

Serves orgconn's webhook intake. Changes are validated as CSV rows are, and
queued for the workers like an import:

  POST /v1/changes       one change, or {"changes":[…]}, signed with
                         HMAC-SHA256 in X-Orgconn-Signature; Idempotency-Key
                         makes a retry safe
  POST /v1/auth0/events  Auth0 Event Streams deliveries (CloudEvents); --rules
                         says which changes an event calls for; each event is
                         applied once however often it is delivered
  GET  /healthz          200 while serving
  GET  /readyz           200 when Redis answers, else 503
  GET  /metrics          Prometheus metrics (the webhooks' and the queue's);
                         with a metrics token (ORGCONN_METRICS_TOKEN or
                         --metrics-token-file) only to "Authorization: Bearer
                         <token>", else open: then keep it off public routes

Each webhook endpoint is served only when its authentication is configured
(the other answers 404), and serve refuses to start when neither is. Secrets
come from the environment or a file (VAR_FILE), never from flags:

  /v1/changes       ORGCONN_WEBHOOK_SECRET: the signing secret; during a
                    rotation "current,next" (both are accepted)
  /v1/auth0/events  --rules FILE and one or more of:
                      ORGCONN_EVENTS_BEARER_TOKEN
                      ORGCONN_EVENTS_BASIC_USER and ORGCONN_EVENTS_BASIC_PASSWORD
                      ORGCONN_EVENTS_HEADER_NAME and ORGCONN_EVENTS_HEADER_VALUE

Every secret must be at least 16 characters (openssl rand -hex 32 makes one).

--api (env ORGCONN_API) is the tenant's API mode, as for import: legacy,
connections or auto (the mode the workers remembered for the tenant of
AUTH0_DOMAIN; undecided until a worker has probed). In legacy mode a change
needing the Organization connections API (disable,
organization_connection_name, organization_access_level) is answered 422,
and an event whose rules call for one is refused.

With the tenant's credentials as well (AUTH0_CLIENT_ID and
AUTH0_CLIENT_SECRET, or AUTH0_TOKEN), serve looks every org_name and
connection_name up before it accepts a change (each name kept 5 minutes; an
unknown one is answered 422), and auto probes the tenant when no worker has
remembered its mode. Without credentials names are queued as given and the
workers look them up.

serve listens on 127.0.0.1:8080, this machine only, unless told otherwise:
--addr :8080 (or 0.0.0.0:8080) listens on all interfaces. Put TLS in front
(a load balancer or an ingress): Auth0 only delivers to https URLs.

Examples:
  ORGCONN_WEBHOOK_SECRET_FILE=/run/secrets/webhook orgconn serve --addr :8080
  ORGCONN_EVENTS_BEARER_TOKEN_FILE=/run/secrets/auth0-stream \
    orgconn serve --addr :8080 --rules rules.yaml

Stops on SIGINT or SIGTERM: requests in flight finish (up to
--shutdown-timeout). Exit codes: 0 stopped, 2 configuration, 4 Redis or the
address unavailable.`

// minSecretLength is the shortest secret serve accepts.
const minSecretLength = 16

func runServe(ctx context.Context, e *env, args []string) int {
	f := newFlags(e, "serve", serveSynopsis).withLogging()
	q := f.withQueue()
	addr := f.String("addr", envOr(e, "ORGCONN_ADDR", "127.0.0.1:8080"), "address to listen on; :8080 listens on all interfaces (env ORGCONN_ADDR)")
	rulesPath := f.String("rules", e.getenv("ORGCONN_RULES"), "rules file (YAML, or JSON when it ends in .json) for /v1/auth0/events (env ORGCONN_RULES)")
	maxChanges := f.Int("max-changes", webhook.DefaultMaxChanges, "most changes in one /v1/changes request")
	shutdown := f.Duration("shutdown-timeout", 30*time.Second, "how long requests in flight may take to finish at shutdown")
	mt := f.withMetricsToken()
	apiFlag := f.withAPIMode()
	domain := f.String("auth0-domain", e.getenv("AUTH0_DOMAIN"), "the tenant (domain or base URL; env AUTH0_DOMAIN), whose remembered API mode --api auto reads")
	if code, ok := f.parse(args); !ok {
		return code
	}
	if f.NArg() != 0 {
		return errorf(e, exitUsage, "serve: unexpected argument %q", f.Arg(0))
	}
	mode, err := apiMode(*apiFlag)
	if err != nil {
		return errorf(e, exitUsage, "serve: %v", err)
	}
	tenant := ""
	if *domain != "" {
		base, err := mgmt.BaseURL(*domain)
		if err != nil {
			return errorf(e, exitUsage, "serve: --auth0-domain: %v", err)
		}
		tenant = ratelimit.TenantOf(base)
	}
	log, err := f.logger()
	if err != nil {
		return errorf(e, exitUsage, "serve: %v", err)
	}
	cfg, err := serveConfig(e, *rulesPath)
	if err != nil {
		return errorf(e, exitUsage, "serve: %v", err)
	}
	metricsToken, err := mt.token(e)
	if err != nil {
		return errorf(e, exitUsage, "serve: %v", err)
	}
	if *maxChanges < 1 || *maxChanges > producer.MaxSubmitChanges {
		return errorf(e, exitUsage, "serve: --max-changes %d: want 1 to %d", *maxChanges, producer.MaxSubmitChanges)
	}
	cfg.MaxChanges = *maxChanges

	rdb, l, err := q.open(ctx)
	if err != nil {
		return errorf(e, exitUnavailable, "serve: %v", err)
	}
	defer rdb.Close()
	queue := asynq.NewClientFromRedisClient(rdb)
	defer queue.Close()
	sub, err := producer.NewSubmitter(producer.SubmitConfig{Ledger: l, Queue: queue, QueueName: q.queue})
	if err != nil {
		return errorf(e, exitUsage, "serve: %v", err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		metrics.NewQueueCollector(asynq.NewInspectorFromRedisClient(rdb), log, q.queue))
	cfg.Submitter, cfg.Redis, cfg.KeyPrefix = sub, rdb, l.Prefix()
	cfg.Registerer, cfg.Logger = reg, log
	var store *apimode.Store // auto reads the mode the workers remembered for the tenant
	if tenant != "" {
		store = apimode.NewStore(rdb, q.prefix, 0)
	}
	// With the tenant's domain and credentials, serve looks names up before it accepts a
	// change (through the fleet's read budget, kept servedNamesTTL) and auto probes the mode
	// when no worker has remembered it; without them names are queued as given.
	var prober apimode.Lister
	tapi, usage, err := tenantAPI(ctx, e, rdb, l.Name(), *domain, log)
	switch {
	case err != nil && usage:
		return errorf(e, exitUsage, "serve: %v", err)
	case err != nil:
		return errorf(e, exitUnavailable, "serve: the tenant cannot be asked: %v", err)
	case tapi != nil:
		defer tapi.Close()
		prober = tapi.Client
		names, err := producer.NewNameResolver(assembly.Directory{API: tapi.Client}, producer.NameResolverConfig{TTL: servedNamesTTL})
		if err != nil {
			return errorf(e, exitUsage, "serve: %v", err)
		}
		cfg.Resolver = names
	}
	modes, err := apimode.NewResolver(apimode.Config{Mode: mode, Tenant: tenant, Store: store, API: prober, Logger: log})
	if err != nil {
		return errorf(e, exitUsage, "serve: %v", err)
	}
	cfg.Mode = modeSource{modes}
	h, err := webhook.New(cfg)
	if err != nil {
		return errorf(e, exitUsage, "serve: %v", err)
	}

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return errorf(e, exitUnavailable, "serve: listen on %s: %v", *addr, err)
	}
	srv := webhook.NewServer(*addr, metrics.ProtectMetrics(metricsToken, h), log)
	url := "http://" + ln.Addr().String()
	fmt.Fprintf(e.stdout, "listening on %s: %s\n", url, strings.Join(h.Endpoints(), ", "))
	log.Info("serving", "addr", ln.Addr().String(), "endpoints", strings.Join(h.Endpoints(), ","),
		"event_auth", strings.Join(cfg.EventAuth.Methods(), ","), "signing_secrets", len(cfg.Secrets), "queue", q.queue, "metrics_token", metricsToken != "")

	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return errorf(e, exitUnavailable, "serve: %v", err)
	case <-ctx.Done():
	}
	log.Info("shutting down: finishing requests in flight", "timeout", shutdown.String())
	sctx, cancel := context.WithTimeout(context.Background(), *shutdown)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		_ = srv.Close()
		log.Warn("requests cut off at the shutdown timeout", "error", err)
	}
	if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return errorf(e, exitUnavailable, "serve: %v", err)
	}
	log.Info("stopped")
	return exitOK
}

// servedNamesTTL is how long serve keeps a name it looked up, so that
// organizations and connections created or renamed later are seen.
const servedNamesTTL = 5 * time.Minute

// modeSource gives the webhook the tenant's API mode as apimode resolves it
// (configured, or remembered from a worker's probe; undecided is unknown).
type modeSource struct{ r *apimode.Resolver }

// Mode returns the resolved mode in the producer's terms.
func (m modeSource) Mode(ctx context.Context) (producer.APIMode, error) {
	res, err := m.r.Resolve(ctx)
	if err != nil {
		return producer.ModeUnknown, err
	}
	return producer.ParseAPIMode(string(res.Mode))
}

// serveConfig reads the endpoints' authentication from the environment and
// the rules file. It decides which endpoints are served and refuses a
// configuration that serves none or that is half done. Errors never show a
// secret.
func serveConfig(e *env, rulesPath string) (webhook.Config, error) {
	var cfg webhook.Config
	raw, err := secret(e, "ORGCONN_WEBHOOK_SECRET")
	if err != nil {
		return cfg, err
	}
	for _, s := range strings.Split(raw, ",") {
		if s = strings.TrimSpace(s); s != "" {
			cfg.Secrets = append(cfg.Secrets, s)
		}
	}
	if len(cfg.Secrets) > 2 {
		return cfg, fmt.Errorf("ORGCONN_WEBHOOK_SECRET holds %d secrets: give one, or two (current,next) during a rotation", len(cfg.Secrets))
	}
	for i, s := range cfg.Secrets {
		if len(s) < minSecretLength {
			return cfg, fmt.Errorf("ORGCONN_WEBHOOK_SECRET: secret %d is shorter than %d characters (openssl rand -hex 32 makes a good one)", i+1, minSecretLength)
		}
	}

	a := &cfg.EventAuth
	if a.BearerToken, err = secret(e, "ORGCONN_EVENTS_BEARER_TOKEN"); err != nil {
		return cfg, err
	}
	a.BasicUser = e.getenv("ORGCONN_EVENTS_BASIC_USER")
	if a.BasicPassword, err = secret(e, "ORGCONN_EVENTS_BASIC_PASSWORD"); err != nil {
		return cfg, err
	}
	a.HeaderName = e.getenv("ORGCONN_EVENTS_HEADER_NAME")
	if a.HeaderValue, err = secret(e, "ORGCONN_EVENTS_HEADER_VALUE"); err != nil {
		return cfg, err
	}
	for name, v := range map[string]string{"ORGCONN_EVENTS_BEARER_TOKEN": a.BearerToken, "ORGCONN_EVENTS_BASIC_PASSWORD": a.BasicPassword, "ORGCONN_EVENTS_HEADER_VALUE": a.HeaderValue} {
		if v != "" && len(v) < minSecretLength {
			return cfg, fmt.Errorf("%s is shorter than %d characters (openssl rand -hex 32 makes a good one)", name, minSecretLength)
		}
	}
	if err := a.Validate(); err != nil {
		return cfg, fmt.Errorf("event authentication (ORGCONN_EVENTS_…): %w", err)
	}

	if rulesPath != "" {
		if cfg.Rules, err = webhook.LoadRules(rulesPath); err != nil {
			return cfg, err
		}
	}
	switch {
	case len(cfg.Secrets) == 0 && !a.Configured():
		return cfg, errors.New("nothing to serve: set ORGCONN_WEBHOOK_SECRET for /v1/changes, and/or an event authentication " +
			"(ORGCONN_EVENTS_BEARER_TOKEN, ORGCONN_EVENTS_BASIC_USER/_PASSWORD or ORGCONN_EVENTS_HEADER_NAME/_VALUE) with --rules for /v1/auth0/events")
	case a.Configured() && cfg.Rules == nil:
		return cfg, errors.New("event authentication is set but --rules is not: give the rules file that turns events into changes")
	case !a.Configured() && cfg.Rules != nil:
		return cfg, errors.New("--rules is given but no event authentication is set: set ORGCONN_EVENTS_BEARER_TOKEN, ORGCONN_EVENTS_BASIC_USER/_PASSWORD or ORGCONN_EVENTS_HEADER_NAME/_VALUE")
	}
	return cfg, nil
}
