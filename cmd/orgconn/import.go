package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/hibiken/asynq"
	"github.com/orgconn/orgconn/cmd/orgconn/internal/assembly"
	"github.com/orgconn/orgconn/jobs"
	"github.com/orgconn/orgconn/producer"
	"github.com/orgconn/orgconn/producer/autopipe"
	"github.com/orgconn/orgconn/producer/desired"
	"github.com/orgconn/orgconn/worker"
	"github.com/orgconn/orgconn/worker/apimode"
	"github.com/orgconn/orgconn/worker/ledger"
	"github.com/orgconn/orgconn/worker/mgmt"
	"github.com/orgconn/orgconn/worker/ratelimit"
	"github.com/redis/go-redis/v9"
)

const importSynopsis = `
Usage: orgconn import [flags] FILE

Validates every row of the CSV file FILE ("-" reads standard input) and, when
all are valid, enqueues one task per row for the workers. Nothing is enqueued
if any row is invalid, unless --skip-invalid is given. Each problem is
reported as "line N: field: problem" (the header is line 1).

The header names the columns, in any order and any case:
  action                        enable, disable, update or remove (required)
  org_id                        organization id, e.g. org_abc123
  org_name                      or the organization's name (lowercase letters,
                                digits, _ and -, 1-50, not starting org_)
  connection_id                 connection id, e.g. con_abc123
  connection_name               or the connection's name (letters, digits
                                and -, 1-128)
  assign_membership_on_login    true, false or empty (not given)
  show_as_button                true, false or empty
  is_signup_enabled             true, false or empty
  organization_connection_name  1-50 characters, or empty
  organization_access_level     none, readonly, limited, full, or empty
A header needs org_id or org_name, and connection_id or connection_name. A
row gives an id or a name for each side; with both, the id is used. disable,
organization_connection_name and organization_access_level need the
Organization connections API: when the tenant's mode (--api, below) is
legacy, such rows are refused, each line named, and nothing is enqueued;
while the mode is undecided (auto before a worker has probed), they are let
through and the workers decide.

With the tenant's domain (AUTH0_DOMAIN or --auth0-domain) and credentials
(AUTH0_CLIENT_ID and AUTH0_CLIENT_SECRET, or AUTH0_TOKEN, as for the worker),
import asks the tenant through the fleet's read budget before it enqueues
anything: every distinct org_name once (GET /organizations/name/NAME) and
the connections once (GET /connections); an unknown name is reported on each
line that uses it ("line 9: org_name: no organization named "acme"") and
nothing is enqueued. --api auto then also probes the tenant when no worker
has remembered its mode. Without credentials (and in a dry run), names are
enqueued as given for the workers to look up.

Importing the same file again under the same batch name enqueues nothing new;
an interrupted import is resumed by running the same command again.

Examples:
  orgconn import --dry-run changes.csv
  orgconn import --batch onboarding-2026-11 changes.csv
  cat changes.csv | orgconn import --skip-invalid --json -

--api (env ORGCONN_API) says how the tenant's organization connections are
reached: legacy, connections or auto (the default: the mode the workers
probed and remembered in Redis for the tenant of AUTH0_DOMAIN; with
credentials, import probes it itself when none is remembered; undecided
otherwise until a worker has probed). --json reports it as api_mode.

--read says when the workers read an organization's connections before
writing to it (stored with the batch; a worker's own --read overrides it):
never (write blind), auto (the default: read when the read is expected to
save more write time than it costs, judged from the fleet's learned read and
write paces and the batch's rows for the organization) or always. A worker
that read skips a change the tenant already reflects (outcome "unchanged"),
sends an enable of an existing pair as one PATCH, and records each pair's
state before the batch's first write (for orgconn rollback).

With --wait, import then waits until the workers have resolved every line
of the batch: a progress bar when standard output is a terminal, else a
progress line on stderr every --interval (orgconn status --wait does the
same for a batch imported earlier).

Exit codes: 0 enqueued (or a dry run found every row valid; with --wait:
finished without dead letters), 1 invalid rows (nothing enqueued; with
--skip-invalid the valid rows are enqueued and the exit code is 0), 2 usage,
3 with --wait: finished with dead letters, 4 could not finish (safe to
re-run; with --wait also --timeout passed or interrupted).`

