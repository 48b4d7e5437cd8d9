package ledger

import (
	"context"
	"math"
	"strconv"
	"strings"
	"time"
)

// The batch's pace is measured from its own record: every resolution is
// counted in a bucket of rateBucket seconds of the Redis server's clock
// (fields "t:<unix time / 5>" of the batch hash); the current bucket and the
// rateBuckets-1 before it are kept.
const (
	rateBucket  = 5
	rateBuckets = 13
)

// RateWindow is the longest span over which BatchCounts.Rate is measured.
const RateWindow = (rateBuckets - 1) * rateBucket * time.Second

// recent sums the resolutions counted in the kept buckets and returns the
// span they cover: from the start of the oldest kept bucket (or the batch's
// creation, if later) to now.
func recent(m map[string]string, now, created time.Time) (int64, time.Duration) {
	cur := now.Unix() / rateBucket
	oldest := cur - rateBuckets + 1
	var n int64
	for k, v := range m {
		b, ok := strings.CutPrefix(k, "t:")
		if !ok {
			continue
		}
		i, err := strconv.ParseInt(b, 10, 64)
		if err != nil || i < oldest || i > cur {
			continue
		}
		c, _ := strconv.ParseInt(v, 10, 64)
		n += c
	}
	from := time.Unix(oldest*rateBucket, 0)
	if created.After(from) {
		from = created
	}
	span := now.Sub(from)
	if span < time.Second {
		span = time.Second
	}
	return n, span
}

// Rate is the batch's observed pace: lines resolved (applied, superseded or
// dead-lettered) per second over the last minute or so (RateWindow plus the
// current bucket), or since the batch was created if that is more recent.
// It measures what the fleet achieved for this batch, not the tenant's
// budget; it is 0 when nothing resolved lately.
func (c BatchCounts) Rate() float64 {
	if c.Window <= 0 {
		return 0
	}
	return float64(c.Resolved) / c.Window.Seconds()
}

// ETA is how long the pending lines take at the current Rate; ok is false
// when the batch is not done and nothing resolved lately (no estimate).
func (c BatchCounts) ETA() (eta time.Duration, ok bool) {
	if c.Pending <= 0 {
		return 0, true
	}
	r := c.Rate()
	if r <= 0 {
		return 0, false
	}
	s := float64(c.Pending) / r
	if s > math.MaxInt64/float64(time.Second) {
		return 0, false
	}
	return time.Duration(s * float64(time.Second)).Round(time.Second), true
}

// Waiting is Pending less Retrying: lines queued, waiting for their pair's
// turn or running their first attempt.
func (c BatchCounts) Waiting() int64 { return c.Pending - c.Retrying }

// Wait reads the batch's counters every interval, passing each reading to
// tick (if not nil), until every accepted line is resolved or ctx ends. It
// returns the last reading.
func (l *Ledger) Wait(ctx context.Context, batch string, interval time.Duration, tick func(BatchCounts)) (BatchCounts, error) {
	if interval <= 0 {
		interval = time.Second
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		bc, err := l.Batch(ctx, batch)
		if err != nil {
			return bc, err
		}
		if tick != nil {
			tick(bc)
		}
		if bc.Done() {
			return bc, nil
		}
		select {
		case <-ctx.Done():
			return bc, ctx.Err()
		case <-t.C:
		}
	}
}
