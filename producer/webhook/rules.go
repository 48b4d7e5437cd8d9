package webhook

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/orgconn/orgconn/jobs"
	"gopkg.in/yaml.v3"
)

// Rule event types: the events whose data.object is an organization.
const (
	EventOrganizationCreated = "organization.created"
	EventOrganizationUpdated = "organization.updated"
)

// RuleEventTypes returns the event types a rule may name.
func RuleEventTypes() []string {
	return []string{EventOrganizationCreated, EventOrganizationUpdated}
}

// MaxRuleChanges bounds the changes of all rules of a file together, so that
// one event never asks for more than one batch can hold.
const MaxRuleChanges = 1000

// Rules say which changes an event calls for. A nil *Rules handles no event.
// Rules are immutable once parsed and safe for concurrent use.
type Rules struct{ list []Rule }

// Rule is one rule: for events of type Event about an organization that
// Match accepts, apply Changes to that organization.
type Rule struct {
	Event string
	Match Match
	// Changes have an empty OrgID: the organization comes from the event.
	Changes []jobs.Change
}

// Match selects organizations. Every condition given must hold; the zero
// Match accepts every organization.
type Match struct {
	// Name, if not empty, must be the organization's name exactly.
	Name string
	// NamePrefix, if not empty, must begin the organization's name
	// (case-sensitive).
	NamePrefix string
	// Metadata, if not empty, must each be present in the organization's
	// metadata with exactly this value.
	Metadata map[string]string
}

// Matches reports whether org satisfies every condition of m.
func (m Match) Matches(org Organization) bool {
	if m.Name != "" && org.Name != m.Name {
		return false
	}
	if m.NamePrefix != "" && !strings.HasPrefix(org.Name, m.NamePrefix) {
		return false
	}
	for k, v := range m.Metadata {
		if got, ok := org.Metadata[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// Handles reports whether some rule names eventType. Events of other types
// are acknowledged and ignored.
func (r *Rules) Handles(eventType string) bool {
	if r == nil {
		return false
	}
	for _, rule := range r.list {
		if rule.Event == eventType {
			return true
		}
	}
	return false
}

// ChangesFor returns the changes every rule for eventType whose match
// accepts org calls for, in file order, with OrgID set to org.ID. None means
// no rule matched.
func (r *Rules) ChangesFor(eventType string, org Organization) []jobs.Change {
	if r == nil {
		return nil
	}
	var out []jobs.Change
	for _, rule := range r.list {
		if rule.Event != eventType || !rule.Match.Matches(org) {
			continue
		}
		for _, c := range rule.Changes {
			c.OrgID = org.ID
			out = append(out, c)
		}
	}
	return out
}

// List returns a copy of the rules, in file order.
func (r *Rules) List() []Rule {
	if r == nil {
		return nil
	}
	out := make([]Rule, len(r.list))
	copy(out, r.list)
	return out
}

// The file format. Both YAML and JSON tags: one layout, two syntaxes.
type rulesFile struct {
	Rules []ruleSpec `yaml:"rules" json:"rules"`
}

type ruleSpec struct {
	Event   string       `yaml:"event" json:"event"`
	Match   *matchSpec   `yaml:"match" json:"match"`
	Changes []changeSpec `yaml:"changes" json:"changes"`
}

type matchSpec struct {
	Name       *string           `yaml:"name" json:"name"`
	NamePrefix *string           `yaml:"name_prefix" json:"name_prefix"`
	Metadata   map[string]string `yaml:"metadata" json:"metadata"`
}

type changeSpec struct {
	Action                     string      `yaml:"action" json:"action"`
	OrgID                      *string     `yaml:"org_id" json:"org_id"`
	OrgName                    *string     `yaml:"org_name" json:"org_name"`
	ConnectionID               string      `yaml:"connection_id" json:"connection_id"`
	ConnectionName             string      `yaml:"connection_name" json:"connection_name"`
	OrganizationConnectionName string      `yaml:"organization_connection_name" json:"organization_connection_name"`
	OrganizationAccessLevel    string      `yaml:"organization_access_level" json:"organization_access_level"`
	AssignMembershipOnLogin    *strictBool `yaml:"assign_membership_on_login" json:"assign_membership_on_login"`
	ShowAsButton               *strictBool `yaml:"show_as_button" json:"show_as_button"`
	IsSignupEnabled            *strictBool `yaml:"is_signup_enabled" json:"is_signup_enabled"`
}

// strictBool is a flag in a rules file: a YAML or JSON boolean, never a
// string such as "true" or yes.
type strictBool bool

// UnmarshalYAML accepts only an unquoted true or false.
func (b *strictBool) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!bool" {
		switch strings.ToLower(n.Value) {
		case "true":
			*b = true
			return nil
		case "false":
			*b = false
			return nil
		}
	}
	return fmt.Errorf("line %d: %s is not a flag value: use true or false, unquoted", n.Line, quoteShort(n.Value))
}

// LoadRules reads a rules file: JSON when its name ends in .json, else YAML.
// Errors name the file, the rule's index and the field.
func LoadRules(path string) (*Rules, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("rules file: %w", err)
	}
	format := "yaml"
	if strings.EqualFold(filepath.Ext(path), ".json") {
		format = "json"
	}
	r, err := ParseRules(data, format)
	if err != nil {
		return nil, fmt.Errorf("rules file %s: %w", path, err)
	}
	return r, nil
}

