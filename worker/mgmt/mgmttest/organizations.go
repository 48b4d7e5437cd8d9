package mgmttest

import (
	"encoding/base64"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Organization is a tenant organization as GET /api/v2/organizations and
// GET /api/v2/organizations/name/{name} show it.
type Organization struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	DisplayName string `json:"display_name"`
}

// Route templates of the organization reads, used in Stats keys.
const (
	RouteOrganizations      = "/api/v2/organizations"
	RouteOrganizationByName = "/api/v2/organizations/name/{name}"
)

// ScopeReadOrganizations is the scope of GET /organizations and GET /organizations/name/{name}.
const ScopeReadOrganizations = "read:organizations"

// Limits Auth0 sets on listing organizations.
const (
	// MaxOffsetOrganizations is how far offset paging (page, per_page) reaches: a page that
	// starts at or beyond it is refused with a 400, one that straddles it is cut short.
	MaxOffsetOrganizations = 1000
	maxTake                = 100
	defaultTake            = 50
	maxOrgNameLength       = 50
	msgPagingLimit         = "Requesting page exceeds the allowed maximum of 1000 records. Use checkpoint pagination (from, take) to read further."
	codeInvalidPaging      = "invalid_paging"
)

// orgNameDesc describes the name path parameter of GET /organizations/name/{name} (the
// connections listing has a "name" query parameter described otherwise).
const orgNameDesc = "name of the organization to retrieve."

// CheckOrgName returns what is wrong with an organization name by Auth0's rules, or "": 1 to 50
// characters, each a lowercase ASCII letter, digit, '_' or '-', not starting with "org_" (so
// that a value starting "org_" is always an id).
func CheckOrgName(name string) string {
	switch n := utf8.RuneCountInString(name); {
	case n < 1:
		return fmt.Sprintf("String is too short (%d chars), minimum 1", n)
	case n > maxOrgNameLength:
		return fmt.Sprintf("String is too long (%d chars), maximum %d", n, maxOrgNameLength)
	}
	for i := 0; i < len(name); i++ {
		if b := name[i]; !('a' <= b && b <= 'z' || '0' <= b && b <= '9' || b == '_' || b == '-') {
			return "String does not match pattern ^[a-z0-9_-]+$: " + name
		}
	}
	if strings.HasPrefix(name, "org_") {
		return "String must not start with org_: " + name
	}
	return ""
}

// Words of seeded organization names.
var (
	nameAdjectives = []string{"amber", "brisk", "calm", "deep", "eager", "fair", "grand", "hardy", "ivory", "jolly", "keen", "lucid", "merry", "noble", "opal", "prime", "quiet", "rapid", "solid", "true"}
	nameNouns      = []string{"anchor", "beacon", "cedar", "delta", "ember", "falcon", "garnet", "harbor", "island", "juniper", "kestrel", "lagoon", "meadow", "nectar", "orchid", "pioneer", "quartz", "river", "summit", "tundra"}
)

// seededOrgName returns the name and display name of the index-th seeded organization: two
// words drawn from a stream determined by seed and index alone, and the index, so names are
// unique, deterministic and valid by CheckOrgName ("brisk-falcon-17", "Brisk Falcon 17").
func seededOrgName(seed int64, index int) (name, display string) {
	r := rand.New(rand.NewPCG(uint64(seed), uint64(3)<<32|uint64(index)))
	adj, noun := nameAdjectives[r.IntN(len(nameAdjectives))], nameNouns[r.IntN(len(nameNouns))]
	return fmt.Sprintf("%s-%s-%d", adj, noun, index),
		fmt.Sprintf("%s %s %d", strings.ToUpper(adj[:1])+adj[1:], strings.ToUpper(noun[:1])+noun[1:], index)
}

