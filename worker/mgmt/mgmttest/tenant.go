package mgmttest

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
)

// Connection is a tenant connection that organizations can enable.
type Connection struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	Strategy string `json:"strategy"`
}

// EnabledConnection is the settings of one connection associated with one organization. The
// zero values of the fields the newer endpoints added mean what the legacy endpoints leave
// behind: enabled, no organization connection name, access level "none". So an association
// made by the legacy POST compares equal to one written as a literal with the three flags.
type EnabledConnection struct {
	ConnectionID            string `json:"connection_id"`
	AssignMembershipOnLogin bool   `json:"assign_membership_on_login"`
	ShowAsButton            bool   `json:"show_as_button"`
	IsSignupEnabled         bool   `json:"is_signup_enabled"`
	// Disabled is true for an association kept with its settings but switched off
	// (is_enabled false on the newer endpoints). The legacy endpoints do not show it.
	Disabled bool `json:"disabled,omitempty"`
	// Name is organization_connection_name; "" means unset (a set name has 1–50 characters).
	Name string `json:"organization_connection_name,omitempty"`
	// AccessLevel is organization_access_level: "readonly", "limited" or "full"; "" means
	// "none", which is what the API answers when none was set.
	AccessLevel string `json:"organization_access_level,omitempty"`
}

// strategies is the cycle of seeded connection strategies.
var strategies = []string{"auth0", "samlp", "google-oauth2", "oidc"}

// databaseStrategy is the only strategy that supports is_signup_enabled.
const databaseStrategy = "auth0"

// tenant is the simulated tenant's data. It is guarded by Server.mu.
type tenant struct {
	orgOrder  []string
	orgs      map[string]map[string]EnabledConnection // org id -> connection id -> settings
	connOrder []string
	conns     map[string]Connection
}

// newTenant seeds orgs organizations and conns connections from seed.
func newTenant(seed int64, orgs, conns int) tenant {
	t := tenant{
		orgs:  make(map[string]map[string]EnabledConnection),
		conns: make(map[string]Connection),
	}
	for i := range max(orgs, 0) {
		id := seededID("org_", seed, 1, i, func(id string) bool { _, dup := t.orgs[id]; return dup })
		t.addOrg(id)
	}
	for i := range max(conns, 0) {
		id := seededID("con_", seed, 2, i, func(id string) bool { _, dup := t.conns[id]; return dup })
		s := strategies[i%len(strategies)]
		t.conns[id] = Connection{ID: id, Name: fmt.Sprintf("conn-%d-%s", i, s), Strategy: s}
		t.connOrder = append(t.connOrder, id)
	}
	return t
}

func (t *tenant) addOrg(id string) {
	if _, ok := t.orgs[id]; ok {
		return
	}
	t.orgs[id] = make(map[string]EnabledConnection)
	t.orgOrder = append(t.orgOrder, id)
}

const idAlphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// seededID returns prefix + 16 alphanumerics drawn from a stream determined by seed, kind and
// index alone, drawing again while taken reports the id as used.
func seededID(prefix string, seed int64, kind, index int, taken func(string) bool) string {
	r := rand.New(rand.NewPCG(uint64(seed), uint64(kind)<<32|uint64(index)))
	for {
		b := []byte(prefix)
		for range 16 {
			b = append(b, idAlphabet[r.IntN(len(idAlphabet))])
		}
		if id := string(b); !taken(id) {
			return id
		}
	}
}

// Orgs returns the ids of the tenant's organizations: the seeded ones in index order, then any
// added by SetState. The slice is a copy.
func (s *Server) Orgs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.tenant.orgOrder)
}

// Connections returns the tenant's connections in index order. The slice is a copy.
func (s *Server) Connections() []Connection {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Connection, 0, len(s.tenant.connOrder))
	for _, id := range s.tenant.connOrder {
		out = append(out, s.tenant.conns[id])
	}
	return out
}

// State returns a deep copy of every association, enabled or disabled: organization id ->
// connection id -> settings. Organizations with no association are omitted.
func (s *Server) State() map[string]map[string]EnabledConnection {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]map[string]EnabledConnection)
	for org, conns := range s.tenant.orgs {
		if len(conns) > 0 {
			out[org] = maps.Clone(conns)
		}
	}
	return out
}

// SetState replaces the associations of org with conns (nil or empty leaves none), for
// seeding tests; an entry with Disabled set seeds a disabled association. The map key is the connection id; each value's ConnectionID is set from it.
// An org that is not in the tenant is added to it, so tests may use readable ids. The
// is_signup_enabled rule is not checked, so tests can seed states the API would refuse.
// SetState panics if a key is not one of Connections(): that is a mistake in the test.
func (s *Server) SetState(org string, conns map[string]EnabledConnection) {
	s.mu.Lock()
	defer s.mu.Unlock()
	next := make(map[string]EnabledConnection, len(conns))
	for id, ec := range conns {
		if _, ok := s.tenant.conns[id]; !ok {
			panic(fmt.Sprintf("mgmttest: SetState(%q): connection %q is not a tenant connection; use one of Server.Connections()", org, id))
		}
		ec.ConnectionID = id
		next[id] = ec
	}
	s.tenant.addOrg(org)
	s.tenant.orgs[org] = next
}
