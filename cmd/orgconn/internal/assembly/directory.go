package assembly

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/orgconn/orgconn/producer"
	"github.com/orgconn/orgconn/worker/mgmt"
)

// Directory adapts a paced Management API client to producer.Directory, for
// import and serve to look names up before they enqueue: the organization of
// a name (GET /organizations/name/{name}) and every connection (GET
// /connections, every page), through the fleet's read budget.
//
// A 429 is tried again at once (the fleet's pacer makes the call wait for
// the budget), up to 50 in a row; a temporary failure (5xx, no answer) up to
// three more times with a short back-off. What is left is the look-up's
// error: the import fails, safe to run again.
type Directory struct {
	// API makes the calls; it should be paced (NewAPI).
	API interface {
		OrganizationByName(ctx context.Context, name string) (mgmt.Organization, error)
		AllConnections(ctx context.Context, q mgmt.ConnectionsQuery) ([]mgmt.Connection, error)
	}
}

var _ producer.Directory = Directory{}

// OrganizationByName returns the id of the organization named name; found
// is false when the tenant answers 404.
func (d Directory) OrganizationByName(ctx context.Context, name string) (string, bool, error) {
	var org mgmt.Organization
	err := retryLookup(ctx, func() (err error) {
		org, err = d.API.OrganizationByName(ctx, name)
		return err
	})
	switch {
	case mgmt.StatusOf(err) == http.StatusNotFound:
		return "", false, nil
	case err != nil:
		return "", false, err
	case org.ID == "":
		return "", false, errors.New("GET /organizations/name/" + name + ": the answer has no id")
	}
	return org.ID, true, nil
}

// Connections returns every connection of the tenant.
func (d Directory) Connections(ctx context.Context) ([]producer.NamedConnection, error) {
	var list []mgmt.Connection
	err := retryLookup(ctx, func() (err error) {
		list, err = d.API.AllConnections(ctx, mgmt.ConnectionsQuery{})
		return err
	})
	if err != nil {
		return nil, err
	}
	out := make([]producer.NamedConnection, 0, len(list))
	for _, c := range list {
		out = append(out, producer.NamedConnection{ID: c.ID, Name: c.Name})
	}
	return out, nil
}

// retryLookup runs call until it succeeds, fails for good, or the retries
// run out: 429s up to 50 in a row, temporary failures 3 times.
func retryLookup(ctx context.Context, call func() error) error {
	throttled, temporary := 0, 0
	for {
		err := call()
		var (
			ae *mgmt.APIError
			te *mgmt.TokenError
			ne *mgmt.NetworkError
		)
		switch {
		case err == nil || ctx.Err() != nil:
			return err
		case errors.As(err, &ae) && ae.Throttled(), errors.As(err, &te) && te.Throttled():
			if throttled++; throttled > 50 {
				return err
			}
			if te != nil {
				if werr := sleep(ctx, min(max(te.RetryAfter, 250*time.Millisecond), time.Minute)); werr != nil {
					return err
				}
			}
			continue
		case errors.As(err, &ae) && ae.Temporary(), errors.As(err, &ne):
			if temporary++; temporary > 3 {
				return err
			}
			if werr := sleep(ctx, time.Duration(temporary)*500*time.Millisecond); werr != nil {
				return err
			}
			continue
		}
		return err
	}
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
