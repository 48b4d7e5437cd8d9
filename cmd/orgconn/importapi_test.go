package main

import (
	"strings"
	"testing"

	"github.com/orgconn/orgconn/worker/redistest"
)

// TestImportAPIMode: --api legacy (or ORGCONN_API=legacy) refuses the rows
// that need the Organization connections API, naming each line, and
// enqueues nothing; connections and auto (not probed yet) let them through;
// an unknown mode is a usage error.
func TestImportAPIMode(t *testing.T) {
	r := redistest.New(t)
	vars := map[string]string{"REDIS_URL": r.URL, "ORGCONN_QUEUE": r.Queue, "ORGCONN_KEY_PREFIX": r.Prefix}
	path := file(t, "action,org_id,connection_id,organization_access_level\nenable,org_1,con_1,\ndisable,org_1,con_2,\nupdate,org_2,con_1,full\n")

	code, out, errOut := runCmd(t, vars, "import", "--api", "legacy", "--batch", "l1", path)
	if code != exitInvalid || !strings.Contains(out, "nothing enqueued") ||
		!strings.Contains(errOut, `line 3: action "disable" needs the Organization connections API; this tenant is in legacy mode (--api)`) ||
		!strings.Contains(errOut, `line 4: organization_access_level needs the Organization connections API; this tenant is in legacy mode (--api)`) ||
		strings.Contains(errOut, "line 2") {
		t.Fatalf("--api legacy: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	legacyEnv := map[string]string{"ORGCONN_API": "legacy"}
	for k, v := range vars {
		legacyEnv[k] = v
	}
	if code, _, errOut := runCmd(t, legacyEnv, "import", "--dry-run", path); code != exitInvalid || !strings.Contains(errOut, "line 3: action \"disable\"") {
		t.Fatalf("ORGCONN_API=legacy dry run: exit %d, %q", code, errOut)
	}
	for i, mode := range []string{"connections", "auto"} {
		code, out, errOut := runCmd(t, vars, "import", "--api", mode, "--batch", "m"+string(rune('0'+i)), path)
		if code != exitOK || !strings.Contains(out, "enqueued 3 changes") {
			t.Fatalf("--api %s: exit %d, stdout %q, stderr %q", mode, code, out, errOut)
		}
	}
	if code, _, errOut := runCmd(t, vars, "import", "--api", "newest", path); code != exitUsage || !strings.Contains(errOut, `API mode "newest": use legacy, connections or auto`) {
		t.Fatalf("--api newest: exit %d, %q", code, errOut)
	}
}
