package bench

import (
	"fmt"
	"math/rand/v2"

	"github.com/orgconn/orgconn/jobs"
	"github.com/orgconn/orgconn/jobs/jobstest"
	"github.com/orgconn/orgconn/worker/mgmt/mgmttest"
)

// The job's mix: the share of each action among the rows, the share of rows
// on a pair an earlier row of the job touched, and the share of the
// simulator's pairs enabled before the job starts.
const (
	jobEnableShare = 0.60
	jobUpdateShare = 0.25 // the rest, 0.15, removes
	jobRepeatShare = 0.25
	jobSeededShare = 0.25
	// JobSeed is the seed of the bench's job.
	JobSeed = 11
	// jobPairsPerRow is about how many pairs (organizations × 8
	// connections) the simulator holds per row of the job.
	jobPairsPerRow = 2
)

// Job is the bench's workload: the rows, the tenant state they start from
// and what applying them in file order must leave.
type Job struct {
	// Initial is what is enabled before the first row (seeded into the
	// simulator with SetState).
	Initial map[string]map[string]jobstest.State
	// Changes are the rows in file order; none fails for a correct client.
	Changes []jobs.Change
	// Want is the state applying Changes in file order to Initial gives,
	// computed by jobstest's reference model.
	Want map[string]map[string]jobstest.State
	// Enables, Updates, Removes count the rows by action; Repeats counts
	// rows on a pair an earlier row touched; Reenables counts enables of a
	// pair enabled at that point (the API answers them 409).
	Enables, Updates, Removes, Repeats, Reenables int
}

// tenantOf describes sim's organizations and connections for jobstest.
func tenantOf(sim *mgmttest.Server) jobstest.Tenant {
	var t jobstest.Tenant
	t.Orgs = sim.Orgs()
	for _, c := range sim.Connections() {
		t.Connections = append(t.Connections, jobstest.Connection{ID: c.ID, Database: c.Strategy == "auth0"})
	}
	return t
}

