package mgmt

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"

	"github.com/orgconn/orgconn/worker/mgmt/mgmttest"
)

func TestListConnectionsCheckpointPaging(t *testing.T) {
	e := setup(t, mgmttest.Config{Connections: 230})
	ctx := context.Background()
	all, err := e.client.AllConnections(ctx, ConnectionsQuery{})
	if err != nil {
		t.Fatalf("AllConnections: %v", err)
	}
	want := e.sim.Connections()
	if len(all) != len(want) {
		t.Fatalf("AllConnections returned %d, want %d", len(all), len(want))
	}
	for i, c := range all {
		if c.ID != want[i].ID || c.Name != want[i].Name || c.Strategy != want[i].Strategy {
			t.Fatalf("connection %d = %+v, want %+v", i, c, want[i])
		}
	}
	if n := e.sim.Stats().Count("GET", mgmttest.RouteConnections, 200); n != 3 {
		t.Fatalf("%d requests, want 3 pages of 100", n)
	}

	byName, err := e.client.AllConnections(ctx, ConnectionsQuery{Name: want[17].Name})
	if err != nil || len(byName) != 1 || byName[0].ID != want[17].ID {
		t.Fatalf("by name: %+v, %v", byName, err)
	}
	none, err := e.client.AllConnections(ctx, ConnectionsQuery{Name: "conn-17"})
	if err != nil || len(none) != 0 {
		t.Fatalf("a name is exact: %+v, %v", none, err)
	}
	saml, err := e.client.AllConnections(ctx, ConnectionsQuery{Strategies: []string{"samlp", "oidc"}, Take: 50})
	if err != nil || len(saml) != 115 {
		t.Fatalf("two strategies: %d, %v; want 115", len(saml), err)
	}
	page, err := e.client.ListConnections(ctx, ConnectionsQuery{Take: 2})
	if err != nil || len(page.Connections) != 2 || page.Next != want[2].ID {
		t.Fatalf("first page of 2: %+v, %v", page, err)
	}
	// Reads of the read class.
	for _, c := range e.pacer.take() {
		if c.class != Read {
			t.Fatalf("a listing went through the pacer as %v", c.class)
		}
	}
}

func TestListConnectionsRequestAndOtherAnswerShapes(t *testing.T) {
	var queries []url.Values
	body := `[{"id":"con_1","name":"a","strategy":"auth0"}]`
	srv := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		queries = append(queries, r.URL.Query())
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, body)
	})
	c := newClient(t, Config{BaseURL: serve(t, srv), Tokens: StaticToken("tok")})
	ctx := context.Background()
	got, err := c.AllConnections(ctx, ConnectionsQuery{Name: "a", Strategies: []string{"auth0", "samlp"}, From: "con_0"})
	if err != nil || !reflect.DeepEqual(got, []Connection{{ID: "con_1", Name: "a", Strategy: "auth0"}}) {
		t.Fatalf("bare array: %+v, %v", got, err)
	}
	want := url.Values{"take": {"100"}, "from": {"con_0"}, "name": {"a"}, "strategy": {"auth0", "samlp"}, "fields": {"id,name,strategy"}, "include_fields": {"true"}}
	if !reflect.DeepEqual(queries[0], want) {
		t.Fatalf("query %v, want %v", queries[0], want)
	}
	body = `{"connections":[{"id":"con_2","name":"b","strategy":"samlp"}],"start":0,"limit":50,"total":1}`
	got, err = c.AllConnections(ctx, ConnectionsQuery{})
	if err != nil || len(got) != 1 || got[0].ID != "con_2" {
		t.Fatalf("offset answer: %+v, %v", got, err)
	}
	body = `{"connections":[{"id":"con_3","name":"c","strategy":"oidc"}],"next":"same"}`
	_, err = c.AllConnections(ctx, ConnectionsQuery{})
	if err == nil || !strings.Contains(err.Error(), `checkpoint "same" came back twice`) {
		t.Fatalf("a circular listing: %v", err)
	}
	if _, err := c.ListConnections(ctx, ConnectionsQuery{Take: 101}); err == nil || !strings.Contains(err.Error(), "want 1 to 100") {
		t.Fatalf("take 101: %v", err)
	}
}

func TestListConnectionsNeedsReadConnections(t *testing.T) {
	e := setup(t, mgmttest.Config{})
	c := newClient(t, Config{BaseURL: e.url, Tokens: StaticToken(e.sim.IssueToken([]string{mgmttest.ScopeRead}, 0))})
	_, err := c.ListConnections(context.Background(), ConnectionsQuery{})
	wantAPIError(t, err, APIError{Method: "GET", Path: "/connections", Status: 403, Reason: "Forbidden", ErrorCode: "insufficient_scope",
		Message: "Insufficient scope; expected any of: read:connections"})
}
