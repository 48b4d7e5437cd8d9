package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/orgconn/orgconn/jobs"
	"github.com/orgconn/orgconn/worker/ledger"
)

// TestStatusNamesBlockedPairs records a pair as a worker does when its later
// change has waited for its head (ledger.MarkBlocked), and checks that
// status names the pair and its head, in text and JSON, until the head
// resolves.
func TestStatusNamesBlockedPairs(t *testing.T) {
	_, vars, l := opsSetup(t)
	ctx := context.Background()
	c := jobs.Change{Action: jobs.Enable, OrgID: "org_1", ConnectionID: "con_1"}
	if _, err := l.Accept(ctx, "b1", "csv:changes.csv", []ledger.Row{{Line: 2, Change: c}, {Line: 3, Change: c}}); err != nil {
		t.Fatal(err)
	}
	if cl, err := l.Claim(ctx, c, "b1:3", "h3", time.Minute); err != nil || cl.State != ledger.NotHead || cl.Head != "b1:2" {
		t.Fatalf("claim b1:3 = %+v, %v", cl, err)
	}
	state := "lost (no task in the queue), re-enqueued"
	if ok, err := l.MarkBlocked(ctx, ledger.BlockedPair{OrgID: "org_1", ConnectionID: "con_1", Head: "b1:2", Waiter: "b1:3",
		Since: time.Now().Add(-time.Minute), HeadState: state, Checked: time.Now()}); err != nil || !ok {
		t.Fatalf("MarkBlocked = %v, %v", ok, err)
	}

	code, out, errOut := runCmd(t, vars, "status", "b1")
	if code != exitOK || !strings.Contains(out, "org_1/con_1 waits for b1:2 for 1m0s (1 waiting): "+state) {
		t.Errorf("status b1: exit %d, stdout %q, stderr %q; want the blocked pair named with its head", code, out, errOut)
	}
	code, out, _ = runCmd(t, vars, "status", "b1", "--json")
	var st struct {
		Blocked []blockedJSON `json:"blocked"`
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil || code != exitOK {
		t.Fatalf("status b1 --json: exit %d, %v, %s", code, err, out)
	}
	if len(st.Blocked) != 1 || st.Blocked[0].Head != "b1:2" || st.Blocked[0].OrgID != "org_1" || st.Blocked[0].Waiting != 1 ||
		st.Blocked[0].HeadState != state || st.Blocked[0].BlockedSeconds < 55 {
		t.Errorf("status b1 --json: blocked = %+v", st.Blocked)
	}
	if _, err := l.Accept(ctx, "b2", "csv:other.csv", []ledger.Row{{Line: 2, Change: jobs.Change{Action: jobs.Remove, OrgID: "org_2", ConnectionID: "con_1"}}}); err != nil {
		t.Fatal(err)
	}
	if code, out, _ = runCmd(t, vars, "status", "b2"); code != exitOK || strings.Contains(out, "blocked") {
		t.Errorf("status of another batch: exit %d, %q; want no blocked pair", code, out)
	}

	// The head resolves: the pair is no longer blocked.
	if cl, err := l.Claim(ctx, c, "b1:2", "h2", time.Minute); err != nil || cl.State != ledger.Claimed {
		t.Fatalf("claim b1:2 = %+v, %v", cl, err)
	}
	p := jobs.Payload{Version: jobs.PayloadVersion, Change: c, Origin: jobs.Origin{Batch: "b1", Line: 2}}
	if _, ok, err := l.Resolve(ctx, p, "b1:2", "h2", ledger.Applied, nil); err != nil || !ok {
		t.Fatalf("resolve b1:2: %v, %v", ok, err)
	}
	if code, out, _ = runCmd(t, vars, "status", "b1"); code != exitOK || strings.Contains(out, "blocked") {
		t.Errorf("status b1 after the head resolved: exit %d, %q", code, out)
	}
}
