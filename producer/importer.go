// Package producer turns input into queued changes: CSV files (streamed,
// validated in full before anything is queued) and, for the serve command,
// webhook requests. It records each accepted change in the ledger, which
// fixes its place in its pair's order, and enqueues one asynq task per change
// with a deterministic id, so that importing the same lines again queues
// nothing new and an interrupted import is resumed by running it again.
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
	"sync"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
	"github.com/orgconn/orgconn/jobs"
	"github.com/orgconn/orgconn/worker/ledger"
)

// Enqueuer is the part of *asynq.Client the producer uses.
type Enqueuer interface {
	EnqueueContext(ctx context.Context, task *asynq.Task, opts ...asynq.Option) (*asynq.TaskInfo, error)
}

// Config configures an Importer. Ledger and Queue are required.
type Config struct {
	Ledger *ledger.Ledger
	Queue  Enqueuer
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
	// RetryFor is how long a Redis call of the import is retried (with
	// back-off, from 50 ms to 2 s) before the import gives up: Redis
	// restarting or failing over must not end an import. Zero means 1 min;
	// negative means no retry.
	RetryFor time.Duration
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
	if cfg.ChunkSize <= 0 || cfg.ChunkSize > ledger.MaxAcceptRows {
		cfg.ChunkSize = 256
	}
	if cfg.MaxErrors <= 0 {
		cfg.MaxErrors = 1000
	}
	if cfg.RetryFor == 0 {
		cfg.RetryFor = time.Minute
	}
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
	res, err := im.check(f, name, opts)
	if err != nil || opts.DryRun || res.Rejected || res.Valid == 0 {
		res.Elapsed = time.Since(start)
		return res, err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return res, fmt.Errorf("read %s again: %w", name, err)
	}
	err = im.enqueue(ctx, f, res.Batch, "csv:"+name, res.Rows, &res)
	res.Elapsed = time.Since(start)
	return res, err
}

// ValidateFile validates path ("-" for standard input) without touching
// Redis: a dry run. cfg's Ledger and Queue are not used.
func ValidateFile(path string, cfg Config, batch string) (Result, error) {
	start := time.Now()
	im := &Importer{cfg: cfg.withDefaults()}
	f, name, cleanup, err := openInput(path)
	if err != nil {
		return Result{}, err
	}
	defer cleanup()
	res, err := im.check(f, name, Options{Batch: batch, DryRun: true})
	res.Elapsed = time.Since(start)
	return res, err
}

// check validates r and names the batch.
func (im *Importer) check(r io.Reader, name string, opts Options) (Result, error) {
	res, hash, err := im.validate(r)
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
// Redis.
func (im *Importer) Validate(r io.Reader) (Result, error) {
	res, _, err := im.validate(r)
	return res, err
}

func (im *Importer) validate(r io.Reader) (Result, string, error) {
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
			res.Valid++
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

// job is one row to enqueue.
type job struct {
	line   int
	change jobs.Change
	again  bool // accepted before, still pending
}

// enqueue accepts the valid rows of r in chunks, in file order, and enqueues
// their tasks with Concurrency calls in flight.
func (im *Importer) enqueue(ctx context.Context, r io.Reader, batch, source string, total int, res *Result) error {
	rd, err := NewCSVReader(r, im.cfg.Limits)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	work := make(chan job, 4*im.cfg.ChunkSize)
	var enqueued, repaired atomic.Int64
	var wg sync.WaitGroup
	for range im.cfg.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range work {
				if ctx.Err() != nil {
					continue
				}
				task, opts, err := jobs.NewTask(j.change, jobs.Origin{Batch: batch, Line: j.line}, im.cfg.QueueName)
				if err == nil {
					err = im.retry(ctx, func() error {
						_, err := im.cfg.Queue.EnqueueContext(ctx, task, opts...)
						return err
					})
				}
				switch {
				case err == nil && j.again:
					repaired.Add(1)
				case err == nil:
					enqueued.Add(1)
				case errors.Is(err, asynq.ErrTaskIDConflict):
					// Queued before: nothing new.
				default:
					cancel(fmt.Errorf("enqueue line %d: %w", j.line, err))
				}
			}
		}()
	}

	chunk := make([]ledger.Row, 0, im.cfg.ChunkSize)
	flush := func() error {
		if len(chunk) == 0 {
			return nil
		}
		var acc []ledger.Acceptance
		err := im.retry(ctx, func() (err error) {
			acc, err = im.cfg.Ledger.Accept(ctx, batch, source, chunk)
			return err
		})
		if err != nil {
			return err
		}
		for i, a := range acc {
			switch a {
			case ledger.Resolved:
				res.Duplicates++
			case ledger.Accepted, ledger.StillPending:
				if a == ledger.StillPending {
					res.Duplicates++
				}
				select {
				case work <- job{chunk[i].Line, chunk[i].Change, a == ledger.StillPending}:
				case <-ctx.Done():
					return context.Cause(ctx)
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
		if len(rec.Errors) > 0 {
			continue
		}
		chunk = append(chunk, ledger.Row{Line: rec.Line, Change: rec.Change})
		if len(chunk) == cap(chunk) {
			readErr = flush()
		}
		if im.cfg.Progress != nil && rows%1024 == 0 && time.Since(tick) > time.Second {
			tick = time.Now()
			im.cfg.Progress(Progress{Phase: "enqueue", Rows: rows, Total: total})
		}
	}
	close(work)
	wg.Wait()
	res.Enqueued = int(enqueued.Load())
	res.Repaired = int(repaired.Load())
	if readErr == nil {
		readErr = context.Cause(ctx)
	}
	if readErr != nil {
		return fmt.Errorf("import stopped after %d rows (%d queued); run the same command again to resume: %w", rows, res.Enqueued+res.Repaired, readErr)
	}
	return nil
}

// retry calls fn until it succeeds, fails for good, ctx ends or
// Config.RetryFor has passed since the first failure. Every error of a Redis
// call is worth retrying except a task id conflict (the task exists) and
// the end of ctx: a connection refused or reset while Redis restarts, a
// LOADING reply while it reads its append-only file, a failover. Retrying an
// Accept or an Enqueue whose answer was lost is safe: the ledger answers
// StillPending and asynq answers ErrTaskIDConflict.
func (im *Importer) retry(ctx context.Context, fn func() error) error {
	var deadline time.Time
	wait := 50 * time.Millisecond
	for {
		err := fn()
		if err == nil || errors.Is(err, asynq.ErrTaskIDConflict) || ctx.Err() != nil || im.cfg.RetryFor < 0 {
			return err
		}
		if deadline.IsZero() {
			deadline = time.Now().Add(im.cfg.RetryFor)
		} else if time.Now().After(deadline) {
			return fmt.Errorf("%w (retried for %v)", err, im.cfg.RetryFor)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
		wait = min(2*wait, 2*time.Second)
	}
}
