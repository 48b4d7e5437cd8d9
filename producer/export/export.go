// Package export writes a tenant's organization connections as CSV: one row per enabled
// connection of each organization selected (every organization, or a list of ids), sorted by
// organization id then connection id, in the columns Columns.
//
// Reading thousands of organizations at the tenant's read budget takes a long time, so an
// export to a file is resumable. While it runs, the rows of every organization finished so far
// sit in a side file (OUT.partial) and a checkpoint (OUT.checkpoint) records the organization
// listing's cursor, the page of organizations being read and which of them are done, and how
// many bytes of OUT.partial they cover. Rows and checkpoint are made durable together (the
// rows are fsynced, then the checkpoint is written to a temporary file, fsynced and renamed
// over the old one), so whatever stops the export — a cancelled context, a failure, a crash —
// leaves a consistent state, and running the same export again reads only the organizations
// not done yet. At the end the rows are sorted into OUT (again through a temporary file and a
// rename) and the side files are removed: an interrupted and resumed export ends with the same
// bytes as one that ran straight through.
//
// When the context is cancelled, no new read starts, Config.Stop is called (so that calls
// waiting for rate budget give up), and reads already sent are let finish and their rows
// kept: a cancelled export never throws away an answer it was sent, so no organization is
// read twice across the runs (unless a read fails and must be repeated).
//
// The package does not know the Management API: it reads through the API interface, which
// the command wires to the paced client.
package export

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync/atomic"
	"time"
)

// Columns are the columns of an export, in order. The names come last: they are
// informational, the ids are what orgconn acts on.
var Columns = []string{"org_id", "connection_id", "assign_membership_on_login", "show_as_button", "is_signup_enabled", "org_name", "connection_name"}

// Association is one connection enabled for one organization: one row of an export.
type Association struct {
	OrgID                   string
	ConnectionID            string
	AssignMembershipOnLogin bool
	ShowAsButton            bool
	IsSignupEnabled         bool
	// OrgName is the organization's name, "" when unknown (an export of listed ids).
	OrgName string
	// ConnectionName is the connection's name as the association's answer shows it.
	ConnectionName string
}

// record returns a's CSV record in the order of Columns.
func (a Association) record() []string {
	return []string{a.OrgID, a.ConnectionID, boolText(a.AssignMembershipOnLogin), boolText(a.ShowAsButton), boolText(a.IsSignupEnabled), a.OrgName, a.ConnectionName}
}

func boolText(b bool) string {
	if b {
		return "true"
	}
	return "false"
}

// Organization is an organization to export: its id and, when the listing gave it, its name.
type Organization struct {
	ID   string `json:"id"`
	Name string `json:"name,omitempty"`
}

// OrganizationPage is one page of the organization listing.
type OrganizationPage struct {
	Organizations []Organization
	// Next is the cursor of the following page; "" when this page is the last.
	Next string
}

// API is what an export reads from the tenant. Implementations pace their calls; they need
// not retry: Run retries an error that says it is temporary (see Config.MaxAttempts).
type API interface {
	// ListOrganizations returns the page of the organization listing that starts at cursor
	// from ("" for the first page), in checkpoint paging.
	ListOrganizations(ctx context.Context, from string) (OrganizationPage, error)
	// Connections returns every connection enabled for organization orgID, with
	// ConnectionID, the three flags and ConnectionName set (Run sets OrgID and OrgName).
	// An unknown organization is an error for which NotFound reports true: it is counted in
	// Summary.NotFound and has no rows.
	Connections(ctx context.Context, orgID string) ([]Association, error)
}

// Selection says which organizations an export reads: every organization of the tenant (All)
// or the ids listed (OrgIDs, which Run sorts and deduplicates).
type Selection struct {
	All    bool
	OrgIDs []string
}

// key names the selection in a checkpoint, so that a resume with another selection is
// refused.
func (s Selection) key() string {
	if s.All {
		return "all"
	}
	return "orgs:" + digest(sortedUnique(s.OrgIDs))
}

// Defaults of Config.
const (
	DefaultConcurrency = 4
	DefaultMaxAttempts = 6
)

// MaxThrottled is how many refusals by the rate limit in a row one read takes before it
// fails.
const MaxThrottled = 50

