package mgmttest

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestStats(t *testing.T) {
	s := setup(t, Config{Seed: 80, Write: Bucket{Burst: 2, Rate: 1}})
	org := s.org(0)
	cs := s.srv.Connections()
	if st := s.srv.Stats(); !st.FirstWrite.IsZero() || st.Total != 0 {
		t.Fatalf("fresh stats %v", st)
	}
	wantStatus(t, s.do("POST", orgPath(org), `{"connection_id":"`+cs[0].ID+`"}`), 201)
	s.clock.Advance(3 * time.Second)
	wantStatus(t, s.do("PATCH", orgPath(org, cs[0].ID), `{"show_as_button":false}`), 200)
	wantStatus(t, s.do("PATCH", orgPath(org, cs[1].ID), `{"show_as_button":false}`), 404)
	wantStatus(t, s.do("DELETE", orgPath(org, cs[0].ID), ""), 429)
	wantStatus(t, s.do("GET", orgPath(org), ""), 200)
	wantStatus(t, s.do("GET", orgPath(org, cs[0].ID), ""), 200)

	st := s.srv.Stats()
	if st.Total != 6 || st.Writes != 2 || st.Throttled != 1 {
		t.Fatalf("stats %v", st)
	}
	if !st.FirstWrite.Equal(epoch) || !st.LastWrite.Equal(epoch.Add(3*time.Second)) {
		t.Fatalf("first %v last %v", st.FirstWrite, st.LastWrite)
	}
	if st.Requests("GET", 200) != 2 || st.Requests("", 200) != 3 || st.Requests("PATCH", 404) != 1 || st.Requests("POST", 200) != 0 {
		t.Fatalf("Requests: %v", st.ByRoute)
	}
	if got := st.ByRoute["DELETE /api/v2/organizations/{id}/enabled_connections/{connectionId} 429"]; got != 1 {
		t.Fatalf("ByRoute key format changed: %v", st.ByRoute)
	}
	if StatsKey("GET", RouteEnabledConnections, 200) != "GET /api/v2/organizations/{id}/enabled_connections 200" {
		t.Fatal("StatsKey format changed")
	}
	// The snapshot is a copy.
	st.ByRoute["x"] = 1
	if _, leaked := s.srv.Stats().ByRoute["x"]; leaked {
		t.Fatal("Stats() shares its map")
	}
	// JSON round trip (what /sim/stats serves), and zero times omitted.
	b, _ := json.Marshal(New(Config{}).Stats())
	if strings.Contains(string(b), "first_write") {
		t.Fatalf("zero FirstWrite encoded: %s", b)
	}
	if !strings.Contains(st.String(), "writes=2") {
		t.Fatalf("String() = %s", st.String())
	}
}
