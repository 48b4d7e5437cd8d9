package desired

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"sync"

	"github.com/orgconn/orgconn/jobs"
	"github.com/orgconn/orgconn/producer"
)

// StateReader reads the current associations of an organization: connection
// id → state of each present association. cmd wires the Management API
// client, paced by the fleet's shared read budget.
type StateReader interface {
	Associations(ctx context.Context, orgID string) (map[string]jobs.PairState, error)
}

// ErrUnknownOrganization is what a StateReader returns (wrapped) for an
// organization the tenant does not have.
var ErrUnknownOrganization = errors.New("no such organization in the tenant")

// Recorder keeps what a planned batch's workers and its rollback need;
// *ledger.Ledger (worker/ledger) implements it.
type Recorder interface {
	// RecordPrior records each pair's state before the batch's first
	// write to it, unless one is recorded already.
	RecordPrior(ctx context.Context, batch string, recs []jobs.PairRecord) (int, error)
	// SetHints stores the batch's read mode and what the workers' auto
	// mode weighs.
	SetHints(ctx context.Context, batch string, h jobs.BatchHints) error
}

// ReadStates reads the state of every organization of orgs, parallel reads
// at a time (the reader's pacer spaces them). Organizations the tenant does
// not have are returned in unknown; any other failure ends the reads.
// progress, if not nil, is called after each read.
func ReadStates(ctx context.Context, r StateReader, orgs []string, parallel int, progress func(done, total int)) (State, map[string]bool, error) {
	parallel = max(parallel, 1)
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var (
		mu      sync.Mutex
		st      = State{}
		unknown = map[string]bool{}
		done    int
		wg      sync.WaitGroup
	)
	work := make(chan string)
	for range min(parallel, max(len(orgs), 1)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for org := range work {
				conns, err := r.Associations(ctx, org)
				mu.Lock()
				switch {
				case errors.Is(err, ErrUnknownOrganization):
					unknown[org] = true
				case err != nil:
					cancel(fmt.Errorf("read the connections of %s: %w", org, err))
				default:
					if conns == nil {
						conns = map[string]jobs.PairState{}
					}
					st[org] = conns
				}
				done++
				if progress != nil {
					progress(done, len(orgs))
				}
				mu.Unlock()
			}
		}()
	}
	for _, org := range orgs {
		select {
		case work <- org:
			continue
		case <-ctx.Done():
		}
		break
	}
	close(work)
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return nil, nil, err
	}
	return st, unknown, nil
}

// OrgsOf returns the distinct organizations of wants, in first-seen order.
func OrgsOf(wants []Want) []string {
	seen := map[string]bool{}
	var out []string
	for _, w := range wants {
		if !seen[w.OrgID] {
			seen[w.OrgID] = true
			out = append(out, w.OrgID)
		}
	}
	return out
}

// UnknownOrgErrors returns one error per want whose organization is in
// unknown, naming its line and field.
func UnknownOrgErrors(wants []Want, unknown map[string]bool) []producer.RowError {
	var errs []producer.RowError
	for _, w := range wants {
		if unknown[w.OrgID] {
			errs = append(errs, producer.RowError{Line: w.Line, Field: jobs.FieldOrgID, Problem: fmt.Sprintf("%q: %v", w.OrgID, ErrUnknownOrganization)})
		}
	}
	return errs
}

// CSV returns the plan's changes in the import format (see WriteCSV).
func (p Plan) CSV() []byte {
	var b bytes.Buffer
	_ = p.WriteCSV(&b) // a bytes.Buffer does not fail
	return b.Bytes()
}

// BatchName is the default name of the batch that enqueues p: base (e.g.
// "apply-desired") and a hash of the plan, so that applying the same plan
// again is recognised and a different plan gets another batch.
func (p Plan) BatchName(base string) string {
	sum := sha256.Sum256(p.CSV())
	return producer.DefaultBatchName(base+".csv", hex.EncodeToString(sum[:]))
}

// Prepare records, before anything of the batch is enqueued, the prior
// state of every pair the plan changes (read just now: the first writer
// wins, so a state recorded by an earlier attempt stands) and the batch's
// hints: the plan holds only changes that differ from the state read, so
// the workers' auto mode has nothing to gain from reading again.
func Prepare(ctx context.Context, rec Recorder, batch string, p Plan) error {
	if _, err := rec.RecordPrior(ctx, batch, p.Priors()); err != nil {
		return err
	}
	orgs := p.Orgs()
	h := jobs.BatchHints{Read: jobs.ReadAuto, Rows: len(p.Steps), Orgs: len(orgs), LikelyUnchanged: 0}
	if len(orgs) <= maxOrgRows {
		h.OrgRows = orgs
	}
	return rec.SetHints(ctx, batch, h)
}

// maxOrgRows is the most organizations whose rows a batch's hints list one
// by one; a batch of more keeps the average only.
const maxOrgRows = 50_000

// MaxOrgRows is maxOrgRows, for producers that build hints themselves.
const MaxOrgRows = maxOrgRows

// BatchRecord is what the ledger knows of a batch's writes;
// *ledger.Ledger implements it.
type BatchRecord interface {
	// Priors are the pairs' states before the batch's first write.
	Priors(ctx context.Context, batch string) ([]jobs.PairRecord, error)
	// Lefts are the states the batch's last writes left.
	Lefts(ctx context.Context, batch string) ([]jobs.PairRecord, error)
	// AppliedPairs are the pairs of the batch's applied lines.
	AppliedPairs(ctx context.Context, batch string) ([][2]string, error)
}

// Skip is a pair a rollback leaves alone, and why.
type Skip struct {
	OrgID, ConnectionID string
	Reason              string
}

