package tokencache

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/orgconn/orgconn/worker/redistest"
)

type counter struct{ n atomic.Int64 }

func (c *counter) Fetch(context.Context) (string, time.Duration, error) {
	return fmt.Sprintf("tok-%d", c.n.Add(1)), time.Hour, nil
}

// TestARefusedTokenNeverComesBack covers the races around Invalidate: a
// read that got the refused token from Redis just before the drop keeps it
// afterwards, or Redis holds it again. Either way the next Token fetches a
// new one (the bug: a worker refused three times in a row dead-lettered a
// change as unauthorized).
func TestARefusedTokenNeverComesBack(t *testing.T) {
	env := redistest.New(t)
	ctx := context.Background()
	f := &counter{}
	s := New(env.Client, env.Prefix, "id", f)
	first, err := s.Token(ctx)
	if err != nil || first != "tok-1" {
		t.Fatalf("Token = %q, %v", first, err)
	}
	s.Invalidate(first)
	s.keep(first, time.Now().Add(time.Hour)) // a read that raced with the drop
	got, err := s.Token(ctx)
	if err != nil || got == first {
		t.Fatalf("after Invalidate and a late keep, Token = %q, %v; want a new token", got, err)
	}
	second := got
	s.Invalidate(second)
	// Redis holds the refused token again (stored back by a racing process).
	exp := time.Now().Add(time.Hour)
	if err := env.Client.Set(ctx, s.key, strconv.FormatInt(exp.UnixMilli(), 10)+":"+second, time.Hour).Err(); err != nil {
		t.Fatal(err)
	}
	got, err = s.Token(ctx)
	if err != nil || got == second || got == first {
		t.Fatalf("with the refused token back in Redis, Token = %q, %v; want a new token", got, err)
	}
	if n := f.n.Load(); n != 3 {
		t.Errorf("fetched %d tokens, want 3", n)
	}
	// A token refused long ago and forgotten (the memory keeps 8) is
	// harmless: the tenant refuses it again and it is dropped again.
	for i := range len(s.refused) + 1 {
		s.Invalidate(fmt.Sprint("other-", i))
	}
	if s.isRefused(first) {
		t.Error("the memory of refused tokens is not bounded")
	}
}
