package jobs

import (
	"fmt"
	"testing"
)

// pairState is a model of one (organization, connection) pair as the
// Management API keeps it. The zero value is "not associated".
type pairState struct {
	present bool
	enabled bool
	flags   [3]bool // assign_membership_on_login, show_as_button, is_signup_enabled
	name    string  // organization_connection_name; "" not set
	level   AccessLevel
}

// applyModel applies c to st the way orgconn applies it through the API:
// enable and disable create the pair with the defaults (membership off,
// button on, sign-up off, no name, level none) when it is not associated,
// set enabled or disabled, and set the given settings; update needs an
// existing association and sets the given settings; remove always leaves the
// pair not associated. A change that the API would refuse leaves the state
// as it was: is_signup_enabled needs assign_membership_on_login and a
// database connection, and a level other than none needs a name.
func applyModel(st pairState, c Change, database bool) pairState {
	var next pairState
	switch c.Action {
	case Remove:
		return pairState{}
	case Update:
		if !st.present {
			return st // 404
		}
		next = st
	case Enable, Disable:
		if st.present {
			next = st
		} else {
			next = pairState{present: true, flags: [3]bool{false, true, false}, level: LevelNone}
		}
		next.enabled = c.Action == Enable
	}
	for i, f := range c.Flags() {
		if f.Value.Set() {
			next.flags[i] = f.Value.Bool()
		}
	}
	if c.OrgConnectionName != "" {
		next.name = c.OrgConnectionName
	}
	if c.AccessLevel != "" {
		next.level = c.AccessLevel
	}
	if next.flags[2] && (!next.flags[0] || !database) {
		return st // 400: is_signup_enabled needs assign_membership_on_login and a database connection
	}
	if next.level.NeedsName() && next.name == "" {
		return st // 400: a level other than none needs an organization_connection_name
	}
	return next
}

// allChanges returns every change shape with every combination of flag
// values, a name or none, and no level, none or limited (readonly and full
// follow the same rules as limited).
func allChanges() []Change {
	var out []Change
	vals := []Flag{Unset, False, True}
	for _, a := range []Action{Enable, Disable, Update, Remove} {
		for _, x := range vals {
			for _, y := range vals {
				for _, z := range vals {
					for _, name := range []string{"", "a"} {
						for _, level := range []AccessLevel{"", LevelNone, LevelLimited} {
							c := Change{Action: a, OrgID: "org_1", ConnectionID: "con_1", AssignMembershipOnLogin: x, ShowAsButton: y, IsSignupEnabled: z,
								OrgConnectionName: name, AccessLevel: level}
							if len(c.Validate()) > 0 && !(a == Enable || a == Disable) {
								continue // remove with settings, update without
							}
							out = append(out, c)
						}
					}
				}
			}
		}
	}
	return out
}

// validStates returns every state the API allows for a connection of the
// given kind: sign-up only on database connections with membership on, a
// level other than none only with a name.
func validStates(database bool) []pairState {
	out := []pairState{{}}
	for m := 0; m < 8; m++ {
		flags := [3]bool{m&1 != 0, m&2 != 0, m&4 != 0}
		if flags[2] && (!flags[0] || !database) {
			continue
		}
		for _, enabled := range []bool{true, false} {
			for _, name := range []string{"", "a", "b"} {
				for _, level := range []AccessLevel{LevelNone, LevelLimited} {
					if level.NeedsName() && name == "" {
						continue
					}
					out = append(out, pairState{present: true, enabled: enabled, flags: flags, name: name, level: level})
				}
			}
		}
	}
	return out
}

func describe(s pairState) string {
	if !s.present {
		return "not associated"
	}
	return fmt.Sprintf("enabled=%v flags=%v name=%q level=%s", s.enabled, s.flags, s.name, s.level)
}

// TestCoversIsSound checks, for every pair of changes (all four actions,
// every flag value, with and without a name and a level), every starting
// state and both kinds of connection, that when Covers(later, earlier)
// holds, applying earlier then later equals applying later alone.
func TestCoversIsSound(t *testing.T) {
	changes := allChanges()
	states := map[bool][]pairState{true: validStates(true), false: validStates(false)}
	covered := map[Action]int{}
	for _, e := range changes {
		for _, l := range changes {
			if !Covers(ShapeOf(l), ShapeOf(e)) {
				continue
			}
			covered[l.Action]++
			for _, db := range []bool{true, false} {
				for _, st := range states[db] {
					both := applyModel(applyModel(st, e, db), l, db)
					alone := applyModel(st, l, db)
					if both != alone {
						t.Fatalf("Covers(%s, %s) but from %s (database=%v): both give %s, later alone gives %s",
							ShapeOf(l), ShapeOf(e), describe(st), db, describe(both), describe(alone))
					}
				}
			}
		}
	}
	for _, a := range []Action{Enable, Disable, Update, Remove} {
		if covered[a] == 0 {
			t.Errorf("no change is covered by a later %s: the test checks nothing for it", a)
		}
	}
}

