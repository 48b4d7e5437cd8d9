package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/orgconn/orgconn/worker/metrics"
	"github.com/orgconn/orgconn/worker/mgmt/mgmttest"
	"github.com/orgconn/orgconn/worker/redistest"
)

// workerRun is a running "orgconn worker".
type workerRun struct {
	*background
	metricsURL string
}

var metricsAddrLog = regexp.MustCompile(`msg="serving metrics" addr=(\S+)`)

// startWorkerCmd runs "orgconn worker" with the given environment until stop
// and returns once its metrics endpoint listens.
func startWorkerCmd(t *testing.T, vars map[string]string, args ...string) *workerRun {
	t.Helper()
	w := &workerRun{background: startBackground(t, vars, 60*time.Second, append([]string{"worker", "--metrics-addr", "127.0.0.1:0"}, args...)...)}
	deadline := time.After(20 * time.Second)
	for {
		if m := metricsAddrLog.FindStringSubmatch(w.stderr.String()); m != nil {
			w.metricsURL = "http://" + m[1]
			return w
		}
		select {
		case code := <-w.done:
			t.Fatalf("worker exited %d before serving metrics: %s", code, w.stderr.String())
		case <-deadline:
			t.Fatalf("worker did not serve metrics within 20s: %s", w.stderr.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// waitFor polls cond every 50 ms until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(d); !cond(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, d)
		}
	}
}

func TestWorkerServesMetricsHealthAndReadiness(t *testing.T) {
	r := redistest.New(t)
	sim, err := mgmttest.Listen("127.0.0.1:0", mgmttest.New(mgmttest.Config{Orgs: 3, Connections: 2, Global: mgmttest.Bucket{Burst: 10, Rate: 50}}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close(context.Background()) })
	vars := map[string]string{
		"REDIS_URL": r.URL, "ORGCONN_QUEUE": r.Queue, "ORGCONN_KEY_PREFIX": r.Prefix,
		"AUTH0_DOMAIN": sim.URL(), "AUTH0_CLIENT_ID": mgmttest.DefaultClientID, "AUTH0_CLIENT_SECRET": mgmttest.DefaultClientSecret,
	}
	w := startWorkerCmd(t, vars, "--concurrency", "3")
	waitFor(t, 10*time.Second, "/readyz answers 200", func() bool {
		code, _ := get(t, w.metricsURL+metrics.PathReadyz)
		return code == http.StatusOK
	})
	if code, body := get(t, w.metricsURL+metrics.PathHealthz); code != http.StatusOK || body != "ok\n" {
		t.Errorf("/healthz: %d %q", code, body)
	}
	code, body := get(t, w.metricsURL+metrics.PathMetrics)
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d", code)
	}
	for _, want := range []string{
		`orgconn_worker_concurrency{queue="` + r.Queue + `"} 3`,
		`orgconn_queue_tasks{queue="` + r.Queue + `",state="pending"} 0`,
		`orgconn_dead_letters_total{reason="not_found"} 0`,
		`orgconn_tasks_total{action="enable",outcome="applied"} 0`,
		"orgconn_api_throttled_total 0",
		"orgconn_limiter_bucket_burst{bucket=",
		"go_goroutines", "process_resident_memory_bytes",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	for _, name := range regexp.MustCompile(`(?m)^# TYPE (orgconn_\w+)`).FindAllStringSubmatch(body, -1) {
		if !slices.Contains(metrics.Names, name[1]) {
			t.Errorf("%s is served but not in metrics.Names", name[1])
		}
	}
	if c := w.stop(); c != exitOK {
		t.Fatalf("worker exit %d: %s", c, w.stderr.String())
	}
	if _, err := http.Get(w.metricsURL + metrics.PathHealthz); err == nil {
		t.Error("the metrics endpoint still answers after the worker stopped")
	}
}

func TestWorkerRefusesATakenMetricsAddress(t *testing.T) {
	r := redistest.New(t)
	sim, err := mgmttest.Listen("127.0.0.1:0", mgmttest.New(mgmttest.Config{Orgs: 1, Connections: 1}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close(context.Background()) })
	taken := strings.TrimPrefix(sim.URL(), "http://")
	code, _, errOut := runCmd(t, map[string]string{
		"REDIS_URL": r.URL, "ORGCONN_QUEUE": r.Queue, "ORGCONN_KEY_PREFIX": r.Prefix,
		"AUTH0_DOMAIN": sim.URL(), "AUTH0_CLIENT_ID": mgmttest.DefaultClientID, "AUTH0_CLIENT_SECRET": mgmttest.DefaultClientSecret,
	}, "worker", "--metrics-addr", taken)
	if code != exitUnavailable || !strings.Contains(errOut, "--metrics-addr "+taken) || !strings.Contains(errOut, "leave --metrics-addr and ORGCONN_METRICS_ADDR unset for a free loopback port") {
		t.Fatalf("metrics address in use: exit %d, %q", code, errOut)
	}
}

func TestWorkerRefusesBadFlagsAsUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--concurrency", "0"}, "worker: --concurrency 0: want 1 or more"},
		{[]string{"--concurrency", "-3"}, "worker: --concurrency -3: want 1 or more"},
		{[]string{"--max-attempts", "0"}, "worker: --max-attempts 0: want 1 or more"},
		{[]string{"--orphan-check", "-1s"}, "worker: --orphan-check -1s: want a positive interval, or 0 for none"},
	} {
		// No Redis and no credentials: a bad flag is found before either.
		code, _, errOut := runCmd(t, map[string]string{"REDIS_URL": "redis://127.0.0.1:1/0"}, append([]string{"worker"}, tc.args...)...)
		if code != exitUsage || !strings.Contains(errOut, tc.want) {
			t.Errorf("worker %v: exit %d, %q; want %d and %q", tc.args, code, errOut, exitUsage, tc.want)
		}
	}
}

