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
	"unicode"
	"unicode/utf8"
)

// Action is what a Change does to an organization's connection.
type Action string

// The four actions. Their string forms are the CSV and JSON spellings.
const (
	// Enable leaves the pair associated and enabled. Fields that are given
	// are set; fields that are not given keep their current value, or the
	// API default when the pair was not associated before.
	Enable Action = "enable"
	// Disable leaves the pair associated and disabled, with the given fields
	// set and the others kept: a disabled association keeps its settings.
	// A pair that is not associated is created disabled (with the API
	// defaults for the fields not given), so a connection can be staged
	// before it is switched on. It needs the Organization connections API
	// (see NeedsConnectionsAPI).
	Disable Action = "disable"
	// Update sets the given fields on an existing association, enabled or
	// not; it fails on a pair that is not associated.
	Update Action = "update"
	// Remove deletes the association: the pair ends not associated.
	Remove Action = "remove"
)

// ActionNames lists the actions' spellings for messages: "enable, disable,
// update or remove".
const ActionNames = "enable, disable, update or remove"

// ParseAction reads an action case-insensitively, ignoring surrounding spaces.
func ParseAction(s string) (Action, bool) {
	switch a := Action(strings.ToLower(strings.TrimSpace(s))); a {
	case Enable, Disable, Update, Remove:
		return a, true
	}
	return "", false
}

// AccessLevel is an organization_access_level: what the organization's own
// administrators may do with the connection through the My Organization API.
// The zero value "" means not given: the level stays as it is (the API
// answers "none" for an association created without one).
type AccessLevel string

// The access levels. Their string forms are the CSV, JSON and API spellings.
const (
	LevelNone     AccessLevel = "none"     // the connection is invisible to the organization's admins
	LevelReadonly AccessLevel = "readonly" // they may see it
	LevelLimited  AccessLevel = "limited"  // they may change show_as_button and whether it is enabled
	LevelFull     AccessLevel = "full"     // they may change it
)

// AccessLevels lists the levels in the order of the API's documentation.
func AccessLevels() []AccessLevel {
	return []AccessLevel{LevelNone, LevelReadonly, LevelLimited, LevelFull}
}

// ParseAccessLevel reads a CSV cell: one of none, readonly, limited, full in
// any case, surrounding spaces ignored; an empty cell is "" (not given).
// Anything else is an error naming the allowed values.
func ParseAccessLevel(s string) (AccessLevel, error) {
	v := AccessLevel(strings.ToLower(strings.TrimSpace(s)))
	if v == "" || v.Valid() {
		return v, nil
	}
	return "", fmt.Errorf("%s is not one of none, readonly, limited, full", quoteShort(s))
}

// Valid reports whether l is one of the four levels ("" is not).
func (l AccessLevel) Valid() bool {
	switch l {
	case LevelNone, LevelReadonly, LevelLimited, LevelFull:
		return true
	}
	return false
}

// NeedsName reports whether the level needs an organization_connection_name
// on the association: every level but none does (the API refuses the write
// otherwise).
func (l AccessLevel) NeedsName() bool { return l != "" && l != LevelNone }

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

// Change is one change to one (organization, connection) pair. Every field
// after the ids is optional: a field that is not given stays untouched.
//
// Each side of the pair is named by its id, by its name (OrgName,
// ConnectionName), or by both; when both are given the id is used and the
// name is only informational. A change whose side has only a name must be
// resolved (the name looked up) before it reaches the API; see Unresolved and
// PairKey.
//
// The JSON form is a task payload persisted in Redis: the first six fields
// keep their encoding exactly (org_id and connection_id are written even
// when empty), and every later field is optional and left out when not
// given, so payloads written before those fields existed decode unchanged
// and a change without them encodes to the same bytes as before.
type Change struct {
	Action                  Action `json:"action"`
	OrgID                   string `json:"org_id"`
	ConnectionID            string `json:"connection_id"`
	AssignMembershipOnLogin Flag   `json:"assign_membership_on_login,omitempty"`
	ShowAsButton            Flag   `json:"show_as_button,omitempty"`
	IsSignupEnabled         Flag   `json:"is_signup_enabled,omitempty"`
	// OrgConnectionName is the association's organization_connection_name
	// (1 to 50 characters); "" means not given.
	OrgConnectionName string `json:"organization_connection_name,omitempty"`
	// AccessLevel is the association's organization_access_level; "" means
	// not given.
	AccessLevel AccessLevel `json:"organization_access_level,omitempty"`
	// OrgName is the organization's name: it stands for OrgID when OrgID is
	// empty.
	OrgName string `json:"org_name,omitempty"`
	// ConnectionName is the connection's name: it stands for ConnectionID
	// when ConnectionID is empty.
	ConnectionName string `json:"connection_name,omitempty"`
}

// Field names, as they appear in CSV headers, JSON bodies and error messages.
const (
	FieldAction            = "action"
	FieldOrgID             = "org_id"
	FieldConnectionID      = "connection_id"
	FieldAssign            = "assign_membership_on_login"
	FieldShowAsButton      = "show_as_button"
	FieldSignup            = "is_signup_enabled"
	FieldOrgConnectionName = "organization_connection_name"
	FieldAccessLevel       = "organization_access_level"
	FieldOrgName           = "org_name"
	FieldConnectionName    = "connection_name"
)

