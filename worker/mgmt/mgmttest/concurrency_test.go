package mgmttest

import (
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"
)

func TestConcurrentRequests(t *testing.T) {
	s := setup(t, Config{Seed: 90, Orgs: 8, Connections: 8,
		Global: Bucket{Burst: 1000, Rate: 1}, Write: Bucket{Burst: 150, Rate: 1}})
	s.client = &http.Client{Timeout: 10 * time.Second} // keep-alive, many connections at once
	orgs, cs := s.srv.Orgs(), s.srv.Connections()

	const workers, perWorker = 8, 40
	var wg sync.WaitGroup
	errs := make(chan error, workers*perWorker)
	for w := range workers {
		wg.Go(func() {
			for i := range perWorker {
				org := orgs[(w+i)%len(orgs)]
				c := cs[i%len(cs)].ID
				var r response
				var err error
				switch i % 4 {
				case 0:
					r, err = s.send("POST", orgPath(org), `{"connection_id":"`+c+`"}`)
				case 1:
					r, err = s.send("PATCH", orgPath(org, c), `{"show_as_button":false}`)
				case 2:
					r, err = s.send("GET", orgPath(org)+"?include_totals=true", "")
				default:
					r, err = s.send("DELETE", orgPath(org, c), "")
				}
				if err != nil {
					errs <- err
					continue
				}
				switch r.status {
				case 200, 201, 204, 404, 409, 429:
				default:
					errs <- fmt.Errorf("status %d: %s", r.status, r.body)
				}
			}
		})
	}
	// Admin calls race with the API.
	wg.Go(func() {
		for range 50 {
			_ = s.srv.State()
			_ = s.srv.Stats()
			s.srv.SetBucket(ReadBucket, Bucket{Burst: 100, Rate: 10})
			s.srv.SetFaults(Faults{})
			s.clock.Advance(time.Millisecond)
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	st := s.srv.Stats()
	if st.Total != workers*perWorker {
		t.Fatalf("Total %d, want %d", st.Total, workers*perWorker)
	}
	sum := 0
	for _, n := range st.ByRoute {
		sum += n
	}
	if sum != st.Total || st.Throttled != st.Requests("", 429) {
		t.Fatalf("inconsistent stats %v", st)
	}
	// Every successful write was counted once: creates minus deletes is what is enabled.
	enabled := 0
	for _, conns := range s.srv.State() {
		enabled += len(conns)
	}
	if created, removed := st.Requests("POST", 201), st.Requests("DELETE", 204); created-removed != enabled {
		t.Fatalf("created %d - removed %d != enabled %d", created, removed, enabled)
	}
}
