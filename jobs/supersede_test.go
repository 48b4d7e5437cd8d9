package jobs

import (
	"fmt"
	"testing"
)

// pairState is a model of one (organization, connection) pair as the
// Management API keeps it; nil means not enabled.
type pairState *[3]bool

// applyModel applies c to st the way orgconn applies it through the API:
// enable creates with defaults or sets the given flags on an existing pair;
// update needs an existing pair; remove always leaves the pair not enabled.
// A change that the API would reject leaves the state as it was.
func applyModel(st pairState, c Change, database bool) pairState {
	defaults := [3]bool{false, true, false}
	var next [3]bool
	switch c.Action {
	case Remove:
		return nil
	case Update:
		if st == nil {
			return st // 404
		}
		next = *st
	case Enable:
		if st == nil {
			next = defaults
		} else {
			next = *st
		}
	}
	for i, f := range c.Flags() {
		if f.Value.Set() {
			next[i] = f.Value.Bool()
		}
	}
	if next[2] && (!next[0] || !database) {
		return st // 400: is_signup_enabled needs assign_membership_on_login and a database connection
	}
	return &next
}

// allChanges returns every change shape with every combination of flag values.
func allChanges() []Change {
	var out []Change
	vals := []Flag{Unset, False, True}
	for _, a := range []Action{Enable, Update, Remove} {
		for _, x := range vals {
			for _, y := range vals {
				for _, z := range vals {
					c := Change{Action: a, OrgID: "org_1", ConnectionID: "con_1", AssignMembershipOnLogin: x, ShowAsButton: y, IsSignupEnabled: z}
					if a == Remove && c.HasFlags() || a == Update && !c.HasFlags() {
						continue
					}
					out = append(out, c)
				}
			}
		}
	}
	return out
}

// validStates returns every state the API allows for a connection of the
// given kind: sign-up only on database connections with membership on.
func validStates(database bool) []pairState {
	out := []pairState{nil}
	for m := 0; m < 8; m++ {
		s := [3]bool{m&1 != 0, m&2 != 0, m&4 != 0}
		if s[2] && (!s[0] || !database) {
			continue
		}
		out = append(out, &s)
	}
	return out
}

func equalState(a, b pairState) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return *a == *b
}

func describe(s pairState) string {
	if s == nil {
		return "not enabled"
	}
	return fmt.Sprint(*s)
}

// TestCoversIsSound checks, for every pair of changes, every starting state
// and both kinds of connection, that when Covers(later, earlier) holds,
// applying earlier then later equals applying later alone.
func TestCoversIsSound(t *testing.T) {
	changes := allChanges()
	covered := 0
	for _, e := range changes {
		for _, l := range changes {
			if !Covers(ShapeOf(l), ShapeOf(e)) {
				continue
			}
			covered++
			for _, db := range []bool{true, false} {
				for _, st := range validStates(db) {
					both := applyModel(applyModel(st, e, db), l, db)
					alone := applyModel(st, l, db)
					if !equalState(both, alone) {
						t.Fatalf("Covers(%s, %s) but from %s (database=%v): both give %s, later alone gives %s",
							ShapeOf(l), ShapeOf(e), describe(st), db, describe(both), describe(alone))
					}
				}
			}
		}
	}
	if covered == 0 {
		t.Fatal("no pair of changes is covered: the test checks nothing")
	}
}

// TestCoversIsNotTooConservative documents the supersessions that matter in
// practice, so a future change to Covers cannot silently stop saving calls.
func TestCoversIsNotTooConservative(t *testing.T) {
	for _, tc := range []struct{ later, earlier string }{
		{"r000", "e000"}, {"r000", "e222"}, {"r000", "u220"}, {"r000", "r000"},
		{"e211", "r000"}, {"e221", "e000"}, {"e121", "u200"},
		{"e000", "e000"}, {"e220", "e100"}, {"e220", "u020"},
		{"u210", "u100"}, {"u001", "u002"}, {"u201", "u202"},
	} {
		l, _ := ParseShape(tc.later)
		e, _ := ParseShape(tc.earlier)
		if !Covers(l, e) {
			t.Errorf("Covers(%s, %s) = false, want true", tc.later, tc.earlier)
		}
	}
	for _, tc := range []struct{ later, earlier string }{
		{"u222", "e000"}, {"e000", "r000"}, {"e220", "r000"}, {"u200", "u020"}, {"e200", "e020"}, {"u200", "r000"},
		{"e002", "e000"}, {"e222", "e000"}, {"u100", "u100"}, {"e100", "e000"},
	} {
		l, _ := ParseShape(tc.later)
		e, _ := ParseShape(tc.earlier)
		if Covers(l, e) {
			t.Errorf("Covers(%s, %s) = true, want false", tc.later, tc.earlier)
		}
	}
}

func TestShapeRoundTrip(t *testing.T) {
	for _, c := range allChanges() {
		s := ShapeOf(c)
		got, err := ParseShape(s.String())
		if err != nil || got != s {
			t.Fatalf("ParseShape(%q) = %v, %v; want %v", s.String(), got, err, s)
		}
	}
	for _, bad := range []string{"", "x", "e00", "e003", "e0000", "E000", "x000"} {
		if _, err := ParseShape(bad); err == nil {
			t.Errorf("ParseShape(%q) succeeded, want an error", bad)
		}
	}
}