// MaxIDLength is the Management API's limit on organization and connection
// ids, in characters.
const MaxIDLength = 50

// Limits of names, in characters.
const (
	// MaxOrgNameLength bounds an organization's name.
	MaxOrgNameLength = 50
	// MaxConnectionNameLength bounds a connection's name.
	MaxConnectionNameLength = 128
	// MaxOrgConnectionNameLength bounds an organization_connection_name.
	MaxOrgConnectionNameLength = 50
)

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

// HasFlags reports whether any of the three flags is given.
func (c Change) HasFlags() bool {
	return c.AssignMembershipOnLogin.Set() || c.ShowAsButton.Set() || c.IsSignupEnabled.Set()
}

// HasSettings reports whether any setting of the association is given: a
// flag, the organization_connection_name or the organization_access_level.
func (c Change) HasSettings() bool {
	return c.HasFlags() || c.OrgConnectionName != "" || c.AccessLevel != ""
}

// NeedsConnectionsAPI reports whether the change can only be made through
// the Organization connections endpoints (/organizations/{id}/connections):
// a disable, or an organization_connection_name or organization_access_level
// given. Such a change is refused on a tenant in legacy mode. Names
// (org_name, connection_name) do not need it: they are looked up through
// endpoints every tenant has.
func (c Change) NeedsConnectionsAPI() bool {
	return c.Action == Disable || c.OrgConnectionName != "" || c.AccessLevel != ""
}

// Unresolved reports whether a side of the pair is given by its name only,
// so that the name must be looked up before the change reaches the API.
func (c Change) Unresolved() bool {
	return c.OrgID == "" && c.OrgName != "" || c.ConnectionID == "" && c.ConnectionName != ""
}

// OrgKey is the organization side of PairKey: the id when given, else
// "name:" and the name.
func (c Change) OrgKey() string {
	if c.OrgID != "" || c.OrgName == "" {
		return c.OrgID
	}
	return NameKeyPrefix + c.OrgName
}

// ConnectionKey is the connection side of PairKey: the id when given, else
// "name:" and the name.
func (c Change) ConnectionKey() string {
	if c.ConnectionID != "" || c.ConnectionName == "" {
		return c.ConnectionID
	}
	return NameKeyPrefix + c.ConnectionName
}

// NameKeyPrefix starts a side of a PairKey given by name. Neither ids nor
// names contain ':', so a key side is an id or a name, never ambiguous.
const NameKeyPrefix = "name:"

// PairKey identifies the change's pair for per-pair order and supersession:
// "org/connection", each side its id, or "name:" and its name when only the
// name is given. For a change with both ids it is OrgID + "/" +
// ConnectionID, the key orgconn has always used.
//
// The rule: a pair is keyed by ids. Producers resolve names to ids before
// they enqueue whenever they can (orgconn import with credentials, serve
// with a resolver), so keys are ids. A change enqueued with a name
// unresolved is ordered only with the changes that name its pair the same
// way: two rows for one pair, one by id and one by name, are then two pairs
// whose relative order is not kept. Files imported without credentials
// should name each organization and connection one way throughout.
func (c Change) PairKey() string { return c.OrgKey() + "/" + c.ConnectionKey() }

