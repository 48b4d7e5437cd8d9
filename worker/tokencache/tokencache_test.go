package tokencache_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/orgconn/orgconn/worker/mgmt"
	"github.com/orgconn/orgconn/worker/mgmt/mgmttest"
	"github.com/orgconn/orgconn/worker/redistest"
	"github.com/orgconn/orgconn/worker/tokencache"
)

// fleet is n processes' token sources: each its own client credentials and
// cache, sharing Redis and the tenant.
func fleet(t *testing.T, n int, sim *mgmttest.Server) ([]*tokencache.Shared, []*mgmt.ClientCredentials) {
	shared, creds, _ := fleetOn(t, n, sim)
	return shared, creds
}

// fleetOn is fleet, also returning the Redis.
func fleetOn(t *testing.T, n int, sim *mgmttest.Server) ([]*tokencache.Shared, []*mgmt.ClientCredentials, *redistest.Env) {
	t.Helper()
	env := redistest.New(t)
	run, err := mgmttest.Listen("127.0.0.1:0", sim)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { run.Close(context.Background()) })
	var shared []*tokencache.Shared
	var creds []*mgmt.ClientCredentials
	for range n {
		cc := mgmt.NewClientCredentials(run.URL(), mgmttest.DefaultClientID, mgmttest.DefaultClientSecret, nil)
		creds = append(creds, cc)
		shared = append(shared, tokencache.New(env.Client, env.Prefix, cc.Identity(), cc))
	}
	return shared, creds, env
}

func TestOneTokenForTheWholeFleet(t *testing.T) {
	sim := mgmttest.New(mgmttest.Config{})
	shared, _ := fleet(t, 4, sim)
	var wg sync.WaitGroup
	tokens := make(chan string, 4*25)
	for _, s := range shared {
		for range 25 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				tok, err := s.Token(t.Context())
				if err != nil {
					t.Error(err)
					return
				}
				tokens <- tok
			}()
		}
	}
	wg.Wait()
	close(tokens)
	first := ""
	for tok := range tokens {
		if first == "" {
			first = tok
		}
		if tok != first {
			t.Fatalf("processes got different tokens")
		}
	}
	if n := sim.Stats().TokensIssued; n != 1 {
		t.Errorf("4 processes × 25 callers fetched %d tokens, want 1", n)
	}
}

func TestInvalidateRefreshesOnceForTheFleet(t *testing.T) {
	sim := mgmttest.New(mgmttest.Config{})
	shared, _ := fleet(t, 3, sim)
	old, err := shared[0].Token(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range shared[1:] {
		if tok, _ := s.Token(t.Context()); tok != old {
			t.Fatal("a second process did not reuse the shared token")
		}
	}
	// Every process sees the same 401.
	for _, s := range shared {
		s.Invalidate(old)
	}
	var fresh []string
	for _, s := range shared {
		tok, err := s.Token(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if tok == old {
			t.Fatal("the refused token was returned again")
		}
		fresh = append(fresh, tok)
	}
	if fresh[0] != fresh[1] || fresh[1] != fresh[2] {
		t.Error("after a 401 the processes did not share the new token")
	}
	if n := sim.Stats().TokensIssued; n != 2 {
		t.Errorf("tokens fetched: %d, want 2 (the first and one refresh)", n)
	}
	// A late Invalidate of the old token must not drop the new one.
	shared[1].Invalidate(old)
	if tok, _ := shared[2].Token(t.Context()); tok != fresh[0] {
		t.Error("invalidating an old token dropped the fleet's current one")
	}
	if n := sim.Stats().TokensIssued; n != 2 {
		t.Errorf("tokens fetched after a stale invalidate: %d, want 2", n)
	}
}

func TestTokenIsRefreshedBeforeItExpires(t *testing.T) {
	// Tokens live 2 s; the cache keeps a tenth of the lifetime in hand.
	sim := mgmttest.New(mgmttest.Config{TokenTTL: 2 * time.Second})
	shared, _, env := fleetOn(t, 2, sim)
	first, err := shared[0].Token(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		tok, err := shared[1].Token(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if tok != first {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the shared token was never refreshed")
		}
		time.Sleep(50 * time.Millisecond)
		if env.Embedded != nil {
			// The token's expiry is its TTL in Redis: an embedded Redis
			// moves its clock only when told.
			env.Embedded.FastForward(50 * time.Millisecond)
		}
	}
	if n := sim.Stats().TokensIssued; n != 2 {
		t.Errorf("tokens fetched: %d, want 2", n)
	}
}

func TestFetchFailureIsReturnedAndNotShared(t *testing.T) {
	sim := mgmttest.New(mgmttest.Config{})
	env := redistest.New(t)
	run, err := mgmttest.Listen("127.0.0.1:0", sim)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { run.Close(context.Background()) })
	bad := mgmt.NewClientCredentials(run.URL(), mgmttest.DefaultClientID, "wrong-secret", nil)
	s := tokencache.New(env.Client, env.Prefix, bad.Identity(), bad)
	if _, err := s.Token(t.Context()); err == nil {
		t.Fatal("a refused client secret gave a token")
	}
	good := mgmt.NewClientCredentials(run.URL(), mgmttest.DefaultClientID, mgmttest.DefaultClientSecret, nil)
	if _, err := tokencache.New(env.Client, env.Prefix, good.Identity(), good).Token(t.Context()); err != nil {
		t.Fatalf("after another process's failure, a good fetch failed: %v", err)
	}
}
