package worker_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/orgconn/orgconn/jobs/jobstest"
	"github.com/orgconn/orgconn/worker/ledger"
	"github.com/orgconn/orgconn/worker/mgmt/mgmttest"
	"github.com/orgconn/orgconn/worker/redistest"
)

// full reports whether the proofs run at full size (ORGCONN_FULL=1).
func full() bool { return os.Getenv("ORGCONN_FULL") == "1" }

// buildOrgconn builds the orgconn command into a temporary directory, with
// the given build tags (orgconn_testhooks: the test hooks of
// worker/crashhook_testhooks.go).
func buildOrgconn(t *testing.T, tags ...string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "orgconn")
	cmd := exec.Command("go", "build", "-tags", strings.Join(tags, ","), "-o", bin, "github.com/orgconn/orgconn/cmd/orgconn")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// proc is an orgconn worker subprocess.
type proc struct {
	name string
	cmd  *exec.Cmd
	out  *redistest.LockedBuffer
	done chan struct{}
}

// startWorkerProcess runs `orgconn worker` against the run's Redis and
// simulated tenant.
func (e *e2e) startWorkerProcess(bin, name string, args ...string) *proc {
	e.t.Helper()
	return e.startWorkerProcessEnv(bin, name, nil, args...)
}

// startWorkerProcessEnv is startWorkerProcess with more environment
// variables.
func (e *e2e) startWorkerProcessEnv(bin, name string, env []string, args ...string) *proc {
	e.t.Helper()
	cmd := exec.Command(bin, append([]string{"worker", "--log-level", "warn"}, args...)...)
	cmd.Env = append(append(os.Environ(), env...),
		"REDIS_URL="+e.env.URL, "ORGCONN_QUEUE="+e.env.Queue, "ORGCONN_KEY_PREFIX="+e.env.Prefix,
		"AUTH0_DOMAIN="+e.url, "AUTH0_CLIENT_ID="+mgmttest.DefaultClientID, "AUTH0_CLIENT_SECRET="+mgmttest.DefaultClientSecret)
	p := &proc{name: name, cmd: cmd, out: &redistest.LockedBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	go func() { cmd.Wait(); close(p.done) }()
	e.t.Cleanup(func() { p.stop(e.t) })
	return p
}

// kill ends the process with SIGKILL and waits for it.
func (p *proc) kill() {
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// stop ends the process with SIGTERM (SIGKILL after 20 s) and logs its
// output when the test failed.
func (p *proc) stop(t *testing.T) {
	select {
	case <-p.done:
	default:
		p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(20 * time.Second):
			p.kill()
		}
	}
	if t.Failed() {
		t.Logf("--- %s (pid %d) output:\n%s", p.name, p.cmd.Process.Pid, p.out.String())
	}
}

// activeTasks lists the ids of the queue's active tasks.
func activeTasks(t *testing.T, insp *asynq.Inspector, queue string) map[string]bool {
	out := map[string]bool{}
	for page := 1; ; page++ {
		ts, err := insp.ListActiveTasks(queue, asynq.PageSize(100), asynq.Page(page))
		if err != nil {
			t.Logf("list active tasks: %v", err)
			return out
		}
		for _, ti := range ts {
			out[ti.ID] = true
		}
		if len(ts) < 100 {
			return out
		}
	}
}

// pickup measures, after a kill, how long the tasks that were active at the
// kill stay active: those of the surviving workers finish in moments, those
// of the killed one wait until they are put back.
type pickup struct {
	orphans int           // tasks still active 5 s after the kill
	last    time.Duration // when the last of them left the active state
}

func watchPickup(t *testing.T, insp *asynq.Inspector, queue string, before map[string]bool, killedAt time.Time) <-chan pickup {
	ch := make(chan pickup, 1)
	go func() {
		var p pickup
		left := before
		for len(left) > 0 && time.Since(killedAt) < 3*time.Minute {
			time.Sleep(200 * time.Millisecond)
			now := activeTasks(t, insp, queue)
			still := map[string]bool{}
			for id := range left {
				if now[id] {
					still[id] = true
				} else if d := time.Since(killedAt); d > 5*time.Second {
					p.orphans++
					p.last = d
				}
			}
			left = still
		}
		ch <- p
	}()
	return ch
}

// TestCrashedWorkersLoseNothing runs three `orgconn worker` processes and
// kills one with SIGKILL three times during the run, restarting it each
// time: the tenant ends in exactly the state of applying the rows in file
// order, each pair's writes came in file order, only the rows that must fail
// are dead letters, and nothing is left in the queue. It logs how long the
// killed worker's tasks took to be picked up again. 300 changes; 2,000 with
// ORGCONN_FULL=1.
func TestCrashedWorkersLoseNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("starts worker processes; about a minute")
	}
	t.Parallel() // mostly waiting: for orphaned tasks, for the rate budget
	env := redistest.NewReal(t)
	bin := buildOrgconn(t)
	changes, orgs := 290, 50
	if full() {
		changes, orgs = 1960, 200
	}
	e := newE2EOn(t, env, mgmttest.Config{
		Orgs: orgs, Connections: 8, Seed: 17,
		Global: mgmttest.Bucket{Burst: 20, Rate: 50},
		Faults: mgmttest.Faults{Latency: 20 * time.Millisecond, Jitter: 30 * time.Millisecond},
	})
	rows := jobstest.Generate(e.tenant, jobstest.Options{Changes: changes, RepeatShare: 0.3, UnknownOrgs: 6, SignupFails: 4, Invalid: 5, Seed: 23})
	res := e.importRows(rows)
	total := int64(res.Enqueued)
	args := []string{"--rate", "50", "--burst", "20", "--concurrency", "10"}
	if v := os.Getenv("ORGCONN_ORPHAN_CHECK"); v != "" { // 0 measures asynq's own recovery
		args = append(args, "--orphan-check", v)
	}

	// A killed worker cannot take its entry out of asynq's server list;
	// remove the expired entries once every process has stopped.
	t.Cleanup(func() {
		for _, k := range []string{"asynq:servers", "asynq:workers"} {
			env.Client.ZRemRangeByScore(context.Background(), k, "-inf", strconv.FormatInt(time.Now().Unix(), 10))
		}
	})
	start := time.Now()
	victim := e.startWorkerProcess(bin, "victim", args...)
	e.startWorkerProcess(bin, "steady-1", args...)
	e.startWorkerProcess(bin, "steady-2", args...)

	insp := asynq.NewInspectorFromRedisClient(env.Client)
	var pickups []<-chan pickup
	for kill := 1; kill <= 3; kill++ {
		// Kill at a quarter, a half and three quarters of the way.
		e.waitProgress(fmt.Sprintf("%d/4 of the batch resolved", kill), 3*time.Minute-time.Since(start), func(bc ledger.BatchCounts) bool {
			return bc.Total-bc.Pending >= total*int64(kill)/4
		})
		before := activeTasks(t, insp, env.Queue)
		victim.kill()
		killedAt := time.Now()
		t.Logf("kill %d at %v: %d tasks active in the fleet", kill, killedAt.Sub(start).Round(time.Millisecond), len(before))
		pickups = append(pickups, watchPickup(t, insp, env.Queue, before, killedAt))
		victim = e.startWorkerProcess(bin, "victim-"+strconv.Itoa(kill), args...)
	}
	bc := e.waitDone(4 * time.Minute)
	elapsed := time.Since(start)
	for i, ch := range pickups {
		p := <-ch
		t.Logf("kill %d: %d orphaned tasks, the last picked up again %v after the kill", i+1, p.orphans, p.last.Round(100*time.Millisecond))
	}
	e.verify()
	st := e.sim.Stats()
	t.Logf("%d changes in %v with 3 kills; %+v; simulator: %d requests, %d writes", bc.Total, elapsed.Round(time.Millisecond), bc, st.Total, st.Writes)
}
