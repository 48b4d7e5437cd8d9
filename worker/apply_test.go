package worker

import (
	"context"
	"net/http"
	"testing"

	"github.com/orgconn/orgconn/jobs"
	"github.com/orgconn/orgconn/worker/mgmt"
)

// scriptedAPI answers each call with the error given for its method
// (nil: success) and counts the reads.
type scriptedAPI struct {
	enable, update, remove, list error
	lists                        int
}

func (a *scriptedAPI) List(context.Context, string, int, int) (mgmt.Page, error) {
	a.lists++
	return mgmt.Page{}, a.list
}
func (a *scriptedAPI) Enable(context.Context, string, string, mgmt.Settings) (mgmt.EnabledConnection, error) {
	return mgmt.EnabledConnection{}, a.enable
}
func (a *scriptedAPI) Update(context.Context, string, string, mgmt.Settings) (mgmt.EnabledConnection, error) {
	return mgmt.EnabledConnection{}, a.update
}
func (a *scriptedAPI) Remove(context.Context, string, string) error { return a.remove }

func apiErr(status int, message string) error {
	return &mgmt.APIError{Method: "X", Path: "/organizations/org_x/enabled_connections", Status: status, Message: message}
}

// TestAnUnknownOrganizationIsOneReason: whatever the action, a 404 for an
// organization that does not exist is unknown_organization, told by one read;
// a 404 for a connection of an organization that exists stays not_found.
func TestAnUnknownOrganizationIsOneReason(t *testing.T) {
	const noOrg, noConn = "No organization found by that id or name", "No connection found by that id"
	enable := jobs.Change{Action: jobs.Enable, OrgID: "org_x", ConnectionID: "con_1"}
	enableFlags := jobs.Change{Action: jobs.Enable, OrgID: "org_x", ConnectionID: "con_1", ShowAsButton: jobs.True}
	update := jobs.Change{Action: jobs.Update, OrgID: "org_x", ConnectionID: "con_1", ShowAsButton: jobs.False}
	remove := jobs.Change{Action: jobs.Remove, OrgID: "org_x", ConnectionID: "con_1"}
	for _, tc := range []struct {
		name   string
		change jobs.Change
		api    scriptedAPI
		kind   Kind
		reason Reason
		reads  int
	}{
		{"enable, unknown organization", enable, scriptedAPI{enable: apiErr(404, noOrg), list: apiErr(404, noOrg)}, Dead, ReasonUnknownOrg, 1},
		{"enable, unknown connection", enable, scriptedAPI{enable: apiErr(404, noConn)}, Dead, ReasonNotFound, 1},
		{"enable, already enabled, then the organization is gone", enableFlags, scriptedAPI{enable: apiErr(409, ""), update: apiErr(404, noOrg), list: apiErr(404, noOrg)}, Dead, ReasonUnknownOrg, 1},
		{"update, unknown organization", update, scriptedAPI{update: apiErr(404, noOrg), list: apiErr(404, noOrg)}, Dead, ReasonUnknownOrg, 1},
		{"update, pair not enabled", update, scriptedAPI{update: apiErr(404, noConn)}, Dead, ReasonNotFound, 1},
		{"update, the read fails", update, scriptedAPI{update: apiErr(404, noOrg), list: apiErr(503, "")}, Retry, ReasonServerError, 1},
		{"remove, unknown organization", remove, scriptedAPI{remove: apiErr(404, noOrg), list: apiErr(404, noOrg)}, Dead, ReasonUnknownOrg, 1},
		{"remove, already not enabled", remove, scriptedAPI{remove: apiErr(404, noConn)}, Done, ReasonApplied, 1},
		{"remove, the read fails", remove, scriptedAPI{remove: apiErr(404, noConn), list: apiErr(503, "")}, Retry, ReasonServerError, 1},
		{"enable, other 4xx: no read", enable, scriptedAPI{enable: apiErr(http.StatusBadRequest, "bad")}, Dead, ReasonBadRequest, 0},
		{"update applied: no read", update, scriptedAPI{}, Done, ReasonApplied, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			api := tc.api
			o := Classify(apply(context.Background(), &api, tc.change))
			if o.Kind != tc.kind || o.Reason != tc.reason {
				t.Errorf("outcome %v, want %v (%s)", o, tc.kind, tc.reason)
			}
			if tc.reason == ReasonUnknownOrg && (o.Status != 404 || o.Message != noOrg) {
				t.Errorf("outcome %v: want the write's 404 and message", o)
			}
			if api.lists != tc.reads {
				t.Errorf("%d reads, want %d", api.lists, tc.reads)
			}
		})
	}
}
