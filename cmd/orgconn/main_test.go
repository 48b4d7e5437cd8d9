package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/orgconn/orgconn/worker/redistest"
)

// runCmd runs the command line args with the given environment and returns
// the exit code, stdout and stderr.
func runCmd(t *testing.T, vars map[string]string, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(context.Background(), args, &env{stdin: strings.NewReader(""), stdout: &out, stderr: &errOut, getenv: func(k string) string { return vars[k] }})
	return code, out.String(), errOut.String()
}

func file(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "changes.csv")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestImportExitCodesAndJSON(t *testing.T) {
	r := redistest.New(t)
	vars := map[string]string{"REDIS_URL": r.URL, "ORGCONN_QUEUE": r.Queue, "ORGCONN_KEY_PREFIX": r.Prefix}
	good := file(t, "action,org_id,connection_id\nenable,org_1,con_1\nremove,org_2,con_1\n")
	bad := file(t, "action,org_id,connection_id\nenable,org_1,con_1\nflip,org_2,con_1\n")

	code, out, _ := runCmd(t, vars, "import", "--batch", "b1", good)
	if code != exitOK || !strings.Contains(out, "batch b1: 2 rows, 2 valid, 0 invalid") || !strings.Contains(out, "enqueued 2 changes") {
		t.Fatalf("good file: exit %d, output %q", code, out)
	}
	code, out, _ = runCmd(t, vars, "import", "--batch", "b1", "--json", good)
	var res struct {
		Batch    string `json:"batch"`
		Enqueued int    `json:"enqueued"`
		Already  int    `json:"already_accepted"`
		Errors   []any  `json:"errors"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil || code != exitOK || res.Enqueued != 0 || res.Already != 2 || res.Batch != "b1" {
		t.Fatalf("same file again with --json: exit %d, %+v, %v; output %s", code, res, err, out)
	}
	code, out, errOut := runCmd(t, vars, "import", "--batch", "b2", bad)
	if code != exitInvalid || !strings.Contains(errOut, `line 3: action: "flip" is not an action`) || !strings.Contains(out, "nothing enqueued") {
		t.Fatalf("bad file: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	code, out, _ = runCmd(t, vars, "import", "--batch", "b3", "--skip-invalid", bad)
	if code != exitOK || !strings.Contains(out, "enqueued 1 changes; skipped 1 invalid rows") {
		t.Fatalf("bad file with --skip-invalid: exit %d, %q", code, out)
	}
	if code, _, _ = runCmd(t, vars, "import", "--dry-run", bad); code != exitInvalid {
		t.Fatalf("dry run of a bad file: exit %d, want %d", code, exitInvalid)
	}
	if code, _, _ = runCmd(t, vars, "import", "--dry-run", good); code != exitOK {
		t.Fatalf("dry run of a good file: exit %d", code)
	}
	if code, _, _ = runCmd(t, vars, "import"); code != exitUsage {
		t.Fatalf("no file: exit %d, want %d", code, exitUsage)
	}
	if code, _, _ = runCmd(t, vars, "import", "--batch", "no spaces", good); code == exitOK {
		t.Fatal("a bad batch name was accepted")
	}
	code, _, errOut = runCmd(t, map[string]string{"REDIS_URL": "redis://127.0.0.1:1/0"}, "import", good)
	if code != exitUnavailable || !strings.Contains(errOut, "does not answer") {
		t.Fatalf("Redis down: exit %d, %q", code, errOut)
	}
}

func TestHelpAndUsage(t *testing.T) {
	for _, c := range commands() {
		code, out, _ := runCmd(t, nil, c.name, "--help")
		if c.name != "version" && (code != exitOK || !strings.Contains(out, "Usage: orgconn "+c.name)) {
			t.Errorf("%s --help: exit %d, %q", c.name, code, out)
		}
	}
	if code, _, errOut := runCmd(t, nil, "frobnicate"); code != exitUsage || !strings.Contains(errOut, "unknown command") {
		t.Errorf("unknown command: exit %d, %q", code, errOut)
	}
	if code, _, errOut := runCmd(t, nil, "worker", "--plan", "gold"); code != exitUsage || !strings.Contains(errOut, "unknown plan") {
		t.Errorf("bad plan: exit %d, %q", code, errOut)
	}
}

func TestWorkerRefusesBadCredentialsAtStart(t *testing.T) {
	r := redistest.New(t)
	code, _, errOut := runCmd(t, map[string]string{"REDIS_URL": r.URL, "AUTH0_DOMAIN": "acme.example"}, "worker")
	if code != exitUsage || !strings.Contains(errOut, "no credentials") {
		t.Fatalf("no credentials: exit %d, %q", code, errOut)
	}
	code, _, errOut = runCmd(t, map[string]string{"REDIS_URL": r.URL, "AUTH0_DOMAIN": "acme.example", "AUTH0_TOKEN": "t", "AUTH0_CLIENT_ID": "x"}, "worker")
	if code != exitUsage || !strings.Contains(errOut, "use one") {
		t.Fatalf("two kinds of credentials: exit %d, %q", code, errOut)
	}
	code, _, errOut = runCmd(t, map[string]string{"REDIS_URL": r.URL, "ORGCONN_KEY_PREFIX": r.Prefix, "ORGCONN_QUEUE": r.Queue, "AUTH0_DOMAIN": "http://127.0.0.1:1", "AUTH0_CLIENT_ID": "x", "AUTH0_CLIENT_SECRET": "topsecret-value"}, "worker")
	if code != exitUnavailable || !strings.Contains(errOut, "check credentials") || strings.Contains(errOut, "topsecret-value") {
		t.Fatalf("unreachable token endpoint: exit %d, %q", code, errOut)
	}
}

func TestDemoPasses(t *testing.T) {
	if testing.Short() {
		t.Skip("the demo takes a few seconds")
	}
	code, out, errOut := runCmd(t, nil, "demo", "--changes", "80", "--seed", "4")
	if code != exitOK {
		t.Fatalf("demo exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	for _, want := range []string{"summary", "applied", "superseded", "dead-lettered", "elapsed", "final state    equals applying the rows in file order", "demo passed"} {
		if !strings.Contains(out, want) {
			t.Errorf("demo output lacks %q:\n%s", want, out)
		}
	}
}

func TestCPUProfileFlag(t *testing.T) {
	r := redistest.New(t)
	vars := map[string]string{"REDIS_URL": r.URL, "ORGCONN_QUEUE": r.Queue, "ORGCONN_KEY_PREFIX": r.Prefix}
	good := file(t, "action,org_id,connection_id\nenable,org_1,con_1\n")
	prof := filepath.Join(t.TempDir(), "import.pprof")
	if code, out, errOut := runCmd(t, vars, "import", "--cpu-profile", prof, "--batch", "p", good); code != exitOK {
		t.Fatalf("import --cpu-profile: exit %d, %q, %q", code, out, errOut)
	}
	data, err := os.ReadFile(prof)
	if err != nil || len(data) < 2 || data[0] != 0x1f || data[1] != 0x8b { // pprof files are gzipped protobuf
		t.Fatalf("profile: %d bytes, %v", len(data), err)
	}
	code, _, errOut := runCmd(t, vars, "import", "--cpu-profile", filepath.Join(t.TempDir(), "no", "such", "dir", "p"), good)
	if code != exitUsage || !strings.Contains(errOut, "--cpu-profile") {
		t.Fatalf("unwritable profile: exit %d, %q", code, errOut)
	}
}
