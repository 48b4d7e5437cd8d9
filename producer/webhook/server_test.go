package webhook

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func TestHealthReadinessAndMetrics(t *testing.T) {
	f := setup(t)
	if r := f.do(http.MethodGet, PathHealthz, "", nil, nil); r.status != http.StatusOK {
		t.Errorf("healthz: %d %s", r.status, r.body)
	}
	if r := f.do(http.MethodGet, PathReadyz, "", nil, nil); r.status != http.StatusOK {
		t.Errorf("readyz: %d %s", r.status, r.body)
	}
	if r := f.do(http.MethodPost, PathHealthz, "", nil, nil); r.status != http.StatusMethodNotAllowed {
		t.Errorf("POST healthz: %d", r.status)
	}
	f.postChanges(twoChanges)
	f.postEvents(orgCreated("evt_m1", "org_m", "m", nil))
	r := f.do(http.MethodGet, PathMetrics, "", nil, nil)
	for _, name := range []string{
		`orgconn_webhook_requests_total{code="202",endpoint="changes"} 1`,
		`orgconn_webhook_requests_total{code="202",endpoint="events"} 1`,
		`orgconn_webhook_changes_accepted_total{endpoint="events"} 2`,
		`orgconn_events_total{outcome="applied",type="organization.created"} 1`,
		`orgconn_webhook_request_duration_seconds_count{endpoint="changes"} 1`,
	} {
		if !strings.Contains(r.body, name) {
			t.Errorf("/metrics lacks %s", name)
		}
	}
}

func TestReadinessFailsWhenRedisIsDown(t *testing.T) {
	down := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	t.Cleanup(func() { down.Close() })
	f := setup(t, func(c *Config) { c.Redis = down })
	if r := f.do(http.MethodGet, PathReadyz, "", nil, nil); r.status != http.StatusServiceUnavailable {
		t.Errorf("readyz with Redis down: %d %s", r.status, r.body)
	}
	if r := f.do(http.MethodGet, PathHealthz, "", nil, nil); r.status != http.StatusOK {
		t.Errorf("healthz with Redis down: %d", r.status)
	}
	// An idempotency store that cannot be reached is transient trouble.
	if r := f.postChanges(twoChanges, IdempotencyHeader, "k"); r.status != http.StatusServiceUnavailable {
		t.Errorf("changes with Redis down: %d %s", r.status, r.body)
	}
	if r := f.postEvents(orgCreated("evt_d", "org_d", "d", nil)); r.status != http.StatusServiceUnavailable {
		t.Errorf("event with Redis down: %d %s", r.status, r.body)
	}
}

func TestOnlyConfiguredEndpointsAreServed(t *testing.T) {
	f := setup(t, func(c *Config) { c.EventAuth = EventAuth{}; c.Rules = nil })
	if r := f.postEvents(orgCreated("evt_x", "org_x", "x", nil)); r.status != http.StatusNotFound {
		t.Errorf("events without event auth: %d", r.status)
	}
	if got := f.handler.Endpoints(); len(got) != 1 || got[0] != PathChanges {
		t.Errorf("Endpoints() = %v", got)
	}
	g := setup(t, func(c *Config) { c.Secrets = nil })
	if r := g.postChanges(twoChanges); r.status != http.StatusNotFound {
		t.Errorf("changes without secrets: %d", r.status)
	}
	if r := g.do(http.MethodGet, "/nope", "", nil, nil); r.status != http.StatusNotFound || !strings.Contains(r.body, "not found") {
		t.Errorf("unknown path: %d %s", r.status, r.body)
	}
}

func TestNewRefusesAnIncompleteConfigNamingTheField(t *testing.T) {
	f := setup(t)
	base := f.handler.cfg
	for name, tc := range map[string]struct {
		edit func(*Config)
		want string
	}{
		"no submitter":      {func(c *Config) { c.Submitter = nil }, "Config.Submitter"},
		"no redis":          {func(c *Config) { c.Redis = nil }, "Config.Redis"},
		"no prefix":         {func(c *Config) { c.KeyPrefix = "" }, "Config.KeyPrefix"},
		"nothing to serve":  {func(c *Config) { c.Secrets = nil; c.EventAuth = EventAuth{} }, "nothing to serve"},
		"empty secret":      {func(c *Config) { c.Secrets = []string{testSecret, ""} }, "Config.Secrets"},
		"no rules":          {func(c *Config) { c.Rules = nil }, "Config.Rules"},
		"half basic auth":   {func(c *Config) { c.EventAuth.BasicUser = "u" }, "Config.EventAuth"},
		"bad header name":   {func(c *Config) { c.EventAuth.HeaderName, c.EventAuth.HeaderValue = "X Bad", "v" }, "header name"},
		"too many changes":  {func(c *Config) { c.MaxChanges = 1 << 20 }, "Config.MaxChanges"},
		"negative body cap": {func(c *Config) { c.MaxBodyBytes = -1 }, "Config.MaxBodyBytes"},
	} {
		cfg := base
		cfg.Registerer = nil
		cfg.Gatherer = nil
		tc.edit(&cfg)
		_, err := New(cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error naming %s", name, err, tc.want)
		}
		if err != nil && (strings.Contains(err.Error(), testSecret) || strings.Contains(err.Error(), testToken)) {
			t.Errorf("%s: the error shows a secret", name)
		}
	}
}

func TestAccessLogHasTheFixedKeysAndNoSecrets(t *testing.T) {
	f := setup(t, func(c *Config) {
		c.EventAuth = EventAuth{BearerToken: testToken, BasicUser: testUser, BasicPassword: testPassword, HeaderName: testHeader, HeaderValue: testHeaderVal}
	})
	f.postChanges(twoChanges, RequestIDHeader, "req-42")
	f.postEvents(orgCreated("evt_l", "org_l", "l", nil), "Authorization", "", testHeader, testHeaderVal)
	f.postEvents(orgCreated("evt_l2", "org_l", "l", nil), "Authorization", "Bearer wrong-"+testToken)
	logs := f.logs.String()
	for _, want := range []string{
		`msg="http request" method=POST path=/v1/changes status=202`,
		"request_id=req-42", "remote_addr=127.0.0.1:",
		`path=/v1/auth0/events status=401`,
	} {
		if !strings.Contains(logs, want) {
			t.Errorf("the log lacks %q:\n%s", want, logs)
		}
	}
	for _, never := range []string{"org_1", `"action"`, "Bearer", "wrong-"} {
		if strings.Contains(logs, never) {
			t.Errorf("the log holds %q (a body or a header):\n%s", never, logs)
		}
	}
	// setup's cleanup checks that no credential reached the log.
}

func TestNewServerHasTimeoutsAndAHeaderLimit(t *testing.T) {
	s := NewServer(":0", http.NotFoundHandler(), nil)
	if s.ReadHeaderTimeout <= 0 || s.ReadTimeout <= 0 || s.WriteTimeout <= 0 || s.IdleTimeout <= 0 || s.MaxHeaderBytes <= 0 || s.ErrorLog == nil {
		t.Fatalf("server %+v", s)
	}
	if DefaultRequestTimeout >= s.WriteTimeout {
		t.Fatal("the request timeout does not leave time to answer 503 before the write timeout")
	}
}
