package webhook

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/orgconn/orgconn/producer"
	"github.com/orgconn/orgconn/worker/ledger"
	"github.com/orgconn/orgconn/worker/redistest"
	"github.com/prometheus/client_golang/prometheus"
)

// Credentials of the tests. Each is checked to stay out of logs.
const (
	testSecret    = "whsec-test-0123456789abcdef"
	testNextSec   = "whsec-next-fedcba9876543210"
	testToken     = "evt-bearer-token-0123456789"
	testUser      = "auth0-stream"
	testPassword  = "basic-password-0123456789"
	testHeader    = "X-Auth0-Stream-Key"
	testHeaderVal = "header-value-0123456789abcd"
)

// testRules enable con_A (with membership on login) and con_B for every new
// organization, and con_C for enterprise ones named acme-….
const testRules = `
rules:
  - event: organization.created
    changes:
      - action: enable
        connection_id: con_A
        assign_membership_on_login: true
      - action: enable
        connection_id: con_B
  - event: organization.created
    match:
      name_prefix: acme-
      metadata: {tier: enterprise}
    changes:
      - action: enable
        connection_id: con_C
        show_as_button: false
`

// fixture is one test's Handler on its own Redis, served over HTTP.
type fixture struct {
	t         *testing.T
	env       *redistest.Env
	ledger    *ledger.Ledger
	submitter *producer.Submitter
	handler   *Handler
	srv       *httptest.Server
	reg       *prometheus.Registry
	inspector *asynq.Inspector
	now       time.Time
	logs      *redistest.LockedBuffer
}

// setup builds the fixture; edit changes the Config before New.
func setup(t *testing.T, edit ...func(*Config)) *fixture {
	t.Helper()
	env := redistest.New(t)
	l, err := ledger.New(env.Client, env.Prefix, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	client := asynq.NewClientFromRedisClient(env.Client)
	sub, err := producer.NewSubmitter(producer.SubmitConfig{Ledger: l, Queue: client, QueueName: env.Queue})
	if err != nil {
		t.Fatal(err)
	}
	rules, err := ParseRules([]byte(testRules), "yaml")
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{
		t: t, env: env, ledger: l, submitter: sub, reg: prometheus.NewRegistry(),
		inspector: asynq.NewInspectorFromRedisClient(env.Client),
		now:       time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC),
		logs:      &redistest.LockedBuffer{},
	}
	cfg := Config{
		Submitter: sub, Redis: env.Client, KeyPrefix: l.Prefix(),
		Secrets:    []string{testSecret},
		EventAuth:  EventAuth{BearerToken: testToken},
		Rules:      rules,
		Registerer: f.reg,
		Logger:     slog.New(slog.NewTextHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Now:        func() time.Time { return f.now },
	}
	for _, e := range edit {
		e(&cfg)
	}
	if f.handler, err = New(cfg); err != nil {
		t.Fatal(err)
	}
	f.srv = httptest.NewServer(f.handler)
	t.Cleanup(f.srv.Close)
	t.Cleanup(func() { client.Close() })
	t.Cleanup(func() { f.checkLogsHoldNoSecrets() })
	return f
}

// response is what a request got.
type response struct {
	status int
	header http.Header
	body   string
}

// do sends a request to the fixture's server.
func (f *fixture) do(method, path, contentType string, body io.Reader, header http.Header) response {
	f.t.Helper()
	req, err := http.NewRequest(method, f.srv.URL+path, body)
	if err != nil {
		f.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		f.t.Fatal(err)
	}
	return response{resp.StatusCode, resp.Header, string(b)}
}

// postChanges sends body to /v1/changes, signed with testSecret now; extra
// headers are added (an empty X-Orgconn-Signature removes the signature).
func (f *fixture) postChanges(body string, header ...string) response {
	f.t.Helper()
	h := http.Header{}
	h.Set(SignatureHeader, Sign(testSecret, f.now, []byte(body)))
	for i := 0; i+1 < len(header); i += 2 {
		if header[i+1] == "" {
			h.Del(header[i])
		} else {
			h.Set(header[i], header[i+1])
		}
	}
	return f.do(http.MethodPost, PathChanges, "application/json", strings.NewReader(body), h)
}

// postEvents sends body to /v1/auth0/events with the bearer token; extra
// headers are added (an empty Authorization removes it).
func (f *fixture) postEvents(body string, header ...string) response {
	f.t.Helper()
	h := http.Header{}
	h.Set("Authorization", "Bearer "+testToken)
	for i := 0; i+1 < len(header); i += 2 {
		if header[i+1] == "" {
			h.Del(header[i])
		} else {
			h.Set(header[i], header[i+1])
		}
	}
	return f.do(http.MethodPost, PathEvents, "application/json", strings.NewReader(body), h)
}

// queued returns the ids of the tasks in the test's queue, sorted.
func (f *fixture) queued() []string {
	f.t.Helper()
	tasks, err := f.inspector.ListPendingTasks(f.env.Queue, asynq.PageSize(10000))
	if err != nil && !strings.Contains(err.Error(), "not found") {
		f.t.Fatal(err)
	}
	var ids []string
	for _, ti := range tasks {
		ids = append(ids, ti.ID)
	}
	sort.Strings(ids)
	return ids
}

// metric returns the value of the sample name with the given labels, read
// from /metrics (0 when absent).
func (f *fixture) metric(name string, labels map[string]string) float64 {
	f.t.Helper()
	r := f.do(http.MethodGet, PathMetrics, "", nil, nil)
	if r.status != http.StatusOK {
		f.t.Fatalf("GET /metrics: %d %s", r.status, r.body)
	}
	for _, line := range strings.Split(r.body, "\n") {
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		ok := true
		for k, v := range labels {
			ok = ok && strings.Contains(line[:i], k+"=\""+v+"\"")
		}
		if ok {
			v, err := strconv.ParseFloat(line[i+1:], 64)
			if err != nil {
				f.t.Fatalf("metric line %q: %v", line, err)
			}
			return v
		}
	}
	return 0
}

// checkLogsHoldNoSecrets fails the test if a credential reached the log.
func (f *fixture) checkLogsHoldNoSecrets() {
	logs := f.logs.String()
	for _, s := range []string{testSecret, testNextSec, testToken, testPassword, testHeaderVal, "v1="} {
		if strings.Contains(logs, s) {
			f.t.Errorf("the log holds a credential (%q…):\n%s", s[:4], logs)
		}
	}
}

// failingSubmitter fails its first n submissions, then passes them on.
type failingSubmitter struct {
	next Submitter
	mu   sync.Mutex
	n    int
}

func (s *failingSubmitter) Submit(ctx context.Context, sub producer.Submission) (producer.Receipt, error) {
	s.mu.Lock()
	fail := s.n > 0
	s.n--
	s.mu.Unlock()
	if fail {
		return producer.Receipt{}, io.ErrUnexpectedEOF
	}
	return s.next.Submit(ctx, sub)
}
