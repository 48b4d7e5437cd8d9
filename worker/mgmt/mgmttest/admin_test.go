package mgmttest

import (
	"encoding/json"
	"net/http"
	"slices"
	"testing"
	"time"
)

func TestAdminEndpoints(t *testing.T) {
	s := setup(t, Config{Seed: 50, Orgs: 3, Connections: 4})
	org := s.org(1)
	cs := s.srv.Connections()
	s.srv.SetState(org, map[string]EnabledConnection{cs[0].ID: {AssignMembershipOnLogin: true}})
	wantStatus(t, s.do("POST", orgPath(org), `{"connection_id":"`+cs[1].ID+`"}`), 201)

	t.Run("state", func(t *testing.T) {
		r := s.do("GET", AdminState, "")
		wantStatus(t, r, 200)
		var got map[string]map[string]EnabledConnection
		if err := json.Unmarshal(r.body, &got); err != nil {
			t.Fatal(err)
		}
		if !equalState(got, s.srv.State()) || len(got[org]) != 2 {
			t.Fatalf("GET /sim/state = %s", r.body)
		}
	})
	t.Run("stats", func(t *testing.T) {
		r := s.do("GET", AdminStats, "")
		wantStatus(t, r, 200)
		var got Stats
		if err := json.Unmarshal(r.body, &got); err != nil {
			t.Fatal(err)
		}
		if got.Total != 1 || got.Writes != 1 || got.Count("POST", RouteEnabledConnections, 201) != 1 || !got.FirstWrite.Equal(epoch) {
			t.Fatalf("GET /sim/stats = %s", r.body)
		}
	})
	t.Run("tenant", func(t *testing.T) {
		r := s.do("GET", AdminTenant, "")
		wantStatus(t, r, 200)
		var got tenantBody
		if err := json.Unmarshal(r.body, &got); err != nil {
			t.Fatal(err)
		}
		if len(got.Orgs) != 3 || got.Orgs[1] != org || len(got.Connections) != 4 || got.Connections[2] != cs[2] {
			t.Fatalf("GET /sim/tenant = %s", r.body)
		}
		if !slices.Equal(got.Organizations, s.srv.Organizations()) {
			t.Fatalf("GET /sim/tenant organizations = %+v, want %+v", got.Organizations, s.srv.Organizations())
		}
	})
	t.Run("bucket", func(t *testing.T) {
		wantStatus(t, s.do("POST", AdminBucket, `{"bucket":"write","burst":1,"rate":0.5}`), 204)
		r := s.do("DELETE", orgPath(org, cs[1].ID), "")
		wantStatus(t, r, 204)
		if got := rateOf(t, r); got != (rate{1, 0, at(2 * time.Second)}) {
			t.Fatalf("after POST /sim/bucket: %+v", got)
		}
		wantStatus(t, s.do("DELETE", orgPath(org, cs[0].ID), ""), 429)
		for _, bad := range []string{`{"bucket":"nope","burst":1,"rate":1}`, `{"bucket":"read","burst":-1,"rate":1}`, `{"bucket":"read","size":1}`, `{"bucket":"read","burst":1,"window":"soon"}`, `[`} {
			r := s.do("POST", AdminBucket, bad)
			wantStatus(t, r, 400)
			var e adminError
			if err := json.Unmarshal(r.body, &e); err != nil || e.Error == "" {
				t.Fatalf("%s: body %s", bad, r.body)
			}
		}
		wantStatus(t, s.do("POST", AdminBucket, `{"bucket":"write"}`), 204) // rate 0: unlimited again
		wantStatus(t, s.do("DELETE", orgPath(org, cs[0].ID), ""), 204)
		// A fixed window: 1 per 10 s, Reset at the next multiple of 10 s.
		wantStatus(t, s.do("POST", AdminBucket, `{"bucket":"read","burst":1,"window":"10s"}`), 204)
		r = s.do("GET", orgPath(org), "")
		wantStatus(t, r, 200)
		if got := rateOf(t, r); got != (rate{1, 0, s.clock.Now().Unix() - s.clock.Now().Unix()%10 + 10}) {
			t.Fatalf("window bucket: %+v", got)
		}
		wantStatus(t, s.do("GET", orgPath(org), ""), 429)
		wantStatus(t, s.do("POST", AdminBucket, `{"bucket":"read"}`), 204)
	})
	t.Run("faults", func(t *testing.T) {
		wantStatus(t, s.do("POST", AdminFaults, `{"error_5xx":1,"latency":"0s"}`), 204)
		wantStatus(t, s.do("GET", orgPath(org), ""), 503)
		wantStatus(t, s.do("POST", AdminFaults, `{"latency":"soon"}`), 400)
		wantStatus(t, s.do("POST", AdminFaults, `{"jitter":"-1s"}`), 400)
		wantStatus(t, s.do("POST", AdminFaults, `{"html_502":1}`), 204)
		wantStatus(t, s.do("GET", orgPath(org), ""), 502)
		wantStatus(t, s.do("POST", AdminFaults, `{"error_500":1}`), 204)
		wantStatus(t, s.do("GET", orgPath(org), ""), 500)
		wantStatus(t, s.do("POST", AdminFaults, `{"reset":1}`), 204)
		if _, err := s.send("GET", orgPath(org), ""); err == nil {
			t.Fatal("reset fault: the client got a response")
		}
		wantStatus(t, s.do("POST", AdminFaults, `{}`), 204)
		wantStatus(t, s.do("GET", orgPath(org), ""), 200)
	})
	t.Run("expire tokens", func(t *testing.T) {
		wantStatus(t, s.do("POST", AdminExpireTokens, ""), 204)
		r := s.do("GET", orgPath(org), "")
		wantStatus(t, r, 401)
		if e := apiErr(t, r); e.Message != "Expired token received for JSON Web Token validation" {
			t.Fatalf("message %q", e.Message)
		}
	})
	t.Run("methods and paths", func(t *testing.T) {
		r := s.do("POST", AdminState, "{}")
		wantStatus(t, r, http.StatusMethodNotAllowed)
		if r.header.Get("Allow") != "GET" {
			t.Fatalf("Allow %q", r.header.Get("Allow"))
		}
		r = s.do("GET", AdminExpireTokens, "")
		wantStatus(t, r, http.StatusMethodNotAllowed)
		wantStatus(t, s.do("GET", "/sim/nothing", ""), 404)
	})
}
