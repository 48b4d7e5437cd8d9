package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/orgconn/orgconn/worker/apimode"
	"github.com/orgconn/orgconn/worker/mgmt"
	"github.com/orgconn/orgconn/worker/ratelimit"
)

const limitsSynopsis = `Usage: orgconn limits [flags]

Shows the rate budget the worker fleet has learned for each tenant, as it
is stored in Redis and shared by every worker: each bucket's burst, refill
rate, the calls it paces (w writes, r reads, - none any more) and where the
numbers come from:

  plan       the --plan's documented numbers (before any answer)
  override   --rate/--burst
  guess      a bucket the answers just described, started from the above
  measured   fitted from the X-RateLimit-* headers of successive answers
  at-least   a lower bound from answers (the bucket never ran low)
  probing    raised step by step: answers showed it refilling faster
  cut        cut after a 429 (the limits changed, or the estimate was high)
  hidden     a bucket no header describes, found from 429s

and any pause a 429 set for the whole fleet. Workers also log each change
of these numbers.

It also shows the tenant's API mode as the fleet remembers it: what a worker
with --api auto found when it probed the tenant (legacy: no newer
Organization connections endpoints; connections: they are there), the
answer that decided it, and how long it is remembered before the next probe.

Examples:
  orgconn limits
  orgconn limits --auth0-domain acme.eu.auth0.com --json`

func runLimits(ctx context.Context, e *env, args []string) int {
	f := newFlags(e, "limits", limitsSynopsis)
	q := f.withQueue()
	domain := f.String("auth0-domain", e.getenv("AUTH0_DOMAIN"), "show only this tenant (domain or base URL; env AUTH0_DOMAIN); empty: every tenant known")
	asJSON := f.Bool("json", false, "print JSON")
	if code, ok := f.parse(args); !ok {
		return code
	}
	if f.NArg() != 0 {
		return errorf(e, exitUsage, "limits: unexpected argument %q", f.Arg(0))
	}
	rdb, _, err := q.open(ctx)
	if err != nil {
		return errorf(e, exitUnavailable, "limits: %v", err)
	}
	defer rdb.Close()
	var tenants []string
	if *domain != "" {
		base, err := mgmt.BaseURL(*domain)
		if err != nil {
			return errorf(e, exitUsage, "limits: --auth0-domain: %v", err)
		}
		tenants = []string{ratelimit.TenantOf(base)}
	} else if tenants, err = ratelimit.Tenants(ctx, rdb, q.prefix); err != nil {
		return errorf(e, exitUnavailable, "limits: %v", err)
	}
	type tenantState struct {
		Tenant string `json:"tenant"`
		ratelimit.State
		APIMode *apiModeMemory `json:"api_mode"` // null: not probed, or forgotten
	}
	modes := apimode.NewStore(rdb, q.prefix, 0)
	var out []tenantState
	for _, t := range tenants {
		st, err := ratelimit.ReadState(ctx, rdb, q.prefix, t)
		if err != nil {
			return errorf(e, exitUnavailable, "limits: %v", err)
		}
		ts := tenantState{Tenant: t, State: st}
		m, ok, err := modes.Get(ctx, t)
		if err != nil {
			return errorf(e, exitUnavailable, "limits: %v", err)
		}
		if ok {
			ts.APIMode = &apiModeMemory{Memory: m, TTLSeconds: int64(m.TTL / time.Second)}
		}
		out = append(out, ts)
	}
	if *asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		if out == nil {
			out = []tenantState{}
		}
		enc.Encode(out)
		return exitOK
	}
	if len(out) == 0 {
		fmt.Fprintln(e.stdout, "no rate budget recorded yet: workers record one with their first call")
		return exitOK
	}
	for i, t := range out {
		if i > 0 {
			fmt.Fprintln(e.stdout)
		}
		printLimits(e.stdout, t.Tenant, t.State)
		printAPIMode(e.stdout, t.APIMode)
	}
	return exitOK
}

// apiModeMemory is a tenant's remembered API mode in limits' JSON output.
type apiModeMemory struct {
	apimode.Memory
	// TTLSeconds is how long it is remembered before a worker probes again.
	TTLSeconds int64 `json:"ttl_seconds"`
}

// printAPIMode prints the tenant's remembered API mode, or that there is none.
func printAPIMode(w io.Writer, m *apiModeMemory) {
	if m == nil {
		fmt.Fprintln(w, "  API mode: not known (a worker with --api auto probes the tenant when it starts)")
		return
	}
	fmt.Fprintf(w, "  API mode: %s (probed %s: %s; remembered for %v more)\n",
		m.Mode, m.ProbedAt.UTC().Format(time.RFC3339), m.Evidence, (time.Duration(m.TTLSeconds) * time.Second).String())
}

func printLimits(w io.Writer, tenant string, st ratelimit.State) {
	fmt.Fprintf(w, "tenant %s: %d answers recorded", tenant, st.Answers)
	if !st.PausedUntil.IsZero() {
		fmt.Fprintf(w, "; every worker paused for %v more (a 429)", time.Until(st.PausedUntil).Round(time.Millisecond))
	}
	fmt.Fprintln(w)
	if len(st.Buckets) == 0 {
		fmt.Fprintln(w, "  no buckets known")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  BUCKET\tPACES\tBURST\tRATE/S\tPER MINUTE\tSOURCE\tCALLS")
	for _, b := range st.Buckets {
		fmt.Fprintf(tw, "  %s\t%s\t%d\t%.3f\t%.1f\t%s\t%d\n", b.ID, b.Classes, b.Burst, b.Rate, b.Rate*60, b.Source, b.Calls)
	}
	tw.Flush()
}
