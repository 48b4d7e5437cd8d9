package tokencache

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/orgconn/orgconn/worker/redistest"
	"github.com/redis/go-redis/v9"
)

// TestExpiryIsTheRedisTTLNotTheWritersClock: a process whose clock is two
// hours slow shares a token; a process with the right time must use it,
// not judge it expired by the slow clock's reading (and fetch another).
func TestExpiryIsTheRedisTTLNotTheWritersClock(t *testing.T) {
	env := redistest.New(t)
	ctx := context.Background()
	slow, right := &counter{}, &counter{}
	a := New(env.Client, env.Prefix, "id", slow)
	a.now = func() time.Time { return time.Now().Add(-2 * time.Hour) }
	b := New(env.Client, env.Prefix, "id", right)
	b.now = func() time.Time { return time.Now().Add(3 * time.Hour) } // fast, for good measure

	tok, err := a.Token(ctx)
	if err != nil || tok != "tok-1" {
		t.Fatalf("a.Token = %q, %v", tok, err)
	}
	// Stored as the bare token with a TTL: no clock reading in the value.
	if v, err := env.Client.Get(ctx, a.key).Result(); err != nil || v != "tok-1" {
		t.Fatalf("Redis holds %q, %v; want the bare token", v, err)
	}
	ttl, err := env.Client.PTTL(ctx, a.key).Result()
	if want := time.Hour - 5*time.Minute; err != nil || ttl <= want-time.Minute || ttl > want {
		t.Fatalf("the token's TTL is %v, %v; want about %v (its lifetime less the margin)", ttl, err, want)
	}
	got, err := b.Token(ctx)
	if err != nil || got != "tok-1" || right.n.Load() != 0 {
		t.Fatalf("b.Token = %q, %v after %d fetches; want the shared token and no fetch", got, err, right.n.Load())
	}
	// b keeps it locally until its TTL runs out, measured on b's clock.
	b.mu.Lock()
	left := b.expires.Sub(b.now())
	b.mu.Unlock()
	if left <= 50*time.Minute || left > 55*time.Minute {
		t.Errorf("b keeps the token for %v, want the TTL it read (about 55m)", left)
	}
	// A key without a TTL (written by hand) is not trusted forever.
	if err := env.Client.Set(ctx, a.key, "tok-by-hand", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if _, _, ok, err := b.read(ctx); ok || err != nil {
		t.Errorf("a token without a TTL was read as usable (%v)", err)
	}
}

// TestALegacyValueIsStillRead: a fleet being upgraded holds a token stored
// as "<expiry ms>:<token>" by an older process.
func TestALegacyValueIsStillRead(t *testing.T) {
	env := redistest.New(t)
	ctx := context.Background()
	s := New(env.Client, env.Prefix, "id", &counter{})
	if err := env.Client.Set(ctx, s.key, "1700000000000:eyJ.legacy.tok", time.Hour).Err(); err != nil {
		t.Fatal(err)
	}
	if tok, _, ok, err := s.read(ctx); !ok || err != nil || tok != "eyJ.legacy.tok" {
		t.Errorf("read = %q, %v, %v; want the legacy value's token", tok, ok, err)
	}
}

// blockingFetcher signals when a fetch starts and returns once released.
type blockingFetcher struct{ started, release chan struct{} }

func (f *blockingFetcher) Fetch(ctx context.Context) (string, time.Duration, error) {
	close(f.started)
	select {
	case <-f.release:
		return "tok-slow", time.Hour, nil
	case <-ctx.Done():
		return "", 0, ctx.Err()
	}
}

// TestTheLockIsReleasedOnlyByItsHolder: a fetch outlives the lock's TTL and
// another process takes the lock; the first fetch, finishing, must not
// release the successor's lock.
func TestTheLockIsReleasedOnlyByItsHolder(t *testing.T) {
	env := redistest.New(t)
	ctx := context.Background()
	f := &blockingFetcher{started: make(chan struct{}), release: make(chan struct{})}
	s := New(env.Client, env.Prefix, "id", f)
	done := make(chan error, 1)
	go func() { _, err := s.Token(ctx); done <- err }()
	<-f.started
	owner, err := env.Client.Get(ctx, s.lock).Result()
	if err != nil || owner == "" || owner == "1" {
		t.Fatalf("the lock holds %q, %v; want a value naming its holder", owner, err)
	}
	// The lock's TTL runs out; a successor takes it.
	if err := env.Client.Set(ctx, s.lock, "successor", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	close(f.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if v, err := env.Client.Get(ctx, s.lock).Result(); err != nil || v != "successor" {
		t.Fatalf("after the first holder finished, the lock holds %q, %v; want the successor's", v, err)
	}
	// A holder that still holds its lock releases it.
	env.Client.Del(ctx, s.lock, s.key)
	s2 := New(env.Client, env.Prefix, "id", &counter{})
	if _, err := s2.Token(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := env.Client.Get(ctx, s.lock).Result(); !errors.Is(err, redis.Nil) {
		t.Errorf("the lock outlived its holder's fetch: %v", err)
	}
}
