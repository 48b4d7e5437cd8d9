package apimode

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// DefaultTTL is how long a probe's answer is remembered: a tenant gains the newer endpoints
// (or loses them) rarely, and one probe a day costs one read.
const DefaultTTL = 24 * time.Hour

// Memory is a remembered probe answer for one tenant.
type Memory struct {
	// Mode is Legacy or Connections.
	Mode Mode `json:"mode"`
	// ProbedAt is when the probe was answered.
	ProbedAt time.Time `json:"probed_at"`
	// Status and Evidence are the probe's (ProbeResult).
	Status   int    `json:"status"`
	Evidence string `json:"evidence"`
	// TTL is how long Redis keeps it from the moment Get read it; set by Get (and by a
	// Resolver's probe), not stored.
	TTL time.Duration `json:"-"`
}

// Store keeps the fleet's memory of each tenant's mode in Redis, one key per tenant
// ("{prefix}:apimode:<tenant>", a JSON Memory with a TTL). Safe for concurrent use.
type Store struct {
	rdb    redis.UniversalClient
	prefix string
	ttl    time.Duration
}

// NewStore returns a store under prefix ("" means "orgconn", as the rest of orgconn's keys)
// whose memories last ttl (0 or less means DefaultTTL).
func NewStore(rdb redis.UniversalClient, prefix string, ttl time.Duration) *Store {
	if prefix == "" {
		prefix = "orgconn"
	}
	if ttl <= 0 {
		ttl = DefaultTTL
	}
	return &Store{rdb: rdb, prefix: prefix, ttl: ttl}
}

// key is the Redis key of tenant's memory.
func (s *Store) key(tenant string) string { return "{" + s.prefix + "}:apimode:" + tenant }

// maxMemory bounds the stored value read back.
const maxMemory = 4 << 10

// Get returns the tenant's memory and true, or false when there is none (never probed, or
// forgotten after the TTL). A value that is not a valid memory counts as none.
func (s *Store) Get(ctx context.Context, tenant string) (Memory, bool, error) {
	pipe := s.rdb.Pipeline()
	get := pipe.Get(ctx, s.key(tenant))
	ttl := pipe.PTTL(ctx, s.key(tenant))
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return Memory{}, false, fmt.Errorf("read the API mode of %s from Redis: %w", tenant, err)
	}
	raw, err := get.Bytes()
	if errors.Is(err, redis.Nil) || len(raw) > maxMemory {
		return Memory{}, false, nil
	}
	if err != nil {
		return Memory{}, false, fmt.Errorf("read the API mode of %s from Redis: %w", tenant, err)
	}
	var m Memory
	if json.Unmarshal(raw, &m) != nil || (m.Mode != Legacy && m.Mode != Connections) {
		return Memory{}, false, nil
	}
	if d := ttl.Val(); d > 0 {
		m.TTL = d
	}
	return m, true, nil
}

// Put remembers m for the tenant for the store's TTL. Only Legacy and Connections are
// remembered.
func (s *Store) Put(ctx context.Context, tenant string, m Memory) error {
	if m.Mode != Legacy && m.Mode != Connections {
		return fmt.Errorf("remember the API mode of %s: %q is not a decided mode", tenant, m.Mode)
	}
	b, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("remember the API mode of %s: %w", tenant, err)
	}
	if err := s.rdb.Set(ctx, s.key(tenant), b, s.ttl).Err(); err != nil {
		return fmt.Errorf("remember the API mode of %s in Redis: %w", tenant, err)
	}
	return nil
}

// Forget deletes the tenant's memory, so that the next Auto resolution probes again.
func (s *Store) Forget(ctx context.Context, tenant string) error {
	if err := s.rdb.Del(ctx, s.key(tenant)).Err(); err != nil {
		return fmt.Errorf("forget the API mode of %s in Redis: %w", tenant, err)
	}
	return nil
}
