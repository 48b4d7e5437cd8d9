package jobs

import "fmt"

// Shape is what supersession needs to know of a change: its action and its
// three flags, without the ids. It is stored beside each pending change in
// Redis, so its string form is persistent: the action letter followed by one
// digit per flag (0 not given, 1 false, 2 true) in the order
// assign_membership_on_login, show_as_button, is_signup_enabled: "e000",
// "u120", "r000".
type Shape struct {
	Action                         Action
	Assign, ShowAsButton, IsSignup Flag
}

// ShapeOf returns the change's shape.
func ShapeOf(c Change) Shape {
	return Shape{c.Action, c.AssignMembershipOnLogin, c.ShowAsButton, c.IsSignupEnabled}
}

var actionLetter = map[Action]byte{Enable: 'e', Update: 'u', Remove: 'r'}

// String encodes the shape (see Shape).
func (s Shape) String() string {
	return string([]byte{actionLetter[s.Action], '0' + byte(s.Assign), '0' + byte(s.ShowAsButton), '0' + byte(s.IsSignup)})
}

// ParseShape decodes Shape.String.
func ParseShape(str string) (Shape, error) {
	if len(str) != 4 {
		return Shape{}, fmt.Errorf("shape %q: want an action letter and three flag digits", str)
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
	return s, nil
}

// mask returns which flags are given, one bit each.
func (s Shape) mask() uint8 {
	var m uint8
	for i, f := range [3]Flag{s.Assign, s.ShowAsButton, s.IsSignup} {
		if f.Set() {
			m |= 1 << i
		}
	}
	return m
}

// ruleSafe reports whether an enable or update with this shape can never be
// rejected for the is_signup_enabled rule, whatever valid state it meets and
// whatever kind the connection is. Setting is_signup_enabled=true fails on a
// non-database connection; setting assign_membership_on_login=false fails
// where sign-up is on. Setting sign-up off, or leaving both alone or turning
// membership on, cannot fail.
func (s Shape) ruleSafe() bool {
	return s.IsSignup == False || s.IsSignup == Unset && s.Assign != False
}

// Covers reports whether applying earlier and then later leaves a pair in the
// same state as applying later alone, from every valid state and for every
// kind of connection: then earlier may be skipped as superseded, without an
// API call. It is deliberately conservative:
//
//   - a remove covers anything (the pair ends up not enabled either way);
//   - otherwise later must be unable to fail on the is_signup_enabled rule
//     (if it could fail, earlier's effect would survive it), and then
//   - an enable that gives all three flags covers anything,
//   - an enable covers an earlier enable or update whose flags it all gives,
//   - an update covers an earlier update whose flags it all gives.
//
// An enable is never covered by an update (the update alone would fail on a
// pair that is not enabled), and a remove is covered only by a remove or a
// full enable (a partial enable after it would create the pair with
// defaults). A failure of earlier that later would not also produce cannot
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
	case Enable:
		if lm == 7 {
			return true
		}
		return (earlier.Action == Enable || earlier.Action == Update) && em&^lm == 0
	case Update:
		return earlier.Action == Update && em&^lm == 0
	}
	return false
}
