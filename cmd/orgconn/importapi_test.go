package main

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/orgconn/orgconn/producer/webhook"
	"github.com/orgconn/orgconn/worker/apimode"
	"github.com/orgconn/orgconn/worker/redistest"
)

// TestImportAPIMode: --api legacy (or ORGCONN_API=legacy) refuses the rows
// that need the Organization connections API, naming each line, and
// enqueues nothing; connections and auto (undecided: no worker has probed
// the tenant) let them through; an unknown mode is a usage error.
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
	if code, _, errOut := runCmd(t, vars, "import", "--api", "newest", path); code != exitUsage || !strings.Contains(errOut, "--api") || !strings.Contains(errOut, "newest") {
		t.Fatalf("--api newest: exit %d, %q", code, errOut)
	}
}

// TestImportRefusesInTheRememberedLegacyMode: with --api auto, a tenant the
// workers probed and remembered as legacy has its rows that need the newer
// endpoints refused at import, and one remembered as connections accepts
// them.
func TestImportRefusesInTheRememberedLegacyMode(t *testing.T) {
	r := redistest.New(t)
	vars := map[string]string{"REDIS_URL": r.URL, "ORGCONN_QUEUE": r.Queue, "ORGCONN_KEY_PREFIX": r.Prefix, "AUTH0_DOMAIN": "acme.eu.auth0.com"}
	path := file(t, "action,org_id,connection_id\nenable,org_1,con_1\ndisable,org_1,con_2\n")
	store := apimode.NewStore(r.Client, r.Prefix, 0)
	remember := func(m apimode.Mode) {
		t.Helper()
		if err := store.Put(context.Background(), "acme.eu.auth0.com", apimode.Memory{Mode: m, ProbedAt: time.Now(), Status: 404}); err != nil {
			t.Fatal(err)
		}
	}
	remember(apimode.Legacy)
	code, out, errOut := runCmd(t, vars, "import", "--batch", "r1", path)
	if code != exitInvalid || !strings.Contains(errOut, `line 3: action "disable" needs the Organization connections API; this tenant is in legacy mode (--api)`) || !strings.Contains(out, "nothing enqueued") {
		t.Fatalf("remembered legacy: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	remember(apimode.Connections)
	if code, out, errOut := runCmd(t, vars, "import", "--batch", "r2", path); code != exitOK || !strings.Contains(out, "enqueued 2 changes") {
		t.Fatalf("remembered connections: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

// TestServeRefusesInLegacyMode: serve --api legacy answers 422 to a change
// that needs the Organization connections API, naming it, and queues it
// with --api connections.
func TestServeRefusesInLegacyMode(t *testing.T) {
	r := redistest.New(t)
	vars := map[string]string{"REDIS_URL": r.URL, "ORGCONN_QUEUE": r.Queue, "ORGCONN_KEY_PREFIX": r.Prefix, "ORGCONN_WEBHOOK_SECRET": serveSecret}
	body := `{"changes":[{"action":"enable","org_id":"org_1","connection_id":"con_1"},{"action":"disable","org_id":"org_1","connection_id":"con_2"}]}`
	for mode, want := range map[string]int{"legacy": http.StatusUnprocessableEntity, "connections": http.StatusAccepted} {
		s := startServe(t, vars, "--api", mode)
		code, out := post(t, s.url+webhook.PathChanges, "application/json", body, map[string]string{webhook.SignatureHeader: webhook.Sign(serveSecret, time.Now(), []byte(body))})
		if code != want {
			t.Errorf("--api %s: %d %s, want %d", mode, code, out, want)
		}
		if mode == "legacy" && !strings.Contains(out, `{"index":1,"problem":"action \"disable\" needs the Organization connections API; this tenant is in legacy mode"}`) {
			t.Errorf("--api legacy: %s", out)
		}
		s.stop()
	}
}
