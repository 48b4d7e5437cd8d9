package mgmttest

import (
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
)

// The newer Organization connections endpoints (Early Access):
// /api/v2/organizations/{id}/connections (GET list, POST) and
// /api/v2/organizations/{id}/connections/{connection_id} (GET, PATCH, DELETE). They show
// every association, enabled or not, with organization_connection_name,
// organization_access_level and is_enabled besides the three legacy flags.

// Access levels of an organization connection: what the organization's own admins may do
// with it through the My Organization API.
const (
	accessNone     = "none"
	accessReadonly = "readonly"
	accessLimited  = "limited"
	accessFull     = "full"
)

// accessLevels are the allowed values of organization_access_level, in the schema's order.
var accessLevels = []string{accessNone, accessReadonly, accessLimited, accessFull}

// orgConnectionBody is the JSON of one association in the newer endpoints' answers. An unset
// name is left out.
type orgConnectionBody struct {
	ConnectionID            string         `json:"connection_id"`
	Name                    string         `json:"organization_connection_name,omitempty"`
	AccessLevel             string         `json:"organization_access_level"`
	IsEnabled               bool           `json:"is_enabled"`
	AssignMembershipOnLogin bool           `json:"assign_membership_on_login"`
	ShowAsButton            bool           `json:"show_as_button"`
	IsSignupEnabled         bool           `json:"is_signup_enabled"`
	Connection              connectionBody `json:"connection"`
}

// orgConnectionsWithTotals is the newer list's answer with include_totals=true; unlike the
// legacy list, limit is per_page (observed).
type orgConnectionsWithTotals struct {
	Connections []orgConnectionBody `json:"connections"`
	Start       int                 `json:"start"`
	Limit       int                 `json:"limit"`
	Total       int                 `json:"total"`
}

// newerView renders ec as the newer endpoints do. Called with s.mu held.
func (s *Server) newerView(ec EnabledConnection) orgConnectionBody {
	c := s.tenant.conns[ec.ConnectionID]
	level := ec.AccessLevel
	if level == "" {
		level = accessNone
	}
	return orgConnectionBody{
		ConnectionID:            ec.ConnectionID,
		Name:                    ec.Name,
		AccessLevel:             level,
		IsEnabled:               !ec.Disabled,
		AssignMembershipOnLogin: ec.AssignMembershipOnLogin,
		ShowAsButton:            ec.ShowAsButton,
		IsSignupEnabled:         ec.IsSignupEnabled,
		Connection:              connectionBody{Name: c.Name, Strategy: c.Strategy},
	}
}

// callNewer validates and performs a call to the newer endpoints. Called with s.mu held.
func (s *Server) callNewer(req apiRequest) result {
	if res, ok := checkPath(req.org, req.conn, req.op != opList && req.op != opCreate, "connection_id"); !ok {
		return res
	}
	switch req.op {
	case opList:
		return s.listNewer(req)
	case opCreate:
		return s.createNewer(req)
	case opGet:
		return s.getNewer(req)
	case opUpdate:
		return s.updateNewer(req)
	default:
		return s.removeNewer(req)
	}
}

func (s *Server) listNewer(req apiRequest) result {
	q, res, ok := parseListQuery(req.query)
	if !ok {
		return res
	}
	filter, res, ok := parseEnabledFilter(req.query)
	if !ok {
		return res
	}
	assoc, known := s.tenant.orgs[req.org]
	if !known {
		return fail(http.StatusNotFound, msgOrgNotExists, "")
	}
	var ids []string
	for _, id := range slices.Sorted(maps.Keys(assoc)) {
		if filter == nil || !assoc[id].Disabled == *filter {
			ids = append(ids, id)
		}
	}
	items := []orgConnectionBody{}
	start := math.MaxInt
	if q.page <= math.MaxInt/q.perPage {
		start = q.page * q.perPage
	}
	for i := start; i < len(ids) && i < start+q.perPage; i++ {
		items = append(items, s.newerView(assoc[ids[i]]))
	}
	s.connReads[req.org]++
	if !q.totals {
		return ok200(items)
	}
	return ok200(orgConnectionsWithTotals{Connections: items, Start: start, Limit: q.perPage, Total: len(ids)})
}

