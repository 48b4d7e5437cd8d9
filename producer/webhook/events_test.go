package webhook

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/orgconn/orgconn/jobs"
)

// orgCreated is an organization.created event as Auth0 sends it.
func orgCreated(id, orgID, name string, metadata map[string]string) string {
	md, _ := json.Marshal(metadata)
	return fmt.Sprintf(`{"specversion":"1.0","type":"organization.created","source":"urn:auth0:acme.eu.auth0.com","id":%q,
 "time":"2026-03-01T11:59:58.123Z","a0tenant":"acme","a0stream":"est_1",
 "data":{"object":{"id":%q,"name":%q,"display_name":"Acme","metadata":%s,"branding":{}}}}`, id, orgID, name, md)
}

func decodeResults(t *testing.T, r response, status int) []eventResult {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d: %s", r.status, status, r.body)
	}
	var out eventsResponse
	if err := json.Unmarshal([]byte(r.body), &out); err != nil {
		t.Fatalf("body %q: %v", r.body, err)
	}
	return out.Results
}

func TestEventOrganizationCreatedQueuesItsRuleChanges(t *testing.T) {
	f := setup(t)
	res := decodeResults(t, f.postEvents(orgCreated("evt_1", "org_new1", "acme-north", map[string]string{"tier": "enterprise"})), http.StatusAccepted)
	batch := EventBatch("evt_1")
	want := []string{batch + ":1", batch + ":2", batch + ":3"}
	if len(res) != 1 || res[0].Outcome != Applied || res[0].Batch != batch || !slices.Equal(res[0].TaskIDs, want) {
		t.Fatalf("results %+v", res)
	}
	if q := f.queued(); !slices.Equal(q, want) {
		t.Fatalf("queued %v, want %v", q, want)
	}
	var changes []jobs.Change
	for _, id := range want {
		ti, err := f.inspector.GetTaskInfo(f.env.Queue, id)
		if err != nil {
			t.Fatal(err)
		}
		p, err := jobs.DecodePayload(ti.Payload)
		if err != nil {
			t.Fatal(err)
		}
		if p.Origin.Event != "evt_1" {
			t.Errorf("task %s: origin %+v", id, p.Origin)
		}
		changes = append(changes, p.Change)
	}
	wantChanges := []jobs.Change{
		{Action: jobs.Enable, OrgID: "org_new1", ConnectionID: "con_A", AssignMembershipOnLogin: jobs.True},
		{Action: jobs.Enable, OrgID: "org_new1", ConnectionID: "con_B"},
		{Action: jobs.Enable, OrgID: "org_new1", ConnectionID: "con_C", ShowAsButton: jobs.False},
	}
	if !slices.Equal(changes, wantChanges) {
		t.Fatalf("changes %v, want %v", changes, wantChanges)
	}
	bc, err := f.ledger.Batch(context.Background(), batch)
	if err != nil || bc.Source != "event:organization.created" {
		t.Fatalf("batch %+v, %v", bc, err)
	}
}

func TestEventDeliveredThreeTimesIsQueuedOnce(t *testing.T) {
	f := setup(t)
	ev := orgCreated("evt_dup", "org_2", "beta", nil)
	outcomes := []Outcome{}
	for range 3 {
		r := f.postEvents(ev)
		if r.status/100 != 2 {
			t.Fatalf("delivery: %d %s", r.status, r.body)
		}
		res := decodeResults(t, r, r.status)
		outcomes = append(outcomes, res[0].Outcome)
	}
	if !slices.Equal(outcomes, []Outcome{Applied, Duplicate, Duplicate}) {
		t.Fatalf("outcomes %v", outcomes)
	}
	if q := f.queued(); len(q) != 2 {
		t.Fatalf("queued %v, want the rule's 2 changes once", q)
	}
	// The marker is a shortcut: without it the ledger still knows.
	if err := f.env.Client.Del(context.Background(), f.ledger.Prefix()+":event:"+strings.TrimPrefix(EventBatch("evt_dup"), "evt-")).Err(); err != nil {
		t.Fatal(err)
	}
	if res := decodeResults(t, f.postEvents(ev), http.StatusOK); res[0].Outcome != Duplicate {
		t.Fatalf("without the marker: %+v", res)
	}
	if q := f.queued(); len(q) != 2 {
		t.Fatalf("queued %v", q)
	}
	labels := map[string]string{"type": "organization.created"}
	for o, n := range map[string]float64{"applied": 1, "duplicate": 3} {
		labels["outcome"] = o
		if got := f.metric("orgconn_events_total", labels); got != n {
			t.Errorf("events_total %s = %v, want %v", o, got, n)
		}
	}
}

