package mgmttest

import (
	"fmt"
	"maps"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Route templates used in Stats keys.
const (
	RouteEnabledConnections = "/api/v2/organizations/{id}/enabled_connections"
	RouteEnabledConnection  = "/api/v2/organizations/{id}/enabled_connections/{connectionId}"
	// RouteOrgConnections and RouteOrgConnection are the newer Organization connections
	// endpoints (list and create; get, update and delete one).
	RouteOrgConnections = "/api/v2/organizations/{id}/connections"
	RouteOrgConnection  = "/api/v2/organizations/{id}/connections/{connection_id}"
	// RouteConnections is the tenant's connections listing, GET /api/v2/connections.
	RouteConnections = "/api/v2/connections"
	// RouteUnknown stands for every /api/v2 path and method that matches no route.
	RouteUnknown = "unknown"
)

// FaultKind names an injected fault in Stats.Faults.
type FaultKind string

// The injected faults.
const (
	FaultError5xx     FaultKind = "error_5xx"
	FaultError500     FaultKind = "error_500"
	FaultHTML502      FaultKind = "html_502"
	FaultDrop         FaultKind = "drop"
	FaultReset        FaultKind = "reset"
	FaultLostResponse FaultKind = "lost_response"
)

// Stats counts what the simulator has served. It is a snapshot: a copy, safe to keep and to
// encode as JSON (GET /sim/stats serves exactly this).
type Stats struct {
	// Total is the number of /api/v2 requests received, whatever their outcome.
	Total int `json:"total"`
	// ByRoute counts /api/v2 requests by "METHOD ROUTE STATUS", for example
	// "POST /api/v2/organizations/{id}/enabled_connections 201" (see StatsKey). STATUS is the
	// status sent, or 0 when no response was sent: dropped and lost responses, and requests
	// whose context ended during injected latency.
	ByRoute map[string]int `json:"by_route"`
	// Throttled is the number of 429 responses.
	Throttled int `json:"throttled"`
	// Writes is the number of POST, PATCH and DELETE requests that succeeded: 2xx responses
	// plus writes applied whose response was then lost.
	Writes int `json:"writes"`
	// Faults counts injected faults by kind; kinds never injected are absent.
	Faults map[FaultKind]int `json:"faults"`
	// TokensIssued is the number of tokens issued by /oauth/token (not IssueToken).
	TokensIssued int `json:"tokens_issued"`
	// TokensThrottled is the number of 429s /oauth/token sent (Config.TokenLimit).
	TokensThrottled int `json:"tokens_throttled,omitempty"`
	// FirstWrite and LastWrite are the Config.Now times of the first and last counted write;
	// zero (and omitted from JSON) before any.
	FirstWrite time.Time `json:"first_write,omitzero"`
	LastWrite  time.Time `json:"last_write,omitzero"`
}

// StatsKey returns the Stats.ByRoute key for method, route template and status.
func StatsKey(method, route string, status int) string {
	return method + " " + route + " " + strconv.Itoa(status)
}

// Count returns the number of requests with method to route that got status (0: no response).
func (st Stats) Count(method, route string, status int) int {
	return st.ByRoute[StatsKey(method, route, status)]
}

// Requests returns the number of requests with method that got status, over all routes;
// method "" matches every method.
func (st Stats) Requests(method string, status int) int {
	n := 0
	suffix := " " + strconv.Itoa(status)
	for k, c := range st.ByRoute {
		if !strings.HasSuffix(k, suffix) {
			continue
		}
		if method == "" || strings.HasPrefix(k, method+" ") {
			n += c
		}
	}
	return n
}

// String summarises the counters on one line, for test failure messages.
func (st Stats) String() string {
	return fmt.Sprintf("total=%d writes=%d throttled=%d faults=%v tokens=%d by_route=%v",
		st.Total, st.Writes, st.Throttled, st.Faults, st.TokensIssued, st.ByRoute)
}

// clone returns a deep copy.
func (st Stats) clone() Stats {
	st.ByRoute = maps.Clone(st.ByRoute)
	st.Faults = maps.Clone(st.Faults)
	return st
}

// record counts one /api/v2 request. status is 0 when no response is sent; wrote says whether a
// write was applied (or answered 2xx). Called with s.mu held.
func (s *Server) record(method, route string, status int, fault FaultKind, wrote bool, now time.Time) {
	st := &s.stats
	st.Total++
	st.ByRoute[StatsKey(method, route, status)]++
	if status == http.StatusTooManyRequests {
		st.Throttled++
	}
	if fault != "" {
		st.Faults[fault]++
	}
	if wrote {
		st.Writes++
		if st.FirstWrite.IsZero() {
			st.FirstWrite = now
		}
		st.LastWrite = now
	}
}

// Stats returns a snapshot of the counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats.clone()
}