// TestCoversIsNotTooConservative documents the supersessions that matter in
// practice, so a future change to Covers cannot silently stop saving calls,
// and those that must not happen.
func TestCoversIsNotTooConservative(t *testing.T) {
	for _, tc := range []struct{ later, earlier string }{
		{"r000", "e000"}, {"r000", "e222"}, {"r000", "u220"}, {"r000", "r000"}, {"r000", "d00114"}, {"r000", "d000"},
		{"e21114", "r000"}, {"d22111", "r000"}, {"e221", "e000"}, {"e121", "u200"},
		{"e000", "e000"}, {"e220", "e100"}, {"e220", "u020"},
		{"u210", "u100"}, {"u001", "u002"}, {"u201", "u202"},
		// disable and the newer settings
		{"d000", "e000"}, {"e000", "d000"}, {"d000", "d000"}, {"d200", "u200"}, {"e00010", "d00010"},
		{"d00013", "e00010"}, {"u00014", "u00010"}, {"u00001", "u00004"}, {"e00011", "e00001"},
		{"u00010", "u00010"}, {"d21111", "e21114"},
	} {
		l, err := ParseShape(tc.later)
		if err != nil {
			t.Fatal(err)
		}
		e, err := ParseShape(tc.earlier)
		if err != nil {
			t.Fatal(err)
		}
		if !Covers(l, e) {
			t.Errorf("Covers(%s, %s) = false, want true", tc.later, tc.earlier)
		}
	}
	for _, tc := range []struct{ later, earlier string }{
		{"u222", "e000"}, {"e000", "r000"}, {"e220", "r000"}, {"u200", "u020"}, {"e200", "e020"}, {"u200", "r000"},
		{"e002", "e000"}, {"e222", "e000"}, {"u100", "u100"}, {"e100", "e000"},
		// a remove clears name and level: three flags alone do not cover it
		{"e211", "r000"}, {"d222", "r000"}, {"e21110", "r000"},
		// an update does not set enabled or disabled, nor create
		{"u222", "d000"}, {"u00011", "d000"},
		// a level other than none without a name may be refused
		{"u00004", "u00004"}, {"e00003", "e000"}, {"d00002", "d000"},
		// a setting earlier gives and later does not
		{"e000", "d00010"}, {"d000", "u00001"}, {"u00010", "u00011"},
	} {
		l, err := ParseShape(tc.later)
		if err != nil {
			t.Fatal(err)
		}
		e, err := ParseShape(tc.earlier)
		if err != nil {
			t.Fatal(err)
		}
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
	for _, bad := range []string{"", "x", "e00", "e003", "e0000", "E000", "x000", "e00000", "e00020", "e00015", "e000111", "e0001"} {
		if _, err := ParseShape(bad); err == nil {
			t.Errorf("ParseShape(%q) succeeded, want an error", bad)
		}
	}
}

// Shapes stored beside pending changes by fleets that knew only three
// actions and three flags keep their meaning; a shape without the newer
// settings is written as it always was.
func TestShapeStringsOfOlderFleets(t *testing.T) {
	for str, want := range map[string]Shape{
		"e000": {Action: Enable},
		"u120": {Action: Update, Assign: False, ShowAsButton: True},
		"r000": {Action: Remove},
		"e212": {Action: Enable, Assign: True, ShowAsButton: False, IsSignup: True},
	} {
		got, err := ParseShape(str)
		if err != nil || got != want {
			t.Errorf("ParseShape(%q) = %+v, %v; want %+v", str, got, err, want)
		}
		if got.String() != str {
			t.Errorf("%+v.String() = %q, want %q", want, got.String(), str)
		}
	}
	if s := ShapeOf(Change{Action: Disable, OrgID: "o", ConnectionID: "c", ShowAsButton: True}).String(); s != "d020" {
		t.Errorf("disable with a flag = %q, want d020", s)
	}
	if s := ShapeOf(Change{Action: Update, OrgID: "o", ConnectionID: "c", OrgConnectionName: "Acme SSO", AccessLevel: LevelFull}).String(); s != "u00014" {
		t.Errorf("update with name and level full = %q, want u00014", s)
	}
}