// NewJob makes a job of n rows over t's organizations and connections,
// deterministically from seed: about 60% enables, 25% updates and 15%
// removes, about a quarter of the rows on a pair touched earlier in the job,
// over a tenant in which about a quarter of the pairs start enabled. Every
// row succeeds when the rows are applied in file order: updates and removes
// go to pairs enabled at that point (by the initial state or an earlier
// row), is_signup_enabled=true only on database connections and with
// assign_membership_on_login=true. An enable of a pair already enabled is
// part of the mix (the API answers it 409). NewJob fails only when t has too
// few pairs for n rows, or when jobstest's reference model disagrees that
// every row succeeds (a bug here).
func NewJob(t jobstest.Tenant, n int, seed uint64) (Job, error) {
	type pair struct{ org, conn string }
	rng := rand.New(rand.NewPCG(seed, 0x62656e63686a6f62))
	database := map[string]bool{}
	for _, c := range t.Connections {
		database[c.ID] = c.Database
	}
	var all []pair
	for _, o := range t.Orgs {
		for _, c := range t.Connections {
			all = append(all, pair{o, c.ID})
		}
	}
	if len(all) < n {
		return Job{}, fmt.Errorf("job of %d rows: the tenant has %d pairs, want at least as many", n, len(all))
	}
	rng.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })

	state := map[pair]jobstest.State{} // enabled pairs now
	j := Job{Initial: map[string]map[string]jobstest.State{}}
	var freshOn, freshOff []pair // untouched pairs, enabled or not
	for i, p := range all {
		if float64(i) < jobSeededShare*float64(len(all)) {
			s := jobstest.State{AssignMembershipOnLogin: rng.IntN(2) == 0, ShowAsButton: rng.IntN(4) != 0}
			s.IsSignupEnabled = database[p.conn] && s.AssignMembershipOnLogin && rng.IntN(2) == 0
			state[p] = s
			if j.Initial[p.org] == nil {
				j.Initial[p.org] = map[string]jobstest.State{}
			}
			j.Initial[p.org][p.conn] = s
			freshOn = append(freshOn, p)
		} else {
			freshOff = append(freshOff, p)
		}
	}
	var touched []pair
	seen := map[pair]bool{}
	pop := func(s *[]pair) pair {
		p := (*s)[len(*s)-1]
		*s = (*s)[:len(*s)-1]
		return p
	}
	// pickTouched returns an earlier-touched pair, enabled now if on, not
	// enabled now if not on; an enable takes an enabled one when no other
	// turns up (its API answer is a 409).
	pickTouched := func(on bool) (pair, bool) {
		if len(touched) == 0 {
			return pair{}, false
		}
		for range 64 {
			p := touched[rng.IntN(len(touched))]
			if _, enabled := state[p]; enabled == on {
				return p, true
			}
		}
		if !on {
			return touched[rng.IntN(len(touched))], true
		}
		return pair{}, false
	}
	flag := func() jobs.Flag { return jobs.Flag(rng.IntN(3)) }

	for len(j.Changes) < n {
		action := jobs.Remove
		switch r := rng.Float64(); {
		case r < jobEnableShare:
			action = jobs.Enable
		case r < jobEnableShare+jobUpdateShare:
			action = jobs.Update
		}
		needsOn := action != jobs.Enable
		var p pair
		ok := false
		if rng.Float64() < jobRepeatShare {
			p, ok = pickTouched(needsOn)
		}
		if !ok {
			switch {
			case needsOn && len(freshOn) > 0:
				p, ok = pop(&freshOn), true
			case !needsOn && len(freshOff) > 0 && (len(freshOn) == 0 || rng.IntN(10) != 0):
				p, ok = pop(&freshOff), true
			case !needsOn && len(freshOn) > 0:
				p, ok = pop(&freshOn), true // an enable of a pair enabled before the job
			default:
				p, ok = pickTouched(needsOn)
			}
		}
		if !ok {
			continue // no pair fits this action now: draw again
		}
		cur, enabled := state[p]
		c := jobs.Change{Action: action, OrgID: p.org, ConnectionID: p.conn}
		if action != jobs.Remove {
			for {
				c.AssignMembershipOnLogin, c.ShowAsButton, c.IsSignupEnabled = flag(), flag(), jobs.Unset
				if database[p.conn] && rng.IntN(3) == 0 {
					c.IsSignupEnabled = flag()
					if c.IsSignupEnabled == jobs.True {
						c.AssignMembershipOnLogin = jobs.True
					}
				}
				next := cur
				if !enabled {
					next = jobstest.State{ShowAsButton: true}
				}
				next = next.With(c)
				if next.IsSignupEnabled && !next.AssignMembershipOnLogin {
					// Turning membership off turns sign-up off in the same row.
					c.IsSignupEnabled, next.IsSignupEnabled = jobs.False, false
				}
				if len(c.Validate()) == 0 {
					state[p] = next
					break
				}
			}
		} else {
			delete(state, p)
		}
		switch action {
		case jobs.Enable:
			j.Enables++
			if enabled {
				j.Reenables++
			}
		case jobs.Update:
			j.Updates++
		default:
			j.Removes++
		}
		if seen[p] {
			j.Repeats++
		} else {
			seen[p] = true
			touched = append(touched, p)
		}
		j.Changes = append(j.Changes, c)
	}

	t.Initial = j.Initial
	exp := jobstest.Replay(t, rows(j.Changes))
	if len(exp.Fails) > 0 {
		for line, why := range exp.Fails {
			return Job{}, fmt.Errorf("job: line %d (%v) would fail: %s", line, j.Changes[line-2], why)
		}
	}
	j.Want = exp.Final
	return j, nil
}

// rows numbers changes as the lines of a CSV file under a header.
func rows(changes []jobs.Change) []jobstest.Row {
	out := make([]jobstest.Row, len(changes))
	for i, c := range changes {
		out[i] = jobstest.Row{Line: i + 2, Change: c}
	}
	return out
}

// seed enables j's initial state in sim.
func (j Job) seed(sim *mgmttest.Server) {
	for org, conns := range j.Initial {
		m := map[string]mgmttest.EnabledConnection{}
		for c, s := range conns {
			m[c] = mgmttest.EnabledConnection{AssignMembershipOnLogin: s.AssignMembershipOnLogin, ShowAsButton: s.ShowAsButton, IsSignupEnabled: s.IsSignupEnabled}
		}
		sim.SetState(org, m)
	}
}

// Compare compares the simulator's state with the job's expected final
// state: exact when every pair is as expected; wrong is the number of pairs
// that differ (enabled when they should not be, not enabled when they
// should be, or with other settings), diffs describes them, sorted.
func Compare(want map[string]map[string]jobstest.State, got map[string]map[string]mgmttest.EnabledConnection) (exact bool, wrong int, diffs []string) {
	g := map[string]map[string]jobstest.State{}
	for org, conns := range got {
		for c, ec := range conns {
			if g[org] == nil {
				g[org] = map[string]jobstest.State{}
			}
			g[org][c] = jobstest.State{AssignMembershipOnLogin: ec.AssignMembershipOnLogin, ShowAsButton: ec.ShowAsButton, IsSignupEnabled: ec.IsSignupEnabled}
		}
	}
	diffs = jobstest.Diff(want, g)
	return len(diffs) == 0, len(diffs), diffs
}
