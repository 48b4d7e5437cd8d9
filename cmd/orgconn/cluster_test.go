package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/orgconn/orgconn/jobs/jobstest"
	"github.com/orgconn/orgconn/worker/ledger"
	"github.com/orgconn/orgconn/worker/metrics"
	"github.com/orgconn/orgconn/worker/mgmt/mgmttest"
	"github.com/orgconn/orgconn/worker/redistest"
	"github.com/redis/go-redis/v9"
)

// TestImportAndWorkOnARedisCluster runs "orgconn import" and two
// "orgconn worker" processes against a three-node Redis Cluster named by a
// redis+cluster:// REDIS_URL, and checks that the tenant ends in the state
// the file describes, every line is resolved, the queue is drained and the
// workers' metrics read the cluster. orgconn's own keys share the {prefix}
// hash tag and asynq's a {queue} tag, so every script runs on one node. The
// test runs whenever redis-server is on PATH (see redistest.NewCluster).
func TestImportAndWorkOnARedisCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Redis Cluster")
	}
	cl := redistest.NewCluster(t, 3)
	sim := mgmttest.New(mgmttest.Config{Orgs: 15, Connections: 4, Seed: 9, Global: mgmttest.Bucket{Burst: 10, Rate: 40},
		Faults: mgmttest.Faults{Error5xx: 0.03}})
	run, err := mgmttest.Listen("127.0.0.1:0", sim)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { run.Close(context.Background()) })
	var tenant jobstest.Tenant
	tenant.Orgs = append(tenant.Orgs, sim.Orgs()...)
	for _, c := range sim.Connections() {
		tenant.Connections = append(tenant.Connections, jobstest.Connection{ID: c.ID, Database: c.Strategy == "auth0"})
	}
	rows := jobstest.Generate(tenant, jobstest.Options{Changes: 80, RepeatShare: 0.3, UnknownOrgs: 3, SignupFails: 2, Invalid: 2, Seed: 13})
	var buf bytes.Buffer
	if err := jobstest.WriteCSV(&buf, rows); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "changes.csv")
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	const prefix, queue = "oc", "ocq"
	vars := map[string]string{
		"REDIS_URL": cl.URL, "ORGCONN_QUEUE": queue, "ORGCONN_KEY_PREFIX": prefix,
		"AUTH0_DOMAIN": run.URL(), "AUTH0_CLIENT_ID": mgmttest.DefaultClientID, "AUTH0_CLIENT_SECRET": mgmttest.DefaultClientSecret,
	}
	code, out, errOut := runCmd(t, vars, "import", "--batch", "cl", "--skip-invalid", path)
	if code != exitOK || !strings.Contains(out, "enqueued 85 changes") {
		t.Fatalf("import on the cluster: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}

	start := time.Now()
	w1 := startWorkerCmd(t, vars, "--concurrency", "5", "--rate", "40", "--burst", "10")
	w2 := startWorkerCmd(t, vars, "--concurrency", "5", "--rate", "40", "--burst", "10")
	l, err := ledger.New(cl.Client, prefix, 0)
	if err != nil {
		t.Fatal(err)
	}
	var bc ledger.BatchCounts
	waitFor(t, 90*time.Second, "the batch is done", func() bool {
		bc, err = l.Batch(context.Background(), "cl")
		if err != nil {
			t.Fatal(err)
		}
		return bc.Done()
	})
	t.Logf("done in %v on %v: %+v", time.Since(start).Round(time.Millisecond), cl, bc)

	want := jobstest.Replay(tenant, rows)
	got := map[string]map[string]jobstest.State{}
	for org, cs := range sim.State() {
		for c, s := range cs {
			if got[org] == nil {
				got[org] = map[string]jobstest.State{}
			}
			got[org][c] = jobstest.State{AssignMembershipOnLogin: s.AssignMembershipOnLogin, ShowAsButton: s.ShowAsButton, IsSignupEnabled: s.IsSignupEnabled}
		}
	}
	if diff := jobstest.Diff(want.Final, got); len(diff) > 0 {
		t.Errorf("final state differs from applying the rows in file order:\n%s", strings.Join(diff, "\n"))
	}
	if bc.Total != 85 || bc.Dead != int64(len(want.Fails)) {
		t.Errorf("batch %+v: want 85 accepted and %d dead", bc, len(want.Fails))
	}
	// The ledger records a dead letter before the handler returns and asynq
	// archives the task: give the last one a moment.
	var qi *asynq.QueueInfo
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if qi, err = asynq.NewInspectorFromRedisClient(cl.Client).GetQueueInfo(queue); err != nil {
			t.Fatal(err)
		}
		if qi.Pending+qi.Active+qi.Scheduled+qi.Retry == 0 && int64(qi.Archived) == bc.Dead || time.Now().After(deadline) {
			break
		}
	}
	if qi.Pending+qi.Active+qi.Scheduled+qi.Retry != 0 || int64(qi.Archived) != bc.Dead {
		t.Errorf("queue after the run: %+v; want empty with %d archived", qi, bc.Dead)
	}

	// The workers' scrapes read the cluster: the queue, both workers, the
	// limiter's buckets, no collection error.
	_, body := get(t, w1.metricsURL+metrics.PathMetrics)
	for _, s := range []string{
		`orgconn_queue_tasks{queue="ocq",state="archived"} ` + strconv.FormatInt(bc.Dead, 10),
		`orgconn_queue_workers{queue="ocq"} 2`,
		`orgconn_collect_errors_total{collector="queue"} 0`,
		`orgconn_collect_errors_total{collector="limiter"} 0`,
		`orgconn_limiter_bucket_burst{bucket="w10"} 10`,
	} {
		if !strings.Contains(body, s) {
			t.Errorf("worker 1's /metrics lacks %q", s)
		}
	}
	// The keys are spread over the nodes (the test is not on one node by
	// luck), and no command met a cross-slot or redirection error.
	var nodes atomic.Int32 // ForEachMaster's callbacks run concurrently
	err = cl.Client.ForEachMaster(context.Background(), func(ctx context.Context, m *redis.Client) error {
		n, err := m.DBSize(ctx).Result()
		if n > 0 {
			nodes.Add(1)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if nodes.Load() < 2 {
		t.Errorf("the run's keys are on %d node(s) of 3: the test does not exercise the cluster", nodes.Load())
	}
	for i, w := range []*workerRun{w1, w2} {
		if c := w.stop(); c != exitOK {
			t.Errorf("worker %d exit %d: %s", i+1, c, w.stderr.String())
		}
		for _, bad := range []string{"CROSSSLOT", "MOVED", "ASK ", "level=ERROR"} {
			if logs := w.stderr.String(); strings.Contains(logs, bad) {
				t.Errorf("worker %d's log shows %q:\n%s", i+1, bad, logs)
			}
		}
	}
}