// nameFor derives a free, valid organization name from id: lowercased, "org_" turned into
// "org-", other characters outside [a-z0-9_-] into '-', cut to fit, and a "-2", "-3"… suffix
// while the name is taken. Called with Server.mu held (or while building the tenant).
func (t *tenant) nameFor(id string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(id) {
		if 'a' <= r && r <= 'z' || '0' <= r && r <= '9' || r == '_' || r == '-' {
			b.WriteRune(r)
		} else {
			b.WriteByte('-')
		}
	}
	base := b.String()
	if strings.HasPrefix(base, "org_") {
		base = "org-" + base[len("org_"):]
	}
	if base == "" {
		base = "org"
	}
	for n := 1; ; n++ {
		suffix := ""
		if n > 1 {
			suffix = "-" + strconv.Itoa(n)
		}
		name := base
		if len(name)+len(suffix) > maxOrgNameLength {
			name = name[:maxOrgNameLength-len(suffix)]
		}
		name += suffix
		if _, taken := t.orgByName[name]; !taken {
			return name
		}
	}
}

// OrgName returns the name of organization id, and false when the tenant has no such
// organization.
func (s *Server) OrgName(id string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.tenant.orgInfo[id]
	return o.Name, ok
}

// Organizations returns every organization with its name and display name, in the order of
// Orgs. The slice is a copy.
func (s *Server) Organizations() []Organization {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Organization, 0, len(s.tenant.orgOrder))
	for _, id := range s.tenant.orgOrder {
		out = append(out, s.tenant.orgInfo[id])
	}
	return out
}

// SetOrgName renames organization id to name with display name display ("" keeps the current
// display name), for tests. It panics when id is not an organization of the tenant, when name
// breaks Auth0's rules (CheckOrgName) or when another organization has it: those are mistakes
// in the test.
func (s *Server) SetOrgName(id, name, display string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.tenant.orgInfo[id]
	if !ok {
		panic(fmt.Sprintf("mgmttest: SetOrgName(%q): no such organization; use one of Server.Orgs()", id))
	}
	if p := CheckOrgName(name); p != "" {
		panic(fmt.Sprintf("mgmttest: SetOrgName(%q, %q): %s", id, name, p))
	}
	if other, taken := s.tenant.orgByName[name]; taken && other != id {
		panic(fmt.Sprintf("mgmttest: SetOrgName(%q, %q): organization %s already has that name", id, name, other))
	}
	delete(s.tenant.orgByName, o.Name)
	o.Name = name
	if display != "" {
		o.DisplayName = display
	}
	s.tenant.orgInfo[id] = o
	s.tenant.orgByName[name] = id
}

// ConnectionReads returns, by organization id, how many requests listing that organization's
// connections were answered 200, by the legacy list (enabled_connections) or the newer one
// (connections); every page counts. Tests use it to check that no organization was read
// twice.
func (s *Server) ConnectionReads() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.connReads)
}

// matchOrganizations matches GET /api/v2/organizations and GET
// /api/v2/organizations/name/{name}. handled is false for every other path, which the
// enabled-connections routes then try; a handled path with another method matches nothing.
func matchOrganizations(method, escapedPath string) (rt route, ok, handled bool) {
	if escapedPath == "/api/v2/organizations" {
		if method != http.MethodGet {
			return route{}, false, true
		}
		return route{op: opListOrgs, api: apiOrganizations, template: RouteOrganizations, scope: ScopeReadOrganizations}, true, true
	}
	rest, found := strings.CutPrefix(escapedPath, "/api/v2/organizations/name/")
	if !found || strings.Contains(rest, "/") {
		return route{}, false, false
	}
	name, err := url.PathUnescape(rest)
	if err != nil || method != http.MethodGet {
		return route{}, false, true
	}
	return route{op: opOrgByName, api: apiOrganizations, template: RouteOrganizationByName, org: name, scope: ScopeReadOrganizations}, true, true
}

// orgsWithTotals is the offset-paged listing with include_totals=true.
type orgsWithTotals struct {
	Organizations []Organization `json:"organizations"`
	Start         int            `json:"start"`
	Limit         int            `json:"limit"`
	Total         int            `json:"total"`
}

// orgsCheckpoint is the checkpoint-paged listing; Next is absent on the last page.
type orgsCheckpoint struct {
	Organizations []Organization `json:"organizations"`
	Next          string         `json:"next,omitempty"`
}

// sortedOrgIDs returns the organization ids in the order both pagings list them: by id.
// Called with s.mu held.
func (s *Server) sortedOrgIDs() []string {
	return slices.Sorted(maps.Keys(s.tenant.orgs))
}

