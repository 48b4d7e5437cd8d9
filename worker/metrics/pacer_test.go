package metrics

import (
	"context"
	"testing"

	"github.com/orgconn/orgconn/worker/mgmt"
	"github.com/prometheus/client_golang/prometheus"
)

// releasingPacer grants every slot and counts the slots handed back.
type releasingPacer struct{ released int }

func (p *releasingPacer) Wait(context.Context, mgmt.Class) (mgmt.Ticket, error) { return p, nil }
func (p *releasingPacer) Observe(mgmt.Ticket, mgmt.Exchange)                    {}
func (p *releasingPacer) Release(mgmt.Ticket)                                   { p.released++ }

// The metrics wrapper passes Release on: a slot granted to a call that
// never went goes back to the fleet's budget.
func TestPacerPassesReleaseOn(t *testing.T) {
	m, err := New(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	inner := &releasingPacer{}
	p := m.Pacer(inner)
	r, ok := p.(mgmt.Releaser)
	if !ok {
		t.Fatal("the metrics pacer does not implement mgmt.Releaser")
	}
	tk, err := p.Wait(context.Background(), mgmt.Write)
	if err != nil {
		t.Fatal(err)
	}
	r.Release(tk)
	if inner.released != 1 {
		t.Errorf("wrapped pacer got %d releases, want 1", inner.released)
	}
}
