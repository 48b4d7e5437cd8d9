// Package jobs is orgconn's vocabulary: the Change that travels from an input
// row or webhook event to the Management API, its validation, the rule that
// decides when a later change makes an earlier one obsolete, and the task
// payloads and ids stored in Redis.
//
// Nothing here talks to Redis or HTTP. Task type names and payload fields are
// persisted in Redis by running fleets: never rename them; add a new version.
package jobs

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Action is what a Change does to an organization's connection.
type Action string

// The three actions. Their string forms are the CSV and JSON spellings.
const (
	// Enable makes the connection enabled for the organization. Flags that are
	// given are set; flags that are not given keep their current value, or the
	// API default when the connection was not enabled before.
	Enable Action = "enable"
	// Update sets the given flags on a connection that is already enabled.
	Update Action = "update"
	// Remove makes the connection not enabled for the organization.
	Remove Action = "remove"
)

// ParseAction reads an action case-insensitively, ignoring surrounding spaces.
func ParseAction(s string) (Action, bool) {
	switch a := Action(strings.ToLower(strings.TrimSpace(s))); a {
	case Enable, Update, Remove:
		return a, true
	}
	return "", false
}

// Flag is an optional boolean: not given, false or true. The zero value is
// "not given", which leaves the setting as it is.
type Flag uint8

// The three states of a Flag.
const (
	Unset Flag = iota
	False
	True
)

// FlagOf returns the Flag holding b.
func FlagOf(b bool) Flag {
	if b {
		return True
	}
	return False
}

// Set reports whether the flag was given.
func (f Flag) Set() bool { return f != Unset }

// Bool returns the flag's value; false when not given.
func (f Flag) Bool() bool { return f == True }

// String returns "true", "false" or "" (not given): the CSV spelling.
func (f Flag) String() string {
	switch f {
	case True:
		return "true"
	case False:
		return "false"
	}
	return ""
}

// ParseFlag reads a CSV flag cell: "true" or "false" in any case; an empty
// (or all-space) cell is Unset. Anything else is an error.
func ParseFlag(s string) (Flag, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "":
		return Unset, nil
	case "true":
		return True, nil
	case "false":
		return False, nil
	}
	return Unset, fmt.Errorf("%s is not a flag value: use true, false, or leave it empty", quoteShort(s))
}

// MarshalJSON writes true or false. An Unset flag is written as null; fields
// of type Flag should carry `omitempty` so that it is left out instead.
func (f Flag) MarshalJSON() ([]byte, error) {
	switch f {
	case True:
		return []byte("true"), nil
	case False:
		return []byte("false"), nil
	}
	return []byte("null"), nil
}

// UnmarshalJSON accepts true, false and null (Unset). Strings such as "true"
// are rejected, as the Management API rejects them.
func (f *Flag) UnmarshalJSON(b []byte) error {
	switch string(b) {
	case "true":
		*f = True
	case "false":
		*f = False
	case "null":
		*f = Unset
	default:
		return fmt.Errorf("must be a JSON boolean (true or false), got %s", quoteShort(string(b)))
	}
	return nil
}

// Change is one change to one (organization, connection) pair. The three
// flags are optional: a flag that is not given stays untouched.
type Change struct {
	Action                  Action `json:"action"`
	OrgID                   string `json:"org_id"`
	ConnectionID            string `json:"connection_id"`
	AssignMembershipOnLogin Flag   `json:"assign_membership_on_login,omitempty"`
	ShowAsButton            Flag   `json:"show_as_button,omitempty"`
	IsSignupEnabled         Flag   `json:"is_signup_enabled,omitempty"`
}

// Field names, as they appear in CSV headers, JSON bodies and error messages.
const (
	FieldAction       = "action"
	FieldOrgID        = "org_id"
	FieldConnectionID = "connection_id"
	FieldAssign       = "assign_membership_on_login"
	FieldShowAsButton = "show_as_button"
	FieldSignup       = "is_signup_enabled"
)

// MaxIDLength is the Management API's limit on organization and connection
// ids, in characters.
const MaxIDLength = 50

// SignupNeedsMembership is the Management API's reason for rejecting
// is_signup_enabled=true without assign_membership_on_login=true.
const SignupNeedsMembership = "Only database connections with assign_membership_on_login = true support is_signup_enabled = true."

// FieldError is one problem with one field of a change.
type FieldError struct {
	Field   string // one of the Field… names, or "" for the record as a whole
	Problem string
}

