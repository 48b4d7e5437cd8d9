package bench

import (
	"context"
	"errors"
	"net/http"

	"github.com/auth0/go-auth0/management"
	"github.com/orgconn/orgconn/jobs"
	"github.com/orgconn/orgconn/worker/mgmt/mgmttest"
)

// runGoAuth0 runs the changes through the official Go SDK,
// github.com/auth0/go-auth0/management, as a careful user would: one
// client, client credentials, the SDK's default retries, lanes goroutines
// (runLanes, so a pair's changes stay in file order). It returns how many
// changes the SDK returned an error for after its retries.
//
// The SDK is configured with:
//
//   - management.WithInsecure, so that it speaks plain http to the
//     simulator on loopback (it sets a static token and the http scheme;
//     WithClientCredentials after it replaces the token with client
//     credentials fetched from http://<simulator>/oauth/token);
//   - management.WithClientCredentials, the simulator's client;
//   - management.WithClient, an http.Client like http.DefaultClient (no
//     overall timeout: the SDK's retry waits run inside one round trip) but
//     keeping up to lanes idle connections, where the default transport
//     keeps 2 and would reconnect for most calls at this concurrency;
//   - no retry option: the SDK's default, 2 retries of a 429 (and of a
//     transport error), each after X-RateLimit-Reset − now plus 25%,
//     clamped to 1–10 s (internal/client.DefaultRetryOptions and
//     backoffDelay in v1.45.0).
func runGoAuth0(ctx context.Context, baseURL string, lanes int, changes []jobs.Change) (gaveUp int, err error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = max(lanes, 2)
	api, err := management.New(baseURL,
		management.WithInsecure(),
		management.WithClientCredentials(ctx, mgmttest.DefaultClientID, mgmttest.DefaultClientSecret),
		management.WithClient(&http.Client{Transport: tr}),
		management.WithUserAgent("orgconn-bench-go-auth0"),
	)
	if err != nil {
		return 0, err
	}
	defer tr.CloseIdleConnections()
	return runLanes(ctx, lanes, changes, func(ctx context.Context, c jobs.Change) bool {
		return goAuth0Apply(ctx, api, c) == nil
	}), nil
}

// goAuth0Apply applies one change with the SDK. An enable answered 409
// (already enabled) becomes UpdateConnection with the same flags (none
// given: nothing to do); a remove answered 404 is already done.
func goAuth0Apply(ctx context.Context, api *management.Management, c jobs.Change) error {
	org := api.Organization
	flags := func() *management.OrganizationConnection {
		return &management.OrganizationConnection{
			AssignMembershipOnLogin: boolPtr(c.AssignMembershipOnLogin),
			ShowAsButton:            boolPtr(c.ShowAsButton),
			IsSignupEnabled:         boolPtr(c.IsSignupEnabled),
		}
	}
	switch c.Action {
	case jobs.Enable:
		body := flags()
		body.ConnectionID = &c.ConnectionID
		err := org.AddConnection(ctx, c.OrgID, body)
		if sdkStatus(err) != http.StatusConflict {
			return err
		}
		if !c.HasFlags() {
			return nil
		}
		return org.UpdateConnection(ctx, c.OrgID, c.ConnectionID, flags())
	case jobs.Update:
		return org.UpdateConnection(ctx, c.OrgID, c.ConnectionID, flags())
	case jobs.Remove:
		err := org.DeleteConnection(ctx, c.OrgID, c.ConnectionID)
		if sdkStatus(err) == http.StatusNotFound {
			return nil
		}
		return err
	}
	return errors.New("unknown action " + string(c.Action))
}

// sdkStatus returns the HTTP status of an SDK API error, 0 for anything
// else.
func sdkStatus(err error) int {
	var me management.Error
	if errors.As(err, &me) {
		return me.Status()
	}
	return 0
}
