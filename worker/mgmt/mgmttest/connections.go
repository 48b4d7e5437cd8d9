package mgmttest

import (
	"fmt"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// GET /api/v2/connections (scope read:connections): the tenant's connections, in index order,
// filtered by name (exact) and strategy (repeatable), with offset paging (page, per_page,
// include_totals) or checkpoint paging (take, from).

// connectionsWithTotals is the offset-paged answer with include_totals=true.
type connectionsWithTotals struct {
	Connections []map[string]any `json:"connections"`
	Start       int              `json:"start"`
	Limit       int              `json:"limit"`
	Total       int              `json:"total"`
}

// connectionsCheckpoint is the checkpoint-paged answer: next is left out on the last page.
type connectionsCheckpoint struct {
	Connections []map[string]any `json:"connections"`
	Next        string           `json:"next,omitempty"`
}

// connectionFields are the fields of a connection in the answers, and the values fields may
// name.
var connectionFields = []string{"id", "name", "strategy", "display_name", "is_domain_connection", "realms"}

// connectionView renders c with the fields chosen (nil: all).
func connectionView(c Connection, fields map[string]bool) map[string]any {
	all := map[string]any{
		"id":                   c.ID,
		"name":                 c.Name,
		"strategy":             c.Strategy,
		"display_name":         c.Name,
		"is_domain_connection": false,
		"realms":               []string{c.Name},
	}
	if fields == nil {
		return all
	}
	out := make(map[string]any, len(fields))
	for f := range fields {
		if v, ok := all[f]; ok {
			out[f] = v
		}
	}
	return out
}

// connectionsQuery is the validated query of GET /api/v2/connections.
type connectionsQuery struct {
	listQuery
	checkpoint bool
	take       int
	from       string
	name       string
	hasName    bool
	strategies []string
	fields     map[string]bool // nil: every field
}

// parseConnectionsQuery validates the query of GET /api/v2/connections. Checkpoint paging
// (take, from) cannot be combined with page, per_page or include_totals.
func parseConnectionsQuery(q url.Values) (connectionsQuery, result, bool) {
	cq := connectionsQuery{take: defaultPerPage}
	bad := func(what, prop string) (connectionsQuery, result, bool) {
		return cq, fail(http.StatusBadRequest, onProperty("Query", what, prop), codeInvalidQuery), false
	}
	_, hasTake := q["take"]
	_, hasFrom := q["from"]
	cq.checkpoint = hasTake || hasFrom
	if cq.checkpoint {
		for _, p := range []string{"page", "per_page", "include_totals"} {
			if _, given := q[p]; given {
				return cq, fail(http.StatusBadRequest, fmt.Sprintf("Query validation error: '%s cannot be used with checkpoint pagination (take, from)'.", p), codeInvalidQuery), false
			}
		}
		if vs := q["take"]; hasTake {
			if len(vs) > 1 {
				return bad("Expected type integer but found type array", "take")
			}
			n, err := strconv.Atoi(vs[0])
			switch {
			case err != nil:
				return bad("Expected type integer but found type string", "take")
			case n < 1:
				return bad(fmt.Sprintf("Value %d is less than minimum 1", n), "take")
			case n > maxPerPage:
				return bad(fmt.Sprintf("Value %d is greater than maximum %d", n, maxPerPage), "take")
			}
			cq.take = n
		}
		if vs := q["from"]; hasFrom {
			if len(vs) > 1 {
				return bad("Expected type string but found type array", "from")
			}
			cq.from = vs[0]
		}
	} else {
		lq, res, ok := parseListQuery(q)
		if !ok {
			return cq, res, false
		}
		cq.listQuery = lq
	}
	if vs, given := q["name"]; given {
		if len(vs) > 1 {
			return bad("Expected type string but found type array", "name")
		}
		cq.name, cq.hasName = vs[0], true
	}
	cq.strategies = q["strategy"]
	include := true
	if vs, given := q["include_fields"]; given {
		switch {
		case len(vs) > 1:
			return bad("Expected type boolean but found type array", "include_fields")
		case vs[0] == "true":
		case vs[0] == "false":
			include = false
		default:
			return bad("Expected type boolean but found type string", "include_fields")
		}
	}
	if vs, given := q["fields"]; given {
		if len(vs) > 1 {
			return bad("Expected type string but found type array", "fields")
		}
		named := map[string]bool{}
		for f := range strings.SplitSeq(vs[0], ",") {
			if f = strings.TrimSpace(f); f != "" {
				named[f] = true
			}
		}
		if len(named) > 0 {
			cq.fields = named
			if !include {
				cq.fields = map[string]bool{}
				for _, f := range connectionFields {
					if !named[f] {
						cq.fields[f] = true
					}
				}
			}
		}
	}
	return cq, result{}, true
}

// listConnections answers GET /api/v2/connections. Called with s.mu held.
func (s *Server) listConnections(req apiRequest) result {
	q, res, ok := parseConnectionsQuery(req.query)
	if !ok {
		return res
	}
	var matched []Connection
	for _, id := range s.tenant.connOrder {
		c := s.tenant.conns[id]
		if q.hasName && c.Name != q.name {
			continue
		}
		if len(q.strategies) > 0 && !slices.Contains(q.strategies, c.Strategy) {
			continue
		}
		matched = append(matched, c)
	}
	views := func(cs []Connection) []map[string]any {
		out := make([]map[string]any, 0, len(cs))
		for _, c := range cs {
			out = append(out, connectionView(c, q.fields))
		}
		return out
	}
	if q.checkpoint {
		start := 0
		if q.from != "" {
			start = slices.IndexFunc(matched, func(c Connection) bool { return c.ID == q.from })
			if start < 0 {
				return fail(http.StatusBadRequest, onProperty("Query", "Invalid checkpoint: no connection "+strconv.Quote(cut50(q.from)), "from"), codeInvalidQuery)
			}
		}
		end := min(start+q.take, len(matched))
		body := connectionsCheckpoint{Connections: views(matched[start:end])}
		if end < len(matched) {
			body.Next = matched[end].ID
		}
		return ok200(body)
	}
	start := math.MaxInt
	if q.page <= math.MaxInt/q.perPage {
		start = q.page * q.perPage
	}
	from := min(start, len(matched))
	page := matched[from:min(from+q.perPage, len(matched))]
	if !q.totals {
		return ok200(views(page))
	}
	return ok200(connectionsWithTotals{Connections: views(page), Start: start, Limit: q.perPage, Total: len(matched)})
}

// cut50 cuts v to 50 characters for an error message.
func cut50(v string) string {
	if r := []rune(v); len(r) > 50 {
		return string(r[:50]) + "…"
	}
	return v
}