// Skip reasons.
const (
	ReasonNoPrior = "no prior state recorded"
	ReasonChanged = "changed since the batch"
	ReasonNoLeft  = "what the batch left is not recorded"
	ReasonOrgGone = "organization no longer exists"
)

// RollbackPlan is the plan that puts back the pairs a batch changed.
type RollbackPlan struct {
	Plan
	// Pairs is the number of pairs the batch changed.
	Pairs int
	// Skipped are the pairs left alone (without force: changed since the
	// batch; always: no prior state recorded).
	Skipped []Skip
	// Forced are the pairs changed since the batch that force puts back
	// anyway.
	Forced []Skip
}

// ChangedPairs returns the pairs a batch changed: those its writes left a
// state for, and those of its applied lines.
func ChangedPairs(lefts []jobs.PairRecord, applied [][2]string) [][2]string {
	seen := map[[2]string]bool{}
	var out [][2]string
	add := func(k [2]string) {
		if !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	for _, l := range lefts {
		add([2]string{l.OrgID, l.ConnectionID})
	}
	for _, a := range applied {
		add(a)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i][0] != out[j][0] {
			return out[i][0] < out[j][0]
		}
		return out[i][1] < out[j][1]
	})
	return out
}

// OrgsOfPairs returns the distinct organizations of pairs, in order.
func OrgsOfPairs(pairs [][2]string) []string {
	seen := map[string]bool{}
	var out []string
	for _, p := range pairs {
		if !seen[p[0]] {
			seen[p[0]] = true
			out = append(out, p[0])
		}
	}
	return out
}

// PlanRollback plans putting back every pair of changed as it was before
// the batch's first write to it (priors), given the tenant's current
// state. A pair with no prior state is skipped (ReasonNoPrior). A pair the
// tenant no longer shows as the batch left it (lefts) was changed by
// someone else since: it is skipped unless force. A pair already as it was
// counts as unchanged.
func PlanRollback(changed [][2]string, priors, lefts []jobs.PairRecord, current State, unknown map[string]bool, force bool) RollbackPlan {
	index := func(recs []jobs.PairRecord) map[[2]string]jobs.PairState {
		m := make(map[[2]string]jobs.PairState, len(recs))
		for _, r := range recs {
			m[[2]string{r.OrgID, r.ConnectionID}] = r.State
		}
		return m
	}
	prior, left := index(priors), index(lefts)
	rp := RollbackPlan{Pairs: len(changed)}
	var wants []Want
	for _, k := range changed {
		org, conn := k[0], k[1]
		if unknown[org] {
			rp.Skipped = append(rp.Skipped, Skip{org, conn, ReasonOrgGone})
			continue
		}
		before, ok := prior[k]
		if !ok {
			rp.Skipped = append(rp.Skipped, Skip{org, conn, ReasonNoPrior})
			continue
		}
		now := current[org][conn]
		if now == before {
			rp.Unchanged++
			continue
		}
		if l, ok := left[k]; !ok || l != now {
			reason := ReasonNoLeft + "; the tenant shows " + now.String()
			if ok {
				reason = ReasonChanged + ": it left " + l.String() + ", the tenant shows " + now.String()
			}
			s := Skip{org, conn, reason}
			if !force {
				rp.Skipped = append(rp.Skipped, s)
				continue
			}
			rp.Forced = append(rp.Forced, s)
		}
		w := Want{OrgID: org, ConnectionID: conn, Absent: !before.Present}
		if before.Present {
			w.AssignMembershipOnLogin = jobs.FlagOf(before.AssignMembershipOnLogin)
			w.ShowAsButton = jobs.FlagOf(before.ShowAsButton)
			w.IsSignupEnabled = jobs.FlagOf(before.IsSignupEnabled)
		}
		wants = append(wants, w)
	}
	d := Diff(wants, current, false)
	rp.Steps = d.Steps
	rp.Unchanged += d.Unchanged
	return rp
}

// RollbackBatchName returns the first of "<batch>-rollback-1",
// "<batch>-rollback-2", … that exists reports unknown, shortening batch so
// that the name passes jobs.CheckBatch.
func RollbackBatchName(ctx context.Context, batch string, exists func(context.Context, string) (bool, error)) (string, error) {
	for n := 1; n < 10000; n++ {
		suffix := "-rollback-" + strconv.Itoa(n)
		base := batch
		if len(base)+len(suffix) > jobs.MaxBatchLength {
			base = base[:jobs.MaxBatchLength-len(suffix)]
		}
		name := base + suffix
		ok, err := exists(ctx, name)
		if err != nil {
			return "", err
		}
		if !ok {
			return name, nil
		}
	}
	return "", fmt.Errorf("batch %s has been rolled back 9999 times: name the rollback with --batch", batch)
}

// BatchLines tells the changes a batch accepted; *ledger.Ledger implements
// it.
type BatchLines interface {
	// AcceptedChanges returns the batch's accepted changes by line, empty
	// for an unknown batch.
	AcceptedChanges(ctx context.Context, batch string) (map[int]jobs.Change, error)
}

// CheckResume returns an error when batch holds accepted lines that are not
// the plan's (line i+2 is step i: the plan file's header is line 1):
// enqueuing the plan under that name would skip its lines as accepted
// before. Enqueuing the same plan again resumes it.
func CheckResume(ctx context.Context, bl BatchLines, batch string, p Plan) error {
	got, err := bl.AcceptedChanges(ctx, batch)
	if err != nil {
		return err
	}
	for line, c := range got {
		i := line - 2
		if i < 0 || i >= len(p.Steps) || p.Steps[i].Change != c {
			return fmt.Errorf("batch %s holds other changes (line %d: %s): give another --batch", batch, line, c)
		}
	}
	return nil
}
