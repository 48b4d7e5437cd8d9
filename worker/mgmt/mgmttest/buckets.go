package mgmttest

import (
	"math"
	"time"
)

// BucketName names one of the simulator's rate-limit buckets.
type BucketName string

// The buckets: the API-wide one, the organization-connections write and read ones, and the
// /oauth/token one (Config.TokenLimit).
const (
	GlobalBucket BucketName = "global"
	WriteBucket  BucketName = "write"
	ReadBucket   BucketName = "read"
	TokenBucket  BucketName = "token"
)

// limitMessage is the 429 message Auth0 would send when this bucket is empty.
func (n BucketName) limitMessage() string {
	switch n {
	case WriteBucket:
		return "Organization connections write limit has been reached"
	case ReadBucket:
		return "Organization connections read limit has been reached"
	default:
		return "Global limit has been reached"
	}
}

// tokenEpsilon absorbs float rounding, so 0.41666…/s × 2.4 s counts as one whole token.
const tokenEpsilon = 1e-9

// bucket is a live bucket: a token bucket, or a fixed-window counter when cfg.Window > 0. It
// is not safe for concurrent use; its owner guards it.
type bucket struct {
	name   BucketName
	cfg    Bucket
	tokens float64
	last   time.Time
}

func newBucket(name BucketName, cfg Bucket, now time.Time) bucket {
	cfg = cfg.normalized()
	return bucket{name: name, cfg: cfg, tokens: float64(cfg.Burst), last: now}
}

func (b *bucket) limits() bool { return b.cfg.limits() }

// windowStart returns the start of the fixed window holding t: the greatest multiple of
// cfg.Window since the UNIX epoch that is not after t.
func (b *bucket) windowStart(t time.Time) time.Time {
	w := int64(b.cfg.Window)
	ns := t.UnixNano()
	m := ns % w
	if m < 0 {
		m += w
	}
	return time.Unix(0, ns-m)
}

// refill adds the tokens earned since the last refill, up to Burst: continuously at Rate, or
// all of them when a new window has begun. A clock that goes backwards adds nothing.
func (b *bucket) refill(now time.Time) {
	if !b.limits() || !now.After(b.last) {
		return
	}
	if b.cfg.Window > 0 {
		if b.windowStart(now).After(b.windowStart(b.last)) {
			b.tokens = float64(b.cfg.Burst)
		}
	} else {
		b.tokens = math.Min(float64(b.cfg.Burst), b.tokens+now.Sub(b.last).Seconds()*b.cfg.Rate)
	}
	b.last = now
}

func (b *bucket) hasToken() bool { return b.tokens+tokenEpsilon >= 1 }

// remaining is the number of whole tokens left.
func (b *bucket) remaining() int { return int(math.Floor(b.tokens + tokenEpsilon)) }

// ceilSecond returns t's UNIX second, rounded up.
func ceilSecond(t time.Time) int64 {
	sec := t.Unix()
	if t.Nanosecond() > 0 {
		sec++
	}
	return sec
}

// untilToken returns how long from now until the bucket holds a whole token; 0 when it does.
func (b *bucket) untilToken(now time.Time) time.Duration {
	if b.hasToken() {
		return 0
	}
	if b.cfg.Window > 0 {
		return b.windowStart(now).Add(b.cfg.Window).Sub(now)
	}
	return time.Duration(math.Round((1 - b.tokens) / b.cfg.Rate * 1e9))
}

// retryAfter is a Retry-After for a request this bucket refused at now: the wait until it
// holds a token, in whole seconds rounded up, at least 1 s.
func (b *bucket) retryAfter(now time.Time) time.Duration {
	secs := ceilSecond(time.Unix(0, 0).Add(b.untilToken(now)))
	return time.Duration(max(secs, 1)) * time.Second
}

// reset returns X-RateLimit-Reset as meaning reads it (see ResetMeaning); past picks ResetPast
// over ResetNow for ResetNowOrPast.
func (b *bucket) reset(now time.Time, meaning ResetMeaning, past bool) int64 {
	switch meaning {
	case ResetNow:
		return now.Unix()
	case ResetPast:
		return now.Unix() - 1
	case ResetNowOrPast:
		if past {
			return now.Unix() - 1
		}
		return now.Unix()
	}
	if b.cfg.Window > 0 {
		return ceilSecond(b.windowStart(now).Add(b.cfg.Window))
	}
	target := float64(b.cfg.Burst)
	if meaning == ResetNext {
		target = 1
	}
	need := target - b.tokens
	if need <= tokenEpsilon {
		return now.Unix()
	}
	return ceilSecond(now.Add(time.Duration(math.Round(need / b.cfg.Rate * 1e9))))
}

// take refills the bucket and takes a token when it limits and holds one. It reports false,
// taking nothing, when the bucket limits and is short.
func (b *bucket) take(now time.Time) bool {
	b.refill(now)
	if !b.limits() {
		return true
	}
	if !b.hasToken() {
		return false
	}
	b.tokens--
	return true
}

// headers returns what the X-RateLimit-* headers say when they describe this bucket.
func (b *bucket) headers(now time.Time, meaning ResetMeaning, past bool) RateHeaders {
	if !b.limits() {
		return RateHeaders{}
	}
	return RateHeaders{Present: true, Limit: b.cfg.Burst, Remaining: b.remaining(), Reset: b.reset(now, meaning, past)}
}

// reconfigure switches the bucket to cfg at now: tokens earned at the old rate are kept, then
// clamped to the new burst. A bucket that did not limit before starts full.
func (b *bucket) reconfigure(cfg Bucket, now time.Time) {
	wasLimiting := b.limits()
	b.refill(now)
	b.cfg = cfg.normalized()
	if !wasLimiting {
		b.tokens = float64(b.cfg.Burst)
	}
	b.tokens = math.Min(b.tokens, float64(b.cfg.Burst))
	b.last = now
}
