package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/orgconn/orgconn/cmd/orgconn/internal/bench"
)

// TestBenchRefusesBadFlags checks that bench names the flag it refuses
// before starting anything.
func TestBenchRefusesBadFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--start", "fast"}, `--start: unknown start "fast"`},
		{[]string{"--baselines", "go-auth0,node-auth0"}, `--baselines: unknown baseline "node-auth0"`},
		{[]string{"--scenarios", "z"}, `--scenarios: unknown scenario "z"`},
		{[]string{"--seed", "0"}, "--seed must not be 0"},
		{[]string{"--baselines-only", "--baselines", ""}, "--baselines-only needs at least one baseline"},
	} {
		code, _, errOut := runCmd(t, nil, append([]string{"bench"}, tc.args...)...)
		if code != exitUsage || !strings.Contains(errOut, tc.want) {
			t.Errorf("bench %v: exit %d, stderr %q; want %d and %q", tc.args, code, errOut, exitUsage, tc.want)
		}
	}
}

// TestBenchTableShowsExactness checks the table's columns.
func TestBenchTableShowsExactness(t *testing.T) {
	var buf bytes.Buffer
	printBench(&buf, bench.Options{Scenarios: bench.Scenarios[:1], Start: bench.StartDefaults}, []bench.Result{
		{Scenario: "a", Processes: 1, Client: "orgconn", Changes: 10, Applied: 10, Exact: true, Requests: 10, CallsPerChange: 1},
		{Scenario: "a", Processes: 1, Client: "go-auth0", Changes: 10, Applied: 9, GaveUp: 1, WrongPairs: 1, Requests: 14, Throttled: 4},
	})
	out := buf.String()
	for _, want := range []string{"| client | applied | gave up | exact |", "| a | 1 | orgconn | 10/10 | 0 | yes |", "| a | 1 | go-auth0 | 9/10 | 1 | no (1 wrong) |", "started from: defaults"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
}
