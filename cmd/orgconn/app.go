package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/debug"
	"runtime/pprof"
	"strings"
)

// Exit codes. Scripts may rely on them.
const (
	exitOK          = 0 // done
	exitInvalid     = 1 // the input is invalid: nothing was enqueued
	exitUsage       = 2 // bad command line
	exitDeadLetters = 3 // finished, but some changes were dead-lettered (demo: the final state is wrong)
	exitUnavailable = 4 // could not finish: Redis, a file or the API failed; safe to run again
)

// env is the process's surroundings, passed in so tests can run commands.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string
	// terminal, if not nil, says whether a writer is a terminal (tests);
	// nil means ask the operating system.
	terminal func(io.Writer) bool
}

type command struct {
	name, summary string
	run           func(ctx context.Context, e *env, args []string) int
}

func commands() []command {
	return []command{
		{"import", "validate a CSV file of changes and enqueue them", runImport},
		{"apply", "make the tenant as a desired-state file says: plan the changes and enqueue them", runApply},
		{"rollback", "put back the pairs a batch changed, as they were before it", runRollback},
		{"worker", "apply queued changes through the Management API", runWorker},
		{"serve", "receive changes and Auth0 events over HTTP (webhooks) and enqueue them", runServe},
		{"status", "show batches' progress, or wait until a batch is finished", runStatus},
		{"report", "write every line of a batch with its outcome as CSV", runReport},
		{"dlq", "list, requeue, export or purge dead letters", runDLQ},
		{"export", "write the tenant's organization connections as CSV (resumable)", runExport},
		{"demo", "run a whole import end to end against an embedded Redis and simulated tenant", runDemo},
		{"simulate", "serve a simulated Auth0 tenant for tests and trials", runSimulate},
		{"limits", "show the rate budget the workers learned for each tenant", runLimits},
		{"bench", "measure how well a fleet of workers spends a tenant's rate budget", runBench},
		{"version", "print the version", runVersion},
	}
}

func run(ctx context.Context, args []string, e *env) int {
	routeRedisLogs(nil)
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		if len(args) > 1 {
			return run(ctx, []string{args[1], "--help"}, e)
		}
		usage(e.stdout)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return c.run(ctx, e, args[1:])
		}
	}
	fmt.Fprintf(e.stderr, "orgconn: unknown command %q\n\n", args[0])
	usage(e.stderr)
	return exitUsage
}

func usage(w io.Writer) {
	fmt.Fprintf(w, `orgconn applies bulk changes to Auth0 Organization connections.

Usage: orgconn <command> [flags] [arguments]

Commands:
`)
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-9s %s\n", c.name, c.summary)
	}
	fmt.Fprint(w, `
Run "orgconn <command> --help" for a command's flags.

Environment:
  REDIS_URL            Redis holding the queue (default redis://127.0.0.1:6379/0;
                       rediss:// for TLS, redis+sentinel://, redis+cluster://)
  AUTH0_DOMAIN         tenant domain (acme.eu.auth0.com) or base URL (http://127.0.0.1:8080)
  AUTH0_CLIENT_ID      client-credentials application with the organization_connections scopes
  AUTH0_CLIENT_SECRET  its secret (or AUTH0_CLIENT_SECRET_FILE: a file holding it)
  AUTH0_TOKEN          a Management API token instead of client credentials (or AUTH0_TOKEN_FILE)

Exit codes: 0 done, 1 invalid input (nothing enqueued; an unknown batch or dead letter), 2 usage or
configuration, 3 dead letters, 4 could not finish: Redis, a file or the API failed (safe to re-run).
`)
}

func runVersion(_ context.Context, e *env, args []string) int {
	fmt.Fprintln(e.stdout, "orgconn", version())
	return exitOK
}

// version is the module version the binary was built from, or "dev".
func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

func userAgent() string { return "orgconn/" + version() + " (+https://github.com/orgconn/orgconn)" }

