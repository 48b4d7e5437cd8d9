package worker

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/orgconn/orgconn/jobs"
	"github.com/orgconn/orgconn/worker/mgmt"
	"github.com/redis/go-redis/v9"
)

// Names in the worker.
//
// A change enqueued with an organization or connection given only by name
// (the importer had no credentials) is resolved at the start of handling,
// after its pair is claimed: the ledger keeps ordering it under the pair key
// it was accepted with ("name:…"), and only the calls use the ids.
//
// Look-ups go through the paced client (the fleet's read budget) and are
// cached in Redis per tenant, so that the whole fleet asks once:
// organizations one GET /organizations/name/{name} per distinct name,
// connections one paged GET /connections listing per job, listed again only
// when a name is missing and the listing is older than ConnectionsRefresh.
// A look-up in flight holds a short lock; the fleet's other workers wait for
// its answer rather than ask themselves.

// Directory is what resolving names needs of the Management API;
// *mgmt.Client implements it.
type Directory interface {
	OrganizationByName(ctx context.Context, name string) (mgmt.Organization, error)
	AllConnections(ctx context.Context, q mgmt.ConnectionsQuery) ([]mgmt.Connection, error)
}

var _ Directory = (*mgmt.Client)(nil)

// How long the names cache keeps what it learned.
const (
	// NameTTL is how long a found organization id, and a listing of
	// connections, are kept.
	NameTTL = 10 * time.Minute
	// UnknownNameTTL is how long an organization name found to name
	// nothing is remembered as such.
	UnknownNameTTL = time.Minute
	// ConnectionsRefresh is the age after which a listing of connections
	// that lacks a name is listed again.
	ConnectionsRefresh = time.Minute
	// nameLockTTL bounds how long one look-up holds the fleet's others.
	nameLockTTL = 30 * time.Second
)

// errUnknownName is a name the tenant does not have: the change is
// dead-lettered with reason unknown_name.
type errUnknownName struct {
	field string // jobs.FieldOrgName or jobs.FieldConnectionName
	name  string
}

// Error says which name is unknown: `no organization named "acme"`.
func (e *errUnknownName) Error() string {
	if e.field == jobs.FieldOrgName {
		return fmt.Sprintf("no organization named %q", e.name)
	}
	return fmt.Sprintf("no connection named %q", e.name)
}

// errNoDirectory: the worker's API client cannot look names up.
var errNoDirectory = errors.New("the worker's Management API client cannot look names up (it does not implement worker.Directory)")

// nameCache resolves names through a Directory, caching in Redis per
// tenant. Safe for concurrent use.
type nameCache struct {
	rdb    redis.UniversalClient
	prefix string // "{ledger name}:names:<tenant>"
	now    func() time.Time
}

// newNameCache returns the names cache of tenant under the ledger's key
// prefix name (without braces).
func newNameCache(rdb redis.UniversalClient, name, tenant string) *nameCache {
	if tenant == "" {
		tenant = "default"
	}
	return &nameCache{rdb: rdb, prefix: "{" + name + "}:names:" + tenant, now: time.Now}
}

func (n *nameCache) orgKey(name string) string { return n.prefix + ":org:" + name }
func (n *nameCache) connsKey() string          { return n.prefix + ":conns" }
func (n *nameCache) connsAtKey() string        { return n.prefix + ":conns:at" }
func (n *nameCache) lockKey(what string) string {
	return n.prefix + ":lock:" + what
}

// unknownOrg is what the cache holds for a name that names no organization
// (ids never contain '!').
const unknownOrg = "!"

// resolve returns c with the ids of the sides it gives only by name filled
// in (names kept); c itself when it has ids. An unknown name is an
// *errUnknownName.
func (n *nameCache) resolve(ctx context.Context, dir Directory, c jobs.Change) (jobs.Change, error) {
	if !c.Unresolved() {
		return c, nil
	}
	if dir == nil {
		return c, errNoDirectory
	}
	if c.OrgID == "" && c.OrgName != "" {
		id, err := n.orgID(ctx, dir, c.OrgName)
		if err != nil {
			return c, err
		}
		c.OrgID = id
	}
	if c.ConnectionID == "" && c.ConnectionName != "" {
		id, err := n.connectionID(ctx, dir, c.ConnectionName)
		if err != nil {
			return c, err
		}
		c.ConnectionID = id
	}
	return c, nil
}

