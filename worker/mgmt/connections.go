package mgmt

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
)

// Connection is a tenant connection as GET /connections describes it (the fields orgconn asks
// for).
type Connection struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	Strategy string `json:"strategy"`
}

// ConnectionsQuery selects connections and a page of ListConnections.
type ConnectionsQuery struct {
	// Name, when not empty, asks for the connection of exactly that name.
	Name string
	// Strategies, when not empty, asks only for connections of these strategies.
	Strategies []string
	// Take is the page size, 1–100; 0 means ConnectionsPageSize.
	Take int
	// From is the checkpoint: the Next of the previous page; "" for the first page.
	From string
}

// ConnectionsPageSize is the page size AllConnections asks for: the largest allowed.
const ConnectionsPageSize = 100

// ConnectionPage is one page of ListConnections.
type ConnectionPage struct {
	Connections []Connection
	// Next is the checkpoint of the next page; "" on the last one.
	Next string
}

// connectionsPath is the path of the tenant's connections.
const connectionsPath = "/connections"

// ListConnections returns one page of the tenant's connections (scope read:connections) by
// checkpoint paging (take, from), asking only for id, name and strategy. An answer that is a
// bare array or an offset page (a server that ignored take and from) is taken as the last
// page.
func (c *Client) ListConnections(ctx context.Context, q ConnectionsQuery) (ConnectionPage, error) {
	take := q.Take
	if take == 0 {
		take = ConnectionsPageSize
	}
	if take < 1 || take > 100 {
		return ConnectionPage{}, fmt.Errorf("GET %s: take %d: want 1 to 100; no request was sent", connectionsPath, take)
	}
	v := url.Values{}
	v.Set("take", strconv.Itoa(take))
	if q.From != "" {
		v.Set("from", q.From)
	}
	if q.Name != "" {
		v.Set("name", q.Name)
	}
	for _, s := range q.Strategies {
		v.Add("strategy", s)
	}
	v.Set("fields", "id,name,strategy")
	v.Set("include_fields", "true")
	var raw json.RawMessage
	if err := c.do(ctx, request{class: Read, method: http.MethodGet, path: connectionsPath, query: v, want: http.StatusOK}, &raw); err != nil {
		return ConnectionPage{}, err
	}
	if len(raw) > 0 && raw[0] == '[' {
		var bare []Connection
		if err := json.Unmarshal(raw, &bare); err != nil {
			return ConnectionPage{}, fmt.Errorf("GET %s: decode list: %w", connectionsPath, err)
		}
		return ConnectionPage{Connections: bare}, nil
	}
	var page struct {
		Connections []Connection `json:"connections"`
		Next        string       `json:"next"`
	}
	if err := json.Unmarshal(raw, &page); err != nil {
		return ConnectionPage{}, fmt.Errorf("GET %s: decode list: %w", connectionsPath, err)
	}
	return ConnectionPage{Connections: page.Connections, Next: page.Next}, nil
}

// AllConnections returns every connection q selects (q.Take and q.From are the first page's),
// following Next until a page has none. A Next seen before (a server that pages in a circle)
// is an error rather than a loop.
func (c *Client) AllConnections(ctx context.Context, q ConnectionsQuery) ([]Connection, error) {
	var all []Connection
	seen := map[string]bool{}
	for range maxPages {
		p, err := c.ListConnections(ctx, q)
		if err != nil {
			return nil, err
		}
		all = append(all, p.Connections...)
		if p.Next == "" {
			return all, nil
		}
		if seen[p.Next] {
			return nil, fmt.Errorf("GET %s: checkpoint %q came back twice: the listing goes in a circle", connectionsPath, cut(p.Next, 60))
		}
		seen[p.Next] = true
		q.From = p.Next
	}
	return nil, fmt.Errorf("GET %s: more than %d pages", connectionsPath, maxPages)
}
