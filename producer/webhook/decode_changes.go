package webhook

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/orgconn/orgconn/jobs"
)

// Problem is one problem with a request, as listed in a 400 response:
// {"index":3,"field":"org_id","problem":"…"}.
type Problem struct {
	// Index is the 0-based position in "changes" (or in an array of
	// events); nil for a single change or event, or the request as a whole.
	Index *int `json:"index,omitempty"`
	// Field names the field, e.g. "org_id" or "data.object.id"; "" for the
	// whole item or request.
	Field string `json:"field,omitempty"`
	// Problem says what is wrong and what to do.
	Problem string `json:"problem"`
}

// String writes the problem for logs: "[3] org_id: is empty".
func (p Problem) String() string {
	var b strings.Builder
	if p.Index != nil {
		fmt.Fprintf(&b, "[%d] ", *p.Index)
	}
	if p.Field != "" {
		b.WriteString(p.Field + ": ")
	}
	b.WriteString(p.Problem)
	return b.String()
}

// DefaultMaxChanges is the most changes one /v1/changes request may carry
// unless configured otherwise.
const DefaultMaxChanges = 1000

// changeFields are the fields of a change in a JSON body.
var changeFields = []string{jobs.FieldAction, jobs.FieldOrgID, jobs.FieldConnectionID, jobs.FieldAssign, jobs.FieldShowAsButton, jobs.FieldSignup,
	jobs.FieldOrgConnectionName, jobs.FieldAccessLevel, jobs.FieldOrgName, jobs.FieldConnectionName}

// DecodeChanges decodes and validates a /v1/changes body: one change, or
// {"changes":[…]} with 1 to max changes. Fields and rules are those of a CSV
// row; flags are JSON booleans; organization_connection_name,
// organization_access_level, org_name and connection_name are strings, and
// null for any of them means not given (an empty string is refused: leave
// the field out); unknown and repeated fields are refused.
//
// It is all or nothing: either every change is valid and the complete list is
// returned with no problems, or nil is returned with every problem found (at
// most MaxProblems of them).
func DecodeChanges(body []byte, max int) ([]jobs.Change, []Problem) {
	changes, _, ps := decodeChanges(body, max)
	return changes, ps
}

// decodeChanges is DecodeChanges, also telling whether the body was an
// envelope ({"changes":[…]}), whose problems carry indexes.
func decodeChanges(body []byte, max int) (_ []jobs.Change, envelope bool, _ []Problem) {
	if max <= 0 {
		max = DefaultMaxChanges
	}
	var ps problems
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		ps.add(nil, "", `the body is empty: send one change, or {"changes":[…]}`)
		return nil, envelope, ps.result()
	}
	members, err := readObject(trimmed)
	if err == errNotObject {
		ps.add(nil, "", `the body must be a JSON object: one change, or {"changes":[…]}`)
		return nil, envelope, ps.result()
	}
	if err != nil {
		ps.add(nil, "", err.Error())
		return nil, envelope, ps.result()
	}
	for _, m := range members {
		if m.name == "changes" {
			envelope = true
		}
	}
	if !envelope {
		c := decodeChange(members, nil, &ps)
		if len(ps.list) > 0 {
			return nil, envelope, ps.result()
		}
		return []jobs.Change{c}, false, nil
	}

	var items []json.RawMessage
	seen := false
	for _, m := range members {
		switch {
		case m.name != "changes":
			ps.add(nil, cutName(m.name), `unknown field: a body with "changes" has no other fields`)
		case seen:
			ps.add(nil, "changes", "is given more than once")
		default:
			seen = true
			if string(m.value) == "null" {
				ps.add(nil, "changes", "is null: give an array of changes")
				continue
			}
			items, err = readArray(m.value, max)
			switch {
			case err != nil && strings.HasPrefix(err.Error(), "has more"):
				ps.add(nil, "changes", fmt.Sprintf("has more than %d changes, the limit is %d: split the request", max, max))
			case err != nil:
				ps.add(nil, "changes", "must be an array of change objects: "+err.Error())
			case len(items) == 0:
				ps.add(nil, "changes", "is empty: give at least one change")
			}
		}
	}
	if len(ps.list) > 0 {
		return nil, envelope, ps.result()
	}
	out := make([]jobs.Change, len(items))
	for i, raw := range items {
		ms, err := readObject(raw)
		if err != nil {
			ps.add(&i, "", "must be a JSON object with the fields "+strings.Join(changeFields, ", "))
			continue
		}
		out[i] = decodeChange(ms, &i, &ps)
	}
	if len(ps.list) > 0 {
		return nil, envelope, ps.result()
	}
	return out, true, nil
}