// workerVars is the environment of a worker against r and sim.
func workerVars(r *redistest.Env, sim *mgmttest.Running) map[string]string {
	return map[string]string{
		"REDIS_URL": r.URL, "ORGCONN_QUEUE": r.Queue, "ORGCONN_KEY_PREFIX": r.Prefix,
		"AUTH0_DOMAIN": sim.URL(), "AUTH0_CLIENT_ID": mgmttest.DefaultClientID, "AUTH0_CLIENT_SECRET": mgmttest.DefaultClientSecret,
	}
}

func TestTwoWorkersStartOnOneHostWithNoMetricsFlags(t *testing.T) {
	r := redistest.New(t)
	sim, err := mgmttest.Listen("127.0.0.1:0", mgmttest.New(mgmttest.Config{Orgs: 1, Connections: 1}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close(context.Background()) })
	// Two "orgconn worker" with no metrics flag and no ORGCONN_METRICS_ADDR:
	// the first takes 127.0.0.1:9464 (unless something on this machine has
	// it), the second falls back to a free loopback port.
	var addrs []string
	var logs string
	for i := range 2 {
		w := startBackground(t, workerVars(r, sim), 60*time.Second, "worker")
		var addr string
		waitFor(t, 20*time.Second, fmt.Sprintf("worker %d serves metrics", i+1), func() bool {
			select {
			case code := <-w.done:
				t.Fatalf("worker %d exited %d: %s", i+1, code, w.stderr.String())
			default:
			}
			if m := metricsAddrLog.FindStringSubmatch(w.stderr.String()); m != nil {
				addr = m[1]
			}
			return addr != ""
		})
		host, _, err := net.SplitHostPort(addr)
		if err != nil || !net.ParseIP(host).IsLoopback() {
			t.Errorf("worker %d serves metrics on %s, want a loopback address", i+1, addr)
		}
		if code, body := get(t, "http://"+addr+metrics.PathHealthz); code != http.StatusOK || body != "ok\n" {
			t.Errorf("worker %d /healthz: %d %q", i+1, code, body)
		}
		addrs = append(addrs, addr)
		logs += w.stderr.String()
	}
	if addrs[0] == addrs[1] {
		t.Errorf("both workers serve metrics on %s", addrs[0])
	}
	if !strings.Contains(logs, "serving on a free loopback port instead") || !strings.Contains(logs, "default="+defaultMetricsAddr) {
		t.Errorf("no worker logged falling back from %s:\n%s", defaultMetricsAddr, logs)
	}
}

func TestMetricsTokenIsEnforced(t *testing.T) {
	r := redistest.New(t)
	sim, err := mgmttest.Listen("127.0.0.1:0", mgmttest.New(mgmttest.Config{Orgs: 1, Connections: 1}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close(context.Background()) })
	const token = "metrics-token-6f1d2c3b4a5968778695a4b3"
	tokenFile := filepath.Join(t.TempDir(), "metrics-token")
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	fromEnv := workerVars(r, sim)
	fromEnv["ORGCONN_METRICS_TOKEN"] = token
	for name, run := range map[string]func() *workerRun{
		"ORGCONN_METRICS_TOKEN": func() *workerRun { return startWorkerCmd(t, fromEnv) },
		"--metrics-token-file":  func() *workerRun { return startWorkerCmd(t, workerVars(r, sim), "--metrics-token-file", tokenFile) },
	} {
		t.Run(name, func(t *testing.T) {
			w := run()
			scrape := func(auth string) int {
				req, _ := http.NewRequest(http.MethodGet, w.metricsURL+metrics.PathMetrics, nil)
				if auth != "" {
					req.Header.Set("Authorization", auth)
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				return resp.StatusCode
			}
			for _, auth := range []string{"", "Bearer wrong-token-0123456789abcdef", "Basic " + token} {
				if code := scrape(auth); code != http.StatusUnauthorized {
					t.Errorf("/metrics with %q: %d, want 401", auth, code)
				}
			}
			if code := scrape("Bearer " + token); code != http.StatusOK {
				t.Errorf("/metrics with the token: %d, want 200", code)
			}
			if code, _ := get(t, w.metricsURL+metrics.PathHealthz); code != http.StatusOK {
				t.Errorf("/healthz without a token: %d, want 200 (probes carry none)", code)
			}
			w.stop()
			if logs := w.stderr.String(); strings.Contains(logs, token) || !strings.Contains(logs, "metrics_token=true") {
				t.Errorf("the log shows the token, or does not say /metrics is protected:\n%s", logs)
			}
		})
	}
	for _, tc := range []struct {
		vars map[string]string
		args []string
		want string
	}{
		{map[string]string{"ORGCONN_METRICS_TOKEN": "short"}, nil, "the metrics token is shorter than 16 characters"},
		{map[string]string{"ORGCONN_METRICS_TOKEN": token}, []string{"--metrics-token-file", tokenFile}, "both --metrics-token-file and ORGCONN_METRICS_TOKEN"},
		{nil, []string{"--metrics-token-file", filepath.Join(t.TempDir(), "none")}, "--metrics-token-file: open"},
	} {
		code, _, errOut := runCmd(t, tc.vars, append([]string{"worker"}, tc.args...)...)
		if code != exitUsage || !strings.Contains(errOut, tc.want) || strings.Contains(errOut, token) {
			t.Errorf("worker %v with %v: exit %d, %q; want %d and %q", tc.args, tc.vars, code, errOut, exitUsage, tc.want)
		}
	}
}
