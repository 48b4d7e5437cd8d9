package jobstest

import (
	"encoding/csv"
	"fmt"
	"io"
	"math/rand/v2"
	"sort"

	"github.com/orgconn/orgconn/jobs"
)

// The newer vocabulary: files that mix enable, disable, update and remove
// with organization_connection_name and organization_access_level, naming
// some organizations and connections by name, and a reference model of the
// newer Organization connections endpoints (an association kept disabled
// with its settings).

// Association is a pair's association on the newer endpoints.
type Association struct {
	Enabled                                                bool
	AssignMembershipOnLogin, ShowAsButton, IsSignupEnabled bool
	Name                                                   string // organization_connection_name; "" unset
	Level                                                  string // organization_access_level; "" is none
}

// NamedOrg is an organization with its name.
type NamedOrg struct{ ID, Name string }

// NamedConnection is a connection with its name.
type NamedConnection struct {
	ID, Name string
	Database bool
}

// NewerTenant is what a newer-vocabulary file meets.
type NewerTenant struct {
	Orgs        []NamedOrg
	Connections []NamedConnection
}

// NewerOptions shape a GenerateNewer file.
type NewerOptions struct {
	Changes int // rows
	Pairs   int // distinct pairs the rows touch (fewer pairs: more rows per pair); 0 means Changes/3
	// ByName names the organizations (and connections) at even indexes by
	// their names, the others by ids: half of each. A side is named the same
	// way on every row, so each pair keeps one key.
	ByName bool
	Seed   uint64
}

// NewerHeader is the CSV header of WriteNewerCSV.
var NewerHeader = []string{"action", "org_id", "org_name", "connection_id", "connection_name",
	"assign_membership_on_login", "show_as_button", "is_signup_enabled", "organization_connection_name", "organization_access_level"}

// GenerateNewer makes a file of o.Changes rows for t, starting from a tenant
// with no associations, every row of which succeeds when applied in order:
// an update only of an associated pair, a level other than none only with a
// name on the same row, never is_signup_enabled=true. Lines start at 2.
func GenerateNewer(t NewerTenant, o NewerOptions) []Row {
	rng := rand.New(rand.NewPCG(o.Seed, o.Seed^0x5eed))
	pairs := o.Pairs
	if pairs <= 0 {
		pairs = max(o.Changes/3, 1)
	}
	type pair struct{ org, conn int }
	pool := make([]pair, 0, pairs)
	seen := map[pair]bool{}
	for len(pool) < pairs && len(seen) < len(t.Orgs)*len(t.Connections) {
		p := pair{rng.IntN(len(t.Orgs)), rng.IntN(len(t.Connections))}
		if !seen[p] {
			seen[p] = true
			pool = append(pool, p)
		}
	}
	present := map[pair]bool{}
	levels := []jobs.AccessLevel{jobs.LevelReadonly, jobs.LevelLimited, jobs.LevelFull}
	flag := func() jobs.Flag { return []jobs.Flag{jobs.Unset, jobs.Unset, jobs.False, jobs.True}[rng.IntN(4)] }
	var rows []Row
	for i := range o.Changes {
		p := pool[rng.IntN(len(pool))]
		org, conn := t.Orgs[p.org], t.Connections[p.conn]
		c := jobs.Change{OrgID: org.ID, ConnectionID: conn.ID}
		if o.ByName && p.org%2 == 0 {
			c.OrgID, c.OrgName = "", org.Name
		}
		if o.ByName && p.conn%2 == 0 {
			c.ConnectionID, c.ConnectionName = "", conn.Name
		}
		switch r := rng.IntN(100); {
		case r < 30:
			c.Action = jobs.Enable
		case r < 60:
			c.Action = jobs.Disable
		case r < 85 && present[p]:
			c.Action = jobs.Update
		default:
			c.Action = jobs.Remove
		}
		if c.Action != jobs.Remove {
			c.AssignMembershipOnLogin, c.ShowAsButton = flag(), flag()
			if rng.IntN(4) == 0 {
				c.IsSignupEnabled = jobs.False
			}
			switch r := rng.IntN(6); {
			case r == 0:
				c.OrgConnectionName = fmt.Sprintf("SSO %d", i%97)
				c.AccessLevel = levels[rng.IntN(len(levels))]
			case r == 1:
				c.OrgConnectionName = fmt.Sprintf("Login %d", i)
			case r == 2:
				c.AccessLevel = jobs.LevelNone
			}
			if c.Action == jobs.Update && !c.HasSettings() {
				c.ShowAsButton = jobs.FlagOf(rng.IntN(2) == 0)
			}
		}
		rows = append(rows, Row{Line: i + 2, Change: c})
		// Keep the generator's own view, to choose updates of present pairs.
		if c.Action == jobs.Remove {
			delete(present, p)
		} else {
			present[p] = true
		}
	}
	return rows
}

