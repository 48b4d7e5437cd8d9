package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/orgconn/orgconn/worker/mgmt/mgmttest"
)

const simulateSynopsis = `
Usage: orgconn simulate [flags]

Serves a simulated Auth0 tenant: POST /oauth/token, the organization
enabled-connections endpoints of the Management API, the newer Organization
connections endpoints (unless --no-connections-api) and GET /connections,
strict as Auth0 is (status codes, error bodies, scopes, token expiry), with
rate limits and X-RateLimit-* headers, and optional faults. Point orgconn at it with AUTH0_DOMAIN=http://ADDR
and the client credentials it prints.

--shape NAME takes a tenant's whole rate limiting from a preset (buckets, which
bucket the headers describe, what Reset means, Retry-After, the /oauth/token
limit, 401s that spend budget); the rate flags given on the command line
(--burst, --rate, --write-*, --read-*, --header-policy, --reset) override it.
--time-scale K multiplies every rate (and divides every window) by K.

Shapes:
%s
Admin endpoints (no authentication: keep the simulator on loopback):
  GET /sim/state, GET /sim/stats, GET /sim/tenant,
  POST /sim/bucket {"bucket":"global|write|read","burst":N,"rate":R,"window":"15s"},
  POST /sim/faults {"error_5xx":P,"error_500":P,"html_502":P,"drop":P,"reset":P,
                    "lost_response":P,"latency":"50ms","jitter":"10ms"},
  POST /sim/expire-tokens

Examples:
  orgconn simulate --addr 127.0.0.1:8080 --orgs 50 --burst 10 --rate 20 --5xx 0.01
  orgconn simulate --shape essentials --time-scale 20 --502-html 0.01`

// simulateUsage is the synopsis with one line per shape.
func simulateUsage() string {
	var b strings.Builder
	for _, sh := range mgmttest.Shapes() {
		fmt.Fprintf(&b, "  %-14s %s\n", sh.Name, sh.Doc)
	}
	return fmt.Sprintf(simulateSynopsis, b.String())
}

// shapeFlags copy each rate flag's value from the flag-bound config into the shape's config,
// for the flags given on the command line.
var shapeFlags = map[string]func(dst *mgmttest.Config, src mgmttest.Config){
	"burst":         func(d *mgmttest.Config, s mgmttest.Config) { d.Global.Burst = s.Global.Burst },
	"rate":          func(d *mgmttest.Config, s mgmttest.Config) { d.Global.Rate = s.Global.Rate },
	"write-burst":   func(d *mgmttest.Config, s mgmttest.Config) { d.Write.Burst = s.Write.Burst },
	"write-rate":    func(d *mgmttest.Config, s mgmttest.Config) { d.Write.Rate = s.Write.Rate },
	"read-burst":    func(d *mgmttest.Config, s mgmttest.Config) { d.Read.Burst = s.Read.Burst },
	"read-rate":     func(d *mgmttest.Config, s mgmttest.Config) { d.Read.Rate = s.Read.Rate },
	"header-policy": func(d *mgmttest.Config, s mgmttest.Config) { d.HeaderPolicy = s.HeaderPolicy },
	"reset":         func(d *mgmttest.Config, s mgmttest.Config) { d.ResetMeaning = s.ResetMeaning },
}

// withShape returns cfg with its rate limiting taken from sh at timeScale, except what the
// flags in given set explicitly. Fields a shape leaves zero (tenant size, faults, token TTL,
// policies for duplicates) stay as cfg has them.
func withShape(cfg mgmttest.Config, sh mgmttest.Shape, timeScale float64, given map[string]bool) mgmttest.Config {
	base := sh.Config(timeScale)
	for name, copyFlag := range shapeFlags {
		if given[name] {
			copyFlag(&base, cfg)
		}
	}
	cfg.Global, cfg.Write, cfg.Read = base.Global, base.Write, base.Read
	cfg.HeaderPolicy, cfg.ResetMeaning = base.HeaderPolicy, base.ResetMeaning
	cfg.RetryAfter, cfg.AuthSpends, cfg.TokenLimit = base.RetryAfter, base.AuthSpends, base.TokenLimit
	return cfg
}

// scaled multiplies every rate of cfg's buckets by k (dividing windows), for --time-scale
// without --shape; k of 0 or 1 leaves them.
func scaled(cfg mgmttest.Config, k float64) mgmttest.Config {
	if k == 0 || k == 1 {
		return cfg
	}
	for _, b := range []*mgmttest.Bucket{&cfg.Global, &cfg.Write, &cfg.Read, &cfg.TokenLimit} {
		b.Rate *= k
		if b.Window > 0 {
			b.Window = max(time.Duration(float64(b.Window)/k), 1)
		}
	}
	return cfg
}

// describeBucket is one bucket for the banner: "burst 10, 20/s" or "10 per 1s".
func describeBucket(b mgmttest.Bucket) string {
	if b.Window > 0 {
		return fmt.Sprintf("%d per %v", b.Burst, b.Window)
	}
	return fmt.Sprintf("burst %d, %.4g/s", b.Burst, b.Rate)
}

