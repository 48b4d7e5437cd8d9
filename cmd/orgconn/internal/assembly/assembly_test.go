package assembly

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/orgconn/orgconn/worker"
	"github.com/orgconn/orgconn/worker/ledger"
	"github.com/orgconn/orgconn/worker/metrics"
	"github.com/orgconn/orgconn/worker/mgmt"
	"github.com/orgconn/orgconn/worker/mgmt/mgmttest"
	"github.com/orgconn/orgconn/worker/ratelimit"
	"github.com/orgconn/orgconn/worker/redistest"
)

func TestTwoProcessesShareOneTokenAndReportTheirMetrics(t *testing.T) {
	r := redistest.New(t)
	sim := mgmttest.New(mgmttest.Config{Orgs: 1, Connections: 1, Global: mgmttest.Bucket{Burst: 10, Rate: 50}})
	srv, err := mgmttest.Listen("127.0.0.1:0", sim)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close(context.Background()) })
	l, err := ledger.New(r.Client, r.Prefix, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var ws []*Worker
	for i := range 2 {
		w, err := New(ctx, Config{
			Redis: r.Client, Ledger: l, BaseURL: srv.URL(),
			Tokens: mgmt.NewClientCredentials(srv.URL(), mgmttest.DefaultClientID, mgmttest.DefaultClientSecret, nil),
			Start:  ratelimit.Buckets{Global: ratelimit.Bucket{Burst: 10, Rate: 50}},
			Worker: worker.Config{Queue: r.Queue, Concurrency: 3 + i, Instance: "p" + string(rune('0'+i))},
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(w.Close)
		ws = append(ws, w)
	}
	if n := sim.Stats().TokensIssued; n != 1 {
		t.Errorf("two processes fetched %d tokens, want 1 shared through Redis", n)
	}
	// The budget is where `orgconn limits --prefix` and `status` read it
	// (once it was under a doubled hash tag, "{{prefix}}", and they saw
	// nothing).
	if tenants, err := ratelimit.Tenants(ctx, r.Client, r.Prefix); err != nil || len(tenants) != 1 || tenants[0] != ratelimit.TenantOf(srv.URL()) {
		t.Errorf("tenants under prefix %q = %v, %v; want [%s]", r.Prefix, tenants, err, ratelimit.TenantOf(srv.URL()))
	}
	if err := ws[0].Ready(ctx); err == nil {
		t.Error("Ready before Start: nil, want an error")
	}
	if err := ws[0].Start(); err != nil {
		t.Fatal(err)
	}
	if err := ws[0].Ready(ctx); err != nil {
		t.Errorf("Ready after Start: %v", err)
	}
	ws[0].Shutdown()
	if err := ws[0].Ready(ctx); err == nil {
		t.Error("Ready after Shutdown: nil, want an error")
	}
	families, err := ws[1].Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var slots []string
	for _, f := range families {
		if f.GetName() == metrics.NameWorkerSlots {
			for _, m := range f.GetMetric() {
				slots = append(slots, fmt.Sprintf("%s=%s %v", m.GetLabel()[0].GetName(), m.GetLabel()[0].GetValue(), m.GetGauge().GetValue()))
			}
		}
	}
	if want := "queue=" + r.Queue + " 4"; len(slots) != 1 || slots[0] != want {
		t.Errorf("%s = %v, want [%s]", metrics.NameWorkerSlots, slots, want)
	}
}

func TestBadCredentialsFailAtOnce(t *testing.T) {
	r := redistest.New(t)
	srv, err := mgmttest.Listen("127.0.0.1:0", mgmttest.New(mgmttest.Config{Orgs: 1, Connections: 1}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close(context.Background()) })
	l, err := ledger.New(r.Client, r.Prefix, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	_, err = New(context.Background(), Config{
		Redis: r.Client, Ledger: l, BaseURL: srv.URL(),
		Tokens: mgmt.NewClientCredentials(srv.URL(), mgmttest.DefaultClientID, "not-the-secret-at-all", nil),
		Start:  ratelimit.Buckets{Global: ratelimit.Bucket{Burst: 10, Rate: 50}},
		Worker: worker.Config{Queue: r.Queue},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err == nil || !strings.Contains(err.Error(), "check credentials") || strings.Contains(err.Error(), "not-the-secret-at-all") {
		t.Fatalf("New with a bad secret: %v, want a credentials error without the secret", err)
	}
}
