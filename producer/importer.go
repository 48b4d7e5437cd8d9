// Package producer turns input into queued changes: CSV files (streamed,
// validated in full before anything is queued) and, for the serve command,
// webhook requests. It records each accepted change in the ledger, which
// fixes its place in its pair's order, and enqueues one asynq task per change
// with a deterministic id, so that importing the same lines again queues
// nothing new and an interrupted import is resumed by running it again.
//
// The ledger is an Accepter that cmd wires in: the producer imports no worker
// package. Both inputs enqueue through one path, with the calls in flight
// bounded and Redis retried under a Retry policy.
//
// Before anything is enqueued, changes are checked against the tenant
// through two small interfaces cmd wires in: a ModeSource (a change that
// needs the Organization connections API is refused on a tenant in legacy
// mode) and a Resolver (organization and connection names are looked up,
// each distinct name once per import or request, so that changes are
// queued, and their pairs ordered, by id). NameResolver is the Resolver
// over the Management API's look-ups, declared as a Directory.
package producer

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/orgconn/orgconn/jobs"
)

// Config configures an Importer. Ledger and Queue are required.
type Config struct {
	// Ledger records each accepted line once and fixes its place in its
	// pair's order.
	Ledger Accepter
	// Queue receives one task per accepted line.
	Queue Enqueuer
	// QueueName is the asynq queue. Empty means "orgconn".
	QueueName string
	Limits    Limits
	// Concurrency is how many enqueue calls are in flight at once. Zero
	// means 24 (with the client's script calls pipelined, as orgconn import
	// does with producer/autopipe, that many make deep pipelines; see
	// BENCHMARKS.md "Load").
	Concurrency int
	// ChunkSize is how many rows one ledger call accepts. Zero means 256.
	ChunkSize int
	// MaxErrors is how many row errors a Result keeps; the rest are only
	// counted. Zero means 1000.
	MaxErrors int
	// Progress, if not nil, is called about once a second during long work.
	Progress func(Progress)
	// Retry is how the import's Redis calls (ledger accepts and enqueues)
	// are retried before it gives up: Redis restarting or failing over must
	// not end an import. The zero value retries for 1 min, with waits from
	// 50 ms to 2 s.
	Retry Retry
	// Mode tells the tenant's API mode, asked once per import. In
	// ModeLegacy every row that needs the Organization connections API is
	// refused with its line and reason, as an invalid row is. Nil means
	// ModeUnknown: such rows are let through and the worker decides.
	Mode ModeSource
	// ModeHint is added to a refusal in legacy mode to say how to change
	// the mode, e.g. "--api". Empty adds nothing.
	ModeHint string
	// Resolver, if not nil, looks up every org_name and connection_name
	// given without its id before anything is enqueued, each distinct name
	// once per import: an unknown name makes its row invalid ("org_name: no
	// organization named …"), and resolved rows are enqueued with their
	// ids. Nil means rows with names are enqueued as they are, for the
	// worker to resolve.
	Resolver Resolver
	// MaxNames bounds the distinct names one import looks up; the rows
	// naming more are invalid. Zero means 100,000.
	MaxNames int
	// Prepare, if not nil, is called once per import after validation and
	// before the first row is accepted, with the batch, its valid rows and
	// their count per organization: to store what the batch's workers need
	// to know before its tasks exist (the read mode). An error ends the
	// import before anything is enqueued.
	Prepare func(ctx context.Context, batch string, rows int, orgRows map[string]int) error
}

// Progress reports work under way.
type Progress struct {
	Phase string // "validate" or "enqueue"
	Rows  int    // rows read so far in this phase
	Total int    // rows in the file (known in the enqueue phase), else 0
}

// Options are one import's choices.
type Options struct {
	// Batch names the import. Empty means a name made from the file's name
	// and a hash of its content, so importing the same file again is
	// recognised.
	Batch string
	// DryRun validates and reports only.
	DryRun bool
	// SkipInvalid enqueues the valid rows even when some are invalid.
	SkipInvalid bool
}

// Result is what an import did.
type Result struct {
	Batch         string        `json:"batch"`
	Rows          int           `json:"rows"`    // data rows read
	Valid         int           `json:"valid"`   // rows without errors
	Invalid       int           `json:"invalid"` // rows with errors
	Errors        []RowError    `json:"-"`
	ErrorsOmitted int           `json:"errors_omitted,omitempty"` // errors beyond MaxErrors
	Enqueued      int           `json:"enqueued"`                 // newly accepted and queued
	Duplicates    int           `json:"already_accepted"`         // accepted by an earlier import of this batch
	Repaired      int           `json:"requeued"`                 // still pending from an interrupted import and queued again
	DryRun        bool          `json:"dry_run,omitempty"`
	Rejected      bool          `json:"rejected,omitempty"` // invalid rows and no SkipInvalid: nothing enqueued
	Elapsed       time.Duration `json:"-"`

	orgRows map[string]int // valid rows per organization, when Config.Prepare is set
}