func runImport(ctx context.Context, e *env, args []string) int {
	f := newFlags(e, "import", importSynopsis).withProfile()
	q := f.withQueue()
	dryRun := f.Bool("dry-run", false, "validate and report only; touch nothing")
	skipInvalid := f.Bool("skip-invalid", false, "enqueue the valid rows even if some rows are invalid (they are reported)")
	batch := f.String("batch", "", "batch name, 1-64 of A-Z a-z 0-9 . _ - (default: file name and content hash)")
	asJSON := f.Bool("json", false, "print the result as JSON on stdout")
	maxRows := f.Int("max-rows", 10_000_000, "refuse files with more data rows than this")
	maxErrors := f.Int("max-errors", 1000, "report at most this many row errors (the rest are counted)")
	wait := f.Bool("wait", false, "after enqueueing, wait until the batch is finished; exit 0 if nothing was dead-lettered, else 3")
	interval := f.Duration("interval", 2*time.Second, "with --wait: how often to read and show progress")
	timeout := f.Duration("timeout", 0, "with --wait: give up waiting after this long (exit 4); 0 waits as long as it takes")
	apiFlag := f.withAPIMode()
	readFlag := f.String("read", string(jobs.ReadAuto), "when the workers read an organization's connections before writing: never, auto or always (stored with the batch)")
	domain := f.String("auth0-domain", e.getenv("AUTH0_DOMAIN"), "the tenant (domain or base URL; env AUTH0_DOMAIN), whose remembered API mode --api auto reads")
	if code, ok := f.parse(args); !ok {
		return code
	}
	mode, err := apiMode(*apiFlag)
	if err != nil {
		return errorf(e, exitUsage, "import: %v", err)
	}
	readMode, err := jobs.ParseReadMode(*readFlag)
	if err != nil {
		return errorf(e, exitUsage, "import: --read: %v", err)
	}
	tenant := ""
	if *domain != "" {
		base, err := mgmt.BaseURL(*domain)
		if err != nil {
			return errorf(e, exitUsage, "import: --auth0-domain: %v", err)
		}
		tenant = ratelimit.TenantOf(base)
	}
	if *wait && (*dryRun || *interval <= 0 || *timeout < 0) {
		return errorf(e, exitUsage, "import: --wait needs a positive --interval, a --timeout not negative, and no --dry-run")
	}
	if f.NArg() != 1 {
		fmt.Fprintln(e.stderr, "orgconn import: give exactly one FILE (or - for standard input); see orgconn import --help")
		return exitUsage
	}
	stopProfile, err := f.startProfile()
	if err != nil {
		return errorf(e, exitUsage, "import: %v", err)
	}
	defer stopProfile()
	path := f.Arg(0)
	if path == "-" {
		if s, ok := e.stdin.(*os.File); !ok || s != os.Stdin {
			return errorf(e, exitUsage, "import: standard input is not available")
		}
	}

	cfg := producer.Config{Limits: producer.Limits{MaxRows: *maxRows}, QueueName: q.queue, MaxErrors: *maxErrors, ModeHint: "--api"}
	if !*asJSON {
		cfg.Progress = func(p producer.Progress) {
			if p.Total > 0 {
				fmt.Fprintf(e.stderr, "%s: %d of %d rows\n", p.Phase, p.Rows, p.Total)
			} else {
				fmt.Fprintf(e.stderr, "%s: %d rows\n", p.Phase, p.Rows)
			}
		}
	}
	var (
		closeRedis  func()
		l           *ledger.Ledger
		store       *apimode.Store // the fleet's memory of API modes; nil in a dry run (no Redis)
		importRedis redis.UniversalClient
	)
	if *dryRun {
		cfg.Ledger, cfg.Queue = nil, nil
	} else {
		rdb, lg, err := q.open(ctx)
		if err != nil {
			return errorf(e, exitUnavailable, "import: %v", err)
		}
		l = lg
		store = apimode.NewStore(rdb, q.prefix, 0)
		importRedis = rdb
		// The enqueues of the import's goroutines share round trips.
		autopipe.Install(rdb)
		client := asynq.NewClientFromRedisClient(rdb)
		closeRedis = func() { client.Close(); rdb.Close() }
		cfg.Ledger, cfg.Queue = l, client
		cfg.Prepare = func(ctx context.Context, batch string, rows int, orgRows map[string]int) error {
			h := jobs.BatchHints{Read: readMode, Rows: rows, Orgs: len(orgRows), LikelyUnchanged: worker.DefaultLikelyUnchanged}
			if len(orgRows) <= desired.MaxOrgRows {
				h.OrgRows = orgRows
			}
			return l.SetHints(ctx, batch, h)
		}
	}
	if closeRedis != nil {
		defer closeRedis()
	}
	// With the tenant's domain and credentials, import asks the tenant through the fleet's
	// read budget: the names the rows give are looked up before anything is enqueued, and
	// auto probes the API mode when no worker has remembered it. Without them (or in a dry
	// run, which opens no Redis), names are enqueued as given for the workers to look up,
	// and auto reads only the remembered mode.
	var prober apimode.Lister
	if l != nil {
		log := slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
		tapi, usage, err := tenantAPI(ctx, e, importRedis, l.Name(), *domain, log)
		switch {
		case err != nil && usage:
			return errorf(e, exitUsage, "import: %v", err)
		case err != nil:
			return errorf(e, exitUnavailable, "import: the tenant cannot be asked: %v", err)
		case tapi != nil:
			defer tapi.Close()
			prober = tapi.Client
			names, err := producer.NewNameResolver(assembly.Directory{API: tapi.Client}, producer.NameResolverConfig{})
			if err != nil {
				return errorf(e, exitUsage, "import: %v", err)
			}
			cfg.Resolver = names
		}
	}
	// The tenant's API mode, for the rows that need the newer endpoints: as configured, or
	// (auto) as the fleet remembers it, or as a probe (with credentials) finds it.
	if tenant == "" {
		store = nil
	}
	resolver, err := apimode.NewResolver(apimode.Config{Mode: mode, Tenant: tenant, Store: store, API: prober})
	if err != nil {
		return errorf(e, exitUsage, "import: %v", err)
	}
	resolved, err := resolver.Resolve(ctx)
	if err != nil {
		return errorf(e, exitUnavailable, "import: %v", err)
	}
	api := apiModeJSON{Configured: mode, Mode: resolved.Mode, Source: resolved.Source, Tenant: tenant}
	// Rows that need the newer endpoints are refused in legacy mode; auto (undecided) lets them through.
	producerMode, err := producer.ParseAPIMode(string(resolved.Mode))
	if err != nil {
		return errorf(e, exitUnavailable, "import: %v", err)
	}
	cfg.Mode = producer.FixedMode(producerMode)

	var res producer.Result
	if *dryRun {
		res, err = producer.ValidateFileContext(ctx, path, cfg, *batch)
	} else {
		var im *producer.Importer
		if im, err = producer.NewImporter(cfg); err == nil {
			res, err = im.ImportFile(ctx, path, producer.Options{Batch: *batch, SkipInvalid: *skipInvalid})
		}
	}
	var he *producer.HeaderError
	switch {
	case errors.As(err, &he):
		res.Errors, res.Rejected = he.Errors, true
		err = nil
	case err != nil && res.Rows == 0 && !res.Rejected:
		return errorf(e, exitUnavailable, "import: %v", err)
	}
	finished := err == nil && !res.Rejected && !res.DryRun && res.Valid > 0
	if !*wait || !finished {
		report(e, res, err, *asJSON, nil, api)
		switch {
		case err != nil:
			return exitUnavailable
		case res.Rejected, res.DryRun && res.Invalid > 0:
			return exitInvalid
		}
		return exitOK
	}
	if !*asJSON {
		report(e, res, nil, false, nil, api)
	}
	bc, code := waitCounts(ctx, e, l, res.Batch, waitOptions{interval: *interval, timeout: *timeout, bar: !*asJSON && e.isTerminal(e.stdout)}, "import")
	if code != exitOK {
		return code
	}
	if *asJSON {
		st := toJSON(bc)
		report(e, res, nil, true, &st, api)
	} else {
		fmt.Fprintln(e.stdout, finishedLine(bc))
	}
	return finishedCode(bc)
}

