package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/orgconn/orgconn/jobs"
	"github.com/orgconn/orgconn/producer"
)

// names is a Resolver over fixed maps, counting look-ups.
type names struct {
	mu    sync.Mutex
	orgs  map[string]string
	conns map[string]string
	calls int
	fail  error
}

func (n *names) OrgID(_ context.Context, name string) (string, bool, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.calls++
	if n.fail != nil {
		return "", false, n.fail
	}
	id, ok := n.orgs[name]
	return id, ok, nil
}

func (n *names) ConnectionID(_ context.Context, name string) (string, bool, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.calls++
	if n.fail != nil {
		return "", false, n.fail
	}
	id, ok := n.conns[name]
	return id, ok, nil
}

// failingMode is a ModeSource that cannot tell.
type failingMode struct{}

func (failingMode) Mode(context.Context) (producer.APIMode, error) {
	return "", errors.New("probe failed")
}

func testNames() *names {
	return &names{orgs: map[string]string{"acme": "org_acme"}, conns: map[string]string{"google-oauth2": "con_G"}}
}

// payload returns the change of a queued task.
func (f *fixture) payload(id string) jobs.Change {
	f.t.Helper()
	ti, err := f.inspector.GetTaskInfo(f.env.Queue, id)
	if err != nil {
		f.t.Fatal(err)
	}
	p, err := jobs.DecodePayload(ti.Payload)
	if err != nil {
		f.t.Fatal(err)
	}
	return p.Change
}

func TestChangesTakeTheNewFieldsAndNames(t *testing.T) {
	r := testNames()
	f := setup(t, func(c *Config) { c.Resolver = r; c.Mode = producer.FixedMode(producer.ModeConnections) })
	resp := f.postChanges(`{"changes":[
 {"action":"disable","org_name":"acme","connection_name":"google-oauth2","show_as_button":false,"organization_connection_name":"Acme Google","organization_access_level":"Limited"},
 {"action":"update","org_id":"org_1","connection_id":"con_1","organization_access_level":"none","organization_connection_name":null},
 {"action":"enable","org_id":"org_2","org_name":"acme","connection_name":"google-oauth2"}]}`)
	if resp.status != http.StatusAccepted {
		t.Fatalf("%d %s", resp.status, resp.body)
	}
	var out changesResponse
	if err := json.Unmarshal([]byte(resp.body), &out); err != nil {
		t.Fatal(err)
	}
	want := []jobs.Change{
		{Action: jobs.Disable, OrgID: "org_acme", OrgName: "acme", ConnectionID: "con_G", ConnectionName: "google-oauth2", ShowAsButton: jobs.False, OrgConnectionName: "Acme Google", AccessLevel: jobs.LevelLimited},
		{Action: jobs.Update, OrgID: "org_1", ConnectionID: "con_1", AccessLevel: jobs.LevelNone},
		{Action: jobs.Enable, OrgID: "org_2", OrgName: "acme", ConnectionID: "con_G", ConnectionName: "google-oauth2"},
	}
	for i, id := range out.TaskIDs {
		if got := f.payload(id); got != want[i] {
			t.Errorf("change %d queued as %+v, want %+v", i, got, want[i])
		}
	}
	if r.calls != 2 {
		t.Errorf("%d look-ups, want 2 (acme once, google-oauth2 once; org_2 is given by id)", r.calls)
	}
}

func TestChangesBadNewFieldsAre400(t *testing.T) {
	f := setup(t)
	for name, tc := range map[string]struct {
		body string
		want Problem
	}{
		"level admin":        {`{"action":"enable","org_id":"o","connection_id":"c","organization_access_level":"admin"}`, Problem{Field: "organization_access_level", Problem: `"admin" is not one of none, readonly, limited, full`}},
		"level number":       {`{"action":"enable","org_id":"o","connection_id":"c","organization_access_level":3}`, Problem{Field: "organization_access_level", Problem: "must be a JSON string, got \"3\""}},
		"empty name":         {`{"action":"enable","org_id":"o","connection_id":"c","organization_connection_name":""}`, Problem{Field: "organization_connection_name", Problem: "is empty: leave the field out (or null) when not given"}},
		"long name":          {`{"action":"enable","org_id":"o","connection_id":"c","organization_connection_name":"` + strings.Repeat("x", 51) + `"}`, Problem{Field: "organization_connection_name", Problem: "is 51 characters, the limit is 50"}},
		"org name uppercase": {`{"action":"enable","org_name":"Acme","connection_id":"c"}`, Problem{Field: "org_name", Problem: `"Acme" contains "A": only lowercase letters, digits, "_" and "-" are allowed`}},
		"connection name _":  {`{"action":"enable","org_id":"o","connection_name":"a_b"}`, Problem{Field: "connection_name", Problem: `"a_b" contains "_": only letters, digits and "-" are allowed`}},
		"no organization":    {`{"action":"enable","connection_id":"c"}`, Problem{Field: "org_id", Problem: "is empty: give an org_id or an org_name"}},
		"level on remove":    {`{"action":"remove","org_id":"o","connection_id":"c","organization_access_level":"none"}`, Problem{Field: "organization_access_level", Problem: "is not allowed on remove"}},
	} {
		r := f.postChanges(tc.body)
		var got errorBody
		if err := json.Unmarshal([]byte(r.body), &got); err != nil || r.status != http.StatusBadRequest || len(got.Errors) != 1 {
			t.Errorf("%s: %d %s", name, r.status, r.body)
			continue
		}
		if g := got.Errors[0]; g.Field != tc.want.Field || !strings.Contains(g.Problem, tc.want.Problem) || g.Index != nil {
			t.Errorf("%s: problem %s, want %s", name, g, tc.want)
		}
	}
	if q := f.queued(); len(q) != 0 {
		t.Fatalf("queued %v", q)
	}
}

