package worker

import (
	"strings"
	"testing"
	"time"

	"github.com/orgconn/orgconn/worker/ledger"
	"github.com/redis/go-redis/v9"
)

// validConfig has the required fields set (to values no test uses).
func validConfig() Config {
	return Config{Redis: redis.NewClient(&redis.Options{}), Ledger: &ledger.Ledger{}, API: nopAPI{}}
}

func TestConfigZeroFieldsMeanTheDefaults(t *testing.T) {
	c := validConfig()
	if err := c.validate(); err != nil {
		t.Fatalf("validate() = %v", err)
	}
	got := c.withDefaults()
	for _, f := range []struct {
		name      string
		got, want any
	}{
		{"Queue", got.Queue, DefaultQueue},
		{"Concurrency", got.Concurrency, DefaultConcurrency},
		{"MaxAttempts", got.MaxAttempts, DefaultMaxAttempts},
		{"BackoffBase", got.BackoffBase, DefaultBackoffBase},
		{"BackoffMax", got.BackoffMax, DefaultBackoffMax},
		{"WaitDelay", got.WaitDelay, DefaultWaitDelay},
		{"PollInterval", got.PollInterval, DefaultPollInterval},
		{"Lease", got.Lease, DefaultLease},
		{"OrphanCheck", got.OrphanCheck, DefaultOrphanCheck},
		{"OrphanGrace", got.OrphanGrace, DefaultOrphanGrace},
		{"ShutdownTimeout", got.ShutdownTimeout, DefaultShutdownTimeout},
	} {
		if f.got != f.want {
			t.Errorf("zero %s became %v, want %v", f.name, f.got, f.want)
		}
	}
	if got.Logger == nil || got.Instance == "" {
		t.Errorf("Logger %v, Instance %q: want both set", got.Logger, got.Instance)
	}

	c.Concurrency, c.OrphanCheck = 3, time.Second
	if got := c.withDefaults(); got.Concurrency != 3 || got.OrphanCheck != time.Second {
		t.Errorf("given values were replaced: Concurrency %d, OrphanCheck %v", got.Concurrency, got.OrphanCheck)
	}
	c.OrphanCheck, c.NoOrphanCheck = 0, true
	if got := c.withDefaults(); got.OrphanCheck != 0 || !got.NoOrphanCheck {
		t.Errorf("NoOrphanCheck: OrphanCheck became %v", got.OrphanCheck)
	}
}

func TestConfigErrorsNameTheField(t *testing.T) {
	for _, tc := range []struct {
		name   string
		adjust func(*Config)
		want   []string
	}{
		{"negative concurrency", func(c *Config) { c.Concurrency = -3 }, []string{"worker: Config.Concurrency is -3: want a positive value (0: 10)"}},
		{"negative attempts", func(c *Config) { c.MaxAttempts = -1 }, []string{"Config.MaxAttempts is -1"}},
		{"negative durations", func(c *Config) {
			c.WaitDelay, c.PollInterval, c.Lease, c.OrphanGrace, c.ShutdownTimeout = -1, -1, -1, -1, -1
		}, []string{"Config.WaitDelay is -1ns", "Config.PollInterval", "Config.Lease", "Config.OrphanGrace", "Config.ShutdownTimeout"}},
		{"negative orphan check", func(c *Config) { c.OrphanCheck = -time.Second }, []string{"Config.OrphanCheck is -1s: want a positive value (0: 5s)"}},
		{"orphan check both on and off", func(c *Config) { c.OrphanCheck, c.NoOrphanCheck = time.Second, true }, []string{"Config.OrphanCheck is 1s but Config.NoOrphanCheck is set"}},
		{"back-off upside down", func(c *Config) { c.BackoffBase, c.BackoffMax = time.Minute, time.Second }, []string{"Config.BackoffMax (1s) is below Config.BackoffBase (1m0s)"}},
		{"back-off base above the default max", func(c *Config) { c.BackoffBase = time.Hour }, []string{"Config.BackoffMax (5m0s) is below Config.BackoffBase (1h0m0s)"}},
		{"required fields", func(c *Config) { *c = Config{} }, []string{"Config.Redis is required", "Config.Ledger is required", "Config.API is required"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := validConfig()
			tc.adjust(&c)
			_, err := New(c)
			if err == nil {
				t.Fatal("New succeeded")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("New: %q, want it to contain %q", err, w)
				}
			}
		})
	}
}

// nopAPI is an API no test calls.
type nopAPI struct{ API }