// Importer imports CSV files. Safe for concurrent use.
type Importer struct{ cfg Config }

// NewImporter returns an importer.
func NewImporter(cfg Config) (*Importer, error) {
	if cfg.Ledger == nil || cfg.Queue == nil {
		return nil, errors.New("producer: Config.Ledger and Config.Queue are required")
	}
	return &Importer{cfg: cfg.withDefaults()}, nil
}

func (cfg Config) withDefaults() Config {
	if cfg.QueueName == "" {
		cfg.QueueName = "orgconn"
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 24
	}
	if cfg.ChunkSize <= 0 || cfg.ChunkSize > jobs.MaxAcceptRows {
		cfg.ChunkSize = 256
	}
	if cfg.MaxErrors <= 0 {
		cfg.MaxErrors = 1000
	}
	if cfg.MaxNames <= 0 {
		cfg.MaxNames = 100_000
	}
	cfg.Retry = cfg.Retry.withDefaults()
	cfg.Limits = cfg.Limits.withDefaults()
	return cfg
}

// MaxStdinBytes bounds how much of standard input is spooled to a temporary
// file (stdin must be read twice: validate, then enqueue).
const MaxStdinBytes = 2 << 30

// ImportFile imports path ("-" for standard input): it validates every row
// and, unless opts says otherwise or a row is invalid, accepts and enqueues
// the valid rows. A *HeaderError means the header is unusable.
func (im *Importer) ImportFile(ctx context.Context, path string, opts Options) (Result, error) {
	start := time.Now()
	f, name, cleanup, err := openInput(path)
	if err != nil {
		return Result{}, err
	}
	defer cleanup()
	run, err := im.start(ctx)
	if err != nil {
		return Result{}, err
	}
	res, err := im.check(ctx, run, f, name, opts)
	if err != nil || opts.DryRun || res.Rejected || res.Valid == 0 {
		res.Elapsed = time.Since(start)
		return res, err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return res, fmt.Errorf("read %s again: %w", name, err)
	}
	if im.cfg.Prepare != nil {
		if err := im.cfg.Prepare(ctx, res.Batch, res.Valid, res.orgRows); err != nil {
			res.Elapsed = time.Since(start)
			return res, fmt.Errorf("prepare batch %s: %w", res.Batch, err)
		}
	}
	err = im.enqueue(ctx, run, f, res.Batch, "csv:"+name, res.Rows, &res)
	res.Elapsed = time.Since(start)
	return res, err
}

// ValidateFile validates path ("-" for standard input) without touching
// Redis: a dry run. cfg's Ledger and Queue are not used.
func ValidateFile(path string, cfg Config, batch string) (Result, error) {
	return ValidateFileContext(context.Background(), path, cfg, batch)
}

// ValidateFileContext is ValidateFile with a context for cfg's Mode and
// Resolver: a dry run refuses what the tenant's mode cannot do and reports
// unknown names as an import would, still without touching Redis.
func ValidateFileContext(ctx context.Context, path string, cfg Config, batch string) (Result, error) {
	start := time.Now()
	im := &Importer{cfg: cfg.withDefaults()}
	f, name, cleanup, err := openInput(path)
	if err != nil {
		return Result{}, err
	}
	defer cleanup()
	run, err := im.start(ctx)
	if err != nil {
		return Result{}, err
	}
	res, err := im.check(ctx, run, f, name, Options{Batch: batch, DryRun: true})
	res.Elapsed = time.Since(start)
	return res, err
}

// run is what one import knows beyond its file: the tenant's mode and the
// names looked up so far.
type run struct {
	mode  APIMode
	names *NameLookups // nil without a Resolver
}

// start asks the tenant's mode for one import.
func (im *Importer) start(ctx context.Context) (*run, error) {
	r := &run{}
	if im.cfg.Resolver != nil {
		r.names = NewNameLookups(im.cfg.Resolver)
	}
	if im.cfg.Mode != nil {
		m, err := im.cfg.Mode.Mode(ctx)
		if err != nil {
			return nil, fmt.Errorf("tell the tenant's API mode: %w", err)
		}
		r.mode = m
	}
	return r, nil
}

