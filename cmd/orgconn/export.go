package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/orgconn/orgconn/cmd/orgconn/internal/assembly"
	"github.com/orgconn/orgconn/cmd/orgconn/internal/redisurl"
	"github.com/orgconn/orgconn/jobs"
	"github.com/orgconn/orgconn/producer/export"
	"github.com/orgconn/orgconn/worker/mgmt"
	"github.com/orgconn/orgconn/worker/ratelimit"
)

const exportSynopsis = `
Usage: orgconn export [flags] --all | --org ID [--org ID…] | --orgs-from FILE

Writes the tenant's organization connections as CSV: one row per connection
enabled for an organization, sorted by org_id then connection_id, with the
columns

  org_id, connection_id
  assign_membership_on_login, show_as_button, is_signup_enabled   true or false, always written
  org_name          the organization's name: with --all, from the organization
                    listing; with --org and --orgs-from it is left empty (no
                    extra read per organization)
  connection_name   the connection's name, from the association itself

The rows come from the legacy list (GET /organizations/{id}/enabled_connections),
which shows enabled connections only: an association disabled through the
newer endpoints (organization admins can do that) has no row.

Which organizations:
  --all             every organization, through GET /api/v2/organizations with
                    checkpoint paging (needs the read:organizations scope)
  --org ID          this organization (repeatable)
  --orgs-from FILE  the organizations listed in FILE, one id a line; blank lines
                    and anything after '#' are ignored (at most 16 MiB, lines of
                    at most 1024 bytes)
Every organization is read once (one call per 50 connections, needing
read:organization_connections), through the read budget the worker fleet shares
in Redis: an export paces itself with running workers, and an organization
that no longer exists when read (--all) is skipped.

Resuming: with --out FILE the export is resumable. Until it finishes, the rows
of the organizations read so far are kept in FILE.partial and the position in
FILE.checkpoint (the organization listing's cursor and which organizations are
done), both made durable after every step. If the export stops — Ctrl-C, a
failure, a crash — run the same command again: it continues where it stopped,
reads no organization again, and ends with the same FILE as a run that was
never interrupted. FILE is written only at the end (atomically), and the side
files are then removed. To start over instead, remove FILE.partial and
FILE.checkpoint. Standard output (the default) cannot resume: everything is
written at the end. Either way the rows are sorted in memory at the end
(about 150 bytes a row).

On a terminal, progress and an estimate of the time left (at the read pace
the fleet has learned) are shown on stderr.

Examples:
  orgconn export --all --out state.csv
  orgconn export --org org_A1b2C3d4E5f6G7h8 --org org_Z9y8X7w6V5u4T3s2
  orgconn export --orgs-from customers.txt --out customers.csv --json

Organizations that do not exist when read have no rows: with --all (deleted
while the export ran) they are reported; ids given that name no organization
are reported and make the exit code 1, once the file is written.

Exit codes: 0 written, 1 an id given names no organization (the file is
written without it) or --orgs-from is invalid, 2 usage or
configuration (also side files of another export), 4 could not finish —
interrupted, Redis or the API failed, or the file could not be written (run
the same command again to continue).`

// orgIDsFlag collects repeated --org values.
type orgIDsFlag []string

func (f *orgIDsFlag) String() string { return strings.Join(*f, ",") }

func (f *orgIDsFlag) Set(v string) error {
	if p := jobs.CheckID(v); p != "" {
		return fmt.Errorf("org_id %s", p)
	}
	*f = append(*f, v)
	return nil
}

