package ratelimit

import "context"

// Paces are the sustained rates, in calls per second, at which the fleet's
// model lets reads and writes through: for each class, the slowest refill
// of the buckets that pace it. Zero means no bucket paces the class yet.
type Paces struct {
	Read, Write float64
}

// Paces returns the paces of the state's buckets (see Paces). A bucket
// that no longer paces calls (classes "-") does not count.
func (s State) Paces() Paces {
	var p Paces
	slowest := func(cur, rate float64) float64 {
		if rate <= 0 {
			return cur
		}
		if cur == 0 || rate < cur {
			return rate
		}
		return cur
	}
	for _, b := range s.Buckets {
		if contains(b.Classes, "r") {
			p.Read = slowest(p.Read, b.Rate)
		}
		if contains(b.Classes, "w") {
			p.Write = slowest(p.Write, b.Rate)
		}
	}
	return p
}

// Paces returns the fleet's learned paces for reads and writes (one read of
// Redis).
func (l *Limiter) Paces(ctx context.Context) (Paces, error) {
	st, err := l.State(ctx)
	if err != nil {
		return Paces{}, err
	}
	return st.Paces(), nil
}
