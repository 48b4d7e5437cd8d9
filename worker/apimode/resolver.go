package apimode

import (
	"context"
	"log/slog"
	"time"
)

// Source says where a resolved mode came from.
type Source string

// The sources.
const (
	// FromConfig: the configured mode was Legacy or Connections.
	FromConfig Source = "config"
	// FromMemory: the fleet's memory in Redis (an earlier probe, by any process).
	FromMemory Source = "remembered"
	// FromProbe: this resolver's probe just now.
	FromProbe Source = "probed"
	// Undecided: no memory, and the last probe did not decide (or there is no API to probe).
	Undecided Source = "undecided"
)

// DefaultRetry is how long a Resolver waits after an undecided probe before probing again.
const DefaultRetry = 30 * time.Second

// Resolution is a resolved mode.
type Resolution struct {
	// Mode is Legacy or Connections; Auto while undecided.
	Mode Mode
	// Source says where Mode came from.
	Source Source
	// Memory is the remembered answer behind it (FromMemory, FromProbe).
	Memory Memory
	// Probe is the last probe this resolver made, when it made one.
	Probe *ProbeResult
}

// Decided reports whether the mode is Legacy or Connections.
func (r Resolution) Decided() bool { return r.Mode == Legacy || r.Mode == Connections }

// Config configures a Resolver.
type Config struct {
	// Mode is the configured mode; "" means Auto.
	Mode Mode
	// Tenant names the tenant (ratelimit.TenantOf its base URL): the key of its memory.
	Tenant string
	// Store is the fleet's memory. Nil means none: every process probes for itself, once per
	// Resolver while the answer is decided.
	Store *Store
	// API makes the probe. Nil means no probe: an Auto mode without a memory stays undecided.
	API Lister
	// ProbeOrg is the organization the probe asks about; "" means ProbeOrg.
	ProbeOrg string
	// Retry is how long after an undecided probe the next may be made; 0 means DefaultRetry.
	Retry time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Logger receives a line per probe; nil means slog.Default().
	Logger *slog.Logger
}

// Resolver resolves one tenant's mode, caching what it resolved until the memory expires.
// Build it with NewResolver. Safe for concurrent use.
type Resolver struct {
	cfg  Config
	lock chan struct{} // held while resolving: one probe at a time

	// Guarded by lock.
	cached    Resolution
	until     time.Time // the cached decided resolution holds until then
	nextProbe time.Time
	lastProbe *ProbeResult
}

// NewResolver returns a resolver for cfg; it checks cfg.Mode.
func NewResolver(cfg Config) (*Resolver, error) {
	if cfg.Mode == "" {
		cfg.Mode = Auto
	}
	if _, err := Parse(string(cfg.Mode)); err != nil {
		return nil, err
	}
	if cfg.ProbeOrg == "" {
		cfg.ProbeOrg = ProbeOrg
	}
	if cfg.Retry <= 0 {
		cfg.Retry = DefaultRetry
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Resolver{cfg: cfg, lock: make(chan struct{}, 1)}, nil
}

// Configured returns the configured mode (Legacy, Connections or Auto).
func (r *Resolver) Configured() Mode { return r.cfg.Mode }

// Resolve returns the tenant's mode. Legacy and Connections are returned as configured. Auto
// is resolved from the cache, then the fleet's memory, then a probe (at most one per Retry
// while probes do not decide); a probe that decides is remembered in the Store. The error is
// a failure to read or write Redis or a cancelled context; an undecided probe is not an error
// (the Resolution says Undecided, and its Probe says why).
func (r *Resolver) Resolve(ctx context.Context) (Resolution, error) {
	if r.cfg.Mode != Auto {
		return Resolution{Mode: r.cfg.Mode, Source: FromConfig}, nil
	}
	select {
	case r.lock <- struct{}{}:
	case <-ctx.Done():
		return Resolution{Mode: Auto, Source: Undecided}, context.Cause(ctx)
	}
	defer func() { <-r.lock }()

	now := r.cfg.Now()
	if r.cached.Decided() && now.Before(r.until) {
		return r.cached, nil
	}
	if r.cfg.Store != nil {
		m, ok, err := r.cfg.Store.Get(ctx, r.cfg.Tenant)
		if err != nil {
			return Resolution{Mode: Auto, Source: Undecided, Probe: r.lastProbe}, err
		}
		if ok {
			r.cached = Resolution{Mode: m.Mode, Source: FromMemory, Memory: m}
			if m.TTL <= 0 {
				m.TTL, r.cached.Memory.TTL = DefaultTTL, DefaultTTL // a key without expiry: look again in a day
			}
			r.until = now.Add(m.TTL)
			return r.cached, nil
		}
	}
	if r.cfg.API == nil || now.Before(r.nextProbe) {
		return Resolution{Mode: Auto, Source: Undecided, Probe: r.lastProbe}, nil
	}
	p := Probe(ctx, r.cfg.API, r.cfg.ProbeOrg)
	r.lastProbe = &p
	if !p.Decided() {
		r.nextProbe = now.Add(r.cfg.Retry)
		r.cfg.Logger.Warn("API mode probe did not decide; probing again later",
			"tenant", r.cfg.Tenant, "status", p.Status, "evidence", p.Evidence, "error", p.Err, "retry_in", r.cfg.Retry)
		if ctx.Err() != nil {
			return Resolution{Mode: Auto, Source: Undecided, Probe: &p}, context.Cause(ctx)
		}
		return Resolution{Mode: Auto, Source: Undecided, Probe: &p}, nil
	}
	m := Memory{Mode: p.Mode, ProbedAt: r.cfg.Now().UTC(), Status: p.Status, Evidence: p.Evidence}
	r.cfg.Logger.Info("API mode probed", "tenant", r.cfg.Tenant, "mode", string(p.Mode), "status", p.Status, "evidence", p.Evidence)
	res := Resolution{Mode: p.Mode, Source: FromProbe, Memory: m, Probe: &p}
	ttl := DefaultTTL
	if r.cfg.Store != nil {
		ttl = r.cfg.Store.ttl
		if err := r.cfg.Store.Put(ctx, r.cfg.Tenant, m); err != nil {
			// The answer stands for this process; the rest of the fleet will probe again.
			res.Memory.TTL = ttl
			r.cached, r.until = res, now.Add(ttl)
			return res, err
		}
	}
	m.TTL = ttl
	res.Memory = m
	r.cached, r.until = res, now.Add(ttl)
	return res, nil
}
