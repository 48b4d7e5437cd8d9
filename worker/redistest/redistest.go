// Package redistest gives tests a Redis: the real server named by REDIS_URL
// when it is set (CI sets it), otherwise an embedded miniredis. Each test gets
// its own key prefix and asynq queue name, and everything under them is
// deleted when the test ends, so tests can share one real server.
package redistest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
)

// Env is one test's Redis.
type Env struct {
	// Client is connected to the test's Redis.
	Client redis.UniversalClient
	// URL is a redis:// URL for the same server (for subprocesses).
	URL string
	// Prefix is a key prefix no other test uses (without braces).
	Prefix string
	// Queue is an asynq queue name no other test uses.
	Queue string
	// Embedded is the miniredis server when REDIS_URL is not set, else nil.
	Embedded *miniredis.Miniredis
}

// New returns the test's Redis and registers its cleanup.
func New(t testing.TB) *Env {
	t.Helper()
	id := randomID()
	env := &Env{Prefix: "t" + id, Queue: "q" + id}
	if url := os.Getenv("REDIS_URL"); url != "" {
		opt, err := redis.ParseURL(url)
		if err != nil {
			t.Fatalf("REDIS_URL %q: %v", url, err)
		}
		env.Client, env.URL = redis.NewClient(opt), url
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := env.Client.Ping(ctx).Err(); err != nil {
			t.Fatalf("REDIS_URL %q does not answer: %v", url, err)
		}
	} else {
		mr := miniredis.NewMiniRedis()
		if err := mr.Start(); err != nil {
			t.Fatalf("start embedded Redis: %v", err)
		}
		env.Embedded = mr
		env.Client = redis.NewClient(&redis.Options{Addr: mr.Addr()})
		env.URL = "redis://" + mr.Addr() + "/0"
	}
	t.Cleanup(func() { env.cleanup(t) })
	return env
}

// Real reports whether the test runs against a real Redis server.
func (e *Env) Real() bool { return e.Embedded == nil }

func (e *Env) cleanup(t testing.TB) {
	defer e.Client.Close()
	if e.Embedded != nil {
		e.Embedded.Close()
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, pattern := range []string{"{" + e.Prefix + "}*", "asynq:{" + e.Queue + "}*"} {
		iter := e.Client.Scan(ctx, 0, pattern, 1000).Iterator()
		var batch []string
		for iter.Next(ctx) {
			batch = append(batch, iter.Val())
			if len(batch) == 1000 {
				e.Client.Del(ctx, batch...)
				batch = batch[:0]
			}
		}
		if len(batch) > 0 {
			e.Client.Del(ctx, batch...)
		}
		if err := iter.Err(); err != nil {
			t.Logf("redistest: clean up %s: %v", pattern, err)
		}
	}
	e.Client.SRem(ctx, "asynq:queues", e.Queue)
}

func randomID() string {
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}
