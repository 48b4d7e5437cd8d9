package main

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/orgconn/orgconn/producer/webhook"
	"github.com/orgconn/orgconn/worker/ledger"
	"github.com/orgconn/orgconn/worker/mgmt/mgmttest"
	"github.com/orgconn/orgconn/worker/redistest"
	"github.com/redis/go-redis/v9"
)

// Known secrets: no output line may contain any of them.
const (
	secClientSecret  = "client-secret-Zq7uXw93kP0aLm"
	secWebhookSecret = "webhook-secret-Vb5nRt28cJ4eHs"
	secRedisPassword = "redis-pass-Gd6yTe71fQ9wNc"
)

func assertNoSecrets(t *testing.T, where, output string) {
	t.Helper()
	for _, s := range []string{secClientSecret, secWebhookSecret, secRedisPassword} {
		for i, line := range strings.Split(output, "\n") {
			if strings.Contains(line, s) {
				t.Errorf("%s: line %d shows a secret (%s…): %s", where, i+1, s[:8], line)
			}
		}
	}
}

// securityTenant is a simulated tenant whose client secret is
// secClientSecret, and the records of the run.
func securityTenant(t *testing.T) (*mgmttest.Server, string) {
	t.Helper()
	sim := mgmttest.New(mgmttest.Config{Orgs: 5, Connections: 2, Seed: 3, ClientSecret: secClientSecret})
	run, err := mgmttest.Listen("127.0.0.1:0", sim)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { run.Close(context.Background()) })
	return sim, run.URL()
}

// changesFile is a CSV of one valid change per organization of sim and one
// invalid row.
func changesFile(t *testing.T, sim *mgmttest.Server) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("action,org_id,connection_id\n")
	for _, o := range sim.Orgs() {
		b.WriteString("enable," + o + "," + sim.Connections()[0].ID + "\n")
	}
	b.WriteString("enable,org_bad id," + sim.Connections()[0].ID + "\n")
	return file(t, b.String())
}

// waitBatch waits until every line of batch is resolved.
func waitBatchDone(t *testing.T, rdb redis.UniversalClient, prefix, batch string) ledger.BatchCounts {
	t.Helper()
	l, err := ledger.New(rdb, prefix, 0)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		bc, err := l.Batch(context.Background(), batch)
		if err == nil && bc.Done() {
			return bc
		}
		if time.Now().After(deadline) {
			t.Fatalf("batch %s not done: %+v, %v", batch, bc, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestSecretsNeverShow runs import, worker and serve at debug level against
// a Redis that requires a password (given in REDIS_URL), a tenant with a
// known client secret and a known webhook secret — through success, bad
// input, a wrong Redis password, a wrong client secret and unauthenticated
// webhook requests — and checks that no line of their output holds a
// secret, and that the webhook endpoints refuse unauthenticated requests.
func TestSecretsNeverShow(t *testing.T) {
	srv := redistest.StartServer(t, redistest.ServerOptions{Password: secRedisPassword})
	r := srv.NewEnv(t, 0)
	sim, simURL := securityTenant(t)
	vars := map[string]string{
		"REDIS_URL": r.URL, "ORGCONN_QUEUE": r.Queue, "ORGCONN_KEY_PREFIX": r.Prefix, "ORGCONN_LOG_LEVEL": "debug",
		"AUTH0_DOMAIN": simURL, "AUTH0_CLIENT_ID": mgmttest.DefaultClientID, "AUTH0_CLIENT_SECRET": secClientSecret,
		"ORGCONN_WEBHOOK_SECRET": secWebhookSecret,
	}
	with := func(k, v string) map[string]string {
		m := map[string]string{}
		for a, b := range vars {
			m[a] = b
		}
		m[k] = v
		return m
	}
	var all strings.Builder
	record := func(where string, code int, out, errOut string) {
		t.Logf("%s: exit %d", where, code)
		all.WriteString(out + errOut)
		assertNoSecrets(t, where, out+errOut)
	}

	// worker: a wrong client secret fails at start. (First: once a token is
	// shared through Redis — import fetches one, having credentials — every
	// process of the fleet uses it.)
	wrongSecret := with("AUTH0_CLIENT_SECRET", secClientSecret+"-wrong")
	code, out, errOut := runCmd(t, wrongSecret, "worker")
	record("worker with a wrong client secret", code, out, errOut)
	if code == exitOK {
		t.Errorf("worker with a wrong client secret: exit %d", code)
	}

	// import (with the tenant's credentials: it may look names up): good
	// rows and a bad one, then a wrong Redis password.
	csv := changesFile(t, sim)
	code, out, errOut = runCmd(t, vars, "import", "--batch", "sec", "--skip-invalid", csv)
	record("import", code, out, errOut)
	if code != exitOK || !strings.Contains(out, "enqueued 5 changes") {
		t.Fatalf("import: exit %d\n%s%s", code, out, errOut)
	}
	wrongRedis := strings.Replace(r.URL, secRedisPassword, secRedisPassword+"-wrong", 1)
	code, out, errOut = runCmd(t, with("REDIS_URL", wrongRedis), "import", "--batch", "sec2", csv)
	record("import with a wrong Redis password", code, out, errOut)
	if code != exitUnavailable {
		t.Errorf("import with a wrong Redis password: exit %d, want %d", code, exitUnavailable)
	}

	// worker: the right secret applies the batch.
	ctx, cancel := context.WithCancel(context.Background())
	wout, werr := &redistest.LockedBuffer{}, &redistest.LockedBuffer{}
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"worker", "--plan", "free", "--rate", "100", "--burst", "20"}, &env{stdin: strings.NewReader(""), stdout: wout, stderr: werr, getenv: func(k string) string { return vars[k] }})
	}()
	bc := waitBatchDone(t, r.Client, r.Prefix, "sec")
	cancel()
	record("worker", <-done, wout.String(), werr.String())
	if bc.Applied != 5 {
		t.Errorf("worker: %+v, want 5 applied", bc)
	}

	// serve: unauthenticated requests are refused.
	s := startServe(t, with("ORGCONN_EVENTS_BEARER_TOKEN", "events-token-0123456789abcdef"), "--rules", serveRules(t))
	body := `{"action":"enable","org_id":"org_1","connection_id":"con_1"}`
	for name, h := range map[string]map[string]string{
		"no signature":         nil,
		"wrong secret":         {webhook.SignatureHeader: webhook.Sign("not-the-secret-0123456789", time.Now(), []byte(body))},
		"stale signature":      {webhook.SignatureHeader: webhook.Sign(secWebhookSecret, time.Now().Add(-time.Hour), []byte(body))},
		"garbage signature":    {webhook.SignatureHeader: "t=1,v1=00"},
		"signature of another": {webhook.SignatureHeader: webhook.Sign(secWebhookSecret, time.Now(), []byte(body+" "))},
	} {
		if code, _ := post(t, s.url+webhook.PathChanges, "application/json", body, h); code != http.StatusUnauthorized {
			t.Errorf("/v1/changes with %s: %d, want 401", name, code)
		}
	}
	ev := `{"specversion":"1.0","type":"organization.created","source":"urn:auth0:t","id":"evt_1","data":{"object":{"id":"org_9","name":"n"}}}`
	for name, h := range map[string]map[string]string{
		"no token":    nil,
		"wrong token": {"Authorization": "Bearer wrong-token-0123456789"},
		"basic auth":  {"Authorization": "Basic dXNlcjpwYXNz"},
	} {
		if code, _ := post(t, s.url+webhook.PathEvents, "application/cloudevents+json", ev, h); code != http.StatusUnauthorized {
			t.Errorf("/v1/auth0/events with %s: %d, want 401", name, code)
		}
	}
	if code, _ := post(t, s.url+webhook.PathChanges, "application/json", body, map[string]string{webhook.SignatureHeader: webhook.Sign(secWebhookSecret, time.Now(), []byte(body))}); code != http.StatusAccepted {
		t.Errorf("/v1/changes signed with the secret: %d, want 202", code)
	}
	code = s.stop()
	record("serve", code, s.stdout.String(), s.stderr.String())
	if !strings.Contains(all.String(), "msg=applied") || !strings.Contains(all.String(), "check credentials") {
		t.Errorf("the worker's log lines were not captured: the test does not see what it should:\n%s", all.String())
	}
}

