package worker

import (
	"testing"

	"github.com/orgconn/orgconn/worker/ratelimit"
)

// The decision to read, with fixed budgets: the tenant shapes of the
// issue (Essentials: reads 50/min, writes 25/min; Enterprise: reads
// 100/min, writes 150/min).
func TestWorthReadingWeighsTheLearnedPaces(t *testing.T) {
	essentials := ratelimit.Paces{Read: 50.0 / 60, Write: 25.0 / 60}
	enterprise := ratelimit.Paces{Read: 100.0 / 60, Write: 150.0 / 60}
	cases := []struct {
		name   string
		rows   int
		likely float64
		p      ratelimit.Paces
		want   bool
	}{
		{"essentials, 5 rows per org, half in place: a read (1.2 s) saves 2.5 writes (6 s)", 5, 0.5, essentials, true},
		{"essentials, 1 row per org, half in place: a read (1.2 s) saves half a write (1.2 s): no gain", 1, 0.5, essentials, false},
		{"enterprise, 1 row per org: reads scarcer than writes never read", 1, 0.5, enterprise, false},
		{"enterprise, 1 row per org, even if every row were in place", 1, 1, enterprise, false},
		{"enterprise, 5 rows per org, half in place", 5, 0.5, enterprise, true},
		{"a planned batch (apply): nothing expected in place", 50, 0, essentials, false},
		{"paces not learned yet", 5, 0.5, ratelimit.Paces{}, false},
		{"no rows", 0, 0.5, essentials, false},
	}
	for _, tc := range cases {
		if got := WorthReading(tc.rows, tc.likely, tc.p); got != tc.want {
			t.Errorf("%s: WorthReading(%d, %v, %+v) = %v, want %v", tc.name, tc.rows, tc.likely, tc.p, got, tc.want)
		}
	}
	// One row per organization on any tenant whose reads are scarcer than
	// its writes: never, whatever the share expected in place.
	for _, likely := range []float64{0.1, 0.5, 0.9, 1, 2} {
		for _, p := range []ratelimit.Paces{enterprise, {Read: 1, Write: 1.01}, {Read: 0.1, Write: 10}} {
			if WorthReading(1, likely, p) {
				t.Errorf("WorthReading(1, %v, %+v) = true with reads scarcer than writes", likely, p)
			}
		}
	}
}