// flags is a command's flag set with the shared options.
type flags struct {
	*flag.FlagSet
	e          *env
	logLevel   string
	logFormat  string
	cpuProfile string
}

// newFlags returns a flag set whose --help prints synopsis and the flags.
func newFlags(e *env, name, synopsis string) *flags {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	f := &flags{FlagSet: fs, e: e}
	fs.Usage = func() {
		fmt.Fprintf(e.stdout, "%s\n\nFlags:\n", strings.TrimSpace(synopsis))
		fs.SetOutput(e.stdout)
		fs.PrintDefaults()
		fs.SetOutput(e.stderr)
	}
	return f
}

// withLogging adds --log-level and --log-format.
func (f *flags) withLogging() *flags {
	f.StringVar(&f.logLevel, "log-level", envOr(f.e, "ORGCONN_LOG_LEVEL", "info"), "log level: debug, info, warn or error (env ORGCONN_LOG_LEVEL)")
	f.StringVar(&f.logFormat, "log-format", envOr(f.e, "ORGCONN_LOG_FORMAT", "text"), "log format: text or json (env ORGCONN_LOG_FORMAT)")
	return f
}

// withProfile adds --cpu-profile.
func (f *flags) withProfile() *flags {
	f.StringVar(&f.cpuProfile, "cpu-profile", "", "write a Go CPU profile of the run to this file (for performance work: go tool pprof orgconn FILE)")
	return f
}

// startProfile starts the CPU profile --cpu-profile asks for; stop ends it
// and closes the file.
func (f *flags) startProfile() (stop func(), err error) {
	if f.cpuProfile == "" {
		return func() {}, nil
	}
	out, err := os.Create(f.cpuProfile)
	if err != nil {
		return nil, fmt.Errorf("--cpu-profile: %w", err)
	}
	if err := pprof.StartCPUProfile(out); err != nil {
		out.Close()
		return nil, fmt.Errorf("--cpu-profile: %w", err)
	}
	return func() { pprof.StopCPUProfile(); out.Close() }, nil
}

// parse parses args; it returns an exit code and false when the command
// must not go on (--help, or a usage error already reported).
func (f *flags) parse(args []string) (int, bool) {
	if err := f.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK, false
		}
		return exitUsage, false
	}
	return 0, true
}

// logger builds the logger the flags ask for; it writes to stderr.
func (f *flags) logger() (*slog.Logger, error) { return f.loggerTo(f.e.stderr) }

// loggerTo builds the logger the flags ask for, writing to w.
func (f *flags) loggerTo(w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(f.logLevel)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", f.logLevel)
	}
	opts := &slog.HandlerOptions{Level: level}
	var log *slog.Logger
	switch f.logFormat {
	case "text":
		log = slog.New(slog.NewTextHandler(w, opts))
	case "json":
		log = slog.New(slog.NewJSONHandler(w, opts))
	default:
		return nil, fmt.Errorf("--log-format %q: want text or json", f.logFormat)
	}
	routeRedisLogs(log) // go-redis's own lines, at debug level
	return log, nil
}

func envOr(e *env, key, def string) string {
	if v := e.getenv(key); v != "" {
		return v
	}
	return def
}

// secret reads a secret from the environment variable key, or from the file
// named by key_FILE. Secrets are never taken from flags (they would show in
// process listings).
func secret(e *env, key string) (string, error) {
	v := e.getenv(key)
	path := e.getenv(key + "_FILE")
	switch {
	case v != "" && path != "":
		return "", fmt.Errorf("both %s and %s_FILE are set: use one", key, key)
	case path != "":
		data, err := os.ReadFile(path)
		if err != nil {
			return "", fmt.Errorf("%s_FILE: %w", key, err)
		}
		return strings.TrimSpace(string(data)), nil
	}
	return v, nil
}

func errorf(e *env, code int, format string, args ...any) int {
	fmt.Fprintf(e.stderr, "orgconn: "+format+"\n", args...)
	return code
}
