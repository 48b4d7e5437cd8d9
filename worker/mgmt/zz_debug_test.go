package mgmt

import (
	"context"
	"testing"

	"github.com/orgconn/orgconn/worker/mgmt/mgmttest"
)

func TestZZDebugDrop(t *testing.T) {
	for _, k := range allCalls {
		e := setup(t, mgmttest.Config{})
		org, saml := e.org(), e.conn("samlp")
		e.enable(org, saml)
		_ = listCall.run(context.Background(), e.client, org, saml.ID) // warm the connection
		e.sim.SetFaults(mgmttest.Faults{Drop: 1})
		e.pacer.take()
		err := k.run(context.Background(), e.client, org, saml.ID)
		t.Logf("%s: err=%v stats=%v pacer=%d", k.name, err, e.sim.Stats(), len(e.pacer.take()))
	}
}
