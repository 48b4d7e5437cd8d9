package webhook

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/orgconn/orgconn/jobs"
	"github.com/orgconn/orgconn/producer"
)

const twoChanges = `{"changes":[
 {"action":"enable","org_id":"org_1","connection_id":"con_1","assign_membership_on_login":true},
 {"action":"remove","org_id":"org_2","connection_id":"con_1"}]}`

func decodeAccepted(t *testing.T, r response) changesResponse {
	t.Helper()
	if r.status != http.StatusAccepted {
		t.Fatalf("status %d, want 202: %s", r.status, r.body)
	}
	var out changesResponse
	if err := json.Unmarshal([]byte(r.body), &out); err != nil {
		t.Fatalf("202 body %q: %v", r.body, err)
	}
	return out
}

func TestChangesSignedRequestIsQueued(t *testing.T) {
	f := setup(t)
	got := decodeAccepted(t, f.postChanges(twoChanges))
	if got.Accepted != 2 || !strings.HasPrefix(got.Batch, "wh-") || jobs.CheckBatch(got.Batch) != nil {
		t.Fatalf("response %+v", got)
	}
	want := []string{got.Batch + ":1", got.Batch + ":2"}
	if !slices.Equal(got.TaskIDs, want) || !slices.Equal(f.queued(), want) {
		t.Fatalf("task ids %v, queued %v, want %v", got.TaskIDs, f.queued(), want)
	}
	bc, err := f.ledger.Batch(context.Background(), got.Batch)
	if err != nil || bc.Source != "webhook" || bc.Total != 2 {
		t.Fatalf("ledger batch %+v, %v", bc, err)
	}
	// A single change, with a charset parameter, is fine too.
	one := `{"action":"update","org_id":"org_3","connection_id":"con_2","show_as_button":false}`
	r := f.do(http.MethodPost, PathChanges, "application/json; charset=utf-8", strings.NewReader(one),
		http.Header{SignatureHeader: {Sign(testSecret, f.now, []byte(one))}})
	if got := decodeAccepted(t, r); got.Accepted != 1 || got.Batch == want[0] {
		t.Fatalf("single change: %+v", got)
	}
	if n := f.metric("orgconn_webhook_changes_accepted_total", map[string]string{"endpoint": "changes"}); n != 3 {
		t.Errorf("changes accepted metric %v, want 3", n)
	}
	if n := f.metric("orgconn_webhook_requests_total", map[string]string{"endpoint": "changes", "code": "202"}); n != 2 {
		t.Errorf("requests metric %v, want 2", n)
	}
}

func TestChangesRefusesBadSignaturesAndQueuesNothing(t *testing.T) {
	f := setup(t)
	body := twoChanges
	for name, tc := range map[string]struct {
		sig  string
		want error
	}{
		"missing":         {"", ErrSignatureMissing},
		"wrong secret":    {Sign("another-secret-0123456789", f.now, []byte(body)), ErrSignatureMismatch},
		"other body":      {Sign(testSecret, f.now, []byte(body+" ")), ErrSignatureMismatch},
		"stale":           {Sign(testSecret, f.now.Add(-5*time.Minute-time.Second), []byte(body)), ErrSignatureStale},
		"from the future": {Sign(testSecret, f.now.Add(5*time.Minute+time.Second), []byte(body)), ErrSignatureStale},
		"malformed":       {"sha256=abcdef", ErrSignatureMalformed},
		"no timestamp":    {"v1=" + strings.Repeat("ab", 32), ErrSignatureMalformed},
	} {
		r := f.postChanges(body, SignatureHeader, tc.sig)
		if r.status != http.StatusUnauthorized || !strings.Contains(r.body, jsonEscape(tc.want.Error())) {
			t.Errorf("%s: %d %s, want 401 saying %q", name, r.status, r.body, tc.want)
		}
		if strings.Contains(r.body, testSecret) {
			t.Errorf("%s: the 401 body holds the secret", name)
		}
	}
	if q := f.queued(); len(q) != 0 {
		t.Fatalf("queued %v after refused requests", q)
	}
	// Within the tolerance is fine.
	decodeAccepted(t, f.postChanges(body, SignatureHeader, Sign(testSecret, f.now.Add(-4*time.Minute), []byte(body))))
}

