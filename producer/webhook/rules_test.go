package webhook

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/orgconn/orgconn/jobs"
)

func TestTheDocumentedExampleRulesLoad(t *testing.T) {
	r, err := LoadRules(filepath.Join("..", "..", "testdata", "rules.example.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	plain := Organization{ID: "org_1", Name: "globex"}
	enterprise := Organization{ID: "org_2", Name: "acme-north", Metadata: map[string]string{"tier": "enterprise", "region": "eu"}}
	if got := r.ChangesFor(EventOrganizationCreated, plain); len(got) != 2 || got[0].OrgID != "org_1" || got[0].AssignMembershipOnLogin != jobs.True {
		t.Errorf("plain organization: %v", got)
	}
	if got := r.ChangesFor(EventOrganizationCreated, enterprise); len(got) != 3 || got[2].ShowAsButton != jobs.False || got[2].OrgID != "org_2" {
		t.Errorf("enterprise organization: %v", got)
	}
	if r.Handles(EventOrganizationUpdated) || !r.Handles(EventOrganizationCreated) {
		t.Error("Handles is wrong")
	}
}

func TestRulesMatchEveryConditionGiven(t *testing.T) {
	m := Match{NamePrefix: "acme-", Metadata: map[string]string{"tier": "enterprise", "sso": "yes"}}
	for _, tc := range []struct {
		org  Organization
		want bool
	}{
		{Organization{Name: "acme-1", Metadata: map[string]string{"tier": "enterprise", "sso": "yes", "x": "y"}}, true},
		{Organization{Name: "acme-1", Metadata: map[string]string{"tier": "enterprise"}}, false},
		{Organization{Name: "Acme-1", Metadata: map[string]string{"tier": "enterprise", "sso": "yes"}}, false},
		{Organization{Name: "acme-1", Metadata: map[string]string{"tier": "pro", "sso": "yes"}}, false},
	} {
		if got := m.Matches(tc.org); got != tc.want {
			t.Errorf("%+v: %v, want %v", tc.org, got, tc.want)
		}
	}
	if !(Match{}).Matches(Organization{}) {
		t.Error("the zero Match refuses an organization")
	}
	var none *Rules
	if none.Handles(EventOrganizationCreated) || none.ChangesFor(EventOrganizationCreated, Organization{ID: "o"}) != nil {
		t.Error("nil rules handle an event")
	}
}

func TestRulesErrorsNameTheRuleAndTheField(t *testing.T) {
	const bad = `
rules:
  - event: organization.created
    changes:
      - action: enable
        org_id: org_fixed
        connection_id: con_A
  - event: user.created
    changes:
      - action: flip
        connection_id: ""
  - event: organization.created
    match: {name_prefix: ""}
    changes: []
  - changes:
      - action: update
        connection_id: con_B
      - action: enable
        connection_id: con_B
        is_signup_enabled: true
        assign_membership_on_login: false
`
	_, err := ParseRules([]byte(bad), "yaml")
	if err == nil {
		t.Fatal("bad rules accepted")
	}
	for _, want := range []string{
		"rules[0].changes[0].org_id: must not be set",
		`rules[1].event: "user.created" is not supported`,
		`rules[1].changes[0].action: "flip" is not an action`,
		"rules[1].changes[0].connection_id: is empty",
		"rules[2].match.name_prefix: is empty",
		"rules[2].changes: is empty",
		"rules[3].event: is missing",
		"rules[3].changes[0].action: update needs at least one",
		"rules[3].changes[1].is_signup_enabled: " + jobs.SignupNeedsMembership,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error lacks %q:\n%v", want, err)
		}
	}
}

func TestRulesRefuseUnknownFieldsAndStringFlags(t *testing.T) {
	for name, doc := range map[string]string{
		"unknown field": "rules: [{event: organization.created, when: x, changes: [{action: enable, connection_id: c}]}]",
		"string flag":   `rules: [{event: organization.created, changes: [{action: enable, connection_id: c, show_as_button: "true"}]}]`,
		"yes flag":      `rules: [{event: organization.created, changes: [{action: enable, connection_id: c, show_as_button: yes}]}]`,
		"empty":         ``,
		"no rules":      `rules: []`,
	} {
		if _, err := ParseRules([]byte(doc), "yaml"); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestRulesInJSON(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "rules.json")
	doc := `{"rules":[{"event":"organization.updated","match":{"metadata":{"tier":"pro"}},"changes":[{"action":"remove","connection_id":"con_X"},{"action":"update","connection_id":"con_Y","show_as_button":true}]}]}`
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	r, err := LoadRules(path)
	if err != nil {
		t.Fatal(err)
	}
	got := r.ChangesFor(EventOrganizationUpdated, Organization{ID: "org_9", Metadata: map[string]string{"tier": "pro"}})
	want := []jobs.Change{{Action: jobs.Remove, OrgID: "org_9", ConnectionID: "con_X"}, {Action: jobs.Update, OrgID: "org_9", ConnectionID: "con_Y", ShowAsButton: jobs.True}}
	if !slices.Equal(got, want) {
		t.Fatalf("changes %v, want %v", got, want)
	}
	if err := os.WriteFile(path, []byte(`{"rules":[{"event":"organization.created","changes":[{"action":"enable","connection_id":"c","extra":1}]}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadRules(path); err == nil || !strings.Contains(err.Error(), "rules.json") || !strings.Contains(err.Error(), "extra") {
		t.Fatalf("unknown JSON field: %v", err)
	}
	if _, err := LoadRules(filepath.Join(dir, "missing.yaml")); err == nil {
		t.Fatal("a missing file loaded")
	}
}