// WriteNewerCSV writes NewerHeader and rows.
func WriteNewerCSV(w io.Writer, rows []Row) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(NewerHeader); err != nil {
		return err
	}
	for _, r := range rows {
		rec := r.Invalid
		if rec == nil {
			c := r.Change
			rec = []string{string(c.Action), c.OrgID, c.OrgName, c.ConnectionID, c.ConnectionName,
				c.AssignMembershipOnLogin.String(), c.ShowAsButton.String(), c.IsSignupEnabled.String(), c.OrgConnectionName, string(c.AccessLevel)}
		}
		if err := cw.Write(rec); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// ReplayNewer applies rows in order to t (no associations at first) with
// the model of the newer endpoints and returns the final associations
// (org id → connection id → association, disabled ones included) and the
// lines that must fail with why. Names are resolved through t.
//
//   - enable and disable: an absent pair is created with the API's defaults
//     (button on, the rest off, level none), then the given fields are set
//     and is_enabled is true (enable) or false (disable); a present one keeps
//     the fields not given;
//   - update: fails on an absent pair; sets the given fields;
//   - remove: the pair ends absent.
//
// A write that would leave is_signup_enabled on without membership (or on a
// connection that is not a database), or a level other than none without a
// name, fails and changes nothing.
func ReplayNewer(t NewerTenant, rows []Row) (map[string]map[string]Association, map[int]string) {
	orgOf, connOf, db := map[string]string{}, map[string]string{}, map[string]bool{}
	for _, o := range t.Orgs {
		orgOf[o.Name] = o.ID
	}
	for _, c := range t.Connections {
		connOf[c.Name], db[c.ID] = c.ID, c.Database
	}
	final := map[string]map[string]Association{}
	fails := map[int]string{}
	for _, r := range rows {
		if r.Invalid != nil {
			continue
		}
		c := r.Change
		if c.OrgID == "" {
			c.OrgID = orgOf[c.OrgName]
		}
		if c.ConnectionID == "" {
			c.ConnectionID = connOf[c.ConnectionName]
		}
		cur, ok := final[c.OrgID][c.ConnectionID]
		switch c.Action {
		case jobs.Remove:
			delete(final[c.OrgID], c.ConnectionID)
			continue
		case jobs.Update:
			if !ok {
				fails[r.Line] = "no association to update"
				continue
			}
		case jobs.Enable, jobs.Disable:
			if !ok {
				cur = Association{ShowAsButton: true}
			}
			cur.Enabled = c.Action == jobs.Enable
		}
		next := cur.With(c)
		if next.IsSignupEnabled && (!next.AssignMembershipOnLogin || !db[c.ConnectionID]) {
			fails[r.Line] = jobs.SignupNeedsMembership
			continue
		}
		if next.Level != "" && next.Level != string(jobs.LevelNone) && next.Name == "" {
			fails[r.Line] = "a level other than none needs a name"
			continue
		}
		if final[c.OrgID] == nil {
			final[c.OrgID] = map[string]Association{}
		}
		final[c.OrgID][c.ConnectionID] = next
	}
	for o, cs := range final {
		if len(cs) == 0 {
			delete(final, o)
		}
	}
	return final, fails
}

// With returns a with the fields c gives set; the others are kept.
func (a Association) With(c jobs.Change) Association {
	if c.AssignMembershipOnLogin.Set() {
		a.AssignMembershipOnLogin = c.AssignMembershipOnLogin.Bool()
	}
	if c.ShowAsButton.Set() {
		a.ShowAsButton = c.ShowAsButton.Bool()
	}
	if c.IsSignupEnabled.Set() {
		a.IsSignupEnabled = c.IsSignupEnabled.Bool()
	}
	if c.OrgConnectionName != "" {
		a.Name = c.OrgConnectionName
	}
	if c.AccessLevel != "" {
		a.Level = string(c.AccessLevel)
		if c.AccessLevel == jobs.LevelNone {
			a.Level = ""
		}
	}
	return a
}

// DiffNewer lists the differences between the expected and actual
// associations, sorted; none means equal.
func DiffNewer(want, got map[string]map[string]Association) []string {
	var out []string
	keys := map[[2]string]bool{}
	for o, cs := range want {
		for c := range cs {
			keys[[2]string{o, c}] = true
		}
	}
	for o, cs := range got {
		for c := range cs {
			keys[[2]string{o, c}] = true
		}
	}
	for k := range keys {
		w, wok := want[k[0]][k[1]]
		g, gok := got[k[0]][k[1]]
		switch {
		case wok && !gok:
			out = append(out, fmt.Sprintf("%s/%s: want %+v, is absent", k[0], k[1], w))
		case !wok && gok:
			out = append(out, fmt.Sprintf("%s/%s: want absent, is %+v", k[0], k[1], g))
		case w != g:
			out = append(out, fmt.Sprintf("%s/%s: want %+v, is %+v", k[0], k[1], w, g))
		}
	}
	sort.Strings(out)
	return out
}
