package jobstest

import (
	"math/rand/v2"

	"github.com/orgconn/orgconn/jobs"
)

// model is the reference model: what orgconn's semantics, on top of the
// Management API's rules, make of each change. It is written independently
// of the worker so that tests compare two implementations.
type model struct {
	orgs     map[string]bool
	database map[string]bool // connection id → is a database connection
	state    map[string]map[string]State
}

func newModel(t Tenant) *model {
	m := &model{orgs: map[string]bool{}, database: map[string]bool{}, state: map[string]map[string]State{}}
	for _, o := range t.Orgs {
		m.orgs[o] = true
	}
	for _, c := range t.Connections {
		m.database[c.ID] = c.Database
	}
	for o, cs := range t.Initial {
		for c, s := range cs {
			m.set(o, c, s)
		}
	}
	return m
}

func (m *model) set(org, conn string, s State) {
	if m.state[org] == nil {
		m.state[org] = map[string]State{}
	}
	m.state[org][conn] = s
}

func (m *model) get(org, conn string) (State, bool) {
	s, ok := m.state[org][conn]
	return s, ok
}

// apply applies c and returns why it fails, or "" when it succeeds:
//
//   - enable: an unknown organization or connection fails; otherwise the
//     pair becomes enabled, with the given flags set on top of its current
//     settings, or on top of the defaults (membership off, button on,
//     sign-up off) when it was not enabled;
//   - update: fails unless the pair is enabled; sets the given flags;
//   - remove: fails for an unknown organization; the pair ends not enabled.
//
// Enable and update fail, changing nothing, when the result would have
// sign-up on without membership on or on a non-database connection.
func (m *model) apply(c jobs.Change) string {
	if !m.orgs[c.OrgID] {
		return "unknown organization"
	}
	_, known := m.database[c.ConnectionID]
	cur, enabled := m.get(c.OrgID, c.ConnectionID)
	switch c.Action {
	case jobs.Remove:
		if enabled {
			delete(m.state[c.OrgID], c.ConnectionID)
			if len(m.state[c.OrgID]) == 0 {
				delete(m.state, c.OrgID)
			}
		}
		return ""
	case jobs.Enable:
		if !known {
			return "unknown connection"
		}
		if !enabled {
			cur = State{ShowAsButton: true}
		}
	case jobs.Update:
		if !enabled {
			return "connection not enabled"
		}
	}
	next := cur.With(c)
	if next.IsSignupEnabled && (!next.AssignMembershipOnLogin || !m.database[c.ConnectionID]) {
		return jobs.SignupNeedsMembership
	}
	m.set(c.OrgID, c.ConnectionID, next)
	return ""
}

// With returns s with the flags c gives set; the others are kept.
func (s State) With(c jobs.Change) State {
	if c.AssignMembershipOnLogin.Set() {
		s.AssignMembershipOnLogin = c.AssignMembershipOnLogin.Bool()
	}
	if c.ShowAsButton.Set() {
		s.ShowAsButton = c.ShowAsButton.Bool()
	}
	if c.IsSignupEnabled.Set() {
		s.IsSignupEnabled = c.IsSignupEnabled.Bool()
	}
	return s
}

// plausible returns a valid change for the pair that succeeds from the
// model's current state: enables, updates of enabled pairs, removes.
func (m *model) plausible(org, conn string, rng *rand.Rand) jobs.Change {
	cur, enabled := m.get(org, conn)
	for {
		c := jobs.Change{OrgID: org, ConnectionID: conn}
		switch r := rng.IntN(100); {
		case !enabled && r < 80, enabled && r < 35:
			c.Action = jobs.Enable
		case enabled && r < 75:
			c.Action = jobs.Update
		default:
			c.Action = jobs.Remove
		}
		if c.Action != jobs.Remove {
			flag := func() jobs.Flag { return jobs.Flag(rng.IntN(3)) }
			c.AssignMembershipOnLogin, c.ShowAsButton = flag(), flag()
			if m.database[conn] && rng.IntN(4) == 0 {
				c.IsSignupEnabled = flag()
			} else if rng.IntN(4) == 0 {
				c.IsSignupEnabled = jobs.False
			}
		}
		if len(c.Validate()) > 0 {
			continue
		}
		probe := *m
		probe.state = map[string]map[string]State{org: {}}
		if enabled {
			probe.state[org][conn] = cur
		}
		if probe.apply(c) == "" {
			return c
		}
	}
}