// decodeChange decodes one change's members and validates it, adding every
// problem to ps.
func decodeChange(members []member, index *int, ps *problems) jobs.Change {
	var c jobs.Change
	failed := map[string]bool{}
	seen := map[string]bool{}
	flags := map[string]*jobs.Flag{
		jobs.FieldAssign:       &c.AssignMembershipOnLogin,
		jobs.FieldShowAsButton: &c.ShowAsButton,
		jobs.FieldSignup:       &c.IsSignupEnabled,
	}
	for _, m := range members {
		if seen[m.name] {
			ps.add(index, cutName(m.name), "is given more than once")
			failed[m.name] = true
			continue
		}
		seen[m.name] = true
		switch m.name {
		case jobs.FieldAction, jobs.FieldOrgID, jobs.FieldConnectionID:
			s, err := decodeString(m.value)
			if err != nil {
				ps.add(index, m.name, err.Error())
				failed[m.name] = true
				continue
			}
			switch m.name {
			case jobs.FieldAction:
				if a, ok := jobs.ParseAction(s); ok {
					c.Action = a
				} else {
					c.Action = jobs.Action(s)
				}
			case jobs.FieldOrgID:
				c.OrgID = s
			default:
				c.ConnectionID = s
			}
		case jobs.FieldOrgConnectionName, jobs.FieldAccessLevel, jobs.FieldOrgName, jobs.FieldConnectionName:
			if string(m.value) == "null" {
				continue
			}
			s, err := decodeString(m.value)
			if err == nil && s == "" {
				err = fmt.Errorf("is empty: leave the field out (or null) when not given")
			}
			if err != nil {
				ps.add(index, m.name, err.Error())
				failed[m.name] = true
				continue
			}
			switch m.name {
			case jobs.FieldOrgConnectionName:
				c.OrgConnectionName = s
			case jobs.FieldAccessLevel:
				l, err := jobs.ParseAccessLevel(s)
				if err != nil {
					ps.add(index, m.name, err.Error())
					failed[m.name] = true
					// Given, so that validation does not add "update needs
					// at least one" on top.
					l = jobs.LevelNone
				}
				c.AccessLevel = l
			case jobs.FieldOrgName:
				c.OrgName = s
			default:
				c.ConnectionName = s
			}
		case jobs.FieldAssign, jobs.FieldShowAsButton, jobs.FieldSignup:
			if err := flags[m.name].UnmarshalJSON(m.value); err != nil {
				ps.add(index, m.name, err.Error())
				failed[m.name] = true
				// Count it as given so that validation does not add
				// "update needs at least one flag" on top.
				*flags[m.name] = jobs.True
			}
		default:
			ps.add(index, cutName(m.name), "unknown field; the fields are "+strings.Join(changeFields, ", "))
		}
	}
	for _, fe := range c.Validate() {
		if !failed[fe.Field] {
			ps.add(index, fe.Field, fe.Problem)
		}
	}
	return c
}

// MaxProblems is the most problems a 400 response lists; a last entry says
// how many more there were.
const MaxProblems = 1000

// problems collects Problems up to MaxProblems.
type problems struct {
	list    []Problem
	omitted int
}

// result returns the problems, ending with a note of how many were left
// out.
func (ps *problems) result() []Problem {
	if ps.omitted > 0 {
		return append(ps.list, Problem{Problem: fmt.Sprintf("%d more problems are not listed", ps.omitted)})
	}
	return ps.list
}

func (ps *problems) add(index *int, field, problem string) {
	if len(ps.list) >= MaxProblems {
		ps.omitted++
		return
	}
	p := Problem{Field: field, Problem: problem}
	if index != nil {
		i := *index
		p.Index = &i
	}
	ps.list = append(ps.list, p)
}

// cutName makes a client-given field name safe to echo.
func cutName(name string) string {
	q := quoteShort(name)
	return q[1 : len(q)-1]
}