// Config configures one export.
type Config struct {
	// API reads the tenant. Required.
	API API
	// Select chooses the organizations. Either All or at least one id is required.
	Select Selection
	// Out is the CSV file to write, with its side files Out+".partial" and
	// Out+".checkpoint", which make the export resumable. Empty means Writer.
	Out string
	// Writer receives the CSV when Out is empty; nothing is written to it before every
	// organization is read, and such an export cannot resume.
	Writer io.Writer
	// Tenant names the tenant read (its host). It is recorded in the checkpoint, and a resume
	// against another tenant is refused.
	Tenant string
	// Concurrency is how many organizations are read at once; the API's pacer sets the pace.
	// Zero means DefaultConcurrency.
	Concurrency int
	// MaxAttempts is how many times one read is tried when its error is temporary (an error
	// with a method Temporary() bool that returns true: 429, 5xx, no answer). Zero means
	// DefaultMaxAttempts.
	MaxAttempts int
	// Backoff is the wait before attempt n+1 (n from 1) of a read that failed with a temporary
	// error. Nil means 1 s doubling up to 30 s. A refusal by the rate limit (an error with a
	// method Throttled() bool that returns true: a 429) is retried at once and does not count
	// as an attempt — the API's pacer, told of the 429, makes the next call wait — up to
	// MaxThrottled times in a row.
	Backoff func(n int) time.Duration
	// Stop, when not nil, is called once when ctx is cancelled: it should make calls waiting
	// for rate budget return at once (ratelimit.Limiter.Stop). Calls already sent finish.
	Stop func()
	// Count, when not nil and the selection is All, is asked once for the number of
	// organizations, for Progress.Total; an error leaves the total unknown.
	Count func(ctx context.Context) (int, error)
	// Requests, when not nil, reports the Management API requests sent so far by this
	// process (a counting pacer); nil counts one request per call Run makes.
	Requests func() int64
	// Progress, when not nil, is called from Run's goroutine after each durable step.
	Progress func(Progress)
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Progress is how far an export is, counting earlier runs of a resumed export.
type Progress struct {
	// Orgs is the organizations done; Total is how many there are, -1 when unknown.
	Orgs, Total int
	// Associations is the rows written so far.
	Associations int
	// Requests is the Management API requests sent so far.
	Requests int64
	// Elapsed is the time spent so far.
	Elapsed time.Duration
	// Resumed is true when this run continued an interrupted one.
	Resumed bool
}

// RemainingReads is the reads an export still needs: one per organization not done, and one
// listing page per 100 of them for an export of every organization. It is -1 when the total
// is unknown.
func (p Progress) RemainingReads(all bool) int {
	if p.Total < 0 {
		return -1
	}
	left := max(p.Total-p.Orgs, 0)
	if all {
		left += (left + 99) / 100
	}
	return left
}

// ETA is the time the remaining reads take at readsPerSecond; false when either is unknown.
func (p Progress) ETA(all bool, readsPerSecond float64) (time.Duration, bool) {
	left := p.RemainingReads(all)
	if left < 0 || !(readsPerSecond > 0) {
		return 0, false
	}
	return time.Duration(float64(left) / readsPerSecond * float64(time.Second)).Round(time.Second), true
}

// Summary is what an export did, counting earlier runs of a resumed export.
type Summary struct {
	Orgs         int           `json:"orgs"`
	Associations int           `json:"associations"`
	Requests     int64         `json:"requests"`
	Elapsed      time.Duration `json:"-"`
	// NotFound counts organizations that did not exist when read (404): with All, deleted
	// since they were listed; with a list, ids that name no organization. They have no rows.
	NotFound int `json:"not_found"`
	// NotFoundIDs are the MaxNotFoundIDs lowest of their ids, sorted.
	NotFoundIDs []string `json:"not_found_ids,omitempty"`
	Resumed     bool     `json:"resumed"`
}

// MaxNotFoundIDs bounds Summary.NotFoundIDs.
const MaxNotFoundIDs = 20

// ErrInterrupted is returned (wrapped, with how far the export got) when the context was
// cancelled: the side files hold a resumable state.
var ErrInterrupted = errors.New("export interrupted")

// MismatchError is a checkpoint left by an export of another selection or tenant, or side
// files that do not agree: Run refuses to mix them.
type MismatchError struct {
	Checkpoint string // the checkpoint's path
	Problem    string
}

func (e *MismatchError) Error() string {
	return fmt.Sprintf("%s: %s; run the export that left it again to finish it, or remove %s and %s to start over",
		e.Checkpoint, e.Problem, e.Checkpoint, strings.TrimSuffix(e.Checkpoint, checkpointSuffix)+partialSuffix)
}

// OrgError is a read of one organization that failed for good.
type OrgError struct {
	OrgID string
	Err   error
}

func (e *OrgError) Error() string { return fmt.Sprintf("organization %s: %v", e.OrgID, e.Err) }

func (e *OrgError) Unwrap() error { return e.Err }

// NotFound reports whether err says the organization does not exist: an error in its chain
// has a method NotFound() bool that returns true.
func NotFound(err error) bool {
	var nf interface{ NotFound() bool }
	if errors.As(err, &nf) {
		return nf.NotFound()
	}
	return false
}

// Temporary reports whether err says trying again may succeed: an error in its chain has a
// method Temporary() bool that returns true.
func Temporary(err error) bool {
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}

// Throttled reports whether err is a refusal by the rate limit: an error in its chain has a
// method Throttled() bool that returns true.
func Throttled(err error) bool {
	var t interface{ Throttled() bool }
	return errors.As(err, &t) && t.Throttled()
}

// defaultBackoff waits 1 s doubling up to 30 s.
func defaultBackoff(n int) time.Duration {
	return min(time.Second<<min(n-1, 5), 30*time.Second)
}

// Run exports as cfg says and returns what it did. With cfg.Out it resumes from the side
// files an interrupted run left, and removes them once Out is written. An interrupted run
// returns an error wrapping ErrInterrupted; a read that failed for good an *OrgError (the
// organizations done before it are kept for the next run); side files of another export a
// *MismatchError. Organizations that do not exist are not errors: see Summary.NotFound.
func Run(ctx context.Context, cfg Config) (Summary, error) {
	if err := cfg.check(); err != nil {
		return Summary{}, err
	}
	cfg = cfg.withDefaults()
	e := &exporter{cfg: cfg, start: cfg.Now()}
	if !cfg.Select.All {
		e.ids = sortedUnique(cfg.Select.OrgIDs)
	}
	var err error
	if cfg.Out != "" {
		e.store, err = openStore(cfg.Out, checkpoint{Version: checkpointVersion, Selection: cfg.Select.key(), Tenant: cfg.Tenant, Total: -1})
	} else {
		e.store = memoryStore(checkpoint{Version: checkpointVersion, Selection: cfg.Select.key(), Tenant: cfg.Tenant, Total: -1})
	}
	if err != nil {
		return Summary{}, err
	}
	e.store.runCounts = func() (int64, time.Duration) { return e.requests(), e.cfg.Now().Sub(e.start) }
	defer e.store.close()
	if err := e.run(ctx); err != nil {
		return e.summary(), err
	}
	if err := e.store.finish(cfg.Writer); err != nil {
		return e.summary(), err
	}
	return e.summary(), nil
}

func (cfg Config) check() error {
	switch {
	case cfg.API == nil:
		return errors.New("export: Config.API is nil")
	case cfg.Select.All && len(cfg.Select.OrgIDs) > 0:
		return errors.New("export: choose every organization or a list of ids, not both")
	case !cfg.Select.All && len(cfg.Select.OrgIDs) == 0:
		return errors.New("export: no organization selected: give ids or choose every organization")
	case cfg.Out == "" && cfg.Writer == nil:
		return errors.New("export: neither Config.Out nor Config.Writer is set")
	}
	return nil
}

func (cfg Config) withDefaults() Config {
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = DefaultConcurrency
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = DefaultMaxAttempts
	}
	if cfg.Backoff == nil {
		cfg.Backoff = defaultBackoff
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return cfg
}

// exporter is one run. Its fields are used from Run's goroutine only, except calls, which the
// readers count.
type exporter struct {
	cfg      Config
	store    *store
	ids      []string // the sorted, unique ids of a list selection
	start    time.Time
	calls    atomic.Int64 // calls made by this run, when Config.Requests is nil
	stopOnce bool
}

// requests is this run's requests so far.
func (e *exporter) requests() int64 {
	if e.cfg.Requests != nil {
		return e.cfg.Requests()
	}
	return e.calls.Load()
}

// progress snapshots the state as of now.
func (e *exporter) progress() Progress {
	cp := e.store.cp
	return Progress{Orgs: cp.Orgs, Total: cp.Total, Associations: cp.Associations,
		Requests: cp.Requests + e.requests(), Elapsed: cp.Elapsed + e.cfg.Now().Sub(e.start), Resumed: e.store.resumed}
}

func (e *exporter) summary() Summary {
	p := e.progress()
	return Summary{Orgs: p.Orgs, Associations: p.Associations, Requests: p.Requests, Elapsed: p.Elapsed,
		NotFound: e.store.cp.NotFound, NotFoundIDs: slices.Clone(e.store.cp.NotFoundIDs), Resumed: p.Resumed}
}

func (e *exporter) report() {
	if e.cfg.Progress != nil {
		e.cfg.Progress(e.progress())
	}
}

// stop tells the pacer to let waiting calls go, once.
func (e *exporter) stop() {
	if !e.stopOnce {
		e.stopOnce = true
		if e.cfg.Stop != nil {
			e.cfg.Stop()
		}
	}
}

// run reads page after page until the last one is done, ctx is cancelled or a read fails.
func (e *exporter) run(ctx context.Context) error {
	// Calls run on a context that cancellation does not reach, so an answer already on its
	// way is kept; Stop releases calls still waiting for budget.
	calls := context.WithoutCancel(ctx)
	if e.cfg.Select.All && e.store.cp.Total < 0 && e.cfg.Count != nil && e.cfg.Progress != nil && ctx.Err() == nil {
		e.calls.Add(1)
		if n, err := e.cfg.Count(ctx); err == nil && n >= 0 {
			e.store.cp.Total = n
		}
	}
	if !e.cfg.Select.All {
		e.store.cp.Total = len(e.ids)
	}
	e.report()
	for {
		cp := &e.store.cp
		if !cp.Listed || len(cp.Done) == len(cp.Page) {
			// The current page is not listed yet, or all its
			// organizations are read: list the next one (if any).
			if cp.Listed && cp.Last {
				return nil
			}
			if ctx.Err() != nil {
				e.stop()
				return e.interrupted()
			}
			page, err := e.nextPage(ctx, calls)
			if err != nil {
				if ctx.Err() != nil {
					e.stop()
					return e.interrupted()
				}
				return err
			}
			if err := e.store.commitPage(page); err != nil {
				return err
			}
			e.report()
			continue
		}
		if err := e.readPage(ctx, calls); err != nil {
			return err
		}
	}
}

// interrupted is the error of a cancelled run.
func (e *exporter) interrupted() error {
	p := e.progress()
	total := "?"
	if p.Total >= 0 {
		total = fmt.Sprint(p.Total)
	}
	if e.cfg.Out == "" {
		return fmt.Errorf("%w after %d of %s organizations; nothing was written (standard output cannot resume: use --out FILE)", ErrInterrupted, p.Orgs, total)
	}
	return fmt.Errorf("%w after %d of %s organizations; their rows are kept in %s: run the same command again to continue", ErrInterrupted, p.Orgs, total, e.store.partialPath)
}

// nextPage returns the page after the current one: from the organization listing for an
// export of every organization, from the sorted ids otherwise.
func (e *exporter) nextPage(ctx, calls context.Context) (OrganizationPage, error) {
	cp := e.store.cp
	if !e.cfg.Select.All {
		off := 0
		if cp.Listed {
			if _, err := fmt.Sscan(cp.Next, &off); err != nil {
				return OrganizationPage{}, &MismatchError{Checkpoint: e.store.checkpointPath, Problem: fmt.Sprintf("cursor %q is not an offset", cp.Next)}
			}
		}
		end := min(off+listPage, len(e.ids))
		page := OrganizationPage{}
		for _, id := range e.ids[off:end] {
			page.Organizations = append(page.Organizations, Organization{ID: id})
		}
		if end < len(e.ids) {
			page.Next = fmt.Sprint(end)
		}
		return page, nil
	}
	var page OrganizationPage
	err := e.retry(ctx, func() error {
		e.calls.Add(1)
		var err error
		page, err = e.cfg.API.ListOrganizations(calls, cp.Next)
		return err
	})
	if err != nil {
		return OrganizationPage{}, fmt.Errorf("list organizations (from %q): %w", cut(cp.Next, 40), err)
	}
	if cp.Listed && page.Next != "" && page.Next == cp.Next {
		return OrganizationPage{}, fmt.Errorf("list organizations: the page from %q names itself as the next one; the listing does not advance", cut(cp.Next, 40))
	}
	for _, o := range page.Organizations {
		if o.ID == "" {
			return OrganizationPage{}, fmt.Errorf("list organizations (from %q): an organization without an id", cut(cp.Next, 40))
		}
	}
	return page, nil
}

// listPage is how many listed ids make one page of a list selection.
const listPage = 100

// retry runs call until it succeeds, fails for good, or MaxAttempts temporary failures (or
// MaxThrottled refusals in a row); a cancelled ctx ends the waits between attempts.
func (e *exporter) retry(ctx context.Context, call func() error) error {
	throttled := 0
	for n := 1; ; n++ {
		err := call()
		if err == nil {
			return nil
		}
		if Throttled(err) && throttled < MaxThrottled && ctx.Err() == nil {
			throttled++
			n--
			continue
		}
		throttled = 0
		again := Temporary(err)
		if !again || n >= e.cfg.MaxAttempts {
			if again {
				return fmt.Errorf("%d attempts failed, the last: %w", n, err)
			}
			return err
		}
		t := time.NewTimer(e.cfg.Backoff(n))
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w (while waiting to retry: %v)", context.Cause(ctx), err)
		case <-t.C:
		}
	}
}