func TestChangesInLegacyModeAre422NamingEachItem(t *testing.T) {
	f := setup(t, func(c *Config) { c.Mode = producer.FixedMode(producer.ModeLegacy); c.Resolver = testNames() })
	resp := f.postChanges(`{"changes":[
 {"action":"enable","org_id":"org_1","connection_id":"con_1"},
 {"action":"disable","org_id":"org_1","connection_id":"con_2"},
 {"action":"enable","org_name":"acme","connection_id":"con_3","organization_access_level":"none"},
 {"action":"remove","org_name":"globex","connection_name":"google-oauth2"}]}`)
	var got errorBody
	if err := json.Unmarshal([]byte(resp.body), &got); err != nil || resp.status != http.StatusUnprocessableEntity || got.Error != "not possible on this tenant" {
		t.Fatalf("%d %s", resp.status, resp.body)
	}
	want := []Problem{
		{Index: ptr(1), Problem: `action "disable" needs the Organization connections API; this tenant is in legacy mode`},
		{Index: ptr(2), Problem: `organization_access_level needs the Organization connections API; this tenant is in legacy mode`},
		{Index: ptr(3), Field: "org_name", Problem: `no organization named "globex"`},
	}
	if fmt.Sprint(got.Errors) != fmt.Sprint(want) {
		t.Fatalf("problems %v\nwant %v", got.Errors, want)
	}
	// A single change is named without an index.
	resp = f.postChanges(`{"action":"disable","org_id":"org_1","connection_id":"con_2"}`)
	got = errorBody{}
	if err := json.Unmarshal([]byte(resp.body), &got); err != nil || resp.status != http.StatusUnprocessableEntity || len(got.Errors) != 1 || got.Errors[0].Index != nil {
		t.Fatalf("%d %s", resp.status, resp.body)
	}
	if q := f.queued(); len(q) != 0 {
		t.Fatalf("queued %v", q)
	}
}

func TestChangesWhenTheTenantCannotBeAskedAre503(t *testing.T) {
	f := setup(t, func(c *Config) { c.Mode = failingMode{} })
	if r := f.postChanges(`{"action":"enable","org_id":"org_1","connection_id":"con_1"}`); r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" {
		t.Fatalf("mode unknown: %d %s", r.status, r.body)
	}
	n := testNames()
	n.fail = errors.New("429")
	g := setup(t, func(c *Config) { c.Resolver = n })
	if r := g.postChanges(`{"action":"enable","org_name":"acme","connection_id":"con_1"}`); r.status != http.StatusServiceUnavailable {
		t.Fatalf("look-up failed: %d %s", r.status, r.body)
	}
	if len(f.queued())+len(g.queued()) != 0 {
		t.Fatal("queued")
	}
}

func connectionEvent(id, typ, data string) string {
	return fmt.Sprintf(`{"specversion":"1.0","type":%q,"source":"urn:auth0:acme.eu.auth0.com","id":%q,"time":"2026-03-01T11:59:58Z","data":%s}`, typ, id, data)
}

func TestConnectionEventsAreConfirmedDeduplicatedAndCounted(t *testing.T) {
	f := setup(t)
	body := "[" + strings.Join([]string{
		connectionEvent("evt_a", EventConnectionAdded, `{"object":{"organization_id":"org_1","connection_id":"con_1","is_enabled":true}}`),
		connectionEvent("evt_u", EventConnectionUpdated, `{"object":{"organization":{"id":"org_1"},"connection":{"id":"con_1","name":"db"}}}`),
		connectionEvent("evt_r", EventConnectionRemoved, `{"object":{"connection_id":"../x"}}`),
		connectionEvent("evt_z", EventConnectionRemoved, `"not an object"`),
	}, ",") + "]"
	res := decodeResults(t, f.postEvents(body), http.StatusOK)
	for i, want := range []Outcome{Confirmed, Confirmed, Confirmed, Confirmed} {
		if res[i].Outcome != want || res[i].Batch != "" {
			t.Errorf("event %d: %+v, want %s", i, res[i], want)
		}
	}
	res = decodeResults(t, f.postEvents(connectionEvent("evt_a", EventConnectionAdded, `{"object":{}}`)), http.StatusOK)
	if res[0].Outcome != Duplicate {
		t.Errorf("redelivery: %+v", res[0])
	}
	for labels, want := range map[[2]string]float64{
		{EventConnectionAdded, "confirmed"}: 1, {EventConnectionUpdated, "confirmed"}: 1,
		{EventConnectionRemoved, "confirmed"}: 2, {EventConnectionAdded, "duplicate"}: 1,
	} {
		if got := f.metric("orgconn_events_total", map[string]string{"type": labels[0], "outcome": labels[1]}); got != want {
			t.Errorf("events_total{type=%s,outcome=%s} = %v, want %v", labels[0], labels[1], got, want)
		}
	}
	if q := f.queued(); len(q) != 0 {
		t.Fatalf("connection events queued %v", q)
	}
	logs := f.logs.String()
	if !strings.Contains(logs, "event_id=evt_u") || !strings.Contains(logs, "org_id=org_1 connection_id=con_1") {
		t.Errorf("the confirmation's pair is not logged:\n%s", logs)
	}
	if strings.Contains(logs, "../x") {
		t.Error("an invalid id from an event was logged")
	}
}

