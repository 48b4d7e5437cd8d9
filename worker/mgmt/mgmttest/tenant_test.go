package mgmttest

import (
	"regexp"
	"slices"
	"strings"
	"testing"
)

func TestSeededTenant(t *testing.T) {
	a, b := New(Config{Seed: 70}), New(Config{Seed: 70})
	if len(a.Orgs()) != DefaultOrgs || len(a.Connections()) != DefaultConnections {
		t.Fatalf("%d orgs, %d connections; want the defaults", len(a.Orgs()), len(a.Connections()))
	}
	if !slices.Equal(a.Orgs(), b.Orgs()) || !slices.Equal(a.Connections(), b.Connections()) {
		t.Fatal("equal seeds gave different tenants")
	}
	if c := New(Config{Seed: 71}); c.Orgs()[0] == a.Orgs()[0] || c.Connections()[0].ID == a.Connections()[0].ID {
		t.Fatal("different seeds gave the same ids")
	}
	// Ids depend on the index only, not on how many are seeded.
	if small := New(Config{Seed: 70, Orgs: 3, Connections: 2}); !slices.Equal(small.Orgs(), a.Orgs()[:3]) || !slices.Equal(small.Connections(), a.Connections()[:2]) {
		t.Fatal("ids depend on the count")
	}

	orgRe, conRe := regexp.MustCompile(`^org_[0-9A-Za-z]{16}$`), regexp.MustCompile(`^con_[0-9A-Za-z]{16}$`)
	seen := map[string]bool{}
	for _, id := range a.Orgs() {
		if !orgRe.MatchString(id) || seen[id] {
			t.Fatalf("org id %q malformed or repeated", id)
		}
		seen[id] = true
	}
	wantStrategies := []string{"auth0", "samlp", "google-oauth2", "oidc", "auth0", "samlp", "google-oauth2", "oidc"}
	for i, c := range a.Connections() {
		if !conRe.MatchString(c.ID) || seen[c.ID] {
			t.Fatalf("connection id %q malformed or repeated", c.ID)
		}
		seen[c.ID] = true
		if c.Strategy != wantStrategies[i] || !strings.HasPrefix(c.Name, "conn-") || !strings.HasSuffix(c.Name, "-"+c.Strategy) {
			t.Fatalf("connection %d = %+v", i, c)
		}
	}
	if got := a.Connections()[3].Name; got != "conn-3-oidc" {
		t.Fatalf("name %q", got)
	}

	none := New(Config{Orgs: -1, Connections: -1})
	if len(none.Orgs()) != 0 || len(none.Connections()) != 0 {
		t.Fatal("negative counts still seeded")
	}
}

func TestStateIsACopy(t *testing.T) {
	s := New(Config{Seed: 72})
	org, c := s.Orgs()[0], s.Connections()[0].ID
	s.SetState(org, map[string]EnabledConnection{c: {ShowAsButton: true}})
	st := s.State()
	st[org][c] = EnabledConnection{}
	delete(st, org)
	if got := s.State()[org][c]; got != (EnabledConnection{ConnectionID: c, ShowAsButton: true}) {
		t.Fatalf("mutating State() changed the server: %+v", got)
	}
	orgs := s.Orgs()
	orgs[0] = "x"
	if s.Orgs()[0] != org {
		t.Fatal("mutating Orgs() changed the server")
	}
	// Nothing enabled: omitted.
	s.SetState(org, nil)
	if _, present := s.State()[org]; present {
		t.Fatal("org with nothing enabled is in State()")
	}
}

func TestSetStateAddsOrgsAndRejectsUnknownConnections(t *testing.T) {
	s := New(Config{Seed: 73, Orgs: 1})
	s.SetState("org_readable", nil)
	if got := s.Orgs(); len(got) != 2 || got[1] != "org_readable" {
		t.Fatalf("Orgs() = %v", got)
	}
	defer func() {
		msg, _ := recover().(string)
		if !strings.Contains(msg, "con_unknown") {
			t.Fatalf("panic %q, want one naming the connection", msg)
		}
	}()
	s.SetState("org_readable", map[string]EnabledConnection{"con_unknown": {}})
}
