//go:build orgconn_testhooks

package worker

import (
	"fmt"
	"os"

	"github.com/orgconn/orgconn/jobs"
)

// In a binary built with -tags orgconn_testhooks, ORGCONN_TEST_CRASH_TASK
// names a task id (batch:line): the process exits with status 99 as soon as
// it is about to act on that change, as a worker that a change crashes (a
// runtime fault, an OOM kill) would.
func init() {
	task := os.Getenv("ORGCONN_TEST_CRASH_TASK")
	if task == "" {
		return
	}
	crashHook = func(id string, c jobs.Change) {
		if id == task {
			fmt.Fprintf(os.Stderr, "test hook: crashing on %s (%s/%s)\n", id, c.OrgID, c.ConnectionID)
			os.Exit(99)
		}
	}
}