func runExport(ctx context.Context, e *env, args []string) int {
	f := newFlags(e, "export", exportSynopsis).withLogging()
	q := &queueFlags{}
	f.StringVar(&q.redisURL, "redis", envOr(e, "REDIS_URL", redisurl.Default), "Redis URL holding the fleet's rate budget and token (env REDIS_URL)")
	f.StringVar(&q.prefix, "prefix", envOr(e, "ORGCONN_KEY_PREFIX", "orgconn"), "prefix of orgconn's own Redis keys (env ORGCONN_KEY_PREFIX)")
	a := f.withAPI()
	all := f.Bool("all", false, "export every organization (needs read:organizations)")
	var orgs orgIDsFlag
	f.Var(&orgs, "org", "export this organization id (repeatable)")
	orgsFrom := f.String("orgs-from", "", "export the organization ids listed in this file, one a line (# starts a comment)")
	out := f.String("out", "-", `the CSV file to write, resumably ("-": standard output, which cannot resume)`)
	asJSON := f.Bool("json", false, "print a summary as JSON on stdout (needs --out FILE)")
	concurrency := f.Int("concurrency", export.DefaultConcurrency, "organizations read at once (1 to 32); the fleet's read budget sets the pace")
	if code, ok := f.parse(args); !ok {
		return code
	}
	if f.NArg() != 0 {
		return errorf(e, exitUsage, "export: unexpected argument %q; see orgconn export --help", f.Arg(0))
	}
	given := 0
	for _, g := range []bool{*all, len(orgs) > 0, *orgsFrom != ""} {
		if g {
			given++
		}
	}
	switch {
	case given == 0:
		return errorf(e, exitUsage, "export: say which organizations: --all, --org ID or --orgs-from FILE")
	case given > 1:
		return errorf(e, exitUsage, "export: give only one of --all, --org and --orgs-from")
	case *asJSON && *out == "-":
		return errorf(e, exitUsage, "export: --json prints the summary on stdout, which holds the CSV: give --out FILE")
	case *concurrency < 1 || *concurrency > 32:
		return errorf(e, exitUsage, "export: --concurrency %d: want 1 to 32", *concurrency)
	}
	sel := export.Selection{All: *all, OrgIDs: orgs}
	if *orgsFrom != "" {
		file, err := os.Open(*orgsFrom)
		if err != nil {
			return errorf(e, exitUsage, "export: --orgs-from: %v", err)
		}
		sel.OrgIDs, err = export.ReadOrgIDs(file)
		file.Close()
		if err != nil {
			return errorf(e, exitInvalid, "export: --orgs-from %s:\n%v", *orgsFrom, err)
		}
	}
	// On a terminal, log lines are written above the progress line.
	var bar *exportProgress
	logTo := e.stderr
	if e.isTerminal(e.stderr) {
		bar = &exportProgress{w: e.stderr, all: sel.All}
		logTo = bar
	}
	log, err := f.loggerTo(logTo)
	if err != nil {
		return errorf(e, exitUsage, "export: %v", err)
	}
	start, err := a.startBuckets()
	if err != nil {
		return errorf(e, exitUsage, "export: %v", err)
	}
	base, tokens, err := a.credentials(e)
	if err != nil {
		return errorf(e, exitUsage, "export: %v", err)
	}
	rdb, l, err := q.open(ctx)
	if err != nil {
		return errorf(e, exitUnavailable, "export: %v", err)
	}
	defer rdb.Close()
	// The ledger's prefix, as the worker's assembly uses it: the same budget
	// and token keys as every worker of the fleet.
	api, err := assembly.NewAPI(ctx, assembly.APIConfig{
		Redis: rdb, Prefix: l.Name(), BaseURL: base, Tokens: tokens,
		Start: start, Override: a.overrides(), APITimeout: a.timeout, UserAgent: userAgent(), Logger: log,
	})
	if err != nil {
		return errorf(e, exitUnavailable, "export: %v", err)
	}
	defer api.Close()

	cfg := export.Config{
		API: exportAPI{api.Client}, Select: sel, Tenant: ratelimit.TenantOf(base),
		Concurrency: *concurrency, Stop: api.Limiter.Stop, Requests: api.Requests,
	}
	if *out == "-" {
		cfg.Writer = e.stdout
	} else {
		cfg.Out = *out
	}
	if bar != nil {
		bar.pace = func() (float64, bool) { return api.ReadPace(ctx) }
		cfg.Progress = bar.show
		cfg.Count = api.Client.CountOrganizations
	}
	sum, err := export.Run(ctx, cfg)
	if bar != nil {
		bar.finish()
	}
	if err != nil {
		return errorf(e, exportExitCode(err), "export: %v%s", err, exportHint(err))
	}
	dest := *out
	if dest == "-" {
		dest = "standard output"
	}
	if *asJSON {
		writeJSON(e.stdout, struct {
			export.Summary
			Elapsed float64 `json:"elapsed_seconds"`
			Out     string  `json:"out"`
		}{sum, sum.Elapsed.Seconds(), *out})
		if sel.All || sum.NotFound == 0 {
			return exitOK
		}
		return exitInvalid
	}
	resumed := ""
	if sum.Resumed {
		resumed = " (resumed; counts include the earlier runs)"
	}
	fmt.Fprintf(e.stderr, "exported %d organizations, %d connections, to %s in %v with %d requests%s\n",
		sum.Orgs, sum.Associations, dest, sum.Elapsed.Round(time.Millisecond), sum.Requests, resumed)
	return notFoundCode(e, sel.All, sum)
}

