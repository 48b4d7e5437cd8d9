package main

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/orgconn/orgconn/worker/mgmt/mgmttest"
)

const simulateSynopsis = `
Usage: orgconn simulate [flags]

Serves a simulated Auth0 tenant: POST /oauth/token and the organization
enabled-connections endpoints of the Management API, strict as Auth0 is (status
codes, error bodies, scopes, token expiry), with token-bucket rate limits and
X-RateLimit-* headers, and optional faults. Point orgconn at it with
AUTH0_DOMAIN=http://ADDR and the client credentials it prints.

Admin endpoints (no authentication: keep the simulator on loopback):
  GET /sim/state, GET /sim/stats, GET /sim/tenant,
  POST /sim/bucket {"bucket":"global|write|read","burst":N,"rate":R},
  POST /sim/faults, POST /sim/expire-tokens

Example:
  orgconn simulate --addr 127.0.0.1:8080 --orgs 50 --burst 10 --rate 20 --5xx 0.01`

func runSimulate(ctx context.Context, e *env, args []string) int {
	f := newFlags(e, "simulate", simulateSynopsis)
	var cfg mgmttest.Config
	addr := f.String("addr", "127.0.0.1:8080", "address to listen on")
	f.IntVar(&cfg.Orgs, "orgs", mgmttest.DefaultOrgs, "organizations to seed")
	f.IntVar(&cfg.Connections, "connections", mgmttest.DefaultConnections, "tenant connections to seed (strategies cycle auth0, samlp, google-oauth2, oidc)")
	f.Int64Var(&cfg.Seed, "seed", 1, "seed of ids and faults")
	f.IntVar(&cfg.Global.Burst, "burst", 10, "global bucket size")
	f.Float64Var(&cfg.Global.Rate, "rate", 20, "global refill per second (0: unlimited)")
	f.IntVar(&cfg.Write.Burst, "write-burst", 0, "write bucket size")
	f.Float64Var(&cfg.Write.Rate, "write-rate", 0, "write refill per second (0: no write bucket)")
	f.IntVar(&cfg.Read.Burst, "read-burst", 0, "read bucket size")
	f.Float64Var(&cfg.Read.Rate, "read-rate", 0, "read refill per second (0: no read bucket)")
	f.TextVar(&cfg.HeaderPolicy, "header-policy", mgmttest.Tightest, "which bucket X-RateLimit-* describe: tightest, global, endpoint or alternate")
	f.TextVar(&cfg.ResetMeaning, "reset", mgmttest.ResetFull, "what X-RateLimit-Reset means: full or next")
	f.TextVar(&cfg.EnableExisting, "enable-existing", mgmttest.Conflict409, "answer to enabling an enabled connection: conflict409 or upsert201")
	f.TextVar(&cfg.RemoveMissing, "remove-missing", mgmttest.NotFound404, "answer to removing a connection that is not enabled: notfound404 or nocontent204")
	f.Float64Var(&cfg.Faults.Error5xx, "5xx", 0, "probability of a 503")
	f.Float64Var(&cfg.Faults.Drop, "drop", 0, "probability of a dropped connection (nothing applied)")
	f.Float64Var(&cfg.Faults.LostResponse, "lost", 0, "probability that a write is applied and its response lost")
	f.DurationVar(&cfg.Faults.Latency, "latency", 0, "added latency per request")
	f.DurationVar(&cfg.Faults.Jitter, "jitter", 0, "random extra latency up to this")
	f.DurationVar(&cfg.TokenTTL, "token-ttl", mgmttest.DefaultTokenTTL, "lifetime of issued tokens")
	printTenant := f.Bool("print-tenant", false, "print the organizations and connections as JSON and go on serving")
	if code, ok := f.parse(args); !ok {
		return code
	}
	cfg.ClientID = envOr(e, "ORGCONN_SIM_CLIENT_ID", mgmttest.DefaultClientID)
	cfg.ClientSecret = envOr(e, "ORGCONN_SIM_CLIENT_SECRET", mgmttest.DefaultClientSecret)
	sim := mgmttest.New(cfg)
	run, err := mgmttest.Listen(*addr, sim)
	if err != nil {
		return errorf(e, exitUnavailable, "simulate: %v", err)
	}
	fmt.Fprintf(e.stdout, "simulated tenant at %s (%d organizations, %d connections)\n", run.URL(), len(sim.Orgs()), len(sim.Connections()))
	fmt.Fprintf(e.stdout, "  AUTH0_DOMAIN=%s AUTH0_CLIENT_ID=%s AUTH0_CLIENT_SECRET=<ORGCONN_SIM_CLIENT_SECRET, default %s>\n", run.URL(), cfg.ClientID, mgmttest.DefaultClientSecret)
	fmt.Fprintf(e.stdout, "  rate limit: global burst %d, %.4g/s", cfg.Global.Burst, cfg.Global.Rate)
	if cfg.Write.Rate > 0 {
		fmt.Fprintf(e.stdout, "; writes burst %d, %.4g/s", cfg.Write.Burst, cfg.Write.Rate)
	}
	fmt.Fprintln(e.stdout)
	if *printTenant {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(map[string]any{"organizations": sim.Orgs(), "connections": sim.Connections()})
	}
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := run.Close(sctx); err != nil {
		return errorf(e, exitUnavailable, "simulate: %v", err)
	}
	fmt.Fprintf(e.stdout, "stopped; %s\n", sim.Stats())
	return exitOK
}
