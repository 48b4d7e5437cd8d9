package main

import (
	"encoding/json"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/orgconn/orgconn/worker/mgmt"
	"github.com/orgconn/orgconn/worker/ratelimit"
	"github.com/orgconn/orgconn/worker/redistest"
)

func TestLimitsShowsTheFleetsBudget(t *testing.T) {
	r := redistest.New(t)
	vars := map[string]string{"REDIS_URL": r.URL, "ORGCONN_KEY_PREFIX": r.Prefix}
	code, out, _ := runCmd(t, vars, "limits")
	if code != exitOK || !strings.Contains(out, "no rate budget recorded yet") {
		t.Fatalf("before any worker: exit %d, %q", code, out)
	}

	// A worker of tenant 127.0.0.1:9 starts from --rate 20 --burst 10 and
	// gets one answer describing a bucket of 10.
	lim, err := ratelimit.New(t.Context(), ratelimit.Config{Redis: r.Client, Prefix: r.Prefix, Tenant: "127.0.0.1:9",
		Start: ratelimit.Buckets{Global: ratelimit.Bucket{Burst: 10, Rate: 20}}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer lim.Close()
	tk, err := lim.Wait(t.Context(), mgmt.Write)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	lim.Observe(tk, mgmt.Exchange{Class: mgmt.Write, Method: "POST", Status: 201, Sent: now, Received: now,
		RateLimit: mgmt.RateLimit{Present: true, Limit: 10, Remaining: 9, Reset: now.Add(time.Second)}})

	code, out, _ = runCmd(t, vars, "limits")
	if code != exitOK || !strings.Contains(out, "tenant 127.0.0.1:9: 1 answers recorded") {
		t.Fatalf("limits: exit %d, %q", code, out)
	}
	var w10 string
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "w10 ") {
			w10 = strings.Join(strings.Fields(line), " ")
		}
	}
	if w10 != "w10 w 10 20.000 1200.0 guess 0" {
		t.Errorf("the bucket the answer described: %q, want %q\n%s", w10, "w10 w 10 20.000 1200.0 guess 0", out)
	}

	code, out, _ = runCmd(t, vars, "limits", "--auth0-domain", "http://127.0.0.1:9", "--json")
	var got []struct {
		Tenant  string                  `json:"tenant"`
		Buckets []ratelimit.BucketState `json:"buckets"`
		Answers int64                   `json:"answers"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil || code != exitOK || len(got) != 1 || got[0].Tenant != "127.0.0.1:9" || got[0].Answers != 1 {
		t.Fatalf("--json: exit %d, %v, %+v\n%s", code, err, got, out)
	}
	ids := map[string]ratelimit.BucketState{}
	for _, b := range got[0].Buckets {
		ids[b.ID] = b
	}
	if ids["w10"].Burst != 10 || ids["w10"].Classes != "w" || ids["plan-global"].Classes != "r" {
		t.Errorf("--json buckets %+v", got[0].Buckets)
	}
}

func TestStatusEstimatesFromTheLearnedBudget(t *testing.T) {
	r := redistest.New(t)
	vars := map[string]string{"REDIS_URL": r.URL, "ORGCONN_QUEUE": r.Queue, "ORGCONN_KEY_PREFIX": r.Prefix}
	if code, out, errOut := runCmd(t, vars, "import", "--batch", "slow", file(t, "action,org_id,connection_id\nenable,org_1,con_1\nenable,org_2,con_1\n")); code != exitOK {
		t.Fatalf("import: exit %d, %s %s", code, out, errOut)
	}
	code, out, _ := runCmd(t, vars, "status")
	if code != exitOK || strings.Contains(out, "budget:") {
		t.Fatalf("before any worker: exit %d, %q (no budget is known yet)", code, out)
	}
	lim, err := ratelimit.New(t.Context(), ratelimit.Config{Redis: r.Client, Prefix: r.Prefix, Tenant: "acme.eu.auth0.com",
		Start: ratelimit.Buckets{Global: ratelimit.Bucket{Burst: 1, Rate: 0.5}}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer lim.Close()
	code, out, _ = runCmd(t, vars, "status")
	if code != exitOK || !strings.Contains(out, "budget: tenant acme.eu.auth0.com, writes paced at 0.50/s (30 a minute) by bucket plan-global [plan]; 2 pending lines need about 4s at that pace") {
		t.Fatalf("status: exit %d, %q", code, out)
	}
	code, out, _ = runCmd(t, vars, "status", "slow", "--json")
	var got struct {
		Batches []struct {
			ETAAtBudget *float64 `json:"eta_at_budget_seconds"`
		} `json:"batches"`
		Budget struct {
			Tenant string  `json:"tenant"`
			Rate   float64 `json:"write_rate_per_second"`
		} `json:"budget"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil || code != exitOK || len(got.Batches) != 1 || got.Batches[0].ETAAtBudget == nil ||
		*got.Batches[0].ETAAtBudget != 4 || got.Budget.Rate != 0.5 || got.Budget.Tenant != "acme.eu.auth0.com" {
		t.Fatalf("status --json: exit %d, %v, %+v\n%s", code, err, got, out)
	}
}
