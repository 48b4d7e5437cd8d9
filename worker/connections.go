package worker

import (
	"context"
	"errors"
	"fmt"

	"github.com/orgconn/orgconn/jobs"
	"github.com/orgconn/orgconn/worker/apimode"
	"github.com/orgconn/orgconn/worker/mgmt"
)

// ConnectionsAPI is the part of the Management API client the newer
// Organization connections endpoints need; *mgmt.Client implements it.
type ConnectionsAPI interface {
	ListOrgConnections(ctx context.Context, orgID string, q mgmt.OrgConnectionsQuery) (mgmt.OrgConnectionPage, error)
	CreateOrgConnection(ctx context.Context, orgID, connectionID string, s mgmt.OrgConnectionSettings) (mgmt.OrgConnection, error)
	UpdateOrgConnection(ctx context.Context, orgID, connectionID string, s mgmt.OrgConnectionSettings) (mgmt.OrgConnection, error)
	DeleteOrgConnection(ctx context.Context, orgID, connectionID string) error
}

var _ ConnectionsAPI = (*mgmt.Client)(nil)

// errNeedsConnectionsAPI is a change that only the newer endpoints can make,
// met on a tenant in legacy mode: dead-lettered (needs_connections_api).
type errNeedsConnectionsAPI struct{ c jobs.Change }

func (e *errNeedsConnectionsAPI) Error() string {
	var what string
	switch {
	case e.c.Action == jobs.Disable:
		what = fmt.Sprintf("action %q", string(e.c.Action))
	case e.c.OrgConnectionName != "":
		what = jobs.FieldOrgConnectionName
	default:
		what = jobs.FieldAccessLevel
	}
	return what + " needs the Organization connections API; this tenant is in legacy mode (worker --api)"
}

// errModeUndecided: the tenant's API mode is auto and no probe has decided
// it yet, so a change that needs the newer endpoints cannot be made now.
// Retried (the resolver probes again), dead-lettered when attempts run out.
type errModeUndecided struct{ why string }

func (e *errModeUndecided) Error() string {
	return "the tenant's API mode is not decided yet (auto; " + e.why + "): a change that needs the Organization connections API waits for it"
}

// errNoConnectionsClient: the worker's client lacks the newer calls.
var errNoConnectionsClient = errors.New("the worker's Management API client does not implement the Organization connections calls (worker.ConnectionsAPI)")

// mode returns the tenant's API mode (Legacy when the handler has no
// resolver). Auto means undecided; the error is a failure to resolve (Redis).
func (h *handler) mode(ctx context.Context) (apimode.Mode, string, error) {
	if h.apiMode == nil {
		return apimode.Legacy, "", nil
	}
	res, err := h.apiMode.Resolve(ctx)
	if err != nil {
		return "", "", fmt.Errorf("resolve the tenant's API mode: %w", err)
	}
	why := string(res.Source)
	if res.Probe != nil && res.Probe.Evidence != "" {
		why = res.Probe.Evidence
	}
	return res.Mode, why, nil
}

// stateAware reports whether c takes the state-aware path (act, state.go)
// in mode: a change by ids that the legacy endpoints can express, on a
// tenant in legacy mode — the legacy list the state is read from does not
// show disabled associations or the newer fields. Connections mode, names
// and the newer fields go through execute.
func stateAware(c jobs.Change, mode apimode.Mode) bool {
	return mode == apimode.Legacy && !c.Unresolved() && !c.NeedsConnectionsAPI()
}

// execute makes c true on the tenant: it resolves the tenant's API mode and
// then runs executeIn.
func (h *handler) execute(ctx context.Context, c jobs.Change) error {
	mode, why, err := h.mode(ctx)
	return h.executeIn(ctx, c, mode, why, err)
}

// executeIn makes c true on the tenant in mode (resolved by the caller, why
// it was; modeErr if it could not be): it resolves the names c gives
// instead of ids, then applies it through the endpoints of that mode — the
// newer Organization connections endpoints in connections mode
// (applyConnections), else the legacy ones (apply). In legacy mode a change
// that needs the newer endpoints fails with errNeedsConnectionsAPI; while
// auto is undecided it fails with errModeUndecided and the legacy endpoints
// take the others.
func (h *handler) executeIn(ctx context.Context, c jobs.Change, mode apimode.Mode, why string, modeErr error) error {
	if modeErr != nil {
		return modeErr
	}
	if mode == apimode.Legacy && c.NeedsConnectionsAPI() {
		return &errNeedsConnectionsAPI{c} // before any look-up of its names
	}
	if c.Unresolved() {
		dir, _ := h.api.(Directory)
		rc, err := h.names.resolve(ctx, dir, c)
		if err != nil {
			return err
		}
		c = rc
	}
	switch {
	case mode == apimode.Connections:
		capi, ok := h.api.(ConnectionsAPI)
		if !ok {
			return errNoConnectionsClient
		}
		return applyConnections(ctx, capi, c)
	case !c.NeedsConnectionsAPI():
		return apply(ctx, h.api, c)
	case mode == apimode.Legacy:
		return &errNeedsConnectionsAPI{c}
	}
	return &errModeUndecided{why}
}