// Validate returns every problem with the change, in field order; none means
// the change is well formed. It does not know the tenant: an unknown org or
// name is found only by the API, and neither is the rule that a level other
// than none needs an organization_connection_name checked here, since the
// association may already have a name (the API refuses a write that would
// leave a level without a name; see AccessLevel.NeedsName).
func (c Change) Validate() []FieldError {
	var errs []FieldError
	switch c.Action {
	case Enable, Disable, Update, Remove:
	case "":
		errs = append(errs, FieldError{FieldAction, "is empty: use " + ActionNames})
	default:
		errs = append(errs, FieldError{FieldAction, fmt.Sprintf("%s is not an action: use %s", quoteShort(string(c.Action)), ActionNames)})
	}
	switch {
	case c.OrgID == "" && c.OrgName == "":
		errs = append(errs, FieldError{FieldOrgID, "is empty: give an org_id or an org_name"})
	case c.OrgID != "":
		if p := CheckID(c.OrgID); p != "" {
			errs = append(errs, FieldError{FieldOrgID, p})
		}
	}
	if c.OrgName != "" {
		if p := CheckOrgName(c.OrgName); p != "" {
			errs = append(errs, FieldError{FieldOrgName, p})
		}
	}
	switch {
	case c.ConnectionID == "" && c.ConnectionName == "":
		errs = append(errs, FieldError{FieldConnectionID, "is empty: give a connection_id or a connection_name"})
	case c.ConnectionID != "":
		if p := CheckID(c.ConnectionID); p != "" {
			errs = append(errs, FieldError{FieldConnectionID, p})
		}
	}
	if c.ConnectionName != "" {
		if p := CheckConnectionName(c.ConnectionName); p != "" {
			errs = append(errs, FieldError{FieldConnectionName, p})
		}
	}
	if c.OrgConnectionName != "" {
		if p := CheckOrgConnectionName(c.OrgConnectionName); p != "" {
			errs = append(errs, FieldError{FieldOrgConnectionName, p})
		}
	}
	if c.AccessLevel != "" && !c.AccessLevel.Valid() {
		errs = append(errs, FieldError{FieldAccessLevel, fmt.Sprintf("%s is not one of none, readonly, limited, full", quoteShort(string(c.AccessLevel)))})
	}
	switch c.Action {
	case Remove:
		for _, f := range c.Flags() {
			if f.Value.Set() {
				errs = append(errs, FieldError{f.Name, "is not allowed on remove: leave it empty"})
			}
		}
		if c.OrgConnectionName != "" {
			errs = append(errs, FieldError{FieldOrgConnectionName, "is not allowed on remove: leave it empty"})
		}
		if c.AccessLevel != "" {
			errs = append(errs, FieldError{FieldAccessLevel, "is not allowed on remove: leave it empty"})
		}
	case Update:
		if !c.HasSettings() {
			errs = append(errs, FieldError{FieldAction, "update needs at least one of assign_membership_on_login, show_as_button, is_signup_enabled, organization_connection_name, organization_access_level"})
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

// OrgNameCharacters says which characters an organization name may hold.
const OrgNameCharacters = `only lowercase letters, digits, "_" and "-" are allowed`

// CheckOrgName returns what is wrong with an organization name, or "" when
// it is acceptable: 1 to 50 characters, each a lowercase ASCII letter, digit,
// '_' or '-', not starting with "org_" (a value starting "org_" is an
// organization id: it goes in org_id).
func CheckOrgName(name string) string {
	if p := checkLength(name, MaxOrgNameLength); p != "" {
		return p
	}
	for _, r := range name {
		if !('a' <= r && r <= 'z' || '0' <= r && r <= '9' || r == '_' || r == '-') {
			return fmt.Sprintf("%s contains %s: %s", quoteShort(name), quoteShort(string(r)), OrgNameCharacters)
		}
	}
	if strings.HasPrefix(name, "org_") {
		return fmt.Sprintf("%s starts with \"org_\": that is an organization id, give it as org_id", quoteShort(name))
	}
	return ""
}

// ConnectionNameCharacters says which characters a connection name may hold.
const ConnectionNameCharacters = `only letters, digits and "-" are allowed`

// CheckConnectionName returns what is wrong with a connection name, or ""
// when it is acceptable: 1 to 128 characters, each an ASCII letter, digit or
// '-'.
func CheckConnectionName(name string) string {
	if p := checkLength(name, MaxConnectionNameLength); p != "" {
		return p
	}
	for _, r := range name {
		if !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '-') {
			return fmt.Sprintf("%s contains %s: %s", quoteShort(name), quoteShort(string(r)), ConnectionNameCharacters)
		}
	}
	return ""
}

// CheckOrgConnectionName returns what is wrong with an
// organization_connection_name, or "" when it is acceptable. Auth0 documents
// only its length, 1 to 50 characters; orgconn checks that and refuses
// besides only what cannot be meant: invalid UTF-8, control characters, and
// white space at either end (a CSV cell's stray spaces). Any other
// character is sent as given (it travels in a JSON body, never in a URL).
func CheckOrgConnectionName(name string) string {
	if p := checkLength(name, MaxOrgConnectionNameLength); p != "" {
		return p
	}
	for _, r := range name {
		if unicode.IsControl(r) {
			return fmt.Sprintf("%s contains the control character %s", quoteShort(name), quoteShort(string(r)))
		}
	}
	if strings.TrimSpace(name) != name {
		return fmt.Sprintf("%s begins or ends with white space", quoteShort(name))
	}
	return ""
}

// checkLength returns what is wrong with the length or encoding of a name of
// at most max characters, or "".
func checkLength(s string, max int) string {
	if s == "" {
		return "is empty"
	}
	if !utf8.ValidString(s) {
		return "is not valid UTF-8"
	}
	if n := utf8.RuneCountInString(s); n > max {
		return fmt.Sprintf("%s is %d characters, the limit is %d", quoteShort(s), n, max)
	}
	return ""
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
// "enable org_1/con_2 assign_membership_on_login=true"; a side given only by
// name shows as "name:acme", and an organization_connection_name is quoted.
func (c Change) String() string {
	var b strings.Builder
	b.WriteString(string(c.Action))
	b.WriteByte(' ')
	b.WriteString(c.PairKey())
	for _, f := range c.Flags() {
		if f.Value.Set() {
			b.WriteByte(' ')
			b.WriteString(f.Name)
			b.WriteByte('=')
			b.WriteString(f.Value.String())
		}
	}
	if c.OrgConnectionName != "" {
		fmt.Fprintf(&b, " %s=%q", FieldOrgConnectionName, c.OrgConnectionName)
	}
	if c.AccessLevel != "" {
		b.WriteString(" " + FieldAccessLevel + "=" + string(c.AccessLevel))
	}
	return b.String()
}
