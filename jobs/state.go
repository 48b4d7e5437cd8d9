package jobs

import (
	"fmt"
	"strings"
)

// PairState is what the tenant holds for one (organization, connection)
// pair: nothing (Present false, the flags meaningless), or an association
// with its three flags. The zero value is an absent pair.
type PairState struct {
	Present                 bool
	AssignMembershipOnLogin bool
	ShowAsButton            bool
	IsSignupEnabled         bool
}

// Absent is the state of a pair with no association.
var Absent = PairState{}

// The flags a new association takes when an enable does not give them: the
// Management API's defaults.
const (
	DefaultAssign       = false
	DefaultShowAsButton = true
	DefaultSignup       = false
)

// String is "absent", or the three flags, e.g.
// "assign_membership_on_login=true show_as_button=false is_signup_enabled=false".
func (s PairState) String() string {
	if !s.Present {
		return "absent"
	}
	return fmt.Sprintf("%s=%t %s=%t %s=%t", FieldAssign, s.AssignMembershipOnLogin, FieldShowAsButton, s.ShowAsButton, FieldSignup, s.IsSignupEnabled)
}

// Encode returns the state's stored form: "-" for absent, else "p" and one
// digit (0 false, 1 true) per flag in the order assign_membership_on_login,
// show_as_button, is_signup_enabled: "p010". It is persisted in Redis:
// never change it.
func (s PairState) Encode() string {
	if !s.Present {
		return "-"
	}
	d := func(b bool) byte {
		if b {
			return '1'
		}
		return '0'
	}
	return string([]byte{'p', d(s.AssignMembershipOnLogin), d(s.ShowAsButton), d(s.IsSignupEnabled)})
}

// ParsePairState decodes PairState.Encode.
func ParsePairState(v string) (PairState, error) {
	if v == "-" {
		return Absent, nil
	}
	if len(v) != 4 || v[0] != 'p' || strings.Trim(v[1:], "01") != "" {
		return PairState{}, fmt.Errorf("pair state %q: want \"-\" or \"p\" and three digits 0/1", v)
	}
	return PairState{Present: true, AssignMembershipOnLogin: v[1] == '1', ShowAsButton: v[2] == '1', IsSignupEnabled: v[3] == '1'}, nil
}

// flags returns the three flags in Change.Flags order.
func (s PairState) flags() [3]bool {
	return [3]bool{s.AssignMembershipOnLogin, s.ShowAsButton, s.IsSignupEnabled}
}

// Reflects reports whether the pair, in state s, already is as c would
// leave it: c would change nothing. An enable or update reflects when the
// association exists and every flag c gives has that value; a remove when
// there is no association. An update of an absent pair does not reflect (the
// API refuses it).
func (s PairState) Reflects(c Change) bool {
	switch c.Action {
	case Remove:
		return !s.Present
	case Enable, Update:
		if !s.Present {
			return false
		}
		have := s.flags()
		for i, f := range c.Flags() {
			if f.Value.Set() && f.Value.Bool() != have[i] {
				return false
			}
		}
		return true
	}
	return false
}

// After returns the state c leaves the pair in when applied to state s,
// and false when the API refuses c in that state (an update of an absent
// pair). An enable of an absent pair takes the API's defaults for the
// flags it does not give.
func (s PairState) After(c Change) (PairState, bool) {
	switch c.Action {
	case Remove:
		return Absent, true
	case Update:
		if !s.Present {
			return s, false
		}
	case Enable:
		if !s.Present {
			s = PairState{Present: true, AssignMembershipOnLogin: DefaultAssign, ShowAsButton: DefaultShowAsButton, IsSignupEnabled: DefaultSignup}
		}
	default:
		return s, false
	}
	if c.AssignMembershipOnLogin.Set() {
		s.AssignMembershipOnLogin = c.AssignMembershipOnLogin.Bool()
	}
	if c.ShowAsButton.Set() {
		s.ShowAsButton = c.ShowAsButton.Bool()
	}
	if c.IsSignupEnabled.Set() {
		s.IsSignupEnabled = c.IsSignupEnabled.Bool()
	}
	return s, true
}

// Differing returns the update that takes a present pair from s to the
// flags of want (only the flags that differ are given), and false when none
// differs. Both states must be present.
func (s PairState) Differing(orgID, connectionID string, want PairState) (Change, bool) {
	c := Change{Action: Update, OrgID: orgID, ConnectionID: connectionID}
	if s.AssignMembershipOnLogin != want.AssignMembershipOnLogin {
		c.AssignMembershipOnLogin = FlagOf(want.AssignMembershipOnLogin)
	}
	if s.ShowAsButton != want.ShowAsButton {
		c.ShowAsButton = FlagOf(want.ShowAsButton)
	}
	if s.IsSignupEnabled != want.IsSignupEnabled {
		c.IsSignupEnabled = FlagOf(want.IsSignupEnabled)
	}
	return c, c.HasFlags()
}

// PairRecord is the state of one pair, as recorded for a batch: the state
// before its first write to the pair (prior state) or the state its last
// write left.
type PairRecord struct {
	OrgID        string
	ConnectionID string
	State        PairState
}

// ReadMode says when a worker reads an organization's associations before
// writing to it.
type ReadMode string

// The read modes. Their strings are the flag values and are stored with a
// batch: never rename them.
const (
	// ReadNever: the worker writes blind, as if it knew nothing.
	ReadNever ReadMode = "never"
	// ReadAuto: the worker reads when the read is expected to save more
	// write time than it costs.
	ReadAuto ReadMode = "auto"
	// ReadAlways: the worker reads before the first write to each
	// organization (and again when what it read is stale).
	ReadAlways ReadMode = "always"
)

// ParseReadMode reads a read mode; "" is not one.
func ParseReadMode(s string) (ReadMode, error) {
	switch m := ReadMode(strings.ToLower(strings.TrimSpace(s))); m {
	case ReadNever, ReadAuto, ReadAlways:
		return m, nil
	}
	return "", fmt.Errorf("%s is not a read mode: use never, auto or always", quoteShort(s))
}

// BatchHints are what the producer of a batch tells its workers: the read
// mode and what the auto mode weighs.
type BatchHints struct {
	// Read is the batch's read mode; empty means ReadAuto.
	Read ReadMode
	// Rows and Orgs are the batch's accepted rows and distinct
	// organizations; OrgRows the rows per organization when known (a batch
	// of many organizations keeps only the average).
	Rows, Orgs int
	OrgRows    map[string]int
	// LikelyUnchanged is the producer's estimate of the share of the
	// batch's rows that the tenant already reflects: 0.5 when nothing is
	// known (an import), 0 when the batch was planned against the state
	// just read (apply, rollback).
	LikelyUnchanged float64
}