func (e FieldError) Error() string {
	if e.Field == "" {
		return e.Problem
	}
	return e.Field + ": " + e.Problem
}

// NamedFlag is a flag with its field name.
type NamedFlag struct {
	Name  string
	Value Flag
}

// Flags returns the three flags in a fixed order with their field names.
func (c Change) Flags() [3]NamedFlag {
	return [3]NamedFlag{
		{FieldAssign, c.AssignMembershipOnLogin},
		{FieldShowAsButton, c.ShowAsButton},
		{FieldSignup, c.IsSignupEnabled},
	}
}

// HasFlags reports whether any flag is given.
func (c Change) HasFlags() bool {
	return c.AssignMembershipOnLogin.Set() || c.ShowAsButton.Set() || c.IsSignupEnabled.Set()
}

// Validate returns every problem with the change, in field order; none means
// the change is well formed. It does not know the tenant: an unknown org is
// found only by the API.
func (c Change) Validate() []FieldError {
	var errs []FieldError
	switch c.Action {
	case Enable, Update, Remove:
	case "":
		errs = append(errs, FieldError{FieldAction, "is empty: use enable, update or remove"})
	default:
		errs = append(errs, FieldError{FieldAction, fmt.Sprintf("%s is not an action: use enable, update or remove", quoteShort(string(c.Action)))})
	}
	if p := CheckID(c.OrgID); p != "" {
		errs = append(errs, FieldError{FieldOrgID, p})
	}
	if p := CheckID(c.ConnectionID); p != "" {
		errs = append(errs, FieldError{FieldConnectionID, p})
	}
	switch c.Action {
	case Remove:
		for _, f := range c.Flags() {
			if f.Value.Set() {
				errs = append(errs, FieldError{f.Name, "is not allowed on remove: leave it empty"})
			}
		}
	case Update:
		if !c.HasFlags() {
			errs = append(errs, FieldError{FieldAction, "update needs at least one of assign_membership_on_login, show_as_button, is_signup_enabled"})
		}
	}
	if c.Action != Remove && c.IsSignupEnabled == True && c.AssignMembershipOnLogin == False {
		errs = append(errs, FieldError{FieldSignup, SignupNeedsMembership})
	}
	return errs
}

// IDCharacters says which characters an id may hold, for error messages and
// documentation.
const IDCharacters = `only letters, digits, "_" and "-" are allowed`

// CheckID returns what is wrong with an organization or connection id, or ""
// when it is acceptable: 1 to 50 characters, each an ASCII letter, digit,
// '_' or '-' — the characters of Auth0's ids (org_…, con_…) and names. Ids
// go into URL paths: this excludes '/', '?', '#', '%', white space, control
// characters and the dot segments "." and "..", with nothing to escape.
func CheckID(id string) string {
	if id == "" {
		return "is empty"
	}
	if !utf8.ValidString(id) {
		return "is not valid UTF-8"
	}
	if n := utf8.RuneCountInString(id); n > MaxIDLength {
		return fmt.Sprintf("%s is %d characters, the limit is %d", quoteShort(id), n, MaxIDLength)
	}
	for _, r := range id {
		if !IsIDRune(r) {
			return fmt.Sprintf("%s contains %s: %s", quoteShort(id), quoteShort(string(r)), IDCharacters)
		}
	}
	return ""
}

// IsIDRune reports whether r may appear in an id: an ASCII letter or digit,
// '_' or '-'.
func IsIDRune(r rune) bool {
	return 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '_' || r == '-'
}

// quoteShort quotes s for an error message, cut to a readable length so that
// hostile input cannot flood logs.
func quoteShort(s string) string {
	const max = 24
	if utf8.RuneCountInString(s) <= max {
		return fmt.Sprintf("%q", s)
	}
	r := []rune(s)
	return fmt.Sprintf("%q", string(r[:max-1])+"…")
}

// String describes the change for logs and reports, e.g.
// "enable org_1/con_2 assign_membership_on_login=true".
func (c Change) String() string {
	var b strings.Builder
	b.WriteString(string(c.Action))
	b.WriteByte(' ')
	b.WriteString(c.OrgID)
	b.WriteByte('/')
	b.WriteString(c.ConnectionID)
	for _, f := range c.Flags() {
		if f.Value.Set() {
			b.WriteByte(' ')
			b.WriteString(f.Name)
			b.WriteByte('=')
			b.WriteString(f.Value.String())
		}
	}
	return b.String()
}
