package producer

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/orgconn/orgconn/jobs"
)

// APIMode is which Management API endpoints a tenant's organization
// connections are written through, as far as the producer knows.
type APIMode string

// The API modes.
const (
	// ModeUnknown: not known yet (--api auto before the probe is wired):
	// rows that need the Organization connections API are let through and
	// the worker decides.
	ModeUnknown APIMode = ""
	// ModeLegacy: only the legacy enabled_connections endpoints; a change
	// that needs the newer ones (jobs.Change.NeedsConnectionsAPI) is
	// refused at intake.
	ModeLegacy APIMode = "legacy"
	// ModeConnections: the Organization connections endpoints are
	// available; every change is accepted.
	ModeConnections APIMode = "connections"
)

// ParseAPIMode reads the --api flag and ORGCONN_API: legacy, connections or
// auto (which is ModeUnknown until a probe answers). Case and surrounding
// spaces are ignored.
func ParseAPIMode(s string) (APIMode, error) {
	switch v := strings.ToLower(strings.TrimSpace(s)); v {
	case "legacy":
		return ModeLegacy, nil
	case "connections":
		return ModeConnections, nil
	case "auto", "":
		return ModeUnknown, nil
	}
	return ModeUnknown, fmt.Errorf("API mode %q: use legacy, connections or auto", s)
}

// ModeSource tells the tenant's API mode. cmd wires in a fixed mode (from
// --api) or the worker side's probe; the producer declares only this.
type ModeSource interface {
	// Mode returns the tenant's mode, ModeUnknown when it cannot be told,
	// or an error when finding out failed (the intake then fails: it is
	// safe to try again).
	Mode(ctx context.Context) (APIMode, error)
}

// FixedMode is a ModeSource that always answers the same mode.
type FixedMode APIMode

// Mode returns m.
func (m FixedMode) Mode(context.Context) (APIMode, error) { return APIMode(m), nil }

// RefusedInMode returns why c cannot be accepted on a tenant in mode, or ""
// when it can: in ModeLegacy, a change that needs the Organization
// connections API is refused, naming what needs it, e.g. `action "disable"
// needs the Organization connections API; this tenant is in legacy mode`.
// hint, if not empty, is added in parentheses to say how to change the mode
// ("--api").
func RefusedInMode(c jobs.Change, mode APIMode, hint string) string {
	if mode != ModeLegacy || !c.NeedsConnectionsAPI() {
		return ""
	}
	var what []string
	if c.Action == jobs.Disable {
		what = append(what, fmt.Sprintf("action %q", string(c.Action)))
	}
	if c.OrgConnectionName != "" {
		what = append(what, jobs.FieldOrgConnectionName)
	}
	if c.AccessLevel != "" {
		what = append(what, jobs.FieldAccessLevel)
	}
	verb := "needs"
	subject := what[0]
	if len(what) > 1 {
		verb = "need"
		subject = strings.Join(what[:len(what)-1], ", ") + " and " + what[len(what)-1]
	}
	msg := subject + " " + verb + " the Organization connections API; this tenant is in legacy mode"
	if hint != "" {
		msg += " (" + hint + ")"
	}
	return msg
}

// Resolver looks organization and connection names up, for changes that
// give a name instead of an id. Implementations answer ok=false, with no
// error, for a name nothing has; an error means the look-up itself failed
// and may be tried again.
type Resolver interface {
	// OrgID returns the id of the organization named name.
	OrgID(ctx context.Context, name string) (id string, ok bool, err error)
	// ConnectionID returns the id of the connection named name.
	ConnectionID(ctx context.Context, name string) (id string, ok bool, err error)
}

// NamedConnection is a tenant connection's id and name.
type NamedConnection struct {
	ID   string
	Name string
}

// Directory is what a NameResolver needs of the Management API: the
// organization of a name (GET /organizations/name/{name}) and every
// connection's id and name (GET /connections, every page). cmd adapts the
// worker side's client to it; the producer calls no write endpoint.
type Directory interface {
	// OrganizationByName returns the id of the organization named name;
	// found is false when there is none (a 404).
	OrganizationByName(ctx context.Context, name string) (id string, found bool, err error)
	// Connections returns every connection of the tenant.
	Connections(ctx context.Context) ([]NamedConnection, error)
}

// DefaultMaxCachedNames bounds a NameResolver's cache unless configured
// otherwise.
const DefaultMaxCachedNames = 100_000

// NameResolver is a Resolver over a Directory with a cache: each distinct
// organization name is looked up once, and the connections are listed once,
// for as long as an answer is kept (TTL). Concurrent look-ups of one name
// share one call. Safe for concurrent use.
//
// For an import, make one per import with TTL zero: every distinct name is
// looked up once for the whole file. For a long-lived process (serve), give
// a TTL so that organizations and connections created or renamed later are
// seen.
type NameResolver struct {
	dir Directory
	ttl time.Duration
	max int
	now func() time.Time

	mu     sync.Mutex
	orgs   map[string]*lookup // organization name → its look-up
	conns  *lookup            // the listing of connections
	byName map[string]string  // connection name → id, from conns
}

// lookup is one look-up, in flight (done open) or finished.
type lookup struct {
	done  chan struct{}
	id    string
	found bool
	err   error
	at    time.Time
}