// isEnabledQueryDesc describes the list's is_enabled query parameter.
const isEnabledQueryDesc = "Return only the connections enabled (true) or disabled (false) for the organization."

// parseEnabledFilter validates the list's is_enabled query parameter; nil means not given.
func parseEnabledFilter(q url.Values) (*bool, result, bool) {
	vs, given := q["is_enabled"]
	if !given {
		return nil, result{}, true
	}
	bad := func(what string) (*bool, result, bool) {
		return nil, fail(http.StatusBadRequest, onPropertyWith("Query", what, "is_enabled", isEnabledQueryDesc), codeInvalidQuery), false
	}
	if len(vs) > 1 {
		return bad("Expected type boolean but found type array")
	}
	b, err := strconv.ParseBool(vs[0])
	if err != nil || (vs[0] != "true" && vs[0] != "false") {
		return bad("Expected type boolean but found type string")
	}
	return &b, result{}, true
}

func (s *Server) getNewer(req apiRequest) result {
	assoc, known := s.tenant.orgs[req.org]
	if !known {
		return fail(http.StatusNotFound, msgOrgNotExists, "")
	}
	ec, exists := assoc[req.conn]
	if !exists {
		return fail(http.StatusNotFound, msgOrgConnectionNotExists, "")
	}
	return ok200(s.newerView(ec))
}

func (s *Server) createNewer(req apiRequest) result {
	p, res, ok := parseNewerPayload(req.contentType, req.body, req.bodyErr, true)
	if !ok {
		return res
	}
	assoc, known := s.tenant.orgs[req.org]
	if !known {
		return fail(http.StatusNotFound, msgOrgNotExists, "")
	}
	if _, exists := s.tenant.conns[p.connectionID]; !exists {
		return fail(http.StatusNotFound, msgConnectionNotExists, "")
	}
	if _, exists := assoc[p.connectionID]; exists {
		return fail(http.StatusConflict, msgOrgConnectionExists, "")
	}
	ec := p.applyTo(EnabledConnection{ConnectionID: p.connectionID, ShowAsButton: true})
	if res, ok := s.checkRules(ec); !ok {
		return res
	}
	assoc[ec.ConnectionID] = ec
	return result{status: http.StatusCreated, body: s.newerView(ec), conn: ec.ConnectionID}
}

func (s *Server) updateNewer(req apiRequest) result {
	p, res, ok := parseNewerPayload(req.contentType, req.body, req.bodyErr, false)
	if !ok {
		return res
	}
	assoc, known := s.tenant.orgs[req.org]
	if !known {
		return fail(http.StatusNotFound, msgOrgNotExists, "")
	}
	ec, exists := assoc[req.conn]
	if !exists {
		return fail(http.StatusNotFound, msgOrgConnectionNotExists, "")
	}
	ec = p.applyTo(ec)
	if res, ok := s.checkRules(ec); !ok {
		return res
	}
	assoc[req.conn] = ec
	res = ok200(s.newerView(ec))
	res.conn = req.conn
	return res
}

// removeNewer deletes an association; one that is already gone answers 204 too (observed).
func (s *Server) removeNewer(req apiRequest) result {
	assoc, known := s.tenant.orgs[req.org]
	if !known {
		return fail(http.StatusNotFound, msgOrgNotExists, "")
	}
	delete(assoc, req.conn)
	return result{status: http.StatusNoContent, conn: req.conn}
}

// checkRules applies the rules on a whole association: is_signup_enabled as on the legacy
// endpoints, and a name for any access level other than none.
func (s *Server) checkRules(ec EnabledConnection) (result, bool) {
	if !s.signupAllowed(ec) {
		return fail(http.StatusBadRequest, msgSignupNeedsDatabase, codeInvalidBody), false
	}
	if ec.AccessLevel != "" && ec.Name == "" {
		return fail(http.StatusBadRequest, msgLevelNeedsName, codeInvalidBody), false
	}
	return result{}, true
}

// nullable is a body property of the newer endpoints that PATCH may set to null.
type nullable[T any] struct {
	given, null bool
	v           T
}

