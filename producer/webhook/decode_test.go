package webhook

import (
	"strings"
	"testing"

	"github.com/orgconn/orgconn/jobs"
)

func TestDecodeChangesRefusesWholeRequests(t *testing.T) {
	for name, tc := range map[string]struct {
		body, field, problem string
	}{
		"empty":                    {"  ", "", "the body is empty"},
		"array":                    {`[{"action":"enable"}]`, "", "must be a JSON object"},
		"trailing data":            {`{"action":"remove","org_id":"o","connection_id":"c"} {}`, "", "more data after"},
		"field twice":              {`{"action":"remove","org_id":"o","org_id":"p","connection_id":"c"}`, "org_id", "more than once"},
		"changes not an array":     {`{"changes":{"action":"remove"}}`, "changes", "must be an array"},
		"changes null":             {`{"changes":null}`, "changes", "is null"},
		"changes empty":            {`{"changes":[]}`, "changes", "is empty"},
		"changes and other fields": {`{"changes":[{"action":"remove","org_id":"o","connection_id":"c"}],"dry_run":true}`, "dry_run", "unknown field"},
		"item not an object":       {`{"changes":[1]}`, "", "must be a JSON object"},
		"id a number":              {`{"action":"remove","org_id":7,"connection_id":"c"}`, "org_id", "must be a JSON string"},
		"missing connection":       {`{"action":"remove","org_id":"o"}`, "connection_id", "is empty"},
		"flags on remove":          {`{"action":"remove","org_id":"o","connection_id":"c","show_as_button":true}`, "show_as_button", "not allowed on remove"},
		"signup without member":    {`{"action":"enable","org_id":"o","connection_id":"c","is_signup_enabled":true,"assign_membership_on_login":false}`, "is_signup_enabled", "assign_membership_on_login = true"},
	} {
		got, problems := DecodeChanges([]byte(tc.body), 10)
		if got != nil || len(problems) == 0 {
			t.Errorf("%s: got %v, problems %v", name, got, problems)
			continue
		}
		if problems[0].Field != tc.field || !strings.Contains(problems[0].Problem, tc.problem) {
			t.Errorf("%s: first problem %s, want %s: …%s…", name, problems[0], tc.field, tc.problem)
		}
	}
}

func TestDecodeChangesReadsFieldsAsACSVRow(t *testing.T) {
	got, problems := DecodeChanges([]byte(`{"changes":[
		{"action":"ENABLE","org_id":"org_1","connection_id":"con_1","assign_membership_on_login":true,"show_as_button":null},
		{"org_id":"org_1","connection_id":"con_1","action":"update","is_signup_enabled":false}]}`), 2)
	want := []jobs.Change{
		{Action: jobs.Enable, OrgID: "org_1", ConnectionID: "con_1", AssignMembershipOnLogin: jobs.True},
		{Action: jobs.Update, OrgID: "org_1", ConnectionID: "con_1", IsSignupEnabled: jobs.False},
	}
	if len(problems) > 0 || len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("got %v, problems %v", got, problems)
	}
}

func TestDecodeChangesListsAtMostMaxProblems(t *testing.T) {
	body := `{"changes":[` + strings.TrimSuffix(strings.Repeat(`{"action":"x","org_id":"","connection_id":""},`, 500), ",") + `]}`
	_, problems := DecodeChanges([]byte(body), 1000)
	if len(problems) != MaxProblems+1 || !strings.Contains(problems[MaxProblems].Problem, "500 more problems") {
		t.Fatalf("%d problems, last %v", len(problems), problems[len(problems)-1])
	}
}

func TestDecodeEvents(t *testing.T) {
	handles := func(t string) bool { return t == EventOrganizationCreated }
	body := `[` + orgCreated("evt_1", "org_1", "acme-1", map[string]string{"tier": "enterprise"}) + `,
	 {"specversion":"1.0","type":"organization.created","source":"s","id":"evt_2","data":{"object":{"id":"org_2","metadata":{"n":3,"s":"x","z":null}}}},
	 {"specversion":"1.0","type":"user.deleted","source":"s","id":"evt_3","data":[1,2]}]`
	evs, problems := DecodeEvents([]byte(body), handles)
	if len(problems) > 0 || len(evs) != 3 {
		t.Fatalf("events %+v, problems %v", evs, problems)
	}
	if o := evs[0].Org; o == nil || o.ID != "org_1" || o.Name != "acme-1" || o.Metadata["tier"] != "enterprise" || evs[0].Source != "urn:auth0:acme.eu.auth0.com" {
		t.Errorf("event 0: %+v %+v", evs[0], evs[0].Org)
	}
	if o := evs[1].Org; o == nil || len(o.Metadata) != 1 || o.Metadata["s"] != "x" {
		t.Errorf("event 1: only string metadata is kept: %+v", evs[1].Org)
	}
	if evs[2].Org != nil || evs[2].Type != "user.deleted" {
		t.Errorf("event 2: %+v", evs[2])
	}

	bad := `[` + orgCreated("evt_1", "org_1", "a", nil) + `,{"specversion":"1.0","type":"organization.created","source":"s","id":"evt\u0001"}]`
	evs, problems = DecodeEvents([]byte(bad), handles)
	if evs != nil || len(problems) != 2 || *problems[0].Index != 1 || problems[0].Field != "id" || problems[1].Field != "data" {
		t.Fatalf("bad array: %v %v", evs, problems)
	}
}
