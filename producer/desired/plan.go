package desired

import (
	"encoding/csv"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/orgconn/orgconn/jobs"
)

// Op is what a step does to a pair.
type Op string

// The ops, as the plan prints them.
const (
	OpEnable Op = "+"
	OpUpdate Op = "~"
	OpRemove Op = "-"
)

// Step is one change of a plan, with the pair's state before it.
type Step struct {
	Op     Op
	Change jobs.Change
	Before jobs.PairState
	// Line is the desired file's line that asks for the step; 0 for a
	// removal that --prune asks for, and for rollback steps.
	Line int
}

// Plan is what makes the tenant as wanted: the steps, sorted by
// organization then connection, and how many wanted pairs are already as
// wanted.
type Plan struct {
	Steps     []Step
	Unchanged int
}

// State is the current state of some organizations: organization id →
// connection id → state of each present association. An organization with
// no association maps to an empty (or nil) map.
type State map[string]map[string]jobs.PairState

// Diff returns the plan that takes the organizations of wants from current
// to what wants say. With prune, an association of an organization that
// wants name and that no want lists is removed; organizations that no want
// names are never touched.
func Diff(wants []Want, current State, prune bool) Plan {
	var p Plan
	listed := map[string]map[string]bool{}
	for _, w := range wants {
		if listed[w.OrgID] == nil {
			listed[w.OrgID] = map[string]bool{}
		}
		listed[w.OrgID][w.ConnectionID] = true
		cur := current[w.OrgID][w.ConnectionID]
		switch {
		case w.Absent && !cur.Present:
			p.Unchanged++
		case w.Absent:
			p.Steps = append(p.Steps, Step{Op: OpRemove, Change: jobs.Change{Action: jobs.Remove, OrgID: w.OrgID, ConnectionID: w.ConnectionID}, Before: cur, Line: w.Line})
		case !cur.Present:
			p.Steps = append(p.Steps, Step{Op: OpEnable, Change: w.change(), Before: cur, Line: w.Line})
		default:
			c := w.change()
			c.Action = jobs.Update
			c = onlyDiffering(c, cur)
			if !c.HasFlags() {
				p.Unchanged++
				continue
			}
			p.Steps = append(p.Steps, Step{Op: OpUpdate, Change: c, Before: cur, Line: w.Line})
		}
	}
	if prune {
		for org, conns := range listed {
			for conn, st := range current[org] {
				if st.Present && !conns[conn] {
					p.Steps = append(p.Steps, Step{Op: OpRemove, Change: jobs.Change{Action: jobs.Remove, OrgID: org, ConnectionID: conn}, Before: st})
				}
			}
		}
	}
	sort.Slice(p.Steps, func(i, j int) bool {
		a, b := p.Steps[i].Change, p.Steps[j].Change
		if a.OrgID != b.OrgID {
			return a.OrgID < b.OrgID
		}
		return a.ConnectionID < b.ConnectionID
	})
	return p
}

// onlyDiffering keeps the flags of c that differ from cur.
func onlyDiffering(c jobs.Change, cur jobs.PairState) jobs.Change {
	keep := func(f jobs.Flag, have bool) jobs.Flag {
		if f.Set() && f.Bool() != have {
			return f
		}
		return jobs.Unset
	}
	c.AssignMembershipOnLogin = keep(c.AssignMembershipOnLogin, cur.AssignMembershipOnLogin)
	c.ShowAsButton = keep(c.ShowAsButton, cur.ShowAsButton)
	c.IsSignupEnabled = keep(c.IsSignupEnabled, cur.IsSignupEnabled)
	return c
}

// Changes returns the plan's changes in order.
func (p Plan) Changes() []jobs.Change {
	out := make([]jobs.Change, len(p.Steps))
	for i, s := range p.Steps {
		out[i] = s.Change
	}
	return out
}

// Priors returns each step's pair with its state before the plan.
func (p Plan) Priors() []jobs.PairRecord {
	out := make([]jobs.PairRecord, len(p.Steps))
	for i, s := range p.Steps {
		out[i] = jobs.PairRecord{OrgID: s.Change.OrgID, ConnectionID: s.Change.ConnectionID, State: s.Before}
	}
	return out
}

// Orgs returns the number of distinct organizations the plan changes.
func (p Plan) Orgs() map[string]int {
	m := map[string]int{}
	for _, s := range p.Steps {
		m[s.Change.OrgID]++
	}
	return m
}

// String describes the step as the plan prints it, e.g.
// "+ enable org_1/con_1 (show_as_button=false)",
// "~ update org_1/con_2 show_as_button true → false, is_signup_enabled false → true"
// or "- remove org_2/con_1".
func (s Step) String() string {
	c := s.Change
	pair := c.OrgID + "/" + c.ConnectionID
	switch s.Op {
	case OpEnable:
		var fs []string
		for _, f := range c.Flags() {
			if f.Value.Set() {
				fs = append(fs, f.Name+"="+f.Value.String())
			}
		}
		if len(fs) == 0 {
			return "+ enable " + pair + " (the API's defaults)"
		}
		return "+ enable " + pair + " (" + strings.Join(fs, " ") + ")"
	case OpUpdate:
		have := map[string]bool{jobs.FieldAssign: s.Before.AssignMembershipOnLogin, jobs.FieldShowAsButton: s.Before.ShowAsButton, jobs.FieldSignup: s.Before.IsSignupEnabled}
		var fs []string
		for _, f := range c.Flags() {
			if f.Value.Set() {
				fs = append(fs, fmt.Sprintf("%s %t → %s", f.Name, have[f.Name], f.Value))
			}
		}
		return "~ update " + pair + " " + strings.Join(fs, ", ")
	}
	return "- remove " + pair
}

// Print writes the plan, one step a line, then "= N unchanged".
func (p Plan) Print(w io.Writer) error {
	for _, s := range p.Steps {
		if _, err := fmt.Fprintln(w, s.String()); err != nil {
			return err
		}
	}
	_, err := fmt.Fprintf(w, "= %d unchanged\n", p.Unchanged)
	return err
}

// WriteCSV writes the plan's changes in the import format (action, org_id,
// connection_id and the three flags), so that "orgconn import" of the file
// makes the same changes.
func (p Plan) WriteCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	if err := cw.Write([]string{jobs.FieldAction, jobs.FieldOrgID, jobs.FieldConnectionID, jobs.FieldAssign, jobs.FieldShowAsButton, jobs.FieldSignup}); err != nil {
		return err
	}
	for _, s := range p.Steps {
		c := s.Change
		if err := cw.Write([]string{string(c.Action), c.OrgID, c.ConnectionID, c.AssignMembershipOnLogin.String(), c.ShowAsButton.String(), c.IsSignupEnabled.String()}); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}