// admit checks a valid record against the tenant (its mode, then its names,
// which it resolves in place) and appends the problems to rec.Errors. An
// error means a look-up failed: the import cannot go on.
func (im *Importer) admit(ctx context.Context, r *run, rec *Record) error {
	if p := RefusedInMode(rec.Change, r.mode, im.cfg.ModeHint); p != "" {
		rec.Errors = append(rec.Errors, RowError{Line: rec.Line, Problem: p})
	}
	if im.cfg.Resolver == nil || !rec.Change.Unresolved() {
		return nil
	}
	c := &rec.Change
	if c.OrgID == "" && c.OrgName != "" {
		id, p, err := im.resolve(ctx, r, KindOrganization, c.OrgName)
		if err != nil {
			return err
		}
		if p != "" {
			rec.Errors = append(rec.Errors, RowError{Line: rec.Line, Field: jobs.FieldOrgName, Problem: p})
		}
		c.OrgID = id
	}
	if c.ConnectionID == "" && c.ConnectionName != "" {
		id, p, err := im.resolve(ctx, r, KindConnection, c.ConnectionName)
		if err != nil {
			return err
		}
		if p != "" {
			rec.Errors = append(rec.Errors, RowError{Line: rec.Line, Field: jobs.FieldConnectionName, Problem: p})
		}
		c.ConnectionID = id
	}
	return nil
}

// resolve looks a name up once per import (kind KindOrganization or
// KindConnection). It returns the id, or a problem for the row.
func (im *Importer) resolve(ctx context.Context, r *run, kind, name string) (id, problem string, err error) {
	if !r.names.Seen(kind, name) && r.names.Len() >= im.cfg.MaxNames {
		return "", fmt.Sprintf("the file names more than %d distinct organizations and connections: give ids, or split the file", im.cfg.MaxNames), nil
	}
	id, found, err := r.names.Look(ctx, kind, name)
	if err != nil {
		return "", "", err
	}
	if !found {
		return "", fmt.Sprintf("no %s named %q", kind, name), nil
	}
	return id, "", nil
}

// check validates r and names the batch.
func (im *Importer) check(ctx context.Context, run *run, r io.Reader, name string, opts Options) (Result, error) {
	res, hash, err := im.validate(ctx, run, r)
	if err != nil {
		return res, err
	}
	res.Batch = opts.Batch
	if res.Batch == "" {
		res.Batch = DefaultBatchName(name, hash)
	} else if err := jobs.CheckBatch(res.Batch); err != nil {
		return res, err
	}
	res.DryRun = opts.DryRun
	res.Rejected = res.Invalid > 0 && !opts.SkipInvalid && !opts.DryRun
	return res, nil
}

// openInput opens a file, or spools standard input to a temporary file.
func openInput(path string) (f *os.File, name string, cleanup func(), err error) {
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return nil, "", nil, err
		}
		return f, filepath.Base(path), func() { f.Close() }, nil
	}
	tmp, err := os.CreateTemp("", "orgconn-stdin-*.csv")
	if err != nil {
		return nil, "", nil, fmt.Errorf("spool standard input: %w", err)
	}
	cleanup = func() { tmp.Close(); os.Remove(tmp.Name()) }
	n, err := io.Copy(tmp, io.LimitReader(os.Stdin, MaxStdinBytes+1))
	if err != nil {
		cleanup()
		return nil, "", nil, fmt.Errorf("spool standard input: %w", err)
	}
	if n > MaxStdinBytes {
		cleanup()
		return nil, "", nil, fmt.Errorf("standard input is larger than %d bytes: pass a file instead", MaxStdinBytes)
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		cleanup()
		return nil, "", nil, err
	}
	return tmp, "stdin", cleanup, nil
}

// DefaultBatchName makes a batch name from a file name and its content hash:
// "users-3fa9c2b1d0".
func DefaultBatchName(fileName, contentHash string) string {
	base := strings.TrimSuffix(fileName, filepath.Ext(fileName))
	var b strings.Builder
	for _, r := range base {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-' {
			b.WriteRune(r)
		} else {
			b.WriteByte('-')
		}
		if b.Len() >= 40 {
			break
		}
	}
	if b.Len() == 0 {
		b.WriteString("import")
	}
	return b.String() + "-" + contentHash[:10]
}

// Validate reads every row of r and reports the problems, without touching
// Redis. With a Mode or a Resolver configured it asks them as an import
// would.
func (im *Importer) Validate(r io.Reader) (Result, error) {
	ctx := context.Background()
	run, err := im.start(ctx)
	if err != nil {
		return Result{}, err
	}
	res, _, err := im.validate(ctx, run, r)
	return res, err
}