// NameResolverConfig configures a NameResolver.
type NameResolverConfig struct {
	// TTL is how long an answer (found or not) is kept. Zero keeps it for
	// the resolver's life. A failed look-up is never kept.
	TTL time.Duration
	// MaxNames bounds the organization names cached; when it is reached
	// the cache is emptied and starts again. Zero means
	// DefaultMaxCachedNames.
	MaxNames int
	// Now is the clock of TTL. Nil means time.Now.
	Now func() time.Time
}

// NewNameResolver returns a NameResolver over dir.
func NewNameResolver(dir Directory, cfg NameResolverConfig) (*NameResolver, error) {
	if dir == nil {
		return nil, errors.New("producer: NewNameResolver needs a Directory")
	}
	if cfg.MaxNames <= 0 {
		cfg.MaxNames = DefaultMaxCachedNames
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &NameResolver{dir: dir, ttl: cfg.TTL, max: cfg.MaxNames, now: cfg.Now, orgs: map[string]*lookup{}}, nil
}

// fresh reports whether a finished look-up may still be used.
func (r *NameResolver) fresh(l *lookup) bool {
	select {
	case <-l.done:
	default:
		return true // in flight: wait for it
	}
	return l.err == nil && (r.ttl <= 0 || r.now().Sub(l.at) < r.ttl)
}

// OrgID returns the id of the organization named name, looking it up at most
// once while the answer is kept.
func (r *NameResolver) OrgID(ctx context.Context, name string) (string, bool, error) {
	r.mu.Lock()
	l, ok := r.orgs[name]
	if !ok || !r.fresh(l) {
		if len(r.orgs) >= r.max {
			r.orgs = map[string]*lookup{}
		}
		l = &lookup{done: make(chan struct{})}
		r.orgs[name] = l
		r.mu.Unlock()
		l.id, l.found, l.err = r.dir.OrganizationByName(ctx, name)
		l.at = r.now()
		close(l.done)
	} else {
		r.mu.Unlock()
	}
	select {
	case <-l.done:
	case <-ctx.Done():
		return "", false, ctx.Err()
	}
	if l.err != nil {
		return "", false, fmt.Errorf("look up organization %q: %w", name, l.err)
	}
	return l.id, l.found, nil
}

// ConnectionID returns the id of the connection named name, from one listing
// of the tenant's connections kept while fresh.
func (r *NameResolver) ConnectionID(ctx context.Context, name string) (string, bool, error) {
	r.mu.Lock()
	l := r.conns
	if l == nil || !r.fresh(l) {
		l = &lookup{done: make(chan struct{})}
		r.conns = l
		r.mu.Unlock()
		list, err := r.dir.Connections(ctx)
		byName := make(map[string]string, len(list))
		for _, c := range list {
			byName[c.Name] = c.ID
		}
		r.mu.Lock()
		if err == nil {
			r.byName = byName
		}
		r.mu.Unlock()
		l.err, l.at = err, r.now()
		close(l.done)
	} else {
		r.mu.Unlock()
	}
	select {
	case <-l.done:
	case <-ctx.Done():
		return "", false, ctx.Err()
	}
	if l.err != nil {
		return "", false, fmt.Errorf("list connections: %w", l.err)
	}
	r.mu.Lock()
	id, ok := r.byName[name]
	r.mu.Unlock()
	return id, ok, nil
}

// Name kinds, for NameLookups.
const (
	KindOrganization = "organization"
	KindConnection   = "connection"
)

// NameLookups looks names up through a Resolver for one file or request:
// each distinct name once, and an id it answers is checked. Not safe for
// concurrent use.
type NameLookups struct {
	r    Resolver
	seen map[string]nameAnswer
}

type nameAnswer struct {
	id    string
	found bool
}

// NewNameLookups returns look-ups through r.
func NewNameLookups(r Resolver) *NameLookups {
	return &NameLookups{r: r, seen: map[string]nameAnswer{}}
}

// Len is the number of distinct names looked up so far.
func (n *NameLookups) Len() int { return len(n.seen) }

// Seen reports whether the kind's name was looked up already (Look then
// asks nothing).
func (n *NameLookups) Seen(kind, name string) bool {
	_, ok := n.seen[kind+"\x00"+name]
	return ok
}

// Look returns the id of the kind's (KindOrganization or KindConnection)
// name; found is false when the tenant has none. err is a failed look-up
// ("look up organization "x": …"), or an answer whose id is malformed.
func (n *NameLookups) Look(ctx context.Context, kind, name string) (id string, found bool, err error) {
	key := kind + "\x00" + name
	if a, ok := n.seen[key]; ok {
		return a.id, a.found, nil
	}
	if kind == KindOrganization {
		id, found, err = n.r.OrgID(ctx, name)
	} else {
		id, found, err = n.r.ConnectionID(ctx, name)
	}
	if err != nil {
		return "", false, fmt.Errorf("look up %s %q: %w", kind, name, err)
	}
	if found {
		if p := jobs.CheckID(id); p != "" {
			return "", false, fmt.Errorf("look up %s %q: the answer's id %s", kind, name, p)
		}
	}
	n.seen[key] = nameAnswer{id, found}
	return id, found, nil
}
