// Package jobstest generates realistic change files and computes, with a
// reference model of the Management API, what applying them in file order
// must produce: the final state of every pair and the lines that must fail.
// The demo, the end-to-end tests and the benchmarks use it; production code
// does not.
package jobstest

import (
	"encoding/csv"
	"fmt"
	"io"
	"math/rand/v2"
	"sort"

	"github.com/orgconn/orgconn/jobs"
)

// State is an enabled connection's settings.
type State struct {
	AssignMembershipOnLogin, ShowAsButton, IsSignupEnabled bool
}

// Connection is a tenant connection; only database connections accept
// is_signup_enabled=true.
type Connection struct {
	ID       string
	Database bool
}

// Tenant describes what the changes meet: the organizations that exist, the
// tenant's connections and what is enabled before the first change.
type Tenant struct {
	Orgs        []string
	Connections []Connection
	Initial     map[string]map[string]State // org → connection → settings
}

// Row is one CSV data row. Invalid rows carry their raw fields and are
// rejected by import validation; they take no part in the model.
type Row struct {
	Line    int
	Change  jobs.Change
	Invalid []string // raw fields of a deliberately invalid row; nil for a valid row
	Reason  string   // for a row generated to fail or be invalid: why
}

// Options shape a generated file.
type Options struct {
	Changes     int     // valid rows
	RepeatShare float64 // share of valid rows on pairs that get more than one change (0.2 = 20%)
	UnknownOrgs int     // rows for organizations that do not exist (they must fail)
	SignupFails int     // rows setting is_signup_enabled=true on a non-database connection (they must fail)
	Invalid     int     // rows that import validation must reject
	Seed        uint64
}

// Header is the CSV header Generate's rows are written under.
var Header = []string{"action", "org_id", "connection_id", "assign_membership_on_login", "show_as_button", "is_signup_enabled"}

// Generate makes a file of changes for t. Valid rows are chosen so that they
// succeed when applied in order, except the UnknownOrgs and SignupFails rows,
// which are scattered through the file. Lines start at 2 (the header is 1).
func Generate(t Tenant, o Options) []Row {
	rng := rand.New(rand.NewPCG(o.Seed, 0x6a6f627374657374))
	m := newModel(t)
	type pair struct{ org, conn string }
	var hot []pair // pairs that receive several changes
	nHot := int(float64(o.Changes) * o.RepeatShare / 3)
	for len(hot) < nHot {
		hot = append(hot, pair{t.Orgs[rng.IntN(len(t.Orgs))], t.Connections[rng.IntN(len(t.Connections))].ID})
	}
	usedOnce := map[pair]bool{}
	pick := func(i int) pair {
		if len(hot) > 0 && float64(i%100) < o.RepeatShare*100 {
			return hot[rng.IntN(len(hot))]
		}
		for tries := 0; ; tries++ {
			p := pair{t.Orgs[rng.IntN(len(t.Orgs))], t.Connections[rng.IntN(len(t.Connections))].ID}
			if !usedOnce[p] || tries > 50 {
				usedOnce[p] = true
				return p
			}
		}
	}
	total := o.Changes + o.UnknownOrgs + o.SignupFails + o.Invalid
	special := make([]byte, total) // 'u' unknown org, 's' signup failure, 'i' invalid, 0 normal
	for i, n := 0, 0; n < o.UnknownOrgs+o.SignupFails+o.Invalid; i++ {
		k := rng.IntN(total)
		if special[k] != 0 {
			continue
		}
		switch {
		case n < o.UnknownOrgs:
			special[k] = 'u'
		case n < o.UnknownOrgs+o.SignupFails:
			special[k] = 's'
		default:
			special[k] = 'i'
		}
		n++
	}
	var nonDB []string
	for _, c := range t.Connections {
		if !c.Database {
			nonDB = append(nonDB, c.ID)
		}
	}
	rows := make([]Row, 0, total)
	normal := 0
	for i := 0; i < total; i++ {
		line := i + 2
		switch special[i] {
		case 'u':
			c := jobs.Change{Action: jobs.Enable, OrgID: fmt.Sprintf("org_unknown%05d", rng.IntN(100000)), ConnectionID: t.Connections[rng.IntN(len(t.Connections))].ID}
			if rng.IntN(2) == 0 {
				c.Action = jobs.Remove
			}
			rows = append(rows, Row{Line: line, Change: c, Reason: "unknown organization"})
			continue
		case 's':
			if len(nonDB) > 0 {
				c := jobs.Change{Action: jobs.Enable, OrgID: t.Orgs[rng.IntN(len(t.Orgs))], ConnectionID: nonDB[rng.IntN(len(nonDB))],
					AssignMembershipOnLogin: jobs.True, IsSignupEnabled: jobs.True}
				rows = append(rows, Row{Line: line, Change: c, Reason: "is_signup_enabled on a non-database connection"})
				m.apply(c)
				continue
			}
		case 'i':
			rows = append(rows, invalidRow(line, rng))
			continue
		}
		p := pick(normal)
		normal++
		c := m.plausible(p.org, p.conn, rng)
		m.apply(c)
		rows = append(rows, Row{Line: line, Change: c})
	}
	return rows
}

