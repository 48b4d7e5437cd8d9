package main

import (
	"context"
	"fmt"
	"time"

	"github.com/orgconn/orgconn/worker"
)

const workerSynopsis = `
Usage: orgconn worker [flags]

Applies queued changes through the Auth0 Management API until stopped
(SIGINT or SIGTERM: calls in flight finish, waiting changes go back to the
queue; nothing is lost). Run as many worker processes as you like against
one Redis: a pair's changes always take effect in the order they were
accepted.

Credentials come from the environment: AUTH0_DOMAIN and AUTH0_CLIENT_ID with
AUTH0_CLIENT_SECRET (or AUTH0_CLIENT_SECRET_FILE), or AUTH0_TOKEN. The
application needs the scopes read:, create:, update: and
delete:organization_connections.

Example:
  AUTH0_DOMAIN=acme.eu.auth0.com AUTH0_CLIENT_ID=… AUTH0_CLIENT_SECRET_FILE=/run/secrets/auth0 \
    orgconn worker --plan essentials`

func runWorker(ctx context.Context, e *env, args []string) int {
	f := newFlags(e, "worker", workerSynopsis).withLogging()
	q := f.withQueue()
	a := f.withAPI()
	concurrency := f.Int("concurrency", 10, "changes worked on at once by this process")
	maxAttempts := f.Int("max-attempts", 8, "failed attempts (5xx, network, timeout) before a change is dead-lettered")
	orphanCheck := f.Duration("orphan-check", 5*time.Second, "how often to put back tasks left active by a worker that died (its asynq lease expired); 0 leaves it to asynq (55 s to 2 min)")
	if code, ok := f.parse(args); !ok {
		return code
	}
	if f.NArg() != 0 {
		return errorf(e, exitUsage, "worker: unexpected argument %q", f.Arg(0))
	}
	log, err := f.logger()
	if err != nil {
		return errorf(e, exitUsage, "worker: %v", err)
	}
	if _, err := a.startBuckets(); err != nil {
		return errorf(e, exitUsage, "worker: %v", err)
	}
	base, tokens, err := a.credentials(e)
	if err != nil {
		return errorf(e, exitUsage, "worker: %v", err)
	}
	rdb, l, err := q.open(ctx)
	if err != nil {
		return errorf(e, exitUnavailable, "worker: %v", err)
	}
	defer rdb.Close()
	lim, err := a.limiter(ctx, rdb, q.prefix, base, log)
	if err != nil {
		return errorf(e, exitUnavailable, "worker: %v", err)
	}
	defer lim.Close()
	api, err := a.client(ctx, base, tokens, lim)
	if err != nil {
		return errorf(e, exitUnavailable, "worker: %v", err)
	}
	w, err := worker.New(worker.Config{
		Redis: rdb, Ledger: l, API: api, Limiter: lim,
		Queue: q.queue, Concurrency: *concurrency, MaxAttempts: *maxAttempts, Logger: log,
		OrphanCheck: orphanCheckConfig(*orphanCheck),
	})
	if err != nil {
		return errorf(e, exitUsage, "worker: %v", err)
	}
	if st, err := lim.State(ctx); err == nil {
		log.Info("worker starting", "queue", q.queue, "concurrency", *concurrency, "tenant", tenantName(base), "budget", fmt.Sprint(st.Buckets))
	}
	if err := w.Run(ctx); err != nil {
		return errorf(e, exitUnavailable, "worker: %v", err)
	}
	st := lim.Stats()
	log.Info("worker stopped", "calls", st.Calls, "throttled", st.Throttled, "waited", st.Waited.Round(time.Millisecond))
	return exitOK
}

// orphanCheckConfig maps the --orphan-check flag (0: off) to
// worker.Config.OrphanCheck (0: default, negative: off).
func orphanCheckConfig(d time.Duration) time.Duration {
	if d <= 0 {
		return -1
	}
	return d
}
