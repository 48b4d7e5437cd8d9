package worker_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/orgconn/orgconn/jobs"
	"github.com/orgconn/orgconn/jobs/jobstest"
	"github.com/orgconn/orgconn/worker/mgmt/mgmttest"
	"github.com/orgconn/orgconn/worker/redistest"
)

// pairsOf groups the valid rows by pair, in file order.
func pairsOf(rows []jobstest.Row) (order []string, by map[string][]jobstest.Row) {
	by = map[string][]jobstest.Row{}
	for _, r := range rows {
		if r.Invalid != nil {
			continue
		}
		p := r.Change.OrgID + "/" + r.Change.ConnectionID
		if by[p] == nil {
			order = append(order, p)
		}
		by[p] = append(by[p], r)
	}
	return order, by
}

// TestLostHeadIsRepaired deletes by hand, before two `orgconn worker`
// processes start, the tasks of two changes that later changes of their
// pairs wait for — the first change of one pair, the second of another — and
// of the only change of a third pair, as an import cut between the ledger
// and the queue, a Redis failover or a purge by hand would lose them. The
// workers find the first two pairs waiting for a head without a task, and
// the third change in the sweep of the batch once it stalls; they enqueue
// each again from the ledger and say so in their log; the batch finishes in
// exactly the state of applying the rows in file order. (Before the repair
// existed, the batch never finished.)
func TestLostHeadIsRepaired(t *testing.T) {
	if testing.Short() {
		t.Skip("starts worker processes; about a minute")
	}
	t.Parallel()
	env := redistest.NewReal(t)
	bin := buildOrgconn(t)
	e := newE2EOn(t, env, mgmttest.Config{
		Orgs: 20, Connections: 4, Seed: 29,
		Global: mgmttest.Bucket{Burst: 20, Rate: 50},
		Faults: mgmttest.Faults{Latency: 10 * time.Millisecond, Jitter: 20 * time.Millisecond},
	})
	rows := jobstest.Generate(e.tenant, jobstest.Options{Changes: 150, RepeatShare: 0.5, UnknownOrgs: 3, SignupFails: 2, Invalid: 2, Seed: 31})
	e.importRows(rows)

	order, by := pairsOf(rows)
	var lost []string
	for _, p := range order {
		if rs := by[p]; len(rs) >= 3 {
			// The first change of the first such pair, the second of the next.
			lost = append(lost, jobs.TaskID(e.batch, rs[len(lost)].Line))
			if len(lost) == 2 {
				break
			}
		}
	}
	if len(lost) != 2 {
		t.Fatalf("the generated rows have fewer than two pairs with three changes: %v", lost)
	}
	// And the only change of a pair: nothing waits for it, only its batch.
	for _, p := range order {
		if rs := by[p]; len(rs) == 1 {
			lost = append(lost, jobs.TaskID(e.batch, rs[0].Line))
			break
		}
	}
	if len(lost) != 3 {
		t.Fatal("the generated rows have no pair with a single change")
	}
	insp := asynq.NewInspectorFromRedisClient(env.Client)
	for _, id := range lost {
		if err := insp.DeleteTask(env.Queue, id); err != nil {
			t.Fatalf("delete task %s: %v", id, err)
		}
	}
	t.Logf("deleted the tasks of %v", lost)

	args := []string{"--rate", "50", "--burst", "20", "--concurrency", "10", "--metrics-addr", ""}
	workers := []*proc{e.startWorkerProcess(bin, "w1", args...), e.startWorkerProcess(bin, "w2", args...)}
	start := time.Now()
	bc := e.waitDone(3 * time.Minute)
	t.Logf("%d changes in %v with three lost tasks: %+v", bc.Total, time.Since(start).Round(time.Millisecond), bc)
	e.verify()

	var logs strings.Builder
	for _, w := range workers {
		logs.WriteString(w.out.String())
	}
	for _, id := range lost {
		found := false
		for _, l := range strings.Split(logs.String(), "\n") {
			if strings.Contains(l, "repaired a lost task") && strings.Contains(l, "task_id="+id+" ") {
				found = true
				t.Logf("log: %s", l)
			}
		}
		if !found {
			t.Errorf("no worker logged the repair of %s:\n%s", id, logs.String())
		}
	}
	if bs, err := e.ledger.Blocked(context.Background()); err != nil || len(bs) != 0 {
		t.Errorf("blocked pairs after the batch finished: %+v, %v; want none", bs, err)
	}
}