func TestEventAuthMethods(t *testing.T) {
	f := setup(t, func(c *Config) {
		c.EventAuth = EventAuth{BearerToken: testToken, BasicUser: testUser, BasicPassword: testPassword, HeaderName: testHeader, HeaderValue: testHeaderVal}
	})
	ev := func(i int) string { return orgCreated(fmt.Sprintf("evt_a%d", i), "org_a", "x", nil) }
	basic := func(u, p string) string { return "Basic " + base64.StdEncoding.EncodeToString([]byte(u+":"+p)) }
	for i, tc := range []struct {
		name   string
		header []string
		want   int
	}{
		{"bearer", nil, http.StatusAccepted},
		{"bearer, lower-case scheme", []string{"Authorization", "bearer " + testToken}, http.StatusAccepted},
		{"basic", []string{"Authorization", basic(testUser, testPassword)}, http.StatusAccepted},
		{"custom header", []string{"Authorization", "", testHeader, testHeaderVal}, http.StatusAccepted},
		{"wrong token", []string{"Authorization", "Bearer " + testToken + "x"}, http.StatusUnauthorized},
		{"token prefix", []string{"Authorization", "Bearer " + testToken[:10]}, http.StatusUnauthorized},
		{"wrong password", []string{"Authorization", basic(testUser, "nope")}, http.StatusUnauthorized},
		{"wrong user", []string{"Authorization", basic("root", testPassword)}, http.StatusUnauthorized},
		{"wrong header value", []string{"Authorization", "", testHeader, "nope"}, http.StatusUnauthorized},
		{"none", []string{"Authorization", ""}, http.StatusUnauthorized},
		{"token as a custom header", []string{"Authorization", "", testHeader, testToken}, http.StatusUnauthorized},
	} {
		r := f.postEvents(ev(i), tc.header...)
		if r.status != tc.want {
			t.Errorf("%s: %d %s, want %d", tc.name, r.status, r.body, tc.want)
		}
		if tc.want == http.StatusUnauthorized && len(r.header.Values("WWW-Authenticate")) != 2 {
			t.Errorf("%s: WWW-Authenticate %q", tc.name, r.header.Values("WWW-Authenticate"))
		}
	}
	if q := f.queued(); len(q) != 8 {
		t.Fatalf("queued %d tasks, want 8 (4 admitted events × 2 changes)", len(q))
	}
}

func TestEventsThatWillNeverSucceedAre400AndQueueNothing(t *testing.T) {
	f := setup(t)
	good := orgCreated("evt_g", "org_g", "g", nil)
	for name, tc := range map[string]struct {
		body  string
		field string
	}{
		"malformed":           {`{"specversion":"1.0",`, ""},
		"specversion":         {strings.Replace(good, `"1.0"`, `"0.3"`, 1), "specversion"},
		"no id":               {strings.Replace(good, `"id":"evt_g",`, ``, 1), "id"},
		"no source":           {strings.Replace(good, `"source":"urn:auth0:acme.eu.auth0.com",`, ``, 1), "source"},
		"id not a string":     {strings.Replace(good, `"id":"evt_g"`, `"id":7`, 1), "id"},
		"over-long org id":    {orgCreated("evt_l", "org_"+strings.Repeat("x", 60), "g", nil), "data.object.id"},
		"org id with a /":     {orgCreated("evt_s", "org/1", "g", nil), "data.object.id"},
		"no data":             {`{"specversion":"1.0","type":"organization.created","source":"s","id":"e"}`, "data"},
		"one bad of an array": {"[" + good + "," + orgCreated("evt_b", "", "g", nil) + "]", "data.object.id"},
		"not an event":        {`"hello"`, ""},
		"empty array":         {`[]`, ""},
	} {
		r := f.postEvents(tc.body)
		var got errorBody
		if err := json.Unmarshal([]byte(r.body), &got); err != nil || r.status != http.StatusBadRequest || len(got.Errors) == 0 {
			t.Errorf("%s: %d %s", name, r.status, r.body)
			continue
		}
		if got.Errors[0].Field != tc.field {
			t.Errorf("%s: problems %v, want the first to name %q", name, got.Errors, tc.field)
		}
	}
	if q := f.queued(); len(q) != 0 {
		t.Fatalf("queued %v", q)
	}
}