func (im *Importer) validate(ctx context.Context, run *run, r io.Reader) (Result, string, error) {
	h := sha256.New()
	rd, err := NewCSVReader(io.TeeReader(r, h), im.cfg.Limits)
	var res Result
	if err != nil {
		var he *HeaderError
		if errors.As(err, &he) {
			res.Errors = he.Errors
			res.Rejected = true
		}
		return res, "", err
	}
	tick := time.Now()
	for {
		rec, err := rd.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return res, "", err
		}
		res.Rows++
		if len(rec.Errors) == 0 {
			if err := im.admit(ctx, run, &rec); err != nil {
				return res, "", fmt.Errorf("line %d: %w", rec.Line, err)
			}
		}
		if len(rec.Errors) == 0 {
			res.Valid++
			if im.cfg.Prepare != nil {
				if res.orgRows == nil {
					res.orgRows = map[string]int{}
				}
				res.orgRows[rec.Change.OrgID]++
			}
		} else {
			res.Invalid++
			for _, e := range rec.Errors {
				if len(res.Errors) < im.cfg.MaxErrors {
					res.Errors = append(res.Errors, e)
				} else {
					res.ErrorsOmitted++
				}
			}
		}
		if im.cfg.Progress != nil && res.Rows%4096 == 0 && time.Since(tick) > time.Second {
			tick = time.Now()
			im.cfg.Progress(Progress{Phase: "validate", Rows: res.Rows})
		}
	}
	return res, hex.EncodeToString(h.Sum(nil)), nil
}

// enqueue accepts the valid rows of r in chunks, in file order, and enqueues
// their tasks with Concurrency calls in flight.
func (im *Importer) enqueue(ctx context.Context, run *run, r io.Reader, batch, source string, total int, res *Result) error {
	rd, err := NewCSVReader(r, im.cfg.Limits)
	if err != nil {
		return err
	}
	enq := startEnqueues(ctx, im.cfg.Queue, im.cfg.QueueName, im.cfg.Concurrency, 4*im.cfg.ChunkSize, im.cfg.Retry)
	// The import stops when an enqueue fails for good.
	ctx = enq.ctx
	var enqueued, repaired atomic.Int64

	chunk := make([]jobs.Row, 0, im.cfg.ChunkSize)
	flush := func() error {
		if len(chunk) == 0 {
			return nil
		}
		var acc []jobs.Acceptance
		err := im.cfg.Retry.do(ctx, func() (err error) {
			acc, err = im.cfg.Ledger.Accept(ctx, batch, source, chunk)
			return err
		})
		if err != nil {
			return err
		}
		for i, a := range acc {
			switch a {
			case jobs.Resolved:
				res.Duplicates++
			case jobs.Accepted, jobs.StillPending:
				count := &enqueued
				if a == jobs.StillPending {
					res.Duplicates++
					count = &repaired
				}
				if err := enq.add(chunk[i].Change, jobs.Origin{Batch: batch, Line: chunk[i].Line}, count); err != nil {
					return err
				}
			}
		}
		chunk = chunk[:0]
		return nil
	}
	var readErr error
	rows, tick := 0, time.Now()
	for readErr == nil && ctx.Err() == nil {
		rec, err := rd.Next()
		if err == io.EOF {
			readErr = flush()
			break
		}
		if err != nil {
			readErr = err
			break
		}
		rows++
		if len(rec.Errors) == 0 {
			// Every name was looked up while validating: this asks no one.
			if readErr = im.admit(ctx, run, &rec); readErr != nil {
				break
			}
		}
		if len(rec.Errors) > 0 {
			continue
		}
		chunk = append(chunk, jobs.Row{Line: rec.Line, Change: rec.Change})
		if len(chunk) == cap(chunk) {
			readErr = flush()
		}
		if im.cfg.Progress != nil && rows%1024 == 0 && time.Since(tick) > time.Second {
			tick = time.Now()
			im.cfg.Progress(Progress{Phase: "enqueue", Rows: rows, Total: total})
		}
	}
	enqErr := enq.wait()
	res.Enqueued = int(enqueued.Load())
	res.Repaired = int(repaired.Load())
	if readErr == nil {
		readErr = enqErr
	}
	if readErr != nil {
		return fmt.Errorf("import stopped after %d rows (%d queued); run the same command again to resume: %w", rows, res.Enqueued+res.Repaired, readErr)
	}
	return nil
}