// newerPayload is a validated POST or PATCH body of the newer endpoints.
type newerPayload struct {
	payload
	name    nullable[string]
	level   nullable[string]
	enabled nullable[bool]
}

// Properties of the newer POST and PATCH bodies, in the order their types are checked.
var (
	newerCreateProperties = []string{"assign_membership_on_login", "connection_id", "is_enabled", "is_signup_enabled", "organization_access_level", "organization_connection_name", "show_as_button"}
	newerUpdateProperties = []string{"assign_membership_on_login", "is_enabled", "is_signup_enabled", "organization_access_level", "organization_connection_name", "show_as_button"}
	// newerNullable are the PATCH properties that may be null.
	newerNullable = []string{"is_enabled", "organization_access_level", "organization_connection_name"}
)

// parseNewerPayload validates a POST (create) or PATCH body of the newer endpoints:
// additionalProperties false, connection_id required on POST, at least one property on PATCH,
// types (null allowed only in PATCH, only for name, level and is_enabled), lengths (1–50), the
// access level's enum.
func parseNewerPayload(contentType string, body []byte, readErr error, create bool) (newerPayload, result, bool) {
	var p newerPayload
	invalid := func(msg string) (newerPayload, result, bool) {
		return p, fail(http.StatusBadRequest, msg, codeInvalidBody), false
	}
	props, res, ok := decodeObject(contentType, body, readErr)
	if !ok {
		return p, res, false
	}
	allowed := newerUpdateProperties
	if create {
		allowed = newerCreateProperties
	}
	if msg := checkPropertyNames(props, allowed, create); msg != "" {
		return invalid(msg)
	}
	for _, name := range allowed {
		raw, given := props[name]
		if !given {
			continue
		}
		want := "boolean"
		switch name {
		case "connection_id", "organization_connection_name", "organization_access_level":
			want = "string"
		}
		got := jsonType(raw)
		nullOK := !create && slices.Contains(newerNullable, name)
		if got == "null" && nullOK {
			switch name {
			case "organization_connection_name":
				p.name = nullable[string]{given: true, null: true}
			case "organization_access_level":
				p.level = nullable[string]{given: true, null: true}
			case "is_enabled":
				p.enabled = nullable[bool]{given: true, null: true}
			}
			continue
		}
		if got != want {
			expected := want
			if nullOK {
				expected += ",null"
			}
			return invalid(onProperty("Payload", fmt.Sprintf("Expected type %s but found type %s", expected, got), name))
		}
		var str string
		if want == "string" {
			_ = json.Unmarshal(raw, &str)
		}
		switch name {
		case "connection_id":
			if e := checkLength(str); e != "" {
				return invalid(onProperty("Payload", e, name))
			}
			p.connectionID = str
		case "organization_connection_name":
			if e := checkLength(str); e != "" {
				return invalid(onProperty("Payload", e, name))
			}
			p.name = nullable[string]{given: true, v: str}
		case "organization_access_level":
			if !slices.Contains(accessLevels, str) {
				return invalid(onProperty("Payload", fmt.Sprintf("No enum match for: %q", str), name))
			}
			p.level = nullable[string]{given: true, v: str}
		case "is_enabled":
			p.enabled = nullable[bool]{given: true, v: *decodeBool(raw)}
		case "assign_membership_on_login":
			p.assign = decodeBool(raw)
		case "is_signup_enabled":
			p.signup = decodeBool(raw)
		case "show_as_button":
			p.show = decodeBool(raw)
		}
	}
	return p, result{}, true
}

// applyTo returns ec with the properties given in p set. A null name unsets it; a null level
// sets "none"; a null is_enabled leaves the association as it is (what Auth0 does with it is
// not documented). On a create, an omitted is_enabled means enabled (not documented either:
// clients should send it).
func (p newerPayload) applyTo(ec EnabledConnection) EnabledConnection {
	ec = p.payload.applyTo(ec)
	if p.name.given {
		ec.Name = p.name.v // "" when null
	}
	if p.level.given {
		ec.AccessLevel = p.level.v
		if ec.AccessLevel == accessNone {
			ec.AccessLevel = ""
		}
	}
	if p.enabled.given && !p.enabled.null {
		ec.Disabled = !p.enabled.v
	}
	return ec
}
