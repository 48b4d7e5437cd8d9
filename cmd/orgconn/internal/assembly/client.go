package assembly

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/orgconn/orgconn/jobs"
	"github.com/orgconn/orgconn/producer/desired"
	"github.com/orgconn/orgconn/worker/mgmt"
	"github.com/orgconn/orgconn/worker/ratelimit"
	"github.com/orgconn/orgconn/worker/tokencache"
)

// Client is a Management API client paced by the fleet's shared budget and
// using the fleet's shared token: what commands that read the tenant
// (apply, rollback) use, so that their reads are spent from the same budget
// as the workers'. Close it when done.
type Client struct {
	API     *mgmt.Client
	Limiter *ratelimit.Limiter
}

// NewClient builds a Client from cfg's Redis, Ledger, BaseURL, Tokens,
// Start, Override, APITimeout, UserAgent and Logger (Worker is not used).
// It checks the credentials by getting a token.
func NewClient(ctx context.Context, cfg Config) (_ *Client, err error) {
	if cfg.Redis == nil || cfg.Ledger == nil || cfg.Tokens == nil || cfg.BaseURL == "" {
		return nil, errors.New("assembly: Config.Redis, Config.Ledger, Config.Tokens and Config.BaseURL are required")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	tokens := cfg.Tokens
	if cc, ok := tokens.(*mgmt.ClientCredentials); ok {
		tokens = tokencache.New(cfg.Redis, cfg.Ledger.Prefix(), cc.Identity(), cc)
	}
	lim, err := ratelimit.New(ctx, ratelimit.Config{
		Redis: cfg.Redis, Prefix: cfg.Ledger.Prefix(), Tenant: ratelimit.TenantOf(cfg.BaseURL),
		Start: cfg.Start, Override: cfg.Override, Logger: log,
	})
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			lim.Close()
		}
	}()
	tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if _, err := tokens.Token(tctx); err != nil {
		return nil, fmt.Errorf("check credentials: %w", err)
	}
	api, err := mgmt.New(mgmt.Config{BaseURL: cfg.BaseURL, Tokens: tokens, Pacer: lim, Timeout: cfg.APITimeout, UserAgent: cfg.UserAgent})
	if err != nil {
		return nil, err
	}
	return &Client{API: api, Limiter: lim}, nil
}

// Close releases the limiter.
func (c *Client) Close() { c.Limiter.Close() }

// Associations reads every association of the organization (one paged
// list), retrying a call the tenant throttled: it is a desired.StateReader.
// An unknown organization is desired.ErrUnknownOrganization.
func (c *Client) Associations(ctx context.Context, orgID string) (map[string]jobs.PairState, error) {
	for attempt := 1; ; attempt++ {
		all, err := c.API.ListAll(ctx, orgID)
		switch s := mgmt.StatusOf(err); {
		case err == nil:
			out := make(map[string]jobs.PairState, len(all))
			for _, ec := range all {
				out[ec.ConnectionID] = jobs.PairState{Present: true, AssignMembershipOnLogin: ec.AssignMembershipOnLogin, ShowAsButton: ec.ShowAsButton, IsSignupEnabled: ec.IsSignupEnabled}
			}
			return out, nil
		case s == http.StatusNotFound:
			return nil, fmt.Errorf("%s: %w", orgID, desired.ErrUnknownOrganization)
		case s == http.StatusTooManyRequests, (s >= 500 || s == 0 || s == http.StatusRequestTimeout) && attempt < 5 && ctx.Err() == nil:
			// The pacer holds the next call until the budget is back; a
			// 5xx or a lost answer is tried again a few times.
			if s != http.StatusTooManyRequests {
				t := time.NewTimer(time.Duration(attempt) * 200 * time.Millisecond)
				select {
				case <-ctx.Done():
					t.Stop()
					return nil, ctx.Err()
				case <-t.C:
				}
			}
			continue
		default:
			return nil, err
		}
	}
}

var _ desired.StateReader = (*Client)(nil)