func jsonEscape(s string) string {
	b, _ := json.Marshal(s)
	return string(b[1 : len(b)-1])
}

func TestChangesAcceptsEitherSecretDuringRotation(t *testing.T) {
	f := setup(t, func(c *Config) { c.Secrets = []string{testSecret, testNextSec} })
	decodeAccepted(t, f.postChanges(twoChanges, SignatureHeader, Sign(testNextSec, f.now, []byte(twoChanges))))
	decodeAccepted(t, f.postChanges(twoChanges))
	// A sender signing with both during its own switch-over.
	both := Sign(testSecret, f.now, []byte(twoChanges)) + ",v1=" + strings.TrimPrefix(Sign("unknown-secret-0123456789", f.now, []byte(twoChanges)), fmt.Sprintf("t=%d,v1=", f.now.Unix()))
	decodeAccepted(t, f.postChanges(twoChanges, SignatureHeader, both))
}

func TestChangesIdempotencyKeyReplaysTheFirstResponse(t *testing.T) {
	f := setup(t)
	first := f.postChanges(twoChanges, IdempotencyHeader, "order-7781")
	got := decodeAccepted(t, first)
	queued := f.queued()
	if len(queued) != 2 {
		t.Fatalf("queued %v", queued)
	}
	for range 2 {
		again := f.postChanges(twoChanges, IdempotencyHeader, "order-7781")
		if again.status != first.status || again.body != first.body || again.header.Get(ReplayedHeader) != "true" {
			t.Fatalf("replay: %d %q (replayed %q), want %d %q", again.status, again.body, again.header.Get(ReplayedHeader), first.status, first.body)
		}
	}
	if first.header.Get(ReplayedHeader) != "" {
		t.Error("the first response is marked as replayed")
	}
	if q := f.queued(); !slices.Equal(q, queued) {
		t.Fatalf("queued %v after replays, want %v", q, queued)
	}
	batches, err := f.ledger.Batches(context.Background(), 10)
	if err != nil || len(batches) != 1 || batches[0] != got.Batch {
		t.Fatalf("ledger batches %v, %v", batches, err)
	}

	other := `{"action":"remove","org_id":"org_9","connection_id":"con_9"}`
	r := f.postChanges(other, IdempotencyHeader, "order-7781")
	if r.status != http.StatusUnprocessableEntity || !strings.Contains(r.body, "different body") {
		t.Fatalf("same key, other body: %d %s", r.status, r.body)
	}
	r = f.postChanges(twoChanges, IdempotencyHeader, strings.Repeat("k", 256))
	if r.status != http.StatusBadRequest || !strings.Contains(r.body, IdempotencyHeader) {
		t.Fatalf("bad key: %d %s", r.status, r.body)
	}
	if q := f.queued(); len(q) != 2 {
		t.Fatalf("queued %v", q)
	}
}

func TestChangesConcurrentDuplicateIsAConflict(t *testing.T) {
	f := setup(t)
	sum := hashOf(twoChanges)
	prev, err := f.handler.idem.claim(context.Background(), "k-1", sum)
	if err != nil || prev != nil {
		t.Fatalf("claim: %+v, %v", prev, err)
	}
	r := f.postChanges(twoChanges, IdempotencyHeader, "k-1")
	if r.status != http.StatusConflict || r.header.Get("Retry-After") == "" {
		t.Fatalf("while in progress: %d %s, Retry-After %q", r.status, r.body, r.header.Get("Retry-After"))
	}
	if q := f.queued(); len(q) != 0 {
		t.Fatalf("queued %v", q)
	}
}

