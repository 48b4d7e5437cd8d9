package jobs

import "fmt"

// Shape is what supersession needs to know of a change: its action and which
// of its settings it gives (with the flags' and the level's values, which
// decide whether it can be refused), without the ids. It is stored beside
// each pending change in Redis, so its string form is persistent:
//
//   - the action letter (e enable, d disable, u update, r remove) followed by
//     one digit per flag (0 not given, 1 false, 2 true) in the order
//     assign_membership_on_login, show_as_button, is_signup_enabled: "e000",
//     "u120", "r000", "d000" — the form of every shape without the newer
//     settings, unchanged since before they existed;
//   - for a shape with an organization_connection_name or an
//     organization_access_level, two more digits: 1 when the name is given
//     (else 0), and the level (0 not given, 1 none, 2 readonly, 3 limited,
//     4 full): "e00011", "u00004".
type Shape struct {
	Action                         Action
	Assign, ShowAsButton, IsSignup Flag
	// Named reports whether organization_connection_name is given.
	Named bool
	// Level is the organization_access_level given, "" when not given.
	Level AccessLevel
}

// ShapeOf returns the change's shape.
func ShapeOf(c Change) Shape {
	return Shape{c.Action, c.AssignMembershipOnLogin, c.ShowAsButton, c.IsSignupEnabled, c.OrgConnectionName != "", c.AccessLevel}
}

var actionLetter = map[Action]byte{Enable: 'e', Disable: 'd', Update: 'u', Remove: 'r'}

// levelDigit is the digit of each level in a Shape's string.
var levelDigit = map[AccessLevel]byte{"": '0', LevelNone: '1', LevelReadonly: '2', LevelLimited: '3', LevelFull: '4'}

// String encodes the shape (see Shape).
func (s Shape) String() string {
	b := []byte{actionLetter[s.Action], '0' + byte(s.Assign), '0' + byte(s.ShowAsButton), '0' + byte(s.IsSignup)}
	if s.Named || s.Level != "" {
		named := byte('0')
		if s.Named {
			named = '1'
		}
		b = append(b, named, levelDigit[s.Level])
	}
	return string(b)
}

// ParseShape decodes Shape.String.
func ParseShape(str string) (Shape, error) {
	if len(str) != 4 && len(str) != 6 {
		return Shape{}, fmt.Errorf("shape %q: want an action letter and three flag digits, and optionally a name digit and a level digit", str)
	}
	var s Shape
	for a, l := range actionLetter {
		if l == str[0] {
			s.Action = a
		}
	}
	if s.Action == "" {
		return Shape{}, fmt.Errorf("shape %q: unknown action letter", str)
	}
	flags := [3]*Flag{&s.Assign, &s.ShowAsButton, &s.IsSignup}
	for i, f := range flags {
		d := str[1+i]
		if d < '0' || d > '2' {
			return Shape{}, fmt.Errorf("shape %q: flag digit %q, want 0, 1 or 2", str, d)
		}
		*f = Flag(d - '0')
	}
	if len(str) == 4 {
		return s, nil
	}
	switch str[4] {
	case '0':
	case '1':
		s.Named = true
	default:
		return Shape{}, fmt.Errorf("shape %q: name digit %q, want 0 or 1", str, str[4])
	}
	found := false
	for l, d := range levelDigit {
		if d == str[5] {
			s.Level, found = l, true
		}
	}
	if !found {
		return Shape{}, fmt.Errorf("shape %q: level digit %q, want 0 to 4", str, str[5])
	}
	if !s.Named && s.Level == "" {
		return Shape{}, fmt.Errorf("shape %q: a shape without name and level has four characters", str)
	}
	return s, nil
}

// allSettings is the mask of a shape that gives every setting.
const allSettings = 1<<5 - 1

// mask returns which settings are given, one bit each: the three flags, the
// organization_connection_name and the organization_access_level.
func (s Shape) mask() uint8 {
	var m uint8
	for i, f := range [3]Flag{s.Assign, s.ShowAsButton, s.IsSignup} {
		if f.Set() {
			m |= 1 << i
		}
	}
	if s.Named {
		m |= 1 << 3
	}
	if s.Level != "" {
		m |= 1 << 4
	}
	return m
}

// ruleSafe reports whether an enable, disable or update with this shape can
// never be refused for a rule between settings, whatever valid state it
// meets and whatever kind the connection is:
//
//   - is_signup_enabled: setting it true fails on a non-database connection;
//     setting assign_membership_on_login=false fails where sign-up is on.
//     Setting sign-up off, or leaving both alone or turning membership on,
//     cannot fail.
//   - organization_access_level: a level other than none fails on an
//     association without an organization_connection_name, unless the same
//     change gives the name. Leaving the level alone or setting none cannot
//     fail (a name is never cleared: orgconn has no way to clear it).
func (s Shape) ruleSafe() bool {
	signup := s.IsSignup == False || s.IsSignup == Unset && s.Assign != False
	level := !s.Level.NeedsName() || s.Named
	return signup && level
}

// Covers reports whether applying earlier and then later leaves a pair in the
// same state as applying later alone, from every valid state and for every
// kind of connection: then earlier may be skipped as superseded, without an
// API call. A pair's state is: not associated, or associated, enabled or
// disabled, with three flags, a name (or none) and a level. It is
// deliberately conservative:
//
//   - a remove covers anything (the pair ends up not associated either way);
//   - otherwise later must be unable to fail on a rule between settings (if
//     it could fail, earlier's effect would survive it), and then
//   - an enable or disable that gives all five settings (three flags, name
//     and level) covers anything,
//   - an enable or disable covers an earlier enable, disable or update whose
//     settings it all gives (it sets enabled or disabled itself),
//   - an update covers an earlier update whose settings it all gives.
//
// An enable or disable is never covered by an update (the update alone would
// fail on a pair that is not associated, and does not set enabled), and a
// remove is covered only by a remove or by an enable or disable giving all
// five settings: after a remove, a partial enable creates the pair with
// defaults, and the name and level the remove cleared would otherwise
// survive. A failure of earlier that later would not also produce cannot
// change the final state, so skipping it is safe; it is reported as
// superseded.
//
// Skipping each change whose immediate successor covers it is enough:
// removing such changes from the first to the last, each one's successor is
// still there when it is removed, so the sequence keeps its final state.
func Covers(later, earlier Shape) bool {
	if later.Action == Remove {
		return true
	}
	if !later.ruleSafe() {
		return false
	}
	lm, em := later.mask(), earlier.mask()
	switch later.Action {
	case Enable, Disable:
		if lm == allSettings {
			return true
		}
		return earlier.Action != Remove && em&^lm == 0
	case Update:
		return earlier.Action == Update && em&^lm == 0
	}
	return false
}