func runSimulate(ctx context.Context, e *env, args []string) int {
	f := newFlags(e, "simulate", simulateUsage())
	var cfg mgmttest.Config
	addr := f.String("addr", "127.0.0.1:8080", "address to listen on")
	shapeName := f.String("shape", "", "rate-limit preset: "+strings.Join(mgmttest.ShapeNames(), ", ")+" (see above); explicit rate flags override it")
	timeScale := f.Float64("time-scale", 1, "multiply every rate (and divide every window) by this, so per-minute budgets run faster; 0 or 1: real time")
	f.IntVar(&cfg.Orgs, "orgs", mgmttest.DefaultOrgs, "organizations to seed")
	f.IntVar(&cfg.Connections, "connections", mgmttest.DefaultConnections, "tenant connections to seed (strategies cycle auth0, samlp, google-oauth2, oidc)")
	f.Int64Var(&cfg.Seed, "seed", 1, "seed of ids and faults")
	f.IntVar(&cfg.Global.Burst, "burst", 10, "global bucket size")
	f.Float64Var(&cfg.Global.Rate, "rate", 20, "global refill per second (0: unlimited)")
	f.IntVar(&cfg.Write.Burst, "write-burst", 0, "write bucket size")
	f.Float64Var(&cfg.Write.Rate, "write-rate", 0, "write refill per second (0: no write bucket)")
	f.IntVar(&cfg.Read.Burst, "read-burst", 0, "read bucket size")
	f.Float64Var(&cfg.Read.Rate, "read-rate", 0, "read refill per second (0: no read bucket)")
	f.TextVar(&cfg.HeaderPolicy, "header-policy", mgmttest.Tightest, "which bucket X-RateLimit-* describe: tightest, global, endpoint, alternate or global-unless-refused")
	f.TextVar(&cfg.ResetMeaning, "reset", mgmttest.ResetFull, "what X-RateLimit-Reset means: full, next, now, past or now-or-past")
	f.TextVar(&cfg.EnableExisting, "enable-existing", mgmttest.Conflict409, "answer to enabling an enabled connection: conflict or upsert")
	f.TextVar(&cfg.RemoveMissing, "remove-missing", mgmttest.NotFound404, "answer to removing a connection that is not enabled: notfound or nocontent")
	f.Float64Var(&cfg.Faults.Error5xx, "5xx", 0, "probability of a 503")
	f.Float64Var(&cfg.Faults.Error500, "500", 0, "probability of a 500 with a JSON body (nothing applied)")
	f.Float64Var(&cfg.Faults.HTML502, "502-html", 0, "probability of a 502 with an HTML page body, as a proxy sends (nothing applied)")
	f.Float64Var(&cfg.Faults.Drop, "drop", 0, "probability of a dropped connection (nothing applied)")
	f.Float64Var(&cfg.Faults.Reset, "tcp-reset", 0, "probability of a TCP reset connection (nothing applied); --reset is what X-RateLimit-Reset means")
	f.Float64Var(&cfg.Faults.LostResponse, "lost", 0, "probability that a write is applied and its response lost")
	f.DurationVar(&cfg.Faults.Latency, "latency", 0, "added latency per request")
	f.DurationVar(&cfg.Faults.Jitter, "jitter", 0, "random extra latency up to this")
	f.DurationVar(&cfg.TokenTTL, "token-ttl", mgmttest.DefaultTokenTTL, "lifetime of issued tokens")
	f.BoolVar(&cfg.NoConnectionsAPI, "no-connections-api", false, "a tenant without the newer Organization connections endpoints (/organizations/{id}/connections): they answer 404 like an unknown route")
	printTenant := f.Bool("print-tenant", false, "print the organizations and connections as JSON and go on serving")
	if code, ok := f.parse(args); !ok {
		return code
	}
	if *timeScale < 0 || math.IsNaN(*timeScale) || math.IsInf(*timeScale, 0) {
		return errorf(e, exitUsage, "simulate: --time-scale %g: want a finite number, 0 or more (0 and 1: real time)", *timeScale)
	}
	shapeDesc := ""
	if *shapeName != "" {
		sh, err := mgmttest.LookupShape(*shapeName)
		if err != nil {
			return errorf(e, exitUsage, "simulate: --shape: unknown shape %q, want one of %s", *shapeName, strings.Join(mgmttest.ShapeNames(), ", "))
		}
		given := map[string]bool{}
		f.Visit(func(fl *flag.Flag) { given[fl.Name] = true })
		cfg = withShape(cfg, sh, *timeScale, given)
		shapeDesc = sh.Name
	} else {
		cfg = scaled(cfg, *timeScale)
	}
	if err := cfg.Validate(); err != nil {
		return errorf(e, exitUsage, "simulate: %v", err)
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
	if shapeDesc != "" {
		fmt.Fprintf(e.stdout, "  shape %s, time scale %g\n", shapeDesc, *timeScale)
	}
	fmt.Fprintf(e.stdout, "  rate limit: global %s", describeBucket(cfg.Global))
	if cfg.Write.Rate > 0 || cfg.Write.Window > 0 {
		fmt.Fprintf(e.stdout, "; writes %s", describeBucket(cfg.Write))
	}
	if cfg.Read.Rate > 0 || cfg.Read.Window > 0 {
		fmt.Fprintf(e.stdout, "; reads %s", describeBucket(cfg.Read))
	}
	fmt.Fprintf(e.stdout, "; headers %s, reset %s", cfg.HeaderPolicy, cfg.ResetMeaning)
	if cfg.NoConnectionsAPI {
		fmt.Fprint(e.stdout, "; no newer Organization connections endpoints")
	}
	if cfg.TokenLimit.Rate > 0 || cfg.TokenLimit.Window > 0 {
		fmt.Fprintf(e.stdout, "; /oauth/token %s", describeBucket(cfg.TokenLimit))
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