// listOrgs serves GET /organizations: checkpoint paging when from or take is given, else
// offset paging, which reaches only the first MaxOffsetOrganizations. Called with s.mu held.
func (s *Server) listOrgs(req apiRequest) result {
	_, hasFrom := req.query["from"]
	_, hasTake := req.query["take"]
	if !hasFrom && !hasTake {
		return s.listOrgsByOffset(req)
	}
	for _, p := range []string{"page", "per_page", "include_totals"} {
		if _, given := req.query[p]; given {
			return fail(http.StatusBadRequest, onProperty("Query", "Cannot be combined with checkpoint pagination (from, take)", p), codeInvalidQuery)
		}
	}
	take := defaultTake
	if vs := req.query["take"]; hasTake {
		what := ""
		n, err := strconv.Atoi(vs[0])
		switch {
		case len(vs) > 1:
			what = "Expected type integer but found type array"
		case err != nil:
			what = "Expected type integer but found type string"
		case n < 1:
			what = fmt.Sprintf("Value %d is less than minimum 1", n)
		case n > maxTake:
			what = fmt.Sprintf("Value %d is greater than maximum %d", n, maxTake)
		}
		if what != "" {
			return fail(http.StatusBadRequest, onProperty("Query", what, "take"), codeInvalidQuery)
		}
		take = n
	}
	ids := s.sortedOrgIDs()
	start := 0
	if vs := req.query["from"]; hasFrom {
		after, ok := decodeCheckpoint(vs)
		if !ok {
			return fail(http.StatusBadRequest, onProperty("Query", "Invalid checkpoint", "from"), codeInvalidQuery)
		}
		start, _ = slices.BinarySearch(ids, after)
		if start < len(ids) && ids[start] == after {
			start++
		}
	}
	end := min(start+take, len(ids))
	body := orgsCheckpoint{Organizations: s.orgViews(ids[start:end])}
	if end < len(ids) {
		body.Next = base64.RawURLEncoding.EncodeToString([]byte(ids[end-1]))
	}
	return ok200(body)
}

// decodeCheckpoint decodes a from parameter: one value, the unpadded base64url of an
// organization id, as listOrgs makes them.
func decodeCheckpoint(vs []string) (string, bool) {
	if len(vs) != 1 {
		return "", false
	}
	b, err := base64.RawURLEncoding.DecodeString(vs[0])
	if err != nil || !strings.HasPrefix(string(b), "org_") || checkLength(string(b)) != "" {
		return "", false
	}
	return string(b), true
}

// listOrgsByOffset serves offset paging. Called with s.mu held.
func (s *Server) listOrgsByOffset(req apiRequest) result {
	q, res, ok := parseListQuery(req.query)
	if !ok {
		return res
	}
	start := math.MaxInt
	if q.page <= math.MaxInt/q.perPage {
		start = q.page * q.perPage
	}
	if start >= MaxOffsetOrganizations {
		return fail(http.StatusBadRequest, msgPagingLimit, codeInvalidPaging)
	}
	ids := s.sortedOrgIDs()
	end := min(start+q.perPage, MaxOffsetOrganizations, len(ids))
	items := []Organization{}
	if start < end {
		items = s.orgViews(ids[start:end])
	}
	if !q.totals {
		return ok200(items)
	}
	return ok200(orgsWithTotals{Organizations: items, Start: start, Limit: len(items), Total: len(ids)})
}

// orgViews returns the organizations of ids. Called with s.mu held.
func (s *Server) orgViews(ids []string) []Organization {
	out := make([]Organization, 0, len(ids))
	for _, id := range ids {
		out = append(out, s.tenant.orgInfo[id])
	}
	return out
}

// orgByName serves GET /organizations/name/{name}; the route's org holds the name. Called with
// s.mu held.
func (s *Server) orgByName(req apiRequest) result {
	if p := CheckOrgName(req.org); p != "" {
		return fail(http.StatusBadRequest, onPropertyWith("Path", p, "name", orgNameDesc), codeInvalidURI)
	}
	id, ok := s.tenant.orgByName[req.org]
	if !ok {
		return fail(http.StatusNotFound, msgNoOrganization, "")
	}
	return ok200(s.tenant.orgInfo[id])
}
