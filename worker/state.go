package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"sync"
	"time"

	"github.com/orgconn/orgconn/jobs"
	"github.com/orgconn/orgconn/worker/mgmt"
	"github.com/orgconn/orgconn/worker/ratelimit"
)

// A worker that knows the state.
//
// Before the first write to an organization the worker may read the
// organization's associations (one list call, from the read budget) into
// the fleet's state cache (worker/ledger: one hash per organization, kept
// ledger.StateTTL, marked by every write). Knowing the pair's state, it
//
//   - skips a change the tenant already reflects (outcome unchanged: no
//     write);
//   - sends an enable of an existing pair as one PATCH of the flags that
//     differ, an update as a PATCH of the differing flags only;
//   - records the pair's prior state for the batch before writing (first
//     writer wins), for rollback.
//
// Whatever it knows, it records the state each write left. A read older
// than StateMaxAge is never used (it is read again, or the change is
// written blind); a write refused because the state moved (404 on an
// update or remove, 409 on an enable) drops the organization's cached state
// and finishes the change as a blind write would.
//
// Whether to read is the read mode's: the worker's Config.ReadMode, else the
// batch's (stored by import and apply), else auto. Auto reads only when
// WorthReading says the read saves more write time than it costs.

// Budget tells the worker the fleet's learned paces;
// *ratelimit.Limiter implements it.
type Budget interface {
	Paces(ctx context.Context) (ratelimit.Paces, error)
}

var _ Budget = (*ratelimit.Limiter)(nil)

// DefaultLikelyUnchanged is the share of a batch's rows that the auto mode
// expects the tenant to reflect already for an imported file, of which
// nothing is known (orgconn import stores it with the batch). A batch whose
// producer stored no hints (a webhook batch) is expected to hold nothing in
// effect: auto does not read for it.
const DefaultLikelyUnchanged = 0.5

// WorthReading reports whether one read of an organization's associations
// is expected to save more write time than it costs: rows changes of the
// batch go to the organization, of which the share likelyUnchanged is
// expected to be in effect already (each saves one write). A write costs
// 1/p.Write seconds of the fleet's budget, a read 1/p.Read; the saving must
// exceed the cost by ReadMargin, so that a near tie of rough estimates does
// not read. An unknown pace (zero) never reads. So a batch with one row per
// organization never reads when reads are scarcer than writes (p.Read <
// p.Write), whatever likelyUnchanged is.
func WorthReading(rows int, likelyUnchanged float64, p ratelimit.Paces) bool {
	if rows <= 0 || likelyUnchanged <= 0 || p.Read <= 0 || p.Write <= 0 {
		return false
	}
	saved := float64(rows) * math.Min(likelyUnchanged, 1) / p.Write
	cost := 1 / p.Read
	return saved > ReadMargin*cost
}

// ReadMargin is how much more write time a read must be expected to save
// than it costs before the auto mode reads.
const ReadMargin = 1.2

// errLedger marks a failure to record in the ledger before a write: the
// write is not sent and the change is put back.
type errLedger struct{ err error }

func (e *errLedger) Error() string { return "ledger unavailable: " + e.err.Error() }
func (e *errLedger) Unwrap() error { return e.err }

// pacesFor caches the fleet's paces for pacesTTL.
const pacesTTL = 5 * time.Second

// stateReader holds what the handler needs to know the state.
type stateReader struct {
	mode   jobs.ReadMode // the worker's override; "" follows the batch
	budget Budget        // nil: auto never reads
	maxAge time.Duration

	mu      sync.Mutex
	paces   ratelimit.Paces
	pacesAt time.Time
}