// ParseRules parses a rules document in format "yaml" or "json" and checks
// every rule. Unknown fields are refused. The error lists every problem, one
// per line, each naming the place, e.g. "rules[1].changes[0].org_id: must not
// be set: the organization comes from the event".
func ParseRules(data []byte, format string) (*Rules, error) {
	var f rulesFile
	switch format {
	case "json":
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&f); err != nil {
			return nil, fmt.Errorf("not valid rules JSON: %s", strings.TrimPrefix(err.Error(), "json: "))
		}
		if dec.More() {
			return nil, errors.New("not valid rules JSON: more data after the document")
		}
	case "yaml":
		dec := yaml.NewDecoder(bytes.NewReader(data))
		dec.KnownFields(true)
		if err := dec.Decode(&f); err != nil && err != io.EOF {
			return nil, fmt.Errorf("not valid rules YAML: %s", strings.TrimPrefix(err.Error(), "yaml: "))
		}
	default:
		return nil, fmt.Errorf("rules format %q: want yaml or json", format)
	}
	return f.check()
}

// check turns the parsed file into Rules, reporting every problem.
func (f rulesFile) check() (*Rules, error) {
	var errs []error
	bad := func(place, problem string) { errs = append(errs, fmt.Errorf("%s: %s", place, problem)) }
	if len(f.Rules) == 0 {
		bad("rules", "no rules: give at least one (see testdata/rules.example.yaml)")
	}
	out := &Rules{}
	total := 0
	for i, spec := range f.Rules {
		at := fmt.Sprintf("rules[%d]", i)
		rule := Rule{Event: spec.Event}
		switch {
		case spec.Event == "":
			bad(at+".event", "is missing: name the event type, e.g. "+EventOrganizationCreated)
		case !isRuleEvent(spec.Event):
			bad(at+".event", fmt.Sprintf("%s is not supported: use %s", quoteShort(spec.Event), strings.Join(RuleEventTypes(), " or ")))
		}
		if m := spec.Match; m != nil {
			if m.Name != nil {
				if p := jobs.CheckOrgName(*m.Name); p != "" {
					bad(at+".match.name", p)
				}
				rule.Match.Name = *m.Name
			}
			if m.NamePrefix != nil {
				if *m.NamePrefix == "" {
					bad(at+".match.name_prefix", "is empty: leave it out to match every name")
				}
				rule.Match.NamePrefix = *m.NamePrefix
			}
			for k, v := range m.Metadata {
				if k == "" {
					bad(at+".match.metadata", "has an empty key")
				}
				if rule.Match.Metadata == nil {
					rule.Match.Metadata = map[string]string{}
				}
				rule.Match.Metadata[k] = v
			}
		}
		if len(spec.Changes) == 0 {
			bad(at+".changes", "is empty: give at least one change")
		}
		for j, cs := range spec.Changes {
			cat := fmt.Sprintf("%s.changes[%d]", at, j)
			c, problems := cs.change()
			for _, p := range problems {
				bad(cat+"."+p.Field, p.Problem)
			}
			rule.Changes = append(rule.Changes, c)
		}
		total += len(spec.Changes)
		out.list = append(out.list, rule)
	}
	if total > MaxRuleChanges {
		bad("rules", fmt.Sprintf("%d changes in all, the limit is %d", total, MaxRuleChanges))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

func isRuleEvent(t string) bool {
	for _, s := range RuleEventTypes() {
		if s == t {
			return true
		}
	}
	return false
}

// placeholderOrg stands in for the event's organization when a rule's change
// is validated at load time.
const placeholderOrg = "org_placeholder"

// change converts a change of a rule and validates it as it will be sent,
// with the organization still to come.
func (cs changeSpec) change() (jobs.Change, []jobs.FieldError) {
	var problems []jobs.FieldError
	c := jobs.Change{ConnectionID: cs.ConnectionID, ConnectionName: cs.ConnectionName, OrgConnectionName: cs.OrganizationConnectionName}
	if a, ok := jobs.ParseAction(cs.Action); ok {
		c.Action = a
	} else {
		c.Action = jobs.Action(cs.Action)
	}
	if cs.OrgID != nil {
		problems = append(problems, jobs.FieldError{Field: jobs.FieldOrgID, Problem: "must not be set: the organization comes from the event"})
	}
	if cs.OrgName != nil {
		problems = append(problems, jobs.FieldError{Field: jobs.FieldOrgName, Problem: "must not be set: the organization comes from the event (to select organizations by name, use match.name)"})
	}
	if cs.OrganizationAccessLevel != "" {
		l, err := jobs.ParseAccessLevel(cs.OrganizationAccessLevel)
		if err != nil {
			problems = append(problems, jobs.FieldError{Field: jobs.FieldAccessLevel, Problem: err.Error()})
			l = jobs.LevelNone
		}
		c.AccessLevel = l
	}
	for _, f := range []struct {
		v   *strictBool
		out *jobs.Flag
	}{{cs.AssignMembershipOnLogin, &c.AssignMembershipOnLogin}, {cs.ShowAsButton, &c.ShowAsButton}, {cs.IsSignupEnabled, &c.IsSignupEnabled}} {
		if f.v != nil {
			*f.out = jobs.FlagOf(bool(*f.v))
		}
	}
	c.OrgID = placeholderOrg
	for _, fe := range c.Validate() {
		if fe.Field == "" {
			fe.Field = "change"
		}
		problems = append(problems, fe)
	}
	c.OrgID = ""
	return c, problems
}
