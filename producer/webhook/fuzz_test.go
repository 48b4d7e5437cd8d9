package webhook

import (
	"encoding/json"
	"slices"
	"testing"

	"github.com/orgconn/orgconn/jobs"
)

// The seed corpora are in testdata/fuzz/<FuzzName>/. Run a target with
//
//	go test -run='^$' -fuzz=FuzzDecodeChanges -fuzztime=30s ./producer/webhook/
//
// Both targets check the property that makes a partial enqueue impossible:
// a body is refused whole (no changes, at least one problem) or accepted
// whole (every change or event, each valid, and no problem).

func FuzzDecodeChanges(f *testing.F) {
	f.Add([]byte(`{"action":"enable","org_id":"org_1","connection_id":"con_1","assign_membership_on_login":true}`))
	f.Add([]byte(`{"changes":[{"action":"remove","org_id":"o","connection_id":"c"},{"action":"flip"}]}`))
	const max = 8
	f.Fuzz(func(t *testing.T, body []byte) {
		changes, problems := DecodeChanges(body, max)
		if len(problems) > 0 {
			if changes != nil {
				t.Fatalf("%d changes returned with %d problems", len(changes), len(problems))
			}
			for _, p := range problems {
				if p.Problem == "" || p.Index != nil && (*p.Index < 0 || *p.Index >= max) {
					t.Fatalf("bad problem %+v", p)
				}
			}
			if len(problems) > MaxProblems+1 {
				t.Fatalf("%d problems listed", len(problems))
			}
			return
		}
		if len(changes) == 0 || len(changes) > max {
			t.Fatalf("%d changes and no problem", len(changes))
		}
		for i, c := range changes {
			if errs := c.Validate(); len(errs) > 0 {
				t.Fatalf("change %d (%v) is invalid: %v", i, c, errs)
			}
		}
		// What was accepted reads back the same: nothing was lost or added.
		again, problems := DecodeChanges(mustJSON(t, map[string][]jobs.Change{"changes": changes}), max)
		if len(problems) > 0 || !slices.Equal(again, changes) {
			t.Fatalf("round trip: %v, %v; want %v", again, problems, changes)
		}
	})
}

func FuzzDecodeEvents(f *testing.F) {
	f.Add([]byte(orgCreated("evt_1", "org_1", "acme-1", map[string]string{"tier": "enterprise"})))
	f.Add([]byte(`[{"specversion":"1.0","type":"user.created","source":"s","id":"e"}]`))
	rules, err := ParseRules([]byte(testRules), "yaml")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		events, problems := DecodeEvents(body, rules.Handles)
		if len(problems) > 0 {
			if events != nil {
				t.Fatalf("%d events returned with %d problems", len(events), len(problems))
			}
			for _, p := range problems {
				if p.Problem == "" || p.Index != nil && (*p.Index < 0 || *p.Index >= MaxEvents) {
					t.Fatalf("bad problem %+v", p)
				}
			}
			return
		}
		if len(events) == 0 || len(events) > MaxEvents {
			t.Fatalf("%d events and no problem", len(events))
		}
		for i, ev := range events {
			if ev.ID == "" || ev.Type == "" || ev.Source == "" {
				t.Fatalf("event %d lacks an attribute: %+v", i, ev)
			}
			if jobs.CheckBatch(EventBatch(ev.ID)) != nil {
				t.Fatalf("event %d: batch name %q", i, EventBatch(ev.ID))
			}
			if !rules.Handles(ev.Type) {
				continue
			}
			if ev.Org == nil || jobs.CheckID(ev.Org.ID) != "" {
				t.Fatalf("event %d of a handled type without a valid organization: %+v", i, ev)
			}
			for _, c := range rules.ChangesFor(ev.Type, *ev.Org) {
				if errs := c.Validate(); len(errs) > 0 {
					t.Fatalf("event %d makes an invalid change %v: %v", i, c, errs)
				}
			}
		}
	})
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