// apiModeJSON is the tenant's API mode in import's JSON output.
type apiModeJSON struct {
	Configured apimode.Mode   `json:"configured"`
	Mode       apimode.Mode   `json:"mode"`   // legacy or connections; auto while undecided
	Source     apimode.Source `json:"source"` // config, remembered or undecided
	Tenant     string         `json:"tenant,omitempty"`
}

// report prints an import result, as text or JSON; status, if not nil, is
// the batch's status after waiting (JSON only); api is the tenant's API mode
// (JSON only).
func report(e *env, res producer.Result, runErr error, asJSON bool, status *batchJSON, api apiModeJSON) {
	if asJSON {
		type rowError struct {
			Line    int    `json:"line"`
			Field   string `json:"field,omitempty"`
			Problem string `json:"problem"`
		}
		out := struct {
			producer.Result
			Errors    []rowError  `json:"errors"`
			ElapsedMS int64       `json:"elapsed_ms"`
			Error     string      `json:"error,omitempty"`
			Status    *batchJSON  `json:"status,omitempty"`
			APIMode   apiModeJSON `json:"api_mode"`
		}{Result: res, Errors: []rowError{}, ElapsedMS: res.Elapsed.Milliseconds(), Status: status, APIMode: api}
		for _, r := range res.Errors {
			out.Errors = append(out.Errors, rowError{r.Line, r.Field, r.Problem})
		}
		if runErr != nil {
			out.Error = runErr.Error()
		}
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(out)
		return
	}
	for _, r := range res.Errors {
		fmt.Fprintln(e.stderr, r.Error())
	}
	if res.ErrorsOmitted > 0 {
		fmt.Fprintf(e.stderr, "… and %d more errors (raise --max-errors to see them)\n", res.ErrorsOmitted)
	}
	if res.Batch != "" {
		fmt.Fprintf(e.stdout, "batch %s: %d rows, %d valid, %d invalid\n", res.Batch, res.Rows, res.Valid, res.Invalid)
	}
	switch {
	case res.Rejected && res.Rows == 0 && res.Batch == "":
		fmt.Fprintln(e.stdout, "the header is unusable: nothing enqueued")
	case res.DryRun && res.Invalid > 0:
		fmt.Fprintf(e.stdout, "dry run: %d invalid rows; nothing enqueued\n", res.Invalid)
	case res.DryRun:
		fmt.Fprintln(e.stdout, "dry run: every row is valid; nothing enqueued")
	case res.Rejected:
		fmt.Fprintf(e.stdout, "%d invalid rows: nothing enqueued (fix them, or use --skip-invalid to enqueue the %d valid rows)\n", res.Invalid, res.Valid)
	default:
		fmt.Fprintf(e.stdout, "enqueued %d changes", res.Enqueued)
		if res.Duplicates > 0 {
			fmt.Fprintf(e.stdout, "; %d already accepted by an earlier import of this batch", res.Duplicates)
		}
		if res.Repaired > 0 {
			fmt.Fprintf(e.stdout, " (%d of them queued again after an interrupted import)", res.Repaired)
		}
		if res.Invalid > 0 {
			fmt.Fprintf(e.stdout, "; skipped %d invalid rows", res.Invalid)
		}
		fmt.Fprintf(e.stdout, " in %v\n", res.Elapsed.Round(1e6))
	}
	if runErr != nil {
		fmt.Fprintf(e.stderr, "orgconn import: %v\n", runErr)
	}
}
