package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/orgconn/orgconn/cmd/orgconn/internal/assembly"
	"github.com/redis/go-redis/v9"
)

// credentialsGiven reports whether the environment names Management API
// credentials (a token, or a client id or secret), so that a command that
// can work without them (import, serve) asks the tenant.
func credentialsGiven(e *env) bool {
	for _, k := range []string{"AUTH0_TOKEN", "AUTH0_TOKEN_FILE", "AUTH0_CLIENT_ID", "AUTH0_CLIENT_SECRET", "AUTH0_CLIENT_SECRET_FILE"} {
		if e.getenv(k) != "" {
			return true
		}
	}
	return false
}

// tenantAPI builds the paced client import and serve look the tenant up
// with (names, the API mode probe) when the tenant's domain and
// credentials are given; nil, nil when they are not. It reads through the
// fleet's read budget under the ledger's prefix name, the keys every worker
// uses. usage is true when the error is a configuration mistake (exit 2),
// false when the tenant or Redis failed (exit 4).
func tenantAPI(ctx context.Context, e *env, rdb redis.UniversalClient, prefix, domain string, log *slog.Logger) (api *assembly.API, usage bool, err error) {
	if domain == "" || !credentialsGiven(e) {
		return nil, false, nil
	}
	a := &apiFlags{domain: domain, plan: envOr(e, "ORGCONN_PLAN", "essentials"), timeout: 30 * time.Second}
	start, err := a.startBuckets()
	if err != nil {
		return nil, true, err
	}
	base, tokens, err := a.credentials(e)
	if err != nil {
		return nil, true, err
	}
	api, err = assembly.NewAPI(ctx, assembly.APIConfig{
		Redis: rdb, Prefix: prefix, BaseURL: base, Tokens: tokens,
		Start: start, APITimeout: a.timeout, UserAgent: userAgent(), Logger: log,
	})
	if err != nil {
		return nil, false, err
	}
	return api, false, nil
}
