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
//     organization itself is unknown.
//
// Whatever the action, a 404 whose organization turns out to be unknown is
// reported as one cause, errUnknownOrg (unknown_organization), told apart
// from an unknown or not enabled connection (not_found) by one read of the
// organization (from the read budget), never by reading message text.
//
// Each call is repeated while it is throttled (429): the pacer holds it until
// the budget is back, and throttling spends no attempt.
func apply(ctx context.Context, api API, c jobs.Change) error {
	_, err := applyBlind(ctx, api, c)
	return err
}

// applyBlind is apply, knowing nothing of the pair's state; it also returns
// the state the change left when the answers tell it (nil when they do not:
// an enable of an existing pair with no flag to set).
func applyBlind(ctx context.Context, api API, c jobs.Change) (*jobs.PairState, error) {
	s := settings(c)
	switch c.Action {
	case jobs.Enable:
		var ec mgmt.EnabledConnection
		err := untilNotThrottled(ctx, func() (err error) {
			ec, err = api.Enable(ctx, c.OrgID, c.ConnectionID, s)
			return err
		})
		if mgmt.StatusOf(err) != http.StatusConflict {
			return leftOf(ec, err), explainNotFound(ctx, api, c.OrgID, err)
		}
		return patchGiven(ctx, api, c, s)
	case jobs.Update:
		return patchGiven(ctx, api, c, s)
	case jobs.Remove:
		return removeKnown(ctx, api, c)
	}
	return nil, errors.New("unknown action " + string(c.Action))
}

// patchGiven sends the flags of s as one PATCH (nothing when s is empty).
func patchGiven(ctx context.Context, api API, c jobs.Change, s mgmt.Settings) (*jobs.PairState, error) {
	if s.Empty() {
		return nil, nil
	}
	var ec mgmt.EnabledConnection
	err := untilNotThrottled(ctx, func() (err error) {
		ec, err = api.Update(ctx, c.OrgID, c.ConnectionID, s)
		return err
	})
	return leftOf(ec, err), explainNotFound(ctx, api, c.OrgID, err)
}

// removeKnown sends the DELETE of c; a 404 of a known organization means
// the pair is already absent.
func removeKnown(ctx context.Context, api API, c jobs.Change) (*jobs.PairState, error) {
	err := untilNotThrottled(ctx, func() error { return api.Remove(ctx, c.OrgID, c.ConnectionID) })
	if mgmt.StatusOf(err) == http.StatusNotFound {
		err = explainNotFound(ctx, api, c.OrgID, err)
		if !isUnknownOrg(err) && mgmt.StatusOf(err) == http.StatusNotFound {
			err = nil // the organization exists: the connection is already not enabled
		}
	}
	if err != nil {
		return nil, err
	}
	absent := jobs.Absent
	return &absent, nil
}

// leftOf is the state an enable or update answered with, or nil after an
// error.
func leftOf(ec mgmt.EnabledConnection, err error) *jobs.PairState {
	if err != nil {
		return nil
	}
	return &jobs.PairState{Present: true, AssignMembershipOnLogin: ec.AssignMembershipOnLogin, ShowAsButton: ec.ShowAsButton, IsSignupEnabled: ec.IsSignupEnabled}
}

// explainNotFound returns err, unless it is a 404 from the Management API:
// then it reads the organization (one item of its enabled connections) and
// returns errUnknownOrg when that read is a 404 too, err when the
// organization exists (the connection is unknown, or not enabled), or the
// read's own error (a 5xx, say: the change is tried again).
func explainNotFound(ctx context.Context, api API, orgID string, err error) error {
	var notFound *mgmt.APIError
	if !errors.As(err, &notFound) || notFound.Status != http.StatusNotFound {
		return err
	}
	check := untilNotThrottled(ctx, func() error {
		_, err := api.List(ctx, orgID, 0, 1)
		return err
	})
	switch {
	case check == nil:
		return err
	case mgmt.StatusOf(check) == http.StatusNotFound:
		return &errUnknownOrg{notFound}
	}
	return check
}

// isUnknownOrg reports whether err is errUnknownOrg.
func isUnknownOrg(err error) bool {
	var u *errUnknownOrg
	return errors.As(err, &u)
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
