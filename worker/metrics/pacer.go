package metrics

import (
	"context"
	"net/http"
	"time"

	"github.com/orgconn/orgconn/worker/mgmt"
)

// Pacer returns a mgmt.Pacer that passes every call to next and counts it:
// the time Wait took when it let a call go (orgconn_limiter_wait_seconds),
// and every answer by method and status (orgconn_api_requests_total, and
// orgconn_api_throttled_total for a 429). The ticket next returns is handed
// back to next unchanged.
func (m *Metrics) Pacer(next mgmt.Pacer) mgmt.Pacer {
	return &pacer{m: m, next: next, now: time.Now}
}

type pacer struct {
	m    *Metrics
	next mgmt.Pacer
	now  func() time.Time
}

// Wait waits on the wrapped pacer and records how long a call that may go
// waited; a wait that ends in an error (shutdown, cancellation) sends no
// call and is not recorded.
func (p *pacer) Wait(ctx context.Context, c mgmt.Class) (mgmt.Ticket, error) {
	start := p.now()
	t, err := p.next.Wait(ctx, c)
	if err == nil {
		p.m.wait.WithLabelValues(c.String()).Observe(p.now().Sub(start).Seconds())
	}
	return t, err
}

// Observe counts the answer and tells the wrapped pacer.
func (p *pacer) Observe(t mgmt.Ticket, e mgmt.Exchange) {
	p.m.requests.WithLabelValues(e.Method, statusLabel(e.Status)).Inc()
	if e.Status == http.StatusTooManyRequests {
		p.m.throttled.Inc()
	}
	p.next.Observe(t, e)
}

// Release hands an unused slot back to the wrapped pacer when it can take
// one back (mgmt.Releaser): the wrapper must not hide it, or a slot granted
// to a call that never went (no token, say) would be lost to the fleet.
func (p *pacer) Release(t mgmt.Ticket) {
	if r, ok := p.next.(mgmt.Releaser); ok {
		r.Release(t)
	}
}