// notFoundCode reports the organizations that did not exist: with --all,
// organizations deleted while the export ran (exit 0); with ids given, ids
// that name no organization (exit 1, after the file is written).
func notFoundCode(e *env, all bool, sum export.Summary) int {
	if sum.NotFound == 0 {
		return exitOK
	}
	more := ""
	if n := sum.NotFound - len(sum.NotFoundIDs); n > 0 {
		more = fmt.Sprintf(" and %d more", n)
	}
	if all {
		fmt.Fprintf(e.stderr, "%d organizations were deleted after they were listed and have no rows: %s%s\n", sum.NotFound, strings.Join(sum.NotFoundIDs, ", "), more)
		return exitOK
	}
	fmt.Fprintf(e.stderr, "orgconn: export: %d ids name no organization (404) and have no rows: %s%s\n", sum.NotFound, strings.Join(sum.NotFoundIDs, ", "), more)
	return exitInvalid
}

// exportExitCode maps an export's error to the command's exit code.
func exportExitCode(err error) int {
	var mismatch *export.MismatchError
	if errors.As(err, &mismatch) {
		return exitUsage
	}
	return exitUnavailable
}

// exportHint adds what to do about some failures.
func exportHint(err error) string {
	var orgErr *export.OrgError
	switch {
	case mgmt.StatusOf(err) == 403:
		return " (the application needs read:organization_connections, and read:organizations for --all)"
	case errors.As(err, &orgErr):
		return " (organizations read before it are kept: run the same command again to continue)"
	}
	return ""
}

// exportAPI reads what an export needs through the paced client.
type exportAPI struct{ c *mgmt.Client }

func (x exportAPI) ListOrganizations(ctx context.Context, from string) (export.OrganizationPage, error) {
	p, err := x.c.ListOrganizations(ctx, from, mgmt.MaxTake)
	if err != nil {
		return export.OrganizationPage{}, err
	}
	page := export.OrganizationPage{Next: p.Next, Organizations: make([]export.Organization, 0, len(p.Organizations))}
	for _, o := range p.Organizations {
		page.Organizations = append(page.Organizations, export.Organization{ID: o.ID, Name: o.Name})
	}
	return page, nil
}

func (x exportAPI) Connections(ctx context.Context, orgID string) ([]export.Association, error) {
	ecs, err := x.c.ListAll(ctx, orgID)
	if err != nil {
		return nil, err
	}
	out := make([]export.Association, 0, len(ecs))
	for _, ec := range ecs {
		out = append(out, export.Association{
			ConnectionID: ec.ConnectionID, AssignMembershipOnLogin: ec.AssignMembershipOnLogin,
			ShowAsButton: ec.ShowAsButton, IsSignupEnabled: ec.IsSignupEnabled, ConnectionName: ec.Connection.Name,
		})
	}
	return out, nil
}

// exportProgress draws an export's progress on a terminal: one line redrawn
// in place, at most five times a second. Log lines written through it (it is
// an io.Writer) go above the progress line.
type exportProgress struct {
	w    io.Writer
	all  bool
	pace func() (float64, bool) // nil until the client exists

	mu       sync.Mutex
	drawn    time.Time
	paceAt   time.Time
	lastPace float64
	line     string // the progress line shown, "" when none
}

// Write writes log output above the progress line: the line is cleared, the
// output written, and the line drawn again.
func (p *exportProgress) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.line != "" {
		fmt.Fprint(p.w, "\r\x1b[K")
	}
	n, err := p.w.Write(b)
	if p.line != "" {
		fmt.Fprint(p.w, "\r"+p.line+"\x1b[K")
	}
	return n, err
}

func (p *exportProgress) show(pr export.Progress) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	if p.line != "" && now.Sub(p.drawn) < 200*time.Millisecond && !(pr.Total >= 0 && pr.Orgs >= pr.Total) {
		return
	}
	if now.Sub(p.paceAt) > 2*time.Second && p.pace != nil {
		p.lastPace, _ = p.pace()
		p.paceAt = now
	}
	p.drawn, p.line = now, exportProgressLine(pr, p.all, p.lastPace)
	fmt.Fprintf(p.w, "\r%s\x1b[K", p.line)
}

// exportProgressLine is the progress text: organizations done (of how
// many), rows, requests, and the time left at the learned read pace.
func exportProgressLine(pr export.Progress, all bool, pace float64) string {
	total := "?"
	if pr.Total >= 0 {
		total = fmt.Sprint(pr.Total)
	}
	eta := "ETA unknown"
	if d, ok := pr.ETA(all, pace); ok {
		eta = fmt.Sprintf("ETA %v at %.2f reads/s", d, pace)
	}
	if pr.Total >= 0 && pr.Orgs >= pr.Total {
		eta = "writing"
	}
	return fmt.Sprintf("export: %d/%s organizations, %d connections, %d requests, %v, %s",
		pr.Orgs, total, pr.Associations, pr.Requests, pr.Elapsed.Round(time.Second), eta)
}

// finish ends the progress line.
func (p *exportProgress) finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.line != "" {
		fmt.Fprintln(p.w)
		p.line = ""
	}
}
