package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"

	"github.com/redis/go-redis/v9"
)

// goRedisLog takes go-redis's own log lines (such as "redis: connection
// pool: failed to dial after 5 attempts", written several times while Redis
// is down, before orgconn's one message that says what to do) and writes
// them through slog at debug level: seen with --log-level debug, never on a
// user's terminal otherwise. go-redis's logger is global to the process, so
// the lines go to the logger of the command that built one last.
type goRedisLog struct{ to atomic.Pointer[slog.Logger] }

func (g *goRedisLog) Printf(ctx context.Context, format string, v ...any) {
	if l := g.to.Load(); l != nil {
		l.DebugContext(ctx, strings.TrimSpace(fmt.Sprintf(format, v...)), "component", "go-redis")
	}
}

// redisLog is the one goRedisLog, installed by run.
var redisLog = func() *goRedisLog {
	g := &goRedisLog{}
	g.to.Store(slog.New(slog.NewTextHandler(io.Discard, nil)))
	return g
}()

// routeRedisLogs makes go-redis log through redisLog, writing to log; a
// command without a logger of its own passes nil and the lines are dropped
// (they are debug lines, and such a command has no --log-level).
func routeRedisLogs(log *slog.Logger) {
	if log != nil {
		redisLog.to.Store(log)
	}
	redis.SetLogger(redisLog)
}