// orgConnectionSettings returns the settings c gives, for the newer
// endpoints; enabled, when not nil, is sent as is_enabled.
func orgConnectionSettings(c jobs.Change, enabled *bool) mgmt.OrgConnectionSettings {
	ls := settings(c)
	s := mgmt.OrgConnectionSettings{
		AssignMembershipOnLogin: ls.AssignMembershipOnLogin,
		ShowAsButton:            ls.ShowAsButton,
		IsSignupEnabled:         ls.IsSignupEnabled,
	}
	if c.OrgConnectionName != "" {
		s.Name = mgmt.Set(c.OrgConnectionName)
	}
	if c.AccessLevel != "" {
		s.AccessLevel = mgmt.Set(mgmt.AccessLevel(c.AccessLevel))
	}
	if enabled != nil {
		s.IsEnabled = mgmt.Set(*enabled)
	}
	return s
}

// applyConnections makes c true through the newer Organization connections
// endpoints, so that repeating it after a lost answer is harmless:
//
//   - enable: POST with is_enabled true and the given fields; if the
//     association exists (409), PATCH is_enabled true and the given fields;
//   - disable: the same with is_enabled false: an absent pair is created
//     disabled, an existing one keeps the settings not given;
//   - update: PATCH the given fields, enabled or not; a missing association
//     is not_found (as for the legacy endpoints);
//   - remove: DELETE (204 also when the association is already gone; a 404
//     for a missing association is taken as done too).
//
// A 404 the answer does not explain is told apart by one read of the
// organization's list (unknown_organization or not_found), as for the
// legacy endpoints. Throttled calls are repeated; throttling spends no
// attempt.
func applyConnections(ctx context.Context, api ConnectionsAPI, c jobs.Change) error {
	switch c.Action {
	case jobs.Enable, jobs.Disable:
		enabled := c.Action == jobs.Enable
		s := orgConnectionSettings(c, &enabled)
		err := untilNotThrottled(ctx, func() error {
			_, err := api.CreateOrgConnection(ctx, c.OrgID, c.ConnectionID, s)
			return err
		})
		if !errors.Is(err, mgmt.ErrAlreadyExists) {
			return explainNewerNotFound(ctx, api, c.OrgID, err)
		}
		return explainNewerNotFound(ctx, api, c.OrgID, untilNotThrottled(ctx, func() error {
			_, err := api.UpdateOrgConnection(ctx, c.OrgID, c.ConnectionID, s)
			return err
		}))
	case jobs.Update:
		return explainNewerNotFound(ctx, api, c.OrgID, untilNotThrottled(ctx, func() error {
			_, err := api.UpdateOrgConnection(ctx, c.OrgID, c.ConnectionID, orgConnectionSettings(c, nil))
			return err
		}))
	case jobs.Remove:
		err := explainNewerNotFound(ctx, api, c.OrgID, untilNotThrottled(ctx, func() error {
			return api.DeleteOrgConnection(ctx, c.OrgID, c.ConnectionID)
		}))
		if errors.Is(err, mgmt.ErrOrgConnectionNotFound) {
			return nil // already gone
		}
		return err
	}
	return errors.New("unknown action " + string(c.Action))
}

// explainNewerNotFound returns err, unless it is a 404 whose Cause the
// answer left unknown: then one read of the organization's list tells an
// unknown organization (the read's 404 says so) from a missing association
// (the organization exists: the 404 gets CauseOrgConnectionNotFound). The
// read's own failure (a 5xx, say) is returned instead, to try again.
func explainNewerNotFound(ctx context.Context, api ConnectionsAPI, orgID string, err error) error {
	var ae *mgmt.APIError
	if !errors.As(err, &ae) || !ae.NotFound() || ae.Cause != mgmt.CauseUnknown {
		return err
	}
	check := untilNotThrottled(ctx, func() error {
		_, err := api.ListOrgConnections(ctx, orgID, mgmt.OrgConnectionsQuery{PerPage: 1})
		return err
	})
	switch {
	case check == nil:
		ae.Cause = mgmt.CauseOrgConnectionNotFound
		return err
	case mgmt.CauseOf(check) == mgmt.CauseOrganizationNotFound, mgmt.StatusOf(check) == 404 && mgmt.CauseOf(check) == mgmt.CauseUnknown:
		ae.Cause = mgmt.CauseOrganizationNotFound
		return err
	case mgmt.CauseOf(check) == mgmt.CauseEndpointNotFound:
		ae.Cause = mgmt.CauseEndpointNotFound
		return err
	}
	return check
}