func TestChangesConcurrentRequestsWithOneKeyQueueOnce(t *testing.T) {
	f := setup(t)
	var wg sync.WaitGroup
	statuses := make([]int, 8)
	for i := range statuses {
		wg.Add(1)
		go func() {
			defer wg.Done()
			statuses[i] = f.postChanges(twoChanges, IdempotencyHeader, "k-2").status
		}()
	}
	wg.Wait()
	for _, s := range statuses {
		if s != http.StatusAccepted && s != http.StatusConflict {
			t.Fatalf("statuses %v: want only 202 and 409", statuses)
		}
	}
	if q := f.queued(); len(q) != 2 {
		t.Fatalf("queued %v, want 2 tasks", q)
	}
}

func hashOf(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func TestChangesRedisFailureIs503AndTheRetryResumes(t *testing.T) {
	var fs *failingSubmitter
	f := setup(t, func(c *Config) {
		fs = &failingSubmitter{next: c.Submitter, n: 1}
		c.Submitter = fs
	})
	r := f.postChanges(twoChanges, IdempotencyHeader, "k-3")
	if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" {
		t.Fatalf("failing submit: %d %s", r.status, r.body)
	}
	got := decodeAccepted(t, f.postChanges(twoChanges, IdempotencyHeader, "k-3"))
	if q := f.queued(); !slices.Equal(q, got.TaskIDs) {
		t.Fatalf("queued %v, want %v", q, got.TaskIDs)
	}
	if r := f.postChanges(twoChanges, IdempotencyHeader, "k-3"); r.header.Get(ReplayedHeader) != "true" {
		t.Fatalf("the successful retry was not stored: %d %s", r.status, r.body)
	}
}

func TestChangesLimitsMethodsAndMediaTypes(t *testing.T) {
	f := setup(t)
	big := `{"changes":[` + strings.Repeat(`{"action":"remove","org_id":"org_1","connection_id":"con_1"},`, 20000) + `{}]}`
	if len(big) <= DefaultMaxBodyBytes {
		t.Fatalf("the big body is only %d bytes", len(big))
	}
	if r := f.postChanges(big); r.status != http.StatusRequestEntityTooLarge {
		t.Errorf("over 1 MiB: %d %s", r.status, r.body)
	}
	// Without a Content-Length (chunked), the limit holds as well.
	chunked := f.do(http.MethodPost, PathChanges, "application/json", io.MultiReader(strings.NewReader(big)),
		http.Header{SignatureHeader: {Sign(testSecret, f.now, []byte(big))}})
	if chunked.status != http.StatusRequestEntityTooLarge {
		t.Errorf("over 1 MiB, chunked: %d", chunked.status)
	}
	sig := http.Header{SignatureHeader: {Sign(testSecret, f.now, []byte(twoChanges))}}
	for _, ct := range []string{"text/plain", "", "application/x-www-form-urlencoded", "application/cloudevents+json"} {
		if r := f.do(http.MethodPost, PathChanges, ct, strings.NewReader(twoChanges), sig); r.status != http.StatusUnsupportedMediaType {
			t.Errorf("Content-Type %q: %d %s", ct, r.status, r.body)
		}
	}
	if r := f.do(http.MethodGet, PathChanges, "", nil, nil); r.status != http.StatusMethodNotAllowed || r.header.Get("Allow") != "POST" {
		t.Errorf("GET: %d, Allow %q", r.status, r.header.Get("Allow"))
	}
	if q := f.queued(); len(q) != 0 {
		t.Fatalf("queued %v", q)
	}
}

