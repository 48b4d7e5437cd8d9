package main

import (
	"context"
	"fmt"
	"time"

	"github.com/orgconn/orgconn/cmd/orgconn/internal/redisurl"
	"github.com/orgconn/orgconn/worker"
	"github.com/orgconn/orgconn/worker/apimode"
	"github.com/orgconn/orgconn/worker/ledger"
	"github.com/orgconn/orgconn/worker/mgmt"
	"github.com/orgconn/orgconn/worker/ratelimit"
	"github.com/redis/go-redis/v9"
)

// queueFlags selects the Redis, queue and key prefix.
type queueFlags struct {
	redisURL string
	queue    string
	prefix   string
}

func (f *flags) withQueue() *queueFlags {
	q := &queueFlags{}
	f.StringVar(&q.redisURL, "redis", envOr(f.e, "REDIS_URL", redisurl.Default), "Redis URL (env REDIS_URL)")
	f.StringVar(&q.queue, "queue", envOr(f.e, "ORGCONN_QUEUE", worker.DefaultQueue), "asynq queue name (env ORGCONN_QUEUE)")
	f.StringVar(&q.prefix, "prefix", envOr(f.e, "ORGCONN_KEY_PREFIX", "orgconn"), "prefix of orgconn's own Redis keys (env ORGCONN_KEY_PREFIX)")
	return q
}

// open connects to Redis (checking that it answers) and opens the ledger.
func (q *queueFlags) open(ctx context.Context) (redis.UniversalClient, *ledger.Ledger, error) {
	rdb, err := redisurl.Open(q.redisURL)
	if err != nil {
		return nil, nil, err
	}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := rdb.Ping(pctx).Err(); err != nil {
		rdb.Close()
		return nil, nil, fmt.Errorf("Redis at %s does not answer: %v (set REDIS_URL or --redis)", redisurl.Redacted(q.redisURL), err)
	}
	l, err := ledger.New(rdb, q.prefix, 0)
	if err != nil {
		rdb.Close()
		return nil, nil, err
	}
	return rdb, l, nil
}

// withAPIMode adds --api (env ORGCONN_API): how the tenant's organization
// connections are reached. The value is checked by apiMode.
func (f *flags) withAPIMode() *string {
	return f.String("api", envOr(f.e, "ORGCONN_API", string(apimode.Auto)), "how to reach the tenant's organization connections: legacy (the enabled_connections endpoints), connections (the newer Organization connections endpoints, Early Access) or auto (probe the tenant once; the answer is remembered in Redis for a day) (env ORGCONN_API)")
}

// apiMode parses the value of --api.
func apiMode(v string) (apimode.Mode, error) {
	m, err := apimode.Parse(v)
	if err != nil {
		return "", fmt.Errorf("--api: %w", err)
	}
	return m, nil
}

// apiFlags select the tenant and its rate budget.
type apiFlags struct {
	domain  string
	plan    string
	rate    float64
	burst   int
	timeout time.Duration
}

func (f *flags) withAPI() *apiFlags {
	a := &apiFlags{}
	f.StringVar(&a.domain, "auth0-domain", f.e.getenv("AUTH0_DOMAIN"), "tenant domain or base URL (env AUTH0_DOMAIN)")
	f.StringVar(&a.plan, "plan", envOr(f.e, "ORGCONN_PLAN", "essentials"), "the tenant's plan, for its documented rate limits: free, essentials, professional or enterprise (env ORGCONN_PLAN)")
	f.Float64Var(&a.rate, "rate", 0, "override: the tenant's write budget in calls per second (0: the plan's)")
	f.IntVar(&a.burst, "burst", 0, "override: the tenant's burst in calls (0: the plan's)")
	f.DurationVar(&a.timeout, "api-timeout", 30*time.Second, "timeout of one Management API request")
	return a
}

// overrides reports whether --rate or --burst is given: the start budget
// then replaces one the fleet learned.
func (a *apiFlags) overrides() bool { return a.rate > 0 || a.burst > 0 }

// startBuckets are the plan's documented buckets, with --rate and --burst
// replacing the write bucket's numbers (the global one's when the plan has
// no write bucket) and raising the global bucket to at least them.
func (a *apiFlags) startBuckets() (ratelimit.Buckets, error) {
	b, err := ratelimit.PlanBuckets(a.plan)
	if err != nil {
		return b, fmt.Errorf("--plan: %w", err)
	}
	if a.rate < 0 || a.burst < 0 {
		return b, fmt.Errorf("--rate and --burst must not be negative")
	}
	if a.rate == 0 && a.burst == 0 {
		return b, nil
	}
	target := &b.Write
	if target.Rate == 0 {
		target = &b.Global
	}
	if a.rate > 0 {
		target.Rate = a.rate
		// The API-wide bucket holds every call: a write budget above it
		// says the plan's numbers are not this tenant's.
		b.Global.Rate = max(b.Global.Rate, a.rate)
	}
	if a.burst > 0 {
		target.Burst = a.burst
		b.Global.Burst = max(b.Global.Burst, a.burst)
	}
	return b, nil
}

// credentials reads the tenant and its credentials from flags and
// environment; an error is a configuration mistake.
func (a *apiFlags) credentials(e *env) (base string, tokens mgmt.TokenSource, err error) {
	if base, err = mgmt.BaseURL(a.domain); err != nil {
		return "", nil, err
	}
	tokens, err = tokenSource(e, base)
	return base, tokens, err
}

// tokenSource picks AUTH0_TOKEN or client credentials.
func tokenSource(e *env, base string) (mgmt.TokenSource, error) {
	static, err := secret(e, "AUTH0_TOKEN")
	if err != nil {
		return nil, err
	}
	id := e.getenv("AUTH0_CLIENT_ID")
	sec, err := secret(e, "AUTH0_CLIENT_SECRET")
	if err != nil {
		return nil, err
	}
	switch {
	case static != "" && (id != "" || sec != ""):
		return nil, fmt.Errorf("both AUTH0_TOKEN and AUTH0_CLIENT_ID/AUTH0_CLIENT_SECRET are set: use one")
	case static != "":
		return mgmt.StaticToken(static), nil
	case id == "" || sec == "":
		return nil, fmt.Errorf("no credentials: set AUTH0_CLIENT_ID and AUTH0_CLIENT_SECRET (or AUTH0_CLIENT_SECRET_FILE), or AUTH0_TOKEN")
	}
	cc := mgmt.NewClientCredentials(base, id, sec, nil)
	return cc, nil
}
