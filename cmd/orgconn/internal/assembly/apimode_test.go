package assembly

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/orgconn/orgconn/worker"
	"github.com/orgconn/orgconn/worker/apimode"
	"github.com/orgconn/orgconn/worker/ledger"
	"github.com/orgconn/orgconn/worker/metrics"
	"github.com/orgconn/orgconn/worker/mgmt"
	"github.com/orgconn/orgconn/worker/mgmt/mgmttest"
	"github.com/orgconn/orgconn/worker/ratelimit"
	"github.com/orgconn/orgconn/worker/redistest"
)

// TestAutoAPIModeIsProbedOnceForTheFleet: two worker processes configured with auto against
// each kind of tenant; the first probes through its paced client, the second takes the
// fleet's memory, and both hand the worker the resolver.
func TestAutoAPIModeIsProbedOnceForTheFleet(t *testing.T) {
	for _, tt := range []struct {
		name  string
		cfg   mgmttest.Config
		want  apimode.Mode
		route string
	}{
		{"tenant with the newer endpoints", mgmttest.Config{}, apimode.Connections, mgmttest.RouteOrgConnections},
		{"tenant without them", mgmttest.Config{NoConnectionsAPI: true}, apimode.Legacy, mgmttest.RouteUnknown},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := redistest.New(t)
			tt.cfg.Orgs, tt.cfg.Connections = 1, 1
			sim := mgmttest.New(tt.cfg)
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
			var sources []apimode.Source
			for i := range 2 {
				w, err := New(ctx, Config{
					Redis: r.Client, Ledger: l, BaseURL: srv.URL(),
					Tokens:  mgmt.NewClientCredentials(srv.URL(), mgmttest.DefaultClientID, mgmttest.DefaultClientSecret, nil),
					Start:   ratelimit.Buckets{Global: ratelimit.Bucket{Burst: 10, Rate: 50}},
					APIMode: apimode.Auto,
					Worker:  worker.Config{Queue: r.Queue, Instance: "p" + string(rune('0'+i))},
					Logger:  slog.New(slog.NewTextHandler(io.Discard, nil)),
				})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(w.Close)
				if w.Config().APIMode != w.APIMode || w.APIMode.Configured() != apimode.Auto {
					t.Fatal("the worker does not hold the assembly's resolver")
				}
				res, err := w.APIMode.Resolve(ctx)
				if err != nil || res.Mode != tt.want {
					t.Fatalf("process %d: Resolve = %+v, %v; want %s", i, res, err, tt.want)
				}
				sources = append(sources, res.Source)
				if i == 0 {
					// The probe went through the paced client: the metrics counted it.
					if n := apiRequests(t, w, "GET", "404"); n != 1 {
						t.Errorf("the probe was counted %v times by the paced client, want 1", n)
					}
				}
			}
			if sources[0] != apimode.FromProbe || sources[1] != apimode.FromMemory {
				t.Fatalf("sources %v, want probed then remembered", sources)
			}
			if n := sim.Stats().Count("GET", tt.route, 404); n != 1 {
				t.Fatalf("%d probes (GET %s 404), want 1 for the fleet; %v", n, tt.route, sim.Stats())
			}
		})
	}
}

func TestLegacyIsTheDefaultAPIModeAndIsNotProbed(t *testing.T) {
	r := redistest.New(t)
	sim := mgmttest.New(mgmttest.Config{Orgs: 1, Connections: 1})
	srv, err := mgmttest.Listen("127.0.0.1:0", sim)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close(context.Background()) })
	l, _ := ledger.New(r.Client, r.Prefix, time.Hour)
	w, err := New(context.Background(), Config{
		Redis: r.Client, Ledger: l, BaseURL: srv.URL(),
		Tokens: mgmt.NewClientCredentials(srv.URL(), mgmttest.DefaultClientID, mgmttest.DefaultClientSecret, nil),
		Start:  ratelimit.Buckets{Global: ratelimit.Bucket{Burst: 10, Rate: 50}},
		Worker: worker.Config{Queue: r.Queue},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Close)
	if res, err := w.APIMode.Resolve(context.Background()); err != nil || res.Mode != apimode.Legacy || res.Source != apimode.FromConfig {
		t.Fatalf("Resolve = %+v, %v", res, err)
	}
	if n := sim.Stats().Total; n != 0 {
		t.Fatalf("%d API requests, want none", n)
	}
}

// apiRequests returns the process's orgconn_api_requests_total for method and status.
func apiRequests(t *testing.T, w *Worker, method, status string) float64 {
	t.Helper()
	families, err := w.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != metrics.NameAPIRequests {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["method"] == method && labels["status"] == status {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}