func TestEventsOfOtherTypesAreAcknowledgedAndIgnored(t *testing.T) {
	f := setup(t)
	body := `[{"specversion":"1.0","type":"user.created","source":"urn:auth0:acme","id":"evt_u","data":{"object":{"user_id":"auth0|1"}}},
 {"specversion":"1.0","type":"com.example.custom","source":"urn:x","id":"evt_c","data":"anything"},
 ` + orgCreated("evt_nomatch", "org_z", "z", nil) + `]`
	r := f.do(http.MethodPost, PathEvents, "application/cloudevents-batch+json", strings.NewReader(body), http.Header{"Authorization": {"Bearer " + testToken}})
	res := decodeResults(t, r, http.StatusAccepted)
	if len(res) != 3 || res[0].Outcome != Ignored || res[1].Outcome != Ignored || res[2].Outcome != Applied {
		t.Fatalf("results %+v", res)
	}
	for typ, n := range map[string]float64{"user.created": 1, "other": 1} {
		if got := f.metric("orgconn_events_total", map[string]string{"type": typ, "outcome": "ignored"}); got != n {
			t.Errorf("events_total{type=%s,outcome=ignored} = %v, want %v", typ, got, n)
		}
	}
	if !strings.Contains(f.logs.String(), "event_type=user.created") {
		t.Errorf("the ignored event is not logged:\n%s", f.logs.String())
	}
}

func TestEventWithoutAMatchingRuleIsNoRule(t *testing.T) {
	f := setup(t, func(c *Config) {
		c.Rules, _ = ParseRules([]byte(`rules: [{event: organization.created, match: {name_prefix: "acme-"}, changes: [{action: enable, connection_id: con_A}]}]`), "yaml")
	})
	res := decodeResults(t, f.postEvents(orgCreated("evt_n", "org_n", "globex", nil)), http.StatusOK)
	if res[0].Outcome != NoRule || res[0].Batch != "" {
		t.Fatalf("results %+v", res)
	}
	if got := f.metric("orgconn_events_total", map[string]string{"type": "organization.created", "outcome": "no_rule"}); got != 1 {
		t.Errorf("no_rule count %v", got)
	}
	if q := f.queued(); len(q) != 0 {
		t.Fatalf("queued %v", q)
	}
}

func TestEventRedisTroubleIs503AndTheRedeliveryApplies(t *testing.T) {
	f := setup(t, func(c *Config) { c.Submitter = &failingSubmitter{next: c.Submitter, n: 1} })
	ev := orgCreated("evt_r", "org_r", "r", nil)
	if r := f.postEvents(ev); r.status != http.StatusServiceUnavailable {
		t.Fatalf("first delivery: %d %s", r.status, r.body)
	}
	if res := decodeResults(t, f.postEvents(ev), http.StatusAccepted); res[0].Outcome != Applied {
		t.Fatalf("redelivery: %+v", res)
	}
	if q := f.queued(); len(q) != 2 {
		t.Fatalf("queued %v", q)
	}
}

func TestEventsLimitsAndMediaTypes(t *testing.T) {
	f := setup(t)
	ev := orgCreated("evt_m", "org_m", "m", nil)
	auth := http.Header{"Authorization": {"Bearer " + testToken}}
	for ct, want := range map[string]int{
		"application/cloudevents+json; charset=utf-8": http.StatusAccepted,
		"text/plain": http.StatusUnsupportedMediaType,
		"":           http.StatusUnsupportedMediaType,
	} {
		if r := f.do(http.MethodPost, PathEvents, ct, strings.NewReader(ev), auth); r.status != want {
			t.Errorf("Content-Type %q: %d, want %d", ct, r.status, want)
		}
	}
	big := "[" + strings.Repeat(ev+",", DefaultMaxBodyBytes/len(ev)+1) + ev + "]"
	if r := f.postEvents(big); r.status != http.StatusRequestEntityTooLarge {
		t.Errorf("over 1 MiB: %d", r.status)
	}
	if r := f.do(http.MethodPut, PathEvents, "application/json", strings.NewReader(ev), auth); r.status != http.StatusMethodNotAllowed {
		t.Errorf("PUT: %d", r.status)
	}
	// Credentials are checked before the body is looked at.
	if r := f.do(http.MethodPost, PathEvents, "text/plain", strings.NewReader("x"), nil); r.status != http.StatusUnauthorized {
		t.Errorf("no credentials, bad media type: %d", r.status)
	}
}