// TestCrashingChangeIsDeadLettered runs two `orgconn worker` processes
// (built with the test hooks) with --max-crashes 2, one change of which
// makes any worker that acts on it exit at once; a process that exits is
// started again, as a supervisor would. The first crash has ten changes in
// flight; the change then runs alone, and after it has stopped its worker
// twice alone it is dead-lettered with reason crashed_worker, the later
// changes of its pair go on, no bystander of the crashes is dead-lettered,
// and everything else ends as applying the other rows in file order would.
// (Before, the change was put back three times by the orphan check and then
// left to asynq's recoverer, which retries it forever, its pair blocked.)
// Each crash costs asynq's 30 s lease: about 110 s.
func TestCrashingChangeIsDeadLettered(t *testing.T) {
	if testing.Short() {
		t.Skip("starts worker processes and waits for asynq's lease three times; about 110 s")
	}
	t.Parallel()
	env := redistest.NewReal(t)
	bin := buildOrgconn(t, "orgconn_testhooks")
	e := newE2EOn(t, env, mgmttest.Config{
		Orgs: 20, Connections: 4, Seed: 37,
		Global: mgmttest.Bucket{Burst: 20, Rate: 50},
		Faults: mgmttest.Faults{Latency: 10 * time.Millisecond, Jitter: 20 * time.Millisecond},
	})
	rows := jobstest.Generate(e.tenant, jobstest.Options{Changes: 80, RepeatShare: 0.5, UnknownOrgs: 2, SignupFails: 1, Invalid: 2, Seed: 41})
	want := jobstest.Replay(e.tenant, rows)
	// The poison change: one that must succeed, followed on its pair by a
	// change that does not supersede it (so that it is acted on).
	order, by := pairsOf(rows)
	poison := 0
	for _, p := range order {
		rs := by[p]
		if _, fails := want.Fails[rs[0].Line]; len(rs) >= 2 && !fails && !jobs.Covers(jobs.ShapeOf(rs[1].Change), jobs.ShapeOf(rs[0].Change)) {
			poison = rs[0].Line
			break
		}
	}
	if poison == 0 {
		t.Fatal("the generated rows have no change followed by one that does not supersede it")
	}
	e.deadByDesign = map[int]string{poison: "crashed_worker"}
	poisonID := jobs.TaskID(e.batch, poison)
	e.importRows(rows)
	t.Logf("poison change: %s", poisonID)

	hook := []string{"ORGCONN_TEST_CRASH_TASK=" + poisonID}
	args := []string{"--rate", "50", "--burst", "20", "--concurrency", "10", "--metrics-addr", "", "--max-crashes", "2"}
	workers := []*proc{e.startWorkerProcessEnv(bin, "w1", hook, args...), e.startWorkerProcessEnv(bin, "w2", hook, args...)}
	var all []*proc
	all = append(all, workers...)
	start := time.Now()
	crashes := 0
	for {
		bc, err := e.ledger.Batch(context.Background(), e.batch)
		if err == nil && bc.Done() {
			break
		}
		for i, w := range workers {
			select {
			case <-w.done:
				crashes++
				if code := w.cmd.ProcessState.ExitCode(); code != 99 {
					t.Errorf("worker %s exited with %d, not the hook's 99:\n%s", w.name, code, w.out.String())
				}
				t.Logf("worker %s crashed at %v; started again", w.name, time.Since(start).Round(time.Second))
				workers[i] = e.startWorkerProcessEnv(bin, fmt.Sprintf("%s-%d", w.name, crashes), hook, args...)
				all = append(all, workers[i])
			default:
			}
		}
		if time.Since(start) > 4*time.Minute {
			e.stuck("batch not done after 4 minutes (%d crashes): %+v, %v", crashes, bc, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("done in %v after %d crashes", time.Since(start).Round(time.Second), crashes)
	// The first crash is anyone's (ten changes in flight); after it the
	// change runs alone, and two crashes alone prove it: three in all.
	if crashes != 3 {
		t.Errorf("%d crashes; want 3: one among others, then two alone (--max-crashes 2)", crashes)
	}
	e.verify()
	dl, err := e.ledger.DeadLetter(context.Background(), e.batch, poison)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("dead letter: %+v", dl)
	var logs strings.Builder
	for _, w := range all {
		logs.WriteString(w.out.String())
	}
	if !strings.Contains(logs.String(), "crashed its worker") || !strings.Contains(logs.String(), "task_id="+poisonID) {
		t.Errorf("no worker logged the dead letter of %s:\n%s", poisonID, logs.String())
	}
	if bc, _ := e.ledger.Batch(context.Background(), e.batch); bc.Dead == 0 {
		t.Errorf("counts %+v: want the poison change dead-lettered", bc)
	}
}
