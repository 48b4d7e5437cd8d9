package autopipe

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/orgconn/orgconn/worker/redistest"
	"github.com/redis/go-redis/v9"
)

// echo records its call in a hash and answers with its arguments, so that
// each caller can check it got its own reply.
var echo = redis.NewScript(`
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return ARGV[1] .. '=' .. ARGV[2]
`)

// gate, added after the hook, holds the first MaxInFlight script commands
// sent alone until released, and records the size of every pipeline of
// scripts.
type gate struct {
	mu        sync.Mutex
	toHold    int
	held      chan struct{} // closed when all are held
	release   chan struct{}
	pipelines []int
}

func newGate() *gate {
	return &gate{toHold: MaxInFlight, held: make(chan struct{}), release: make(chan struct{})}
}

func (g *gate) DialHook(next redis.DialHook) redis.DialHook { return next }

func (g *gate) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		g.mu.Lock()
		hold := g.toHold > 0 && (cmd.Name() == "evalsha" || cmd.Name() == "eval")
		if hold {
			g.toHold--
			if g.toHold == 0 {
				close(g.held)
			}
		}
		g.mu.Unlock()
		if hold {
			<-g.release
		}
		return next(ctx, cmd)
	}
}

func (g *gate) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if len(cmds) > 0 && (cmds[0].Name() == "evalsha" || cmds[0].Name() == "eval") { // not a connection's set-up
			g.mu.Lock()
			g.pipelines = append(g.pipelines, len(cmds))
			g.mu.Unlock()
		}
		return next(ctx, cmds)
	}
}

func (h *Hook) queued() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.queue)
}

func waitQueued(t *testing.T, h *Hook, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for h.queued() < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d calls queued, want %d", h.queued(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// setup installs the hook, then the gate, on the test's client.
func setup(t *testing.T) (*Hook, *gate, *redistest.Env, string) {
	env := redistest.New(t)
	h := Install(env.Client)
	g := newGate()
	env.Client.AddHook(g)
	return h, g, env, "{" + env.Prefix + "}:h"
}

func TestCallsWaitingTogetherGoAsOnePipeline(t *testing.T) {
	h, g, env, key := setup(t)
	ctx := context.Background()
	if err := echo.Load(ctx, env.Client).Err(); err != nil {
		t.Fatal(err)
	}
	const n = 20
	first := make(chan string, MaxInFlight)
	for i := range MaxInFlight {
		go func() {
			s, _ := echo.Run(ctx, env.Client, []string{key}, fmt.Sprint("first", i), "0").Text()
			first <- s
		}()
	}
	<-g.held // the first calls are on their way, alone
	replies := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			replies[i], errs[i] = echo.Run(ctx, env.Client, []string{key}, fmt.Sprint("c", i), fmt.Sprint(i)).Text()
		}()
	}
	waitQueued(t, h, n)
	// Other commands are not held back.
	if err := env.Client.Set(ctx, key+":plain", "v", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	close(g.release)
	for range MaxInFlight {
		if s := <-first; !strings.HasPrefix(s, "first") || !strings.HasSuffix(s, "=0") {
			t.Fatalf("first call: %q", s)
		}
	}
	wg.Wait()
	for i := range n {
		if want := fmt.Sprintf("c%d=%d", i, i); errs[i] != nil || replies[i] != want {
			t.Errorf("call %d: %q, %v; want %q", i, replies[i], errs[i], want)
		}
	}
	if p, c := h.Stats(); p != 1 || c != n {
		t.Errorf("%d pipelines carried %d commands; want 1 carrying %d", p, c, n)
	}
	g.mu.Lock()
	if len(g.pipelines) != 1 || g.pipelines[0] != n {
		t.Errorf("pipelines sent: %v; want one of %d commands", g.pipelines, n)
	}
	g.mu.Unlock()
	if got := env.Client.HLen(ctx, key).Val(); got != n+MaxInFlight {
		t.Errorf("the scripts ran %d times; want %d", got, n+MaxInFlight)
	}
}

func TestAScriptRedisDoesNotKnowIsLoadedFromAPipeline(t *testing.T) {
	h, g, env, key := setup(t)
	ctx := context.Background()
	// A script no earlier run loaded: EVALSHA fails with NOSCRIPT inside the
	// pipeline and redis.Script.Run falls back to EVAL.
	script := redis.NewScript(fmt.Sprintf("-- %s\nreturn redis.call('HINCRBY', KEYS[1], ARGV[1], 1)", env.Prefix))
	for i := range MaxInFlight {
		go script.Run(ctx, env.Client, []string{key}, fmt.Sprint("first", i))
	}
	<-g.held
	var wg sync.WaitGroup
	errs := make(chan error, 10)
	for i := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n, err := script.Run(ctx, env.Client, []string{key}, fmt.Sprint("f", i)).Int64()
			if err == nil && n != 1 {
				err = fmt.Errorf("field f%d counted %d times", i, n)
			}
			errs <- err
		}()
	}
	waitQueued(t, h, 10)
	close(g.release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

func TestAFailedPipelineFailsEachOfItsCalls(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln.Close() // nothing listens there now
	rdb := redis.NewClient(&redis.Options{Addr: ln.Addr().String(), MaxRetries: -1, DialTimeout: time.Second})
	defer rdb.Close()
	h := Install(rdb)
	g := newGate()
	rdb.AddHook(g)
	ctx := context.Background()
	for range MaxInFlight {
		go echo.Run(ctx, rdb, []string{"k"}, "first", "0")
	}
	<-g.held
	var wg sync.WaitGroup
	errs := make(chan error, 5)
	for i := range 5 {
		wg.Add(1)
		go func() { defer wg.Done(); errs <- echo.Run(ctx, rdb, []string{"k"}, fmt.Sprint(i), "x").Err() }()
	}
	waitQueued(t, h, 5)
	close(g.release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err == nil {
			t.Error("a call of a failed pipeline reported success")
		}
	}
}