// orgID returns the id of the organization named name: from the cache, or
// one look-up for the whole fleet.
func (n *nameCache) orgID(ctx context.Context, dir Directory, name string) (string, error) {
	key := n.orgKey(name)
	for {
		v, err := n.rdb.Get(ctx, key).Result()
		switch {
		case err == nil && v == unknownOrg:
			return "", &errUnknownName{jobs.FieldOrgName, name}
		case err == nil:
			return v, nil
		case !errors.Is(err, redis.Nil):
			return "", fmt.Errorf("read the names cache: %w", err)
		}
		unlock, ok, err := n.lock(ctx, "org:"+name)
		if err != nil {
			return "", err
		}
		if !ok {
			if err := n.pause(ctx); err != nil {
				return "", err
			}
			continue // another worker is asking: read its answer
		}
		// Asked again under the lock: a worker may have answered meanwhile.
		if v, err := n.rdb.Get(ctx, key).Result(); err == nil {
			unlock()
			if v == unknownOrg {
				return "", &errUnknownName{jobs.FieldOrgName, name}
			}
			return v, nil
		}
		var org mgmt.Organization
		err = untilNotThrottled(ctx, func() (err error) {
			org, err = dir.OrganizationByName(ctx, name)
			return err
		})
		switch {
		case mgmt.StatusOf(err) == http.StatusNotFound:
			n.rdb.Set(context.WithoutCancel(ctx), key, unknownOrg, UnknownNameTTL)
			unlock()
			return "", &errUnknownName{jobs.FieldOrgName, name}
		case err != nil:
			unlock()
			return "", fmt.Errorf("look up organization %q: %w", name, err)
		case org.ID == "":
			unlock()
			return "", fmt.Errorf("look up organization %q: the answer has no id", name)
		}
		n.rdb.Set(context.WithoutCancel(ctx), key, org.ID, NameTTL)
		unlock()
		return org.ID, nil
	}
}

// connectionID returns the id of the connection named name, from the
// fleet's cached listing, listing the connections again when the name is
// missing and the listing is absent or older than ConnectionsRefresh.
func (n *nameCache) connectionID(ctx context.Context, dir Directory, name string) (string, error) {
	for {
		id, at, err := n.cachedConnection(ctx, name)
		if err != nil {
			return "", err
		}
		if id != "" {
			return id, nil
		}
		if !at.IsZero() && n.now().Sub(at) < ConnectionsRefresh {
			return "", &errUnknownName{jobs.FieldConnectionName, name}
		}
		unlock, ok, err := n.lock(ctx, "conns")
		if err != nil {
			return "", err
		}
		if !ok {
			if err := n.pause(ctx); err != nil {
				return "", err
			}
			continue
		}
		// Under the lock, a listing made meanwhile answers.
		if id, at, err := n.cachedConnection(ctx, name); err != nil || id != "" || !at.IsZero() && n.now().Sub(at) < ConnectionsRefresh {
			unlock()
			if err != nil {
				return "", err
			}
			if id != "" {
				return id, nil
			}
			return "", &errUnknownName{jobs.FieldConnectionName, name}
		}
		var list []mgmt.Connection
		err = untilNotThrottled(ctx, func() (err error) {
			list, err = dir.AllConnections(ctx, mgmt.ConnectionsQuery{})
			return err
		})
		if err != nil {
			unlock()
			return "", fmt.Errorf("list connections: %w", err)
		}
		err = n.storeConnections(context.WithoutCancel(ctx), list)
		unlock()
		if err != nil {
			return "", err
		}
		for _, c := range list {
			if c.Name == name && c.ID != "" {
				return c.ID, nil
			}
		}
		return "", &errUnknownName{jobs.FieldConnectionName, name}
	}
}

// cachedConnection returns the cached id of the connection named name (""
// when the listing lacks it) and when the listing was made (zero when
// there is none).
func (n *nameCache) cachedConnection(ctx context.Context, name string) (string, time.Time, error) {
	var id, at *redis.StringCmd
	if _, err := n.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		id = p.HGet(ctx, n.connsKey(), name)
		at = p.Get(ctx, n.connsAtKey())
		return nil
	}); err != nil && !errors.Is(err, redis.Nil) {
		return "", time.Time{}, fmt.Errorf("read the names cache: %w", err)
	}
	var t time.Time
	if ms, err := strconv.ParseInt(at.Val(), 10, 64); err == nil {
		t = time.UnixMilli(ms)
	}
	return id.Val(), t, nil
}

// storeConnections replaces the cached listing by list, atomically.
func (n *nameCache) storeConnections(ctx context.Context, list []mgmt.Connection) error {
	byName := make(map[string]any, len(list))
	for _, c := range list {
		if c.Name != "" && c.ID != "" {
			byName[c.Name] = c.ID
		}
	}
	_, err := n.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Del(ctx, n.connsKey())
		if len(byName) > 0 {
			p.HSet(ctx, n.connsKey(), byName)
			p.Expire(ctx, n.connsKey(), NameTTL)
		}
		p.Set(ctx, n.connsAtKey(), strconv.FormatInt(n.now().UnixMilli(), 10), NameTTL)
		return nil
	})
	if err != nil {
		return fmt.Errorf("write the names cache: %w", err)
	}
	return nil
}

// unlockScript deletes a lock only while its holder holds it.
// KEYS[1] lock; ARGV[1] holder.
var unlockScript = redis.NewScript(`if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) end return 0`)

// lock takes the fleet's lock of one look-up; ok is false when another
// worker holds it.
func (n *nameCache) lock(ctx context.Context, what string) (unlock func(), ok bool, err error) {
	key, holder := n.lockKey(what), randomHex()+randomHex()
	ok, err = n.rdb.SetNX(ctx, key, holder, nameLockTTL).Result()
	if err != nil {
		return nil, false, fmt.Errorf("lock the names cache: %w", err)
	}
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = unlockScript.Run(ctx, n.rdb, []string{key}, holder).Err()
	}, ok, nil
}

// pause waits a little before looking at the cache again.
func (n *nameCache) pause(ctx context.Context) error {
	t := time.NewTimer(50 * time.Millisecond)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
