package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/orgconn/orgconn/cmd/orgconn/internal/demo"
	"github.com/orgconn/orgconn/cmd/orgconn/internal/redisurl"
	"github.com/orgconn/orgconn/worker/mgmt"
)

const demoSynopsis = `
Usage: orgconn demo [flags]

Runs orgconn end to end on this machine with nothing to set up: an embedded
Redis, the built-in simulated tenant (burst 10, 20 writes a second, a small
rate of 5xx, dropped connections and lost responses), a generated CSV of
about 300 changes over 50 organizations (with a few invalid rows, rejected by
--skip-invalid, and a few changes that must fail), an import, a worker with
live progress, and a summary: applied, superseded, dead-lettered with
reasons, elapsed time against the ideal, 429s, and whether the tenant's final
state equals applying the rows in file order. Exit 0 when it does.

--redis and --auth0-domain run the same demo against real services: an
"orgconn simulate" server, or a real tenant with --org-ids and
--connection-ids (credentials from the environment, as for the worker). The
demo changes those organizations' connections: use a development tenant.`

func runDemo(ctx context.Context, e *env, args []string) int {
	f := newFlags(e, "demo", demoSynopsis).withLogging()
	redisURL := f.String("redis", "", "use this Redis instead of an embedded one")
	a := f.withAPI()
	f.Lookup("auth0-domain").DefValue = ""
	a.domain = ""
	orgIDs := f.String("org-ids", "", "real tenant: comma-separated organization ids to change")
	connIDs := f.String("connection-ids", "", "real tenant: comma-separated connection ids to enable and remove")
	changes := f.Int("changes", 300, "number of changes to generate")
	seed := f.Uint64("seed", 1, "seed of the generated file")
	if code, ok := f.parse(args); !ok {
		return code
	}
	log, err := f.logger()
	if err != nil {
		return errorf(e, exitUsage, "demo: %v", err)
	}
	if f.Lookup("log-level").Value.String() == "info" {
		log = nil // keep the demo's own output readable unless asked
	}
	o := demo.Options{Changes: *changes, Seed: *seed, Out: e.stdout, Logger: log}
	if *redisURL != "" {
		rdb, err := redisurl.Open(*redisURL)
		if err != nil {
			return errorf(e, exitUsage, "demo: %v", err)
		}
		defer rdb.Close()
		if err := rdb.Ping(ctx).Err(); err != nil {
			return errorf(e, exitUnavailable, "demo: Redis at %s does not answer: %v", redisurl.Redacted(*redisURL), err)
		}
		o.Redis = rdb
	}
	if a.domain != "" {
		base, err := mgmt.BaseURL(a.domain)
		if err != nil {
			return errorf(e, exitUsage, "demo: %v", err)
		}
		o.BaseURL = base
		if *orgIDs != "" {
			o.OrgIDs, o.ConnectionIDs = splitList(*orgIDs), splitList(*connIDs)
			if o.Tokens, err = tokenSource(e, base); err != nil {
				return errorf(e, exitUsage, "demo: %v", err)
			}
			if o.Start, err = a.startBuckets(); err != nil {
				return errorf(e, exitUsage, "demo: %v", err)
			}
		}
	}
	sum, err := demo.Run(ctx, o)
	if err != nil {
		return errorf(e, exitUnavailable, "demo: %v", err)
	}
	if !sum.StateMatches {
		return exitDeadLetters
	}
	fmt.Fprintln(e.stdout, "\ndemo passed")
	return exitOK
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
