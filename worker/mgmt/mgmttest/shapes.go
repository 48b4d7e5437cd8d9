package mgmttest

import (
	"fmt"
	"strings"
	"time"
)

// Shape is a named preset of a tenant's rate limiting: buckets, header policy, what Reset
// means, the /oauth/token limit. Each is one plausible reading of what Auth0 documents (or
// leaves undocumented), so a client can be run against all of them. Get one from Shapes or
// LookupShape; a Shape built by hand with another Name gives the zero Config.
type Shape struct {
	Name string
	Doc  string // one line
}

// shapeDef is a shape and the Config it stands for at real time.
type shapeDef struct {
	Shape
	config func() Config
}

// shapeToken is the /oauth/token limit of every shape: a client that caches its token never
// meets it, one that fetches a token per call does.
var shapeToken = Bucket{Burst: 10, Rate: 10}

// perMinute turns n per minute into a rate per second.
func perMinute(n float64) float64 { return n / 60 }

// shapeDefs are the shapes in the order Shapes returns them. The synthetic ones keep their
// numbers small so that a 400-change write-only job takes 20–60 s at time scale 1; the two
// plan shapes carry Auth0's published numbers and need --time-scale (about 20 for
// essentials, 4 for enterprise) to do the same.
var shapeDefs = []shapeDef{
	{Shape{"shared", "one bucket (burst 10, 20/s) for reads and writes, described by every answer"}, func() Config {
		return Config{Global: Bucket{Burst: 10, Rate: 20}}
	}},
	{Shape{"split", "global (10, 20/s) + read (5, 10/s) + write (5, 8/s); headers describe the tightest; 429s carry Retry-After"}, func() Config {
		return Config{Global: Bucket{Burst: 10, Rate: 20}, Read: Bucket{Burst: 5, Rate: 10}, Write: Bucket{Burst: 5, Rate: 8}, HeaderPolicy: Tightest, RetryAfter: true}
	}},
	{Shape{"burst-headers", "answers describe the global burst bucket (10, 20/s); the binding write bucket (30, 8/s) shows only in its own 429s"}, func() Config {
		return Config{Global: Bucket{Burst: 10, Rate: 20}, Write: Bucket{Burst: 30, Rate: 8}, HeaderPolicy: GlobalUnlessRefused}
	}},
	{Shape{"alternate", "global (10, 20/s) + write (5, 10/s); each answer describes one of them in turn"}, func() Config {
		return Config{Global: Bucket{Burst: 10, Rate: 20}, Write: Bucket{Burst: 5, Rate: 10}, HeaderPolicy: Alternate}
	}},
	// write is 120 per 15 s rather than 480 per minute (the same 8/s): a 400-change job fits
	// in one 480 window, where only the 1-s global window would ever refuse.
	{Shape{"window", "fixed windows aligned to the epoch: global 10 per 1 s, write 120 per 15 s; tightest; Reset is the next window start"}, func() Config {
		return Config{Global: Bucket{Burst: 10, Window: time.Second}, Write: Bucket{Burst: 120, Window: 15 * time.Second}, HeaderPolicy: Tightest}
	}},
	{Shape{"reset-now", "one bucket (10, 20/s) whose X-RateLimit-Reset is the current second or the one before, never in the future"}, func() Config {
		return Config{Global: Bucket{Burst: 10, Rate: 20}, ResetMeaning: ResetNowOrPast}
	}},
	{Shape{"essentials", "Auth0 Essentials: global 10 / 150 per min, read 5 / 50 per min, write 5 / 25 per min; tightest (try --time-scale 20)"}, func() Config {
		return Config{Global: Bucket{Burst: 10, Rate: perMinute(150)}, Read: Bucket{Burst: 5, Rate: perMinute(50)}, Write: Bucket{Burst: 5, Rate: perMinute(25)}, HeaderPolicy: Tightest}
	}},
	{Shape{"enterprise", "Auth0 Enterprise: global 50 / 16 per s, read 10 / 100 per min, write 5 / 150 per min; answers describe global, 429s the refusing bucket (try --time-scale 4)"}, func() Config {
		return Config{Global: Bucket{Burst: 50, Rate: 16}, Read: Bucket{Burst: 10, Rate: perMinute(100)}, Write: Bucket{Burst: 5, Rate: perMinute(150)}, HeaderPolicy: GlobalUnlessRefused}
	}},
}

// Shapes returns every shape, in a fixed order.
func Shapes() []Shape {
	out := make([]Shape, len(shapeDefs))
	for i, d := range shapeDefs {
		out[i] = d.Shape
	}
	return out
}

// ShapeNames returns the names of Shapes, in the same order.
func ShapeNames() []string {
	out := make([]string, len(shapeDefs))
	for i, d := range shapeDefs {
		out[i] = d.Name
	}
	return out
}

// LookupShape returns the shape named name, or an error that lists the valid names.
func LookupShape(name string) (Shape, error) {
	for _, d := range shapeDefs {
		if d.Name == name {
			return d.Shape, nil
		}
	}
	return Shape{}, fmt.Errorf("mgmttest: unknown shape %q, want one of %s", name, strings.Join(ShapeNames(), ", "))
}

// Config returns the shape's rate limiting as a Config: Global, Write, Read, HeaderPolicy,
// ResetMeaning, RetryAfter, TokenLimit, and AuthSpends true (401s and 403s spend budget); the
// other fields, Faults included, are zero. timeScale K > 0 multiplies every rate and divides
// every window by K, so per-minute budgets run K times faster; 0 (or anything not above 0) and
// 1 mean real time. A Shape that Shapes does not list gives the zero Config.
func (s Shape) Config(timeScale float64) Config {
	for _, d := range shapeDefs {
		if d.Name != s.Name {
			continue
		}
		cfg := d.config()
		cfg.TokenLimit = shapeToken
		cfg.AuthSpends = true
		for _, b := range []*Bucket{&cfg.Global, &cfg.Write, &cfg.Read, &cfg.TokenLimit} {
			*b = b.scaled(timeScale)
		}
		return cfg
	}
	return Config{}
}

// Binding returns the bucket that binds a write-only job on this shape at timeScale: of the
// buckets a write draws from (global, write), the limiting one with the lowest sustained
// rate, normalized and scaled (a window bucket: Burst per window, Rate = Burst/Window). The
// zero Bucket when nothing limits writes.
func (s Shape) Binding(timeScale float64) Bucket {
	cfg := s.Config(timeScale)
	var bind Bucket
	for _, b := range []Bucket{cfg.Global, cfg.Write} {
		if b.limits() && (!bind.limits() || b.Rate < bind.Rate) {
			bind = b
		}
	}
	return bind
}

// scaled returns b normalized, with its Rate multiplied and its Window divided by k; k not
// above 0 means 1.
func (b Bucket) scaled(k float64) Bucket {
	b = b.normalized()
	if k <= 0 || k == 1 || !b.limits() {
		return b
	}
	b.Rate *= k
	if b.Window > 0 {
		b.Window = time.Duration(float64(b.Window) / k)
		if b.Window < 1 {
			b.Window = 1
		}
	}
	return b
}