// orgResult is the outcome of reading one organization.
type orgResult struct {
	org      Organization
	rows     []Association
	err      error
	notFound bool // the organization does not exist: done, with no rows
}

// readPage reads the organizations of the current page not done yet, Concurrency at a time.
// Finished organizations are committed in groups by one goroutine while the reads go on: a
// group is whatever finished while the previous commit (two fsyncs) ran. Only that goroutine
// touches the store while a commit runs.
func (e *exporter) readPage(ctx, calls context.Context) error {
	cp := &e.store.cp
	var pending []Organization
	for _, o := range cp.Page {
		if !slices.Contains(cp.Done, o.ID) {
			pending = append(pending, o)
		}
	}
	jobs := make(chan Organization)
	// Buffered so that a reader never blocks on a run that returned early.
	results := make(chan orgResult, e.cfg.Concurrency)
	for range min(e.cfg.Concurrency, len(pending)) {
		go func() {
			for o := range jobs {
				results <- e.readOrg(ctx, calls, o)
			}
		}()
	}
	defer close(jobs)

	var failure error
	var batch []orgResult // finished, not being committed yet
	committed := make(chan error, 1)
	committing := false
	defer func() {
		if committing {
			<-committed // never leave a commit running behind the caller
		}
	}()
	inflight := 0
	done := ctx.Done()
	for len(pending) > 0 || inflight > 0 || committing || len(batch) > 0 {
		if !committing && len(batch) > 0 {
			group := batch
			batch = nil
			committing = true
			go func() { committed <- e.store.commitOrgs(group) }()
		}
		var send chan Organization
		var next Organization
		if len(pending) > 0 && failure == nil && ctx.Err() == nil {
			send, next = jobs, pending[0]
		} else if inflight == 0 && !committing && len(batch) == 0 {
			break
		}
		select {
		case send <- next:
			pending = pending[1:]
			inflight++
		case <-done:
			done = nil
			e.stop()
		case err := <-committed:
			committing = false
			if err != nil {
				return err // the side files may not be written: nothing more is safe
			}
			e.report()
		case r := <-results:
			inflight--
			switch {
			case r.err == nil:
				batch = append(batch, r)
			case NotFound(r.err):
				// Deleted since it was listed, or a listed id that names no
				// organization: it has nothing to export.
				batch = append(batch, orgResult{org: r.org, notFound: true})
			case ctx.Err() != nil:
				// Stopped before its answer came: it is read again next time.
			case failure == nil:
				failure = &OrgError{OrgID: r.org.ID, Err: r.err}
			}
		}
	}
	switch {
	case failure != nil:
		return failure
	case ctx.Err() != nil:
		e.stop()
		return e.interrupted()
	}
	return nil
}

// readOrg reads one organization's connections, retrying temporary failures.
func (e *exporter) readOrg(ctx, calls context.Context, o Organization) orgResult {
	var rows []Association
	err := e.retry(ctx, func() error {
		e.calls.Add(1)
		var err error
		rows, err = e.cfg.API.Connections(calls, o.ID)
		return err
	})
	if err != nil {
		return orgResult{org: o, err: err}
	}
	for i := range rows {
		rows[i].OrgID, rows[i].OrgName = o.ID, o.Name
	}
	return orgResult{org: o, rows: rows}
}

// cut shortens s to n runes for messages.
func cut(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}
