package worker

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/orgconn/orgconn/jobs"
	"github.com/orgconn/orgconn/worker/mgmt"
)

// API is the part of the Management API client the worker uses;
// *mgmt.Client implements it.
type API interface {
	List(ctx context.Context, orgID string, page, perPage int) (mgmt.Page, error)
	Enable(ctx context.Context, orgID, connectionID string, s mgmt.Settings) (mgmt.EnabledConnection, error)
	Update(ctx context.Context, orgID, connectionID string, s mgmt.Settings) (mgmt.EnabledConnection, error)
	Remove(ctx context.Context, orgID, connectionID string) error
}

var _ API = (*mgmt.Client)(nil)

// settings returns the flags of c that are given.
func settings(c jobs.Change) mgmt.Settings {
	ptr := func(f jobs.Flag) *bool {
		if !f.Set() {
			return nil
		}
		b := f.Bool()
		return &b
	}
	return mgmt.Settings{
		AssignMembershipOnLogin: ptr(c.AssignMembershipOnLogin),
		ShowAsButton:            ptr(c.ShowAsButton),
		IsSignupEnabled:         ptr(c.IsSignupEnabled),
	}
}

// apply makes c true on the tenant with as few calls as the API allows, and
// so that repeating it after a lost answer is harmless:
//
//   - enable: POST; if the connection is already enabled (409), PATCH the
//     given flags, or nothing when none is given;
//   - update: PATCH;
//   - remove: DELETE; a 404 means "already not enabled" unless the
//     organization itself is unknown, which one read (from the read budget)
//     tells apart without reading message text.
//
// Each call is repeated while it is throttled (429): the pacer holds it until
// the budget is back, and throttling spends no attempt.
func apply(ctx context.Context, api API, c jobs.Change) error {
	s := settings(c)
	switch c.Action {
	case jobs.Enable:
		err := untilNotThrottled(ctx, func() error {
			_, err := api.Enable(ctx, c.OrgID, c.ConnectionID, s)
			return err
		})
		if mgmt.StatusOf(err) != http.StatusConflict {
			return err
		}
		if s.Empty() {
			return nil
		}
		return untilNotThrottled(ctx, func() error {
			_, err := api.Update(ctx, c.OrgID, c.ConnectionID, s)
			return err
		})
	case jobs.Update:
		return untilNotThrottled(ctx, func() error {
			_, err := api.Update(ctx, c.OrgID, c.ConnectionID, s)
			return err
		})
	case jobs.Remove:
		err := untilNotThrottled(ctx, func() error { return api.Remove(ctx, c.OrgID, c.ConnectionID) })
		var notFound *mgmt.APIError
		if !errors.As(err, &notFound) || notFound.Status != http.StatusNotFound {
			return err
		}
		check := untilNotThrottled(ctx, func() error {
			_, err := api.List(ctx, c.OrgID, 0, 1)
			return err
		})
		if check == nil {
			return nil // the organization exists: the connection is already not enabled
		}
		if mgmt.StatusOf(check) == http.StatusNotFound {
			return &errUnknownOrg{notFound}
		}
		return check
	}
	return errors.New("unknown action " + string(c.Action))
}

// untilNotThrottled runs call until its answer is something other than 429.
// The API's pacer, told of each 429, makes the next call wait for the
// budget; a 429 from the token endpoint (which the pacer does not see) waits
// here for what it asked (tokenRetryFloor at least, tokenRetryCap at most).
// A cancelled context ends the loop.
func untilNotThrottled(ctx context.Context, call func() error) error {
	for {
		err := call()
		if Classify(err).Kind != Throttled {
			return err
		}
		var te *mgmt.TokenError
		if errors.As(err, &te) {
			t := time.NewTimer(min(max(te.RetryAfter, tokenRetryFloor), tokenRetryCap))
			select {
			case <-ctx.Done():
				t.Stop()
			case <-t.C:
			}
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
}

// The shortest and longest waits after the token endpoint's 429.
const (
	tokenRetryFloor = 250 * time.Millisecond
	tokenRetryCap   = time.Minute
)