// invalidRow returns a row that import validation rejects.
func invalidRow(line int, rng *rand.Rand) Row {
	bad := [][]string{
		{"deactivate", "org_x", "con_x", "", "", ""},
		{"enable", "", "con_x", "", "", ""},
		{"enable", "org_x", "con_x", "yes", "", ""},
		{"update", "org_x", "con_x", "", "", ""},
		{"remove", "org_x", "con_x", "", "true", ""},
		{"enable", "org_x"},
	}
	b := bad[rng.IntN(len(bad))]
	return Row{Line: line, Invalid: b, Reason: "invalid row"}
}

// WriteCSV writes the header and rows.
func WriteCSV(w io.Writer, rows []Row) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(Header); err != nil {
		return err
	}
	for _, r := range rows {
		rec := r.Invalid
		if rec == nil {
			c := r.Change
			rec = []string{string(c.Action), c.OrgID, c.ConnectionID, c.AssignMembershipOnLogin.String(), c.ShowAsButton.String(), c.IsSignupEnabled.String()}
		}
		if err := cw.Write(rec); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// Expectation is what applying a file's valid rows in order must give.
type Expectation struct {
	Final map[string]map[string]State // org → connection → settings, only enabled ones
	Fails map[int]string              // line → why it must fail
	Valid int                         // valid rows
	// Pairs maps each valid line to its pair "org/connection".
	Pairs map[int]string
}

// Replay applies the valid rows of rows to t in order with the reference
// model and returns the expectation.
func Replay(t Tenant, rows []Row) Expectation {
	m := newModel(t)
	e := Expectation{Fails: map[int]string{}, Pairs: map[int]string{}}
	for _, r := range rows {
		if r.Invalid != nil {
			continue
		}
		e.Valid++
		e.Pairs[r.Line] = r.Change.OrgID + "/" + r.Change.ConnectionID
		if why := m.apply(r.Change); why != "" {
			e.Fails[r.Line] = why
		}
	}
	e.Final = m.state
	return e
}

// Diff lists the differences between a tenant's actual state and the
// expected one, sorted; none means equal. Organizations with nothing enabled
// may be absent from either map.
func Diff(want, got map[string]map[string]State) []string {
	var out []string
	keys := map[string]bool{}
	for o, cs := range want {
		for c := range cs {
			keys[o+"/"+c] = true
		}
	}
	for o, cs := range got {
		for c := range cs {
			keys[o+"/"+c] = true
		}
	}
	for k := range keys {
		var o, c string
		for i := range k {
			if k[i] == '/' {
				o, c = k[:i], k[i+1:]
				break
			}
		}
		w, wok := want[o][c]
		g, gok := got[o][c]
		switch {
		case wok && !gok:
			out = append(out, fmt.Sprintf("%s: want enabled %+v, is not enabled", k, w))
		case !wok && gok:
			out = append(out, fmt.Sprintf("%s: want not enabled, is enabled %+v", k, g))
		case w != g:
			out = append(out, fmt.Sprintf("%s: want %+v, is %+v", k, w, g))
		}
	}
	sort.Strings(out)
	return out
}
