package mgmttest

import (
	"maps"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// op is one of the calls the simulator serves.
type op int

const (
	opList op = iota + 1
	opCreate
	opGet
	opUpdate
	opDelete
	opListConnections // GET /api/v2/connections
)

// api tells which family of endpoints a route belongs to.
type api int

const (
	apiLegacy      api = iota // /organizations/{id}/enabled_connections[/{connectionId}]
	apiNewer                  // /organizations/{id}/connections[/{connection_id}] (Early Access)
	apiConnections            // /connections
)

// route is a matched /api/v2 request: the call, its family, its route template, the decoded
// path parameters and the scope it needs.
type route struct {
	op       op
	api      api
	template string
	org      string
	conn     string
	scope    string
}

// isWrite reports whether the call changes state (and uses the write bucket).
func (rt route) isWrite() bool { return rt.op == opCreate || rt.op == opUpdate || rt.op == opDelete }

// matchRoute matches method and the escaped path against the calls served. Path segments are
// URL-decoded; empty ones are kept, so that a missing id is a validation error, not a 404.
func matchRoute(method, escapedPath string) (route, bool) {
	if escapedPath == RouteConnections {
		if method != http.MethodGet {
			return route{}, false
		}
		return route{op: opListConnections, api: apiConnections, template: RouteConnections, scope: ScopeReadConnections}, true
	}
	rest, found := strings.CutPrefix(escapedPath, "/api/v2/organizations/")
	if !found {
		return route{}, false
	}
	segs := strings.Split(rest, "/")
	if len(segs) < 2 || len(segs) > 3 {
		return route{}, false
	}
	var family api
	var listTemplate, oneTemplate string
	switch segs[1] {
	case "enabled_connections":
		family, listTemplate, oneTemplate = apiLegacy, RouteEnabledConnections, RouteEnabledConnection
	case "connections":
		family, listTemplate, oneTemplate = apiNewer, RouteOrgConnections, RouteOrgConnection
	default:
		return route{}, false
	}
	org, err := url.PathUnescape(segs[0])
	if err != nil {
		return route{}, false
	}
	if len(segs) == 2 {
		rt := route{api: family, template: listTemplate, org: org}
		switch method {
		case http.MethodGet:
			rt.op, rt.scope = opList, ScopeRead
		case http.MethodPost:
			rt.op, rt.scope = opCreate, ScopeCreate
		default:
			return route{}, false
		}
		return rt, true
	}
	conn, err := url.PathUnescape(segs[2])
	if err != nil {
		return route{}, false
	}
	rt := route{api: family, template: oneTemplate, org: org, conn: conn}
	switch method {
	case http.MethodGet:
		rt.op, rt.scope = opGet, ScopeRead
	case http.MethodPatch:
		rt.op, rt.scope = opUpdate, ScopeUpdate
	case http.MethodDelete:
		rt.op, rt.scope = opDelete, ScopeDelete
	default:
		return route{}, false
	}
	return rt, true
}

// apiRequest is what the calls need from an HTTP request, read before Server.mu is taken.
type apiRequest struct {
	route
	query       url.Values
	contentType string
	correlation string // X-Correlation-ID
	body        []byte
	bodyErr     error
}

// enabledConnectionBody is the JSON of one enabled connection in responses.
type enabledConnectionBody struct {
	ConnectionID            string         `json:"connection_id"`
	AssignMembershipOnLogin bool           `json:"assign_membership_on_login"`
	ShowAsButton            bool           `json:"show_as_button"`
	IsSignupEnabled         bool           `json:"is_signup_enabled"`
	Connection              connectionBody `json:"connection"`
}

type connectionBody struct {
	Name     string `json:"name"`
	Strategy string `json:"strategy"`
}

// listWithTotals is the list answer with include_totals=true.
type listWithTotals struct {
	EnabledConnections []enabledConnectionBody `json:"enabled_connections"`
	Start              int                     `json:"start"`
	Limit              int                     `json:"limit"`
	Total              int                     `json:"total"`
}

// view renders ec with its connection's name and strategy. Called with s.mu held.
func (s *Server) view(ec EnabledConnection) enabledConnectionBody {
	c := s.tenant.conns[ec.ConnectionID]
	return enabledConnectionBody{
		ConnectionID:            ec.ConnectionID,
		AssignMembershipOnLogin: ec.AssignMembershipOnLogin,
		ShowAsButton:            ec.ShowAsButton,
		IsSignupEnabled:         ec.IsSignupEnabled,
		Connection:              connectionBody{Name: c.Name, Strategy: c.Strategy},
	}
}

// signupAllowed reports whether ec satisfies Auth0's rule: is_signup_enabled=true needs a
// database connection with assign_membership_on_login=true.
func (s *Server) signupAllowed(ec EnabledConnection) bool {
	return !ec.IsSignupEnabled || (s.tenant.conns[ec.ConnectionID].Strategy == databaseStrategy && ec.AssignMembershipOnLogin)
}

// call validates and performs req against the tenant. Called with s.mu held, after
// authentication, rate limiting and the pre-apply faults.
func (s *Server) call(req apiRequest) result {
	switch req.api {
	case apiConnections:
		return s.listConnections(req)
	case apiNewer:
		return s.callNewer(req)
	}
	if res, ok := checkPath(req.org, req.conn, req.op != opList && req.op != opCreate, "connectionId"); !ok {
		return res
	}
	switch req.op {
	case opList:
		return s.list(req)
	case opCreate:
		return s.create(req)
	case opGet:
		return s.get(req)
	case opUpdate:
		return s.update(req)
	default:
		return s.remove(req)
	}
}

func (s *Server) list(req apiRequest) result {
	q, res, ok := parseListQuery(req.query)
	if !ok {
		return res
	}
	enabled, known := s.tenant.orgs[req.org]
	if !known {
		return fail(http.StatusNotFound, msgNoOrganization, "")
	}
	// The legacy endpoints do not show disabled associations.
	var ids []string
	for _, id := range slices.Sorted(maps.Keys(enabled)) {
		if !enabled[id].Disabled {
			ids = append(ids, id)
		}
	}
	items := []enabledConnectionBody{}
	start := math.MaxInt
	if q.page <= math.MaxInt/q.perPage {
		start = q.page * q.perPage
	}
	for i := start; i < len(ids) && i < start+q.perPage; i++ {
		items = append(items, s.view(enabled[ids[i]]))
	}
	if !q.totals {
		return ok200(items)
	}
	return ok200(listWithTotals{EnabledConnections: items, Start: start, Limit: len(items), Total: len(ids)})
}

func (s *Server) get(req apiRequest) result {
	enabled, known := s.tenant.orgs[req.org]
	if !known {
		return fail(http.StatusNotFound, msgNoOrganization, "")
	}
	ec, on := enabled[req.conn]
	if !on || ec.Disabled {
		return fail(http.StatusNotFound, msgNoConnection, "")
	}
	return ok200(s.view(ec))
}

func (s *Server) create(req apiRequest) result {
	p, res, ok := parsePayload(req.contentType, req.body, req.bodyErr, true)
	if !ok {
		return res
	}
	enabled, known := s.tenant.orgs[req.org]
	if !known {
		return fail(http.StatusNotFound, msgNoOrganization, "")
	}
	if _, exists := s.tenant.conns[p.connectionID]; !exists {
		return fail(http.StatusNotFound, msgNoConnection, "")
	}
	ec, already := enabled[p.connectionID]
	switch {
	case already && (ec.Disabled || s.cfg.EnableExisting == Conflict409):
		// A disabled association exists though the legacy endpoints do not show it: whatever
		// the policy, a legacy POST does not switch it on.
		return fail(http.StatusConflict, msgAlreadyEnabled, codeAlreadyEnabled)
	case !already:
		ec = EnabledConnection{ConnectionID: p.connectionID, ShowAsButton: true}
	}
	ec = p.applyTo(ec)
	if !s.signupAllowed(ec) {
		return fail(http.StatusBadRequest, msgSignupNeedsDatabase, codeInvalidBody)
	}
	enabled[ec.ConnectionID] = ec
	return result{status: http.StatusCreated, body: s.view(ec), conn: ec.ConnectionID}
}

func (s *Server) update(req apiRequest) result {
	p, res, ok := parsePayload(req.contentType, req.body, req.bodyErr, false)
	if !ok {
		return res
	}
	enabled, known := s.tenant.orgs[req.org]
	if !known {
		return fail(http.StatusNotFound, msgNoOrganization, "")
	}
	ec, on := enabled[req.conn]
	if !on || ec.Disabled {
		return fail(http.StatusNotFound, msgNoConnection, "")
	}
	ec = p.applyTo(ec)
	if !s.signupAllowed(ec) {
		return fail(http.StatusBadRequest, msgSignupNeedsDatabase, codeInvalidBody)
	}
	enabled[req.conn] = ec
	res = ok200(s.view(ec))
	res.conn = req.conn
	return res
}

func (s *Server) remove(req apiRequest) result {
	enabled, known := s.tenant.orgs[req.org]
	if !known {
		return fail(http.StatusNotFound, msgNoOrganization, "")
	}
	// A disabled association is, to the legacy endpoints, not there: it is left as it is.
	if ec, on := enabled[req.conn]; !on || ec.Disabled {
		if s.cfg.RemoveMissing == NoContent204 {
			return result{status: http.StatusNoContent, conn: req.conn}
		}
		return fail(http.StatusNotFound, msgNoConnection, "")
	}
	delete(enabled, req.conn)
	return result{status: http.StatusNoContent, conn: req.conn}
}

// applyTo returns ec with the flags given in p set.
func (p payload) applyTo(ec EnabledConnection) EnabledConnection {
	if p.assign != nil {
		ec.AssignMembershipOnLogin = *p.assign
	}
	if p.signup != nil {
		ec.IsSignupEnabled = *p.signup
	}
	if p.show != nil {
		ec.ShowAsButton = *p.show
	}
	return ec
}

func ok200(body any) result { return result{status: http.StatusOK, body: body} }