// currentPaces returns the fleet's paces, read at most every pacesTTL.
func (s *stateReader) currentPaces(ctx context.Context) ratelimit.Paces {
	if s.budget == nil {
		return ratelimit.Paces{}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if time.Since(s.pacesAt) < pacesTTL {
		return s.paces
	}
	p, err := s.budget.Paces(ctx)
	if err != nil {
		return s.paces
	}
	s.paces, s.pacesAt = p, time.Now()
	return p
}

// act makes the change of p true on the tenant, knowing the pair's state
// when the read mode lets it. unchanged reports that the tenant already
// reflected the change: nothing was written.
func (h *handler) act(ctx context.Context, p jobs.Payload, holder string, log *slog.Logger) (unchanged bool, err error) {
	c := p.Change
	batch := p.Origin.Batch
	var cur *jobs.PairState
	if mode, hints, orgRows := h.readPlan(ctx, batch, c.OrgID); mode != jobs.ReadNever {
		if cur, err = h.knownState(ctx, c, mode, hints, orgRows, holder, log); err != nil {
			return false, err
		}
	}
	if cur != nil && cur.Reflects(c) {
		// What the batch left, if it wrote to the pair before (an earlier
		// write whose answer was lost).
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if err := h.ledger.Reflected(rctx, batch, c, *cur); err != nil {
			return false, &errLedger{err}
		}
		return true, nil
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	err = h.ledger.BeforeWrite(rctx, batch, c, cur)
	cancel()
	if err != nil {
		return false, &errLedger{err}
	}
	left, err := h.write(ctx, c, cur, log)
	if err != nil {
		left = nil
	}
	rctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if aerr := h.ledger.AfterWrite(rctx, batch, c, left); aerr != nil {
		// The pair stays marked in flight (unknown) in the cache, which is
		// safe. A write that succeeded is put back, so that the state it
		// left is recorded for rollback when it is repeated (harmless).
		if err == nil {
			return false, &errLedger{aerr}
		}
		log.Warn("cannot record that the write ended", "err", aerr)
	}
	return false, err
}

// readPlan returns the read mode for the batch and what auto weighs.
func (h *handler) readPlan(ctx context.Context, batch, org string) (jobs.ReadMode, jobs.BatchHints, int) {
	if h.state.mode == jobs.ReadNever {
		return jobs.ReadNever, jobs.BatchHints{}, 0
	}
	hints, orgRows, ok, err := h.ledger.Hints(ctx, batch, org)
	if err != nil || !ok {
		// A batch whose producer told nothing (a webhook batch, one
		// imported by an older orgconn): auto has nothing to weigh and
		// does not read.
		hints = jobs.BatchHints{Read: jobs.ReadAuto, LikelyUnchanged: 0}
	}
	mode := h.state.mode
	if mode == "" {
		mode = hints.Read
	}
	if mode == "" {
		mode = jobs.ReadAuto
	}
	return mode, hints, orgRows
}

// rowsFor is the batch's rows for one organization: recorded, else the
// batch's average, else 1.
func rowsFor(h jobs.BatchHints, orgRows int) int {
	switch {
	case orgRows > 0:
		return orgRows
	case h.Orgs > 0 && h.Rows > 0:
		return (h.Rows + h.Orgs - 1) / h.Orgs
	}
	return 1
}

// knownState returns the pair's state when the cache knows it from a read
// not older than the bound, reading the organization first when the mode
// says so; nil when the state is not known. In mode always a read that
// fails for a reason that may pass (a 5xx, a lost answer) is returned as
// the attempt's error, and a read another worker is still making puts the
// change back (*later), so that the change is tried again knowing the
// state rather than written blind.
func (h *handler) knownState(ctx context.Context, c jobs.Change, mode jobs.ReadMode, hints jobs.BatchHints, orgRows int, holder string, log *slog.Logger) (*jobs.PairState, error) {
	cp, err := h.ledger.CachedState(ctx, c.OrgID, c.ConnectionID)
	if err != nil {
		return nil, nil
	}
	fresh := cp.Read && cp.Age <= h.state.maxAge
	switch {
	case fresh && cp.Known:
		return &cp.State, nil
	case cp.InFlight:
		return nil, nil // an earlier write of the pair never ended: no read can tell
	case fresh && mode != jobs.ReadAlways:
		return nil, nil // a write of the pair ended without a known result
	case !fresh && mode != jobs.ReadAlways && !WorthReading(rowsFor(hints, orgRows), hints.LikelyUnchanged, h.state.currentPaces(ctx)):
		return nil, nil
	}
	st, err := h.readOrg(ctx, c, holder, log)
	switch {
	case errors.Is(err, errReadBusy):
		// Another worker is reading the organization and has not finished:
		// come back once it has, rather than hold a slot or write blind.
		return nil, &later{reason: "another worker is reading the organization", after: time.Second}
	case err == nil || mode != jobs.ReadAlways:
		return st, nil
	case mgmt.StatusOf(err) != http.StatusNotFound && Classify(err).Kind != Dead:
		return nil, err
	}
	return nil, nil
}

// errReadBusy: another worker holds the right to read the organization and
// its read did not arrive in time.
var errReadBusy = errors.New("another worker is reading the organization")

// stateReadLock bounds how long one worker holds the right to read an
// organization for the fleet; stateReadWait how long others wait for its
// read, holding their slot, before they are put back to come again.
const (
	stateReadLock = 30 * time.Second
	stateReadWait = time.Second
)

// readOrg reads the organization's associations into the cache (one worker
// of the fleet at a time; the others wait for its read) and returns the
// pair's state: nil when it is not known after all, with the list call's
// error when that failed.
func (h *handler) readOrg(ctx context.Context, c jobs.Change, holder string, log *slog.Logger) (*jobs.PairState, error) {
	got, err := h.ledger.LockStateRead(ctx, c.OrgID, holder, stateReadLock)
	if err != nil {
		return nil, nil
	}
	if !got {
		since := time.Now()
		for time.Since(since) < stateReadWait {
			t := time.NewTimer(100 * time.Millisecond)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil, ctx.Err()
			case <-t.C:
			}
			cp, err := h.ledger.CachedState(ctx, c.OrgID, c.ConnectionID)
			if err == nil && cp.Read && cp.Age < time.Since(since)+time.Second {
				// Read since this worker started waiting.
				if cp.Known {
					return &cp.State, nil
				}
				return nil, nil
			}
		}
		return nil, errReadBusy
	}
	defer func() {
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = h.ledger.UnlockStateRead(uctx, c.OrgID, holder)
	}()
	sent, err := h.ledger.Clock(ctx)
	if err != nil {
		return nil, nil
	}
	conns, err := listAll(ctx, h.api, c.OrgID)
	if err != nil {
		log.Info("cannot read the organization's connections", "err", err)
		return nil, err
	}
	if _, err := h.ledger.StoreState(ctx, c.OrgID, sent, conns); err != nil {
		return nil, nil
	}
	log.Debug("read the organization's connections", "connections", len(conns))
	cp, err := h.ledger.CachedState(ctx, c.OrgID, c.ConnectionID)
	if err != nil || !cp.Known || !cp.Read {
		return nil, nil
	}
	return &cp.State, nil
}

// listAll reads every association of the organization, page by page.
func listAll(ctx context.Context, api API, org string) (map[string]jobs.PairState, error) {
	out := map[string]jobs.PairState{}
	for page := 0; page < 10000; page++ {
		var pg mgmt.Page
		err := untilNotThrottled(ctx, func() (err error) {
			pg, err = api.List(ctx, org, page, mgmt.PageSize)
			return err
		})
		if err != nil {
			return nil, err
		}
		for _, ec := range pg.Connections {
			out[ec.ConnectionID] = *leftOf(ec, nil)
		}
		n := len(pg.Connections)
		if n == 0 || n < mgmt.PageSize && pg.Total < 0 || pg.Total >= 0 && pg.Start+n >= pg.Total {
			return out, nil
		}
	}
	return nil, fmt.Errorf("organization %s: more than 10000 pages of connections", org)
}

// write sends c knowing the pair's state cur (nil: not known) and returns
// the state it left when the answers tell it.
func (h *handler) write(ctx context.Context, c jobs.Change, cur *jobs.PairState, log *slog.Logger) (*jobs.PairState, error) {
	if cur == nil {
		return applyBlind(ctx, h.api, c)
	}
	moved := func(err error, status int) bool {
		if mgmt.StatusOf(err) != status {
			return false
		}
		log.Info("the pair's state moved since it was read; dropping what was read", "status", status)
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = h.ledger.ForgetState(fctx, c.OrgID)
		return true
	}
	switch {
	case (c.Action == jobs.Enable || c.Action == jobs.Update) && cur.Present:
		s := differing(c, *cur)
		if s.Empty() {
			return cur, nil // reflected: act skips it before; kept for safety
		}
		var ec mgmt.EnabledConnection
		err := untilNotThrottled(ctx, func() (err error) {
			ec, err = h.api.Update(ctx, c.OrgID, c.ConnectionID, s)
			return err
		})
		if moved(err, http.StatusNotFound) {
			return applyBlind(ctx, h.api, c)
		}
		return leftOf(ec, err), explainNotFound(ctx, h.api, c.OrgID, err)
	case c.Action == jobs.Enable:
		var ec mgmt.EnabledConnection
		err := untilNotThrottled(ctx, func() (err error) {
			ec, err = h.api.Enable(ctx, c.OrgID, c.ConnectionID, settings(c))
			return err
		})
		if moved(err, http.StatusConflict) {
			return patchGiven(ctx, h.api, c, settings(c))
		}
		return leftOf(ec, err), explainNotFound(ctx, h.api, c.OrgID, err)
	case c.Action == jobs.Remove && cur.Present:
		left, err := removeKnown(ctx, h.api, c)
		if err == nil {
			return left, nil
		}
		return left, err
	}
	// An update of a pair read as absent: the API says what it says.
	return applyBlind(ctx, h.api, c)
}

// differing returns the flags of c whose value differs from cur's.
func differing(c jobs.Change, cur jobs.PairState) mgmt.Settings {
	var s mgmt.Settings
	pick := func(f jobs.Flag, have bool) *bool {
		if !f.Set() || f.Bool() == have {
			return nil
		}
		b := f.Bool()
		return &b
	}
	s.AssignMembershipOnLogin = pick(c.AssignMembershipOnLogin, cur.AssignMembershipOnLogin)
	s.ShowAsButton = pick(c.ShowAsButton, cur.ShowAsButton)
	s.IsSignupEnabled = pick(c.IsSignupEnabled, cur.IsSignupEnabled)
	return s
}

// isLedgerError reports whether err is errLedger.
func isLedgerError(err error) bool {
	var l *errLedger
	return errors.As(err, &l)
}
