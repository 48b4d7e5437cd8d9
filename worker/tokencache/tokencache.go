// Package tokencache shares one Management API token among every worker
// process of a fleet through Redis, so that the token endpoint (which has
// its own, small rate limit) is asked once per fleet, not once per process.
//
// The token is stored in Redis in the clear, under orgconn's key prefix,
// with a time to live that ends before the token expires. The TTL is the
// only record of its expiry: every process reads how long the token has
// left from Redis (PTTL), never compares a time written by another host
// with its own clock, so hosts whose clocks differ agree on it. Fetching is
// serialised by a lock whose value names its holder; only the holder
// releases it (compare and delete), so a holder that outlived the lock's TTL
// cannot release the lock a successor took. Whoever can read
// that Redis can already queue changes that workers apply with the same
// token, so this gives no new power; keep Redis private and use TLS
// (rediss://) across networks.
package tokencache

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Fetcher gets a new token and its lifetime; *mgmt.ClientCredentials is one.
type Fetcher interface {
	Fetch(ctx context.Context) (token string, lifetime time.Duration, err error)
}

// Shared is a mgmt.TokenSource backed by Redis. Safe for concurrent use.
type Shared struct {
	rdb       redis.UniversalClient
	key, lock string
	fetch     Fetcher
	early     time.Duration
	poll      time.Duration
	lockTTL   time.Duration
	// now is this process's clock: it only measures how long ago this
	// process read a TTL from Redis.
	now func() time.Time

	mu      sync.Mutex
	token   string
	expires time.Time
	// refused holds the last tokens the tenant refused here, so that a
	// read that raced with Invalidate (it got the token from Redis just
	// before the drop) cannot bring one back.
	refused [8]string
	nextRef int
}

// New returns a shared token source for the client identified by
// identity (the tenant's base URL and the client id; they are hashed into
// the key) under orgconn's key prefix.
func New(rdb redis.UniversalClient, prefix, identity string, f Fetcher) *Shared {
	sum := sha256.Sum256([]byte(identity))
	key := "{" + prefix + "}:token:" + hex.EncodeToString(sum[:8])
	return &Shared{rdb: rdb, key: key, lock: key + ":lock", fetch: f, early: 5 * time.Minute, poll: 50 * time.Millisecond, lockTTL: 30 * time.Second, now: time.Now}
}

// Token returns a valid token: this process's copy, else the fleet's from
// Redis, else one fetched by whichever process takes the lock first (the
// others wait for it).
func (s *Shared) Token(ctx context.Context) (string, error) {
	s.mu.Lock()
	if s.token != "" && s.now().Before(s.expires) {
		t := s.token
		s.mu.Unlock()
		return t, nil
	}
	s.mu.Unlock()
	for {
		if t, exp, ok, err := s.read(ctx); err != nil {
			return "", err
		} else if ok {
			s.keep(t, exp)
			return t, nil
		}
		owner := newOwner()
		got, err := s.rdb.SetNX(ctx, s.lock, owner, s.lockTTL).Result()
		if err != nil {
			return "", fmt.Errorf("shared token: %w", err)
		}
		if got {
			return s.refresh(ctx, owner)
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(s.poll):
		}
	}
}

// newOwner returns a value that names one holder of the lock.
func newOwner() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// unlockScript deletes the lock if the caller still holds it.
// KEYS[1] the lock key; ARGV[1] the holder's value.
var unlockScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
`)

// refresh fetches a token while holding the lock (as owner) and shares it.
func (s *Shared) refresh(ctx context.Context, owner string) (string, error) {
	defer func() {
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		_ = unlockScript.Run(uctx, s.rdb, []string{s.lock}, owner).Err()
	}()
	// Another process may have shared one between our read and our lock.
	if t, exp, ok, err := s.read(ctx); err == nil && ok {
		s.keep(t, exp)
		return t, nil
	}
	t, lifetime, err := s.fetch.Fetch(ctx)
	if err != nil {
		return "", err
	}
	early := min(s.early, lifetime/10)
	ttl := lifetime - early
	if err := s.rdb.Set(ctx, s.key, t, ttl).Err(); err != nil {
		return "", fmt.Errorf("shared token: store: %w", err)
	}
	s.keep(t, s.now().Add(ttl))
	return t, nil
}

// read returns the fleet's token and when, by this process's clock, it
// stops being usable: now plus the key's remaining TTL in Redis.
func (s *Shared) read(ctx context.Context) (string, time.Time, bool, error) {
	var get *redis.StringCmd
	var pttl *redis.DurationCmd
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		get = p.Get(ctx, s.key)
		pttl = p.PTTL(ctx, s.key)
		return nil
	})
	if errors.Is(err, redis.Nil) {
		return "", time.Time{}, false, nil
	}
	if err != nil {
		return "", time.Time{}, false, fmt.Errorf("shared token: %w", err)
	}
	t, left := get.Val(), pttl.Val()
	// Before the TTL was the only record, the value was
	// "<expiry in UNIX ms>:<token>"; a token itself holds no ':'.
	if ms, rest, ok := strings.Cut(t, ":"); ok && ms != "" && strings.Trim(ms, "0123456789") == "" {
		t = rest
	}
	if t == "" || left <= 0 {
		// Gone between the two reads, or without a TTL (set by hand):
		// fetch anew rather than trust it forever.
		return "", time.Time{}, false, nil
	}
	s.mu.Lock()
	refused := s.isRefused(t)
	s.mu.Unlock()
	if refused {
		// Still shared, though refused here: another process stored it
		// again, or our drop has not happened yet. Fetch a new one.
		return "", time.Time{}, false, nil
	}
	return t, s.now().Add(left), true, nil
}

func (s *Shared) keep(t string, exp time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.isRefused(t) {
		s.token, s.expires = t, exp
	}
}

// isRefused reports whether the tenant refused t here; s.mu must be held.
func (s *Shared) isRefused(t string) bool {
	for _, r := range s.refused {
		if r != "" && r == t {
			return true
		}
	}
	return false
}

// dropScript deletes the shared token if it is still the refused one.
// KEYS[1] the token key; ARGV[1] the refused token.
var dropScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if v and string.sub(v, -string.len(ARGV[1])) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
`)

// Invalidate drops a refused token here and, if the fleet still shares it,
// in Redis, so that the next Token fetches a new one.
func (s *Shared) Invalidate(token string) {
	s.mu.Lock()
	if s.token == token {
		s.token = ""
	}
	if !s.isRefused(token) {
		s.refused[s.nextRef] = token
		s.nextRef = (s.nextRef + 1) % len(s.refused)
	}
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = dropScript.Run(ctx, s.rdb, []string{s.key}, token).Err()
}
