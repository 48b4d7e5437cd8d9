package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestRunAsOrgconn is not a test: TestDeadRedisPrintsOneClearMessage runs
// this test binary as "orgconn" (the arguments after "--") to see what a
// user's terminal sees, since go-redis logs to the process's own stderr.
func TestRunAsOrgconn(t *testing.T) {
	if os.Getenv("ORGCONN_TEST_AS_ORGCONN") != "1" {
		t.Skip("run by TestDeadRedisPrintsOneClearMessage")
	}
	args := os.Args
	for i, a := range args {
		if a == "--" {
			args = args[i+1:]
			break
		}
	}
	os.Exit(run(context.Background(), args, &env{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv}))
}

func TestDeadRedisPrintsOneClearMessage(t *testing.T) {
	if testing.Short() {
		t.Skip("go-redis retries the dial for a few seconds")
	}
	for _, args := range [][]string{
		{"status"},
		{"worker", "--metrics-addr", ""},
	} {
		t.Run(args[0], func(t *testing.T) {
			cmd := exec.Command(os.Args[0], append([]string{"-test.run=^TestRunAsOrgconn$", "--"}, args...)...)
			cmd.Env = append(os.Environ(), "ORGCONN_TEST_AS_ORGCONN=1", "REDIS_URL=redis://127.0.0.1:1/0",
				"AUTH0_DOMAIN=acme.example", "AUTH0_TOKEN=a-token-for-the-test", "ORGCONN_LOG_LEVEL=info")
			var out, errOut bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &errOut
			err := cmd.Run()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != exitUnavailable {
				t.Fatalf("exit %v, want %d; stderr:\n%s", err, exitUnavailable, errOut.String())
			}
			all := out.String() + errOut.String()
			if n := strings.Count(all, "does not answer"); n != 1 || !strings.Contains(all, "orgconn: "+args[0]+": Redis at redis://127.0.0.1:1/0 does not answer") {
				t.Errorf("want orgconn's one message, got:\n%s", all)
			}
			if strings.Contains(all, "pool.go") || strings.Contains(all, "connection pool") {
				t.Errorf("go-redis's own log lines reached the terminal:\n%s", all)
			}
		})
	}
}