func TestRulesNameOrganizationsAndConnectionsByName(t *testing.T) {
	rules, err := ParseRules([]byte(`
rules:
  - event: organization.created
    match: {name: acme}
    changes:
      - action: disable
        connection_name: google-oauth2
        organization_connection_name: Acme Google
        organization_access_level: readonly
`), "yaml")
	if err != nil {
		t.Fatal(err)
	}
	r := testNames()
	f := setup(t, func(c *Config) { c.Rules = rules; c.Resolver = r })
	res := decodeResults(t, f.postEvents(orgCreated("evt_1", "org_new", "acme", nil)), http.StatusAccepted)
	if res[0].Outcome != Applied {
		t.Fatalf("%+v", res)
	}
	want := jobs.Change{Action: jobs.Disable, OrgID: "org_new", ConnectionID: "con_G", ConnectionName: "google-oauth2", OrgConnectionName: "Acme Google", AccessLevel: jobs.LevelReadonly}
	if got := f.payload(res[0].TaskIDs[0]); got != want {
		t.Fatalf("queued %+v, want %+v", got, want)
	}
	if res := decodeResults(t, f.postEvents(orgCreated("evt_2", "org_other", "acme-north", nil)), http.StatusOK); res[0].Outcome != NoRule {
		t.Fatalf("match.name matched another name: %+v", res)
	}

	// In legacy mode, or with a connection name the tenant does not have,
	// the event is refused and nothing is queued.
	legacy := setup(t, func(c *Config) { c.Rules = rules; c.Mode = producer.FixedMode(producer.ModeLegacy) })
	if res := decodeResults(t, legacy.postEvents(orgCreated("evt_3", "org_new", "acme", nil)), http.StatusOK); res[0].Outcome != Refused {
		t.Fatalf("legacy: %+v", res)
	}
	unknown := setup(t, func(c *Config) { c.Rules = rules; c.Resolver = &names{} })
	if res := decodeResults(t, unknown.postEvents(orgCreated("evt_4", "org_new", "acme", nil)), http.StatusOK); res[0].Outcome != Refused {
		t.Fatalf("unknown connection name: %+v", res)
	}
	if got := unknown.metric("orgconn_events_total", map[string]string{"type": "organization.created", "outcome": "refused"}); got != 1 {
		t.Errorf("refused count %v", got)
	}
	if !strings.Contains(unknown.logs.String(), `no connection named \"google-oauth2\"`) {
		t.Errorf("the refusal's reason is not logged:\n%s", unknown.logs.String())
	}
	if len(legacy.queued())+len(unknown.queued()) != 0 {
		t.Fatal("a refused event queued changes")
	}
}

func TestRulesRefuseBadNames(t *testing.T) {
	for doc, want := range map[string]string{
		`rules: [{event: organization.created, match: {name: Acme}, changes: [{action: enable, connection_id: c}]}]`:              `rules[0].match.name: "Acme" contains "A"`,
		`rules: [{event: organization.created, changes: [{action: enable, org_name: acme, connection_id: c}]}]`:                   "rules[0].changes[0].org_name: must not be set: the organization comes from the event (to select organizations by name, use match.name)",
		`rules: [{event: organization.created, changes: [{action: enable, connection_name: a_b}]}]`:                               `rules[0].changes[0].connection_name: "a_b" contains "_"`,
		`rules: [{event: organization.created, changes: [{action: enable, connection_id: c, organization_access_level: admin}]}]`: `rules[0].changes[0].organization_access_level: "admin" is not one of none, readonly, limited, full`,
		`rules: [{event: organization.created, changes: [{action: enable}]}]`:                                                     "rules[0].changes[0].connection_id: is empty: give a connection_id or a connection_name",
		`rules: [{event: organization.connection.added, changes: [{action: enable, connection_id: c}]}]`:                          `rules[0].event: "organization.connection.added" is not supported`,
	} {
		_, err := ParseRules([]byte(doc), "yaml")
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s\n  err = %v\n  want %s", doc, err, want)
		}
	}
}
