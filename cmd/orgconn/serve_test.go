package main

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/orgconn/orgconn/producer/webhook"
	"github.com/orgconn/orgconn/worker/metrics"
	"github.com/orgconn/orgconn/worker/redistest"
)

const (
	serveSecret = "serve-test-secret-0123456789"
	serveToken  = "serve-test-token-0123456789"
)

// serveRules is a valid rules file for the tests.
func serveRules(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "rules.yaml")
	doc := "rules:\n  - event: organization.created\n    changes:\n      - {action: enable, connection_id: con_A, assign_membership_on_login: true}\n"
	if err := os.WriteFile(p, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestServeRefusesAConfigurationThatCannotWork(t *testing.T) {
	r := redistest.New(t)
	base := map[string]string{"REDIS_URL": r.URL}
	with := func(kv ...string) map[string]string {
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	secretFile := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secretFile, []byte(serveSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	badRules := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(badRules, []byte("rules:\n  - event: organization.created\n    changes:\n      - {action: enable, org_id: org_1, connection_id: con_A}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		vars map[string]string
		args []string
		code int
		want string
	}{
		{"nothing configured", with(), nil, exitUsage, "nothing to serve"},
		{"short secret", with("ORGCONN_WEBHOOK_SECRET", "short"), nil, exitUsage, "shorter than 16"},
		{"three secrets", with("ORGCONN_WEBHOOK_SECRET", serveSecret+","+serveSecret+"a,"+serveSecret+"b"), nil, exitUsage, "one, or two"},
		{"secret and file", with("ORGCONN_WEBHOOK_SECRET", serveSecret, "ORGCONN_WEBHOOK_SECRET_FILE", secretFile), nil, exitUsage, "use one"},
		{"event auth without rules", with("ORGCONN_EVENTS_BEARER_TOKEN", serveToken), nil, exitUsage, "--rules is not"},
		{"rules without event auth", with("ORGCONN_WEBHOOK_SECRET", serveSecret), []string{"--rules", serveRules(t)}, exitUsage, "no event authentication"},
		{"half basic auth", with("ORGCONN_EVENTS_BASIC_USER", "auth0"), []string{"--rules", serveRules(t)}, exitUsage, "both a user and a password"},
		{"header name only", with("ORGCONN_EVENTS_HEADER_NAME", "X-Key"), []string{"--rules", serveRules(t)}, exitUsage, "both a header name and a value"},
		{"bad rules", with("ORGCONN_EVENTS_BEARER_TOKEN", serveToken), []string{"--rules", badRules}, exitUsage, "rules[0].changes[0].org_id"},
		{"missing rules file", with("ORGCONN_EVENTS_BEARER_TOKEN", serveToken), []string{"--rules", badRules + ".nope"}, exitUsage, "rules file"},
		{"max changes", with("ORGCONN_WEBHOOK_SECRET", serveSecret), []string{"--max-changes", "0"}, exitUsage, "--max-changes"},
		{"Redis down", map[string]string{"REDIS_URL": "redis://127.0.0.1:1/0", "ORGCONN_WEBHOOK_SECRET_FILE": secretFile}, nil, exitUnavailable, "does not answer"},
	} {
		code, out, errOut := runCmd(t, tc.vars, append([]string{"serve", "--addr", "127.0.0.1:0"}, tc.args...)...)
		if code != tc.code || !strings.Contains(errOut, tc.want) {
			t.Errorf("%s: exit %d, stderr %q; want exit %d saying %q", tc.name, code, errOut, tc.code, tc.want)
		}
		if strings.Contains(out+errOut, serveSecret) || strings.Contains(out+errOut, serveToken) {
			t.Errorf("%s: the output shows a secret", tc.name)
		}
	}
}

// background is an orgconn command a test runs in the background.
type background struct {
	stdout, stderr *redistest.LockedBuffer
	done           chan int   // receives the exit code
	stop           func() int // cancels the context and returns the exit code
}

// startBackground runs args with the environment vars until stop (called
// at cleanup at the latest), which waits up to stopWithin for the exit
// code. It returns at once.
func startBackground(t *testing.T, vars map[string]string, stopWithin time.Duration, args ...string) *background {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	b := &background{stdout: &redistest.LockedBuffer{}, stderr: &redistest.LockedBuffer{}, done: make(chan int, 1)}
	go func() {
		b.done <- run(ctx, args, &env{stdin: strings.NewReader(""), stdout: b.stdout, stderr: b.stderr, getenv: func(k string) string { return vars[k] }})
	}()
	stopped := false
	b.stop = func() int {
		if stopped {
			return exitOK
		}
		stopped = true
		cancel()
		select {
		case code := <-b.done:
			return code
		case <-time.After(stopWithin):
			t.Fatalf("%s did not stop within %v of cancellation", args[0], stopWithin)
			return -1
		}
	}
	t.Cleanup(func() { b.stop() })
	return b
}

// served is a running serve command.
type served struct {
	*background
	url string
}

// startServe runs "orgconn serve" until stop and returns once it listens.
func startServe(t *testing.T, vars map[string]string, args ...string) *served {
	t.Helper()
	s := &served{background: startBackground(t, vars, 30*time.Second, append([]string{"serve", "--addr", "127.0.0.1:0"}, args...)...)}
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(10 * time.Second)
	for {
		if line, _, ok := strings.Cut(s.stdout.String(), "\n"); ok {
			rest, found := strings.CutPrefix(line, "listening on ")
			if !found {
				t.Fatalf("first line %q", line)
			}
			s.url, _, _ = strings.Cut(rest, ": ") // "listening on http://HOST:PORT: /v1/changes, …"
			return s
		}
		select {
		case code := <-s.done:
			t.Fatalf("serve exited %d before listening: %s", code, s.stderr.String())
		case <-deadline:
			t.Fatalf("serve did not listen within 10s: %s", s.stderr.String())
		case <-tick.C:
		}
	}
}

func post(t *testing.T, url, contentType, body string, header map[string]string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestServeAcceptsBothEndpointsAndStopsGracefully(t *testing.T) {
	r := redistest.New(t)
	secretFile := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secretFile, []byte(serveSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{
		"REDIS_URL": r.URL, "ORGCONN_QUEUE": r.Queue, "ORGCONN_KEY_PREFIX": r.Prefix,
		"ORGCONN_WEBHOOK_SECRET_FILE": secretFile, "ORGCONN_EVENTS_BEARER_TOKEN": serveToken,
	}
	s := startServe(t, vars, "--rules", serveRules(t))
	if !strings.Contains(s.stdout.String(), "/v1/changes, /v1/auth0/events") {
		t.Errorf("stdout does not name the endpoints: %q", s.stdout.String())
	}

	body := `{"action":"enable","org_id":"org_1","connection_id":"con_1"}`
	sig := webhook.Sign(serveSecret, time.Now(), []byte(body))
	if code, out := post(t, s.url+webhook.PathChanges, "application/json", body, map[string]string{webhook.SignatureHeader: sig}); code != http.StatusAccepted || !strings.Contains(out, `"accepted":1`) {
		t.Errorf("signed change: %d %s", code, out)
	}
	if code, _ := post(t, s.url+webhook.PathChanges, "application/json", body, map[string]string{webhook.SignatureHeader: webhook.Sign("wrong-secret-0123456789", time.Now(), []byte(body))}); code != http.StatusUnauthorized {
		t.Errorf("wrongly signed change: %d", code)
	}
	ev := `{"specversion":"1.0","type":"organization.created","source":"urn:auth0:t","id":"evt_s1","data":{"object":{"id":"org_9","name":"n"}}}`
	if code, out := post(t, s.url+webhook.PathEvents, "application/cloudevents+json", ev, map[string]string{"Authorization": "Bearer " + serveToken}); code != http.StatusAccepted || !strings.Contains(out, `"outcome":"applied"`) {
		t.Errorf("event: %d %s", code, out)
	}
	if code, _ := post(t, s.url+webhook.PathEvents, "application/json", ev, map[string]string{"Authorization": "Bearer nope"}); code != http.StatusUnauthorized {
		t.Errorf("event with a wrong token: %d", code)
	}
	for path, want := range map[string]string{webhook.PathHealthz: "ok", webhook.PathReadyz: "ready", webhook.PathMetrics: "orgconn_webhook_requests_total"} {
		if code, out := get(t, s.url+path); code != http.StatusOK || !strings.Contains(out, want) {
			t.Errorf("GET %s: %d, body lacks %q", path, code, want)
		}
	}
	_, out := get(t, s.url+webhook.PathMetrics)
	for _, want := range []string{"go_goroutines", "orgconn_events_total", `orgconn_queue_tasks{queue="` + r.Queue + `",state="pending"} 2`, `orgconn_queue_workers{queue="` + r.Queue + `"} 0`} {
		if !strings.Contains(out, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	for _, name := range regexp.MustCompile(`(?m)^# TYPE (orgconn_\w+)`).FindAllStringSubmatch(out, -1) {
		if !slices.Contains(metrics.Names, name[1]) {
			t.Errorf("%s is served but not in metrics.Names", name[1])
		}
	}

	if code := s.stop(); code != exitOK {
		t.Fatalf("exit %d after cancellation: %s", code, s.stderr.String())
	}
	logs := s.stderr.String()
	if !strings.Contains(logs, "shutting down") || !strings.Contains(logs, "stopped") {
		t.Errorf("the log does not show a graceful stop:\n%s", logs)
	}
	for _, secret := range []string{serveSecret, serveToken, "v1="} {
		if strings.Contains(logs+s.stdout.String(), secret) {
			t.Errorf("the output holds a credential (%q…)", secret[:4])
		}
	}
}

func TestServeMetricsToken(t *testing.T) {
	r := redistest.New(t)
	const token = "serve-metrics-token-0123456789abcdef"
	s := startServe(t, map[string]string{"REDIS_URL": r.URL, "ORGCONN_QUEUE": r.Queue, "ORGCONN_KEY_PREFIX": r.Prefix,
		"ORGCONN_WEBHOOK_SECRET": serveSecret, "ORGCONN_METRICS_TOKEN": token})
	if code, _ := get(t, s.url+webhook.PathMetrics); code != http.StatusUnauthorized {
		t.Errorf("/metrics without the token: %d, want 401", code)
	}
	req, _ := http.NewRequest(http.MethodGet, s.url+webhook.PathMetrics, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("/metrics with the token: %d, want 200", resp.StatusCode)
	}
	if code, _ := get(t, s.url+webhook.PathHealthz); code != http.StatusOK {
		t.Errorf("/healthz without a token: %d, want 200", code)
	}
	// The webhooks keep their own authentication: the metrics token is not it.
	body := `{"action":"enable","org_id":"org_1","connection_id":"con_1"}`
	if code, _ := post(t, s.url+webhook.PathChanges, "application/json", body, map[string]string{"Authorization": "Bearer " + token}); code != http.StatusUnauthorized {
		t.Errorf("a change carrying only the metrics token: %d, want 401", code)
	}
	s.stop()
	if strings.Contains(s.stderr.String()+s.stdout.String(), token) {
		t.Error("the output holds the metrics token")
	}
}

func TestServeWithOnlyTheChangesEndpoint(t *testing.T) {
	r := redistest.New(t)
	s := startServe(t, map[string]string{"REDIS_URL": r.URL, "ORGCONN_QUEUE": r.Queue, "ORGCONN_KEY_PREFIX": r.Prefix, "ORGCONN_WEBHOOK_SECRET": serveSecret})
	if line := s.stdout.String(); !strings.Contains(line, "/v1/changes") || strings.Contains(line, "/v1/auth0/events") {
		t.Errorf("stdout %q", line)
	}
	if code, _ := post(t, s.url+webhook.PathEvents, "application/json", `{}`, map[string]string{"Authorization": "Bearer " + serveToken}); code != http.StatusNotFound {
		t.Errorf("events not configured: %d, want 404", code)
	}
}
