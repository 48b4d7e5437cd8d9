package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/orgconn/orgconn/worker/apimode"
	"github.com/orgconn/orgconn/worker/mgmt/mgmttest"
	"github.com/orgconn/orgconn/worker/redistest"
)

func TestAPIModeFlagIsChecked(t *testing.T) {
	for _, args := range [][]string{
		{"worker", "--api", "newest"},
		{"import", "--api", "newest", "--dry-run", "x.csv"},
	} {
		code, _, errOut := runCmd(t, nil, args...)
		if code != exitUsage || !strings.Contains(errOut, `--api: API mode "newest": want legacy, connections or auto`) {
			t.Errorf("%v: exit %d, %q", args, code, errOut)
		}
	}
	code, _, errOut := runCmd(t, map[string]string{"ORGCONN_API": "both"}, "worker")
	if code != exitUsage || !strings.Contains(errOut, `API mode "both"`) {
		t.Errorf("ORGCONN_API=both: exit %d, %q", code, errOut)
	}
}

func TestImportReportsTheTenantsAPIMode(t *testing.T) {
	r := redistest.New(t)
	vars := map[string]string{"REDIS_URL": r.URL, "ORGCONN_QUEUE": r.Queue, "ORGCONN_KEY_PREFIX": r.Prefix, "AUTH0_DOMAIN": "acme.eu.auth0.com"}
	good := file(t, "action,org_id,connection_id\nenable,org_1,con_1\n")
	mode := func(batch string, args ...string) apiModeJSON {
		t.Helper()
		code, out, errOut := runCmd(t, vars, append([]string{"import", "--json", "--batch", batch}, append(args, good)...)...)
		var got struct {
			APIMode apiModeJSON `json:"api_mode"`
		}
		if err := json.Unmarshal([]byte(out), &got); err != nil || code != exitOK {
			t.Fatalf("import %v: exit %d, %v, %s %s", args, code, err, out, errOut)
		}
		return got.APIMode
	}
	if got, want := mode("b1", "--api", "legacy"), (apiModeJSON{Configured: "legacy", Mode: "legacy", Source: "config", Tenant: "acme.eu.auth0.com"}); got != want {
		t.Errorf("--api legacy: %+v, want %+v", got, want)
	}
	if got, want := mode("b2"), (apiModeJSON{Configured: "auto", Mode: "auto", Source: "undecided", Tenant: "acme.eu.auth0.com"}); got != want {
		t.Errorf("auto before any probe: %+v, want %+v", got, want)
	}
	err := apimode.NewStore(r.Client, r.Prefix, 0).Put(context.Background(), "acme.eu.auth0.com",
		apimode.Memory{Mode: apimode.Connections, ProbedAt: time.Now(), Status: 404, Evidence: `404 "The organization does not exists."`})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := mode("b3"), (apiModeJSON{Configured: "auto", Mode: "connections", Source: "remembered", Tenant: "acme.eu.auth0.com"}); got != want {
		t.Errorf("auto after a probe: %+v, want %+v", got, want)
	}
	vars["ORGCONN_API"] = "legacy"
	if got := mode("b4"); got.Mode != "legacy" || got.Source != "config" {
		t.Errorf("ORGCONN_API=legacy: %+v", got)
	}
}

func TestLimitsShowsTheRememberedAPIMode(t *testing.T) {
	r := redistest.New(t)
	vars := map[string]string{"REDIS_URL": r.URL, "ORGCONN_KEY_PREFIX": r.Prefix}
	code, out, _ := runCmd(t, vars, "limits", "--auth0-domain", "acme.eu.auth0.com")
	if code != exitOK || !strings.Contains(out, "API mode: not known (a worker with --api auto probes the tenant when it starts)") {
		t.Fatalf("before a probe: exit %d, %q", code, out)
	}
	probed := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	err := apimode.NewStore(r.Client, r.Prefix, 0).Put(context.Background(), "acme.eu.auth0.com",
		apimode.Memory{Mode: apimode.Legacy, ProbedAt: probed, Status: 404, Evidence: `404 "Not Found"`})
	if err != nil {
		t.Fatal(err)
	}
	code, out, _ = runCmd(t, vars, "limits", "--auth0-domain", "acme.eu.auth0.com")
	if code != exitOK || !strings.Contains(out, `API mode: legacy (probed 2026-12-01T10:00:00Z: 404 "Not Found"; remembered for 2`) {
		t.Fatalf("after a probe: exit %d, %q", code, out)
	}
	code, out, _ = runCmd(t, vars, "limits", "--auth0-domain", "acme.eu.auth0.com", "--json")
	var got []struct {
		APIMode *struct {
			Mode       string `json:"mode"`
			Status     int    `json:"status"`
			TTLSeconds int64  `json:"ttl_seconds"`
		} `json:"api_mode"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil || code != exitOK || len(got) != 1 || got[0].APIMode == nil ||
		got[0].APIMode.Mode != "legacy" || got[0].APIMode.Status != 404 || got[0].APIMode.TTLSeconds < 86000 {
		t.Fatalf("--json: exit %d, %v, %s", code, err, out)
	}
}

func TestSimulateWithoutTheNewerEndpoints(t *testing.T) {
	code, out, errOut := simulateOnce(t, "--no-connections-api")
	if code != exitOK || !strings.Contains(out, "; no newer Organization connections endpoints") {
		t.Fatalf("exit %d, %q, %q", code, out, errOut)
	}
}

// TestWorkerAutoPicksEachModeAndLimitsShowsIt runs `orgconn worker` with no --api (auto)
// against a tenant with the newer endpoints and one without: each worker probes once, logs
// the mode, and `orgconn limits` shows what the fleet remembers.
func TestWorkerAutoPicksEachModeAndLimitsShowsIt(t *testing.T) {
	for _, tt := range []struct {
		name     string
		cfg      mgmttest.Config
		want     string
		evidence string
	}{
		{"with the newer endpoints", mgmttest.Config{Orgs: 1, Connections: 1}, "connections", `404 "The organization does not exists."`},
		{"without them", mgmttest.Config{Orgs: 1, Connections: 1, NoConnectionsAPI: true}, "legacy", `404 "Not Found"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := redistest.New(t)
			sim := mgmttest.New(tt.cfg)
			srv, err := mgmttest.Listen("127.0.0.1:0", sim)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { srv.Close(context.Background()) })
			vars := workerVars(r, srv)
			w := startWorkerCmd(t, vars)
			if log := w.stderr.String(); !strings.Contains(log, `msg="API mode"`) || !strings.Contains(log, "mode="+tt.want+" source=probed") {
				t.Fatalf("the worker did not log the probed mode %s:\n%s", tt.want, log)
			}
			if c := w.stop(); c != exitOK {
				t.Fatalf("worker exit %d", c)
			}
			code, out, _ := runCmd(t, vars, "limits", "--auth0-domain", srv.URL())
			if code != exitOK || !strings.Contains(out, "API mode: "+tt.want+" (probed ") || !strings.Contains(out, tt.evidence) {
				t.Fatalf("limits: exit %d:\n%s", code, out)
			}
			// A second worker takes the fleet's memory: still one probe.
			w = startWorkerCmd(t, vars, "--api", "auto")
			if log := w.stderr.String(); !strings.Contains(log, "mode="+tt.want+" source=remembered") {
				t.Fatalf("the second worker did not use the memory:\n%s", log)
			}
			w.stop()
			if n := sim.Stats().Requests("GET", 404); n != 1 {
				t.Fatalf("%d probes, want 1: %v", n, sim.Stats())
			}
		})
	}
}