func TestChangesBadBodiesAre400NamingEveryField(t *testing.T) {
	f := setup(t)
	long := "org_" + strings.Repeat("x", 47)
	for name, tc := range map[string]struct {
		body string
		want []Problem
	}{
		"malformed JSON": {`{"action":"enable",`, []Problem{{Problem: "malformed JSON"}}},
		"unknown action": {`{"action":"deactivate","org_id":"org_1","connection_id":"con_1"}`, []Problem{{Field: "action", Problem: `"deactivate" is not an action`}}},
		"over-long id":   {`{"action":"remove","org_id":"` + long + `","connection_id":"con_1"}`, []Problem{{Field: "org_id", Problem: "is 51 characters, the limit is 50"}}},
		"dot segment id": {`{"action":"remove","org_id":"org_abc","connection_id":".."}`, []Problem{{Field: "connection_id", Problem: `".." contains ".": only letters, digits, "_" and "-" are allowed`}}},
		"unicode id":     {`{"action":"remove","org_id":"org_\u00e9","connection_id":"con_1"}`, []Problem{{Field: "org_id", Problem: `only letters, digits, "_" and "-" are allowed`}}},
		"flag as string": {`{"action":"enable","org_id":"o","connection_id":"c","show_as_button":"true"}`, []Problem{{Field: "show_as_button", Problem: "must be a JSON boolean"}}},
		"unknown field":  {`{"action":"enable","org_id":"o","connection_id":"c","color":"red"}`, []Problem{{Field: "color", Problem: "unknown field"}}},
		"every item": {`{"changes":[{"action":"enable","org_id":"o","connection_id":"c"},{"action":"flip","org_id":"","connection_id":"c"},{"action":"update","org_id":"o","connection_id":"` + long + `"}]}`,
			[]Problem{{Index: ptr(1), Field: "action"}, {Index: ptr(1), Field: "org_id", Problem: "is empty"}, {Index: ptr(2), Field: "connection_id"}, {Index: ptr(2), Field: "action", Problem: "update needs"}}},
		"too many": {`{"changes":[` + strings.TrimSuffix(strings.Repeat(`{"action":"remove","org_id":"o","connection_id":"c"},`, DefaultMaxChanges+1), ",") + `]}`,
			[]Problem{{Field: "changes", Problem: "the limit is 1000"}}},
	} {
		r := f.postChanges(tc.body)
		var got errorBody
		if err := json.Unmarshal([]byte(r.body), &got); err != nil || r.status != http.StatusBadRequest || got.Error != "invalid request" {
			t.Errorf("%s: %d %s", name, r.status, r.body)
			continue
		}
		if len(got.Errors) != len(tc.want) {
			t.Errorf("%s: problems %+v, want %d", name, got.Errors, len(tc.want))
			continue
		}
		for i, w := range tc.want {
			g := got.Errors[i]
			if g.Field != w.Field || !strings.Contains(g.Problem, w.Problem) || (w.Index == nil) != (g.Index == nil) || (w.Index != nil && *w.Index != *g.Index) {
				t.Errorf("%s: problem %d is %s, want %s", name, i, g, w)
			}
		}
	}
	if q := f.queued(); len(q) != 0 {
		t.Fatalf("queued %v", q)
	}
}

func ptr(i int) *int { return &i }

func TestChangesSubmitterSeesValidatedChangesOnly(t *testing.T) {
	var got []producer.Submission
	var mu sync.Mutex
	f := setup(t, func(c *Config) {
		c.Submitter = submitFunc(func(_ context.Context, s producer.Submission) (producer.Receipt, error) {
			mu.Lock()
			got = append(got, s)
			mu.Unlock()
			return producer.Receipt{Batch: s.Batch, TaskIDs: []string{s.Batch + ":1"}}, nil
		})
	})
	f.postChanges(`{"action":" Enable ","org_id":"org_1","connection_id":"con_1","is_signup_enabled":null}`)
	if len(got) != 1 || got[0].Source != "webhook" || got[0].Changes[0] != (jobs.Change{Action: jobs.Enable, OrgID: "org_1", ConnectionID: "con_1"}) {
		t.Fatalf("submissions %+v", got)
	}
}

type submitFunc func(context.Context, producer.Submission) (producer.Receipt, error)

func (f submitFunc) Submit(ctx context.Context, s producer.Submission) (producer.Receipt, error) {
	return f(ctx, s)
}