// TestRedisOverTLS runs import and worker processes against a redis-server
// that accepts only TLS with a password (rediss://:password@…), its
// self-signed certificate trusted through SSL_CERT_FILE; without it the
// import fails, naming the certificate and not the password.
func TestRedisOverTLS(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the command and starts a TLS redis-server")
	}
	srv := redistest.StartServer(t, redistest.ServerOptions{Password: secRedisPassword, TLS: true})
	env := srv.NewEnv(t, 0)
	sim, simURL := securityTenant(t)
	bin := filepath.Join(t.TempDir(), "orgconn")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	base := append(os.Environ(), "REDIS_URL="+env.URL, "ORGCONN_QUEUE="+env.Queue, "ORGCONN_KEY_PREFIX="+env.Prefix,
		"AUTH0_DOMAIN="+simURL, "AUTH0_CLIENT_ID="+mgmttest.DefaultClientID, "AUTH0_CLIENT_SECRET="+secClientSecret)
	trusted := append(base, "SSL_CERT_FILE="+srv.CAFile)
	csv := changesFile(t, sim)

	cmd := exec.Command(bin, "import", "--batch", "tls", "--skip-invalid", csv)
	cmd.Env = base
	out, err := cmd.CombinedOutput()
	assertNoSecrets(t, "import without the CA", string(out))
	if err == nil || !strings.Contains(string(out), "certificate") {
		t.Errorf("import without trusting the certificate: %v\n%s", err, out)
	}

	cmd = exec.Command(bin, "import", "--batch", "tls", "--skip-invalid", csv)
	cmd.Env = trusted
	out, err = cmd.CombinedOutput()
	assertNoSecrets(t, "import over TLS", string(out))
	if err != nil || !strings.Contains(string(out), "enqueued 5 changes") {
		t.Fatalf("import over TLS: %v\n%s", err, out)
	}
	w := exec.Command(bin, "worker", "--plan", "free", "--rate", "100", "--burst", "20", "--log-level", "debug")
	w.Env = trusted
	wout := &redistest.LockedBuffer{}
	w.Stdout, w.Stderr = wout, wout
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	defer w.Process.Kill()
	bc := waitBatchDone(t, env.Client, env.Prefix, "tls")
	w.Process.Signal(os.Interrupt)
	if err := w.Wait(); err != nil {
		t.Errorf("worker over TLS: %v\n%s", err, wout.String())
	}
	assertNoSecrets(t, "worker over TLS", wout.String())
	if bc.Applied != 5 {
		t.Errorf("worker over TLS: %+v, want 5 applied", bc)
	}
}
