package ledger

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/orgconn/orgconn/jobs"
)

// The changes of the newer vocabulary: disable, the association's name and
// level, and sides given by name.
var vocabChanges = []jobs.Change{
	{Action: jobs.Disable, OrgID: "org_1", ConnectionID: "con_1", ShowAsButton: jobs.True},
	{Action: jobs.Enable, OrgID: "org_1", ConnectionID: "con_1", OrgConnectionName: "Acme, \"SSO\" ü", AccessLevel: jobs.LevelReadonly},
	{Action: jobs.Update, OrgID: "org_1", ConnectionID: "con_1", AccessLevel: jobs.LevelNone},
	{Action: jobs.Remove, OrgName: "acme", ConnectionID: "con_1"},
	{Action: jobs.Enable, OrgID: "org_1", ConnectionName: "google-oauth2", AssignMembershipOnLogin: jobs.False},
	{Action: jobs.Disable, OrgName: "acme", ConnectionName: "Username-Password-Authentication"},
	{Action: jobs.Update, OrgID: "org_1", OrgName: "acme", ConnectionID: "con_1", ConnectionName: "x", IsSignupEnabled: jobs.False},
}

func TestRowRecordsKeepTheNewVocabulary(t *testing.T) {
	for _, c := range vocabChanges {
		rec := encodeRow(c)
		if !strings.HasPrefix(rec, "{") {
			t.Errorf("encodeRow(%v) = %q, want the JSON form", c, rec)
		}
		got, err := decodeRow(rec)
		if err != nil || got != c {
			t.Errorf("decodeRow(encodeRow(%v)) = %v, %v", c, got, err)
		}
	}
	// A change the compact form holds keeps it (about 50 bytes a line).
	old := jobs.Change{Action: jobs.Enable, OrgID: "org_1", ConnectionID: "con_1", ShowAsButton: jobs.False}
	if rec := encodeRow(old); rec != "e-0-org_1/con_1" {
		t.Errorf("encodeRow(%v) = %q, want the compact form e-0-org_1/con_1", old, rec)
	}
	// Records written before the JSON form existed still decode.
	for rec, want := range map[string]jobs.Change{
		"u1--o/c": {Action: jobs.Update, OrgID: "o", ConnectionID: "c", AssignMembershipOnLogin: jobs.True},
		"r---o/c": {Action: jobs.Remove, OrgID: "o", ConnectionID: "c"},
	} {
		if got, err := decodeRow(rec); err != nil || got != want {
			t.Errorf("decodeRow(%q) = %v, %v; want %v", rec, got, err, want)
		}
	}
	for _, bad := range []string{"{", `{"action":"explode","org_id":"o","connection_id":"c"}`, `{"action":1}`} {
		if _, err := decodeRow(bad); err == nil {
			t.Errorf("decodeRow(%q) succeeded", bad)
		}
	}
}

func TestLinesReportTheNewVocabulary(t *testing.T) {
	l, _ := setup(t)
	ctx := context.Background()
	var rows []Row
	for i, c := range vocabChanges {
		rows = append(rows, Row{Line: i + 2, Change: c})
	}
	if _, err := l.Accept(ctx, "b", "t", rows); err != nil {
		t.Fatal(err)
	}
	lines, err := l.Lines(ctx, "b", 1, len(rows)+1)
	if err != nil || len(lines) != len(rows) {
		t.Fatalf("Lines = %d lines, %v; want %d", len(lines), err, len(rows))
	}
	for i, ln := range lines {
		if !ln.Known || ln.Change != vocabChanges[i] {
			t.Errorf("line %d: change %v (known %v), want %v", ln.Line, ln.Change, ln.Known, vocabChanges[i])
		}
	}
}

// A pair given by name is ordered under its "name:" key, apart from the
// same pair given by ids; its lease, blocked record and requeue work as for
// ids.
func TestPairsGivenByNameKeepTheirOrder(t *testing.T) {
	l, _ := setup(t)
	ctx := context.Background()
	now := time.Unix(1800000000, 0)
	byName := []jobs.Change{
		{Action: jobs.Disable, OrgName: "acme", ConnectionName: "google-oauth2", ShowAsButton: jobs.False},
		{Action: jobs.Enable, OrgName: "acme", ConnectionName: "google-oauth2"},
	}
	byID := jobs.Change{Action: jobs.Remove, OrgID: "org_acme", ConnectionID: "con_google"}
	// The same names on another organization: another pair.
	other := jobs.Change{Action: jobs.Enable, OrgName: "globex", ConnectionName: "google-oauth2"}
	rows := []Row{{Line: 2, Change: byName[0]}, {Line: 3, Change: byName[1]}, {Line: 4, Change: byID}, {Line: 5, Change: other}}
	if _, err := l.Accept(ctx, "b", "t", rows); err != nil {
		t.Fatal(err)
	}
	if cl, err := l.Claim(ctx, byName[1], "b:3", "h", time.Minute); err != nil || cl.State != NotHead || cl.Head != "b:2" {
		t.Fatalf("Claim of the second change by name = %+v, %v; want NotHead behind b:2", cl, err)
	}
	mustClaim(t, l, byID, "b:4")  // its own pair
	mustClaim(t, l, other, "b:5") // its own pair
	cl := mustClaim(t, l, byName[0], "b:2")
	if cl.Successor != "b:3" {
		t.Fatalf("successor of b:2 = %q, want b:3", cl.Successor)
	}
	ps, err := l.Pair(ctx, byName[0])
	if err != nil || len(ps.Queue) != 2 || ps.Holder != "holder-b:2" {
		t.Fatalf("Pair(name:acme/name:google-oauth2) = %+v, %v; want 2 queued, leased", ps, err)
	}
	// Blocked records keep the names.
	b := BlockedPair{OrgName: "acme", ConnectionName: "google-oauth2", Head: "b:2", Since: now, Checked: now, Waiter: "b:3"}
	if ok, err := l.MarkBlocked(ctx, b); err != nil || !ok {
		t.Fatalf("MarkBlocked = %v, %v", ok, err)
	}
	bl, err := l.Blocked(ctx)
	if err != nil || len(bl) != 1 || bl[0].Pair() != "name:acme/name:google-oauth2" || bl[0].Waiting != 1 {
		t.Fatalf("Blocked = %+v, %v; want the pair by name, 1 waiting", bl, err)
	}
	// Dead-lettered, then requeued while a later change waits: refused,
	// naming it.
	dl := DeadLetter{TaskID: "b:2", Batch: "b", Line: 2, Change: byName[0], Reason: "unknown_name", Message: `no organization named "acme"`}
	mustResolve(t, l, payload("b", 2, byName[0]), "b:2", Dead, &dl)
	if bl, _ := l.Blocked(ctx); len(bl) != 0 {
		t.Fatalf("Blocked after the head resolved = %+v, want none", bl)
	}
	rr, err := l.Requeue(ctx, dl, false, now)
	if err != nil || rr.State != RefusedLater || rr.Later != "b:3" {
		t.Fatalf("Requeue = %+v, %v; want RefusedLater naming b:3", rr, err)
	}
	mustClaim(t, l, byName[1], "b:3")
	mustResolve(t, l, payload("b", 3, byName[1]), "b:3", Applied, nil)
	if rr, err := l.Requeue(ctx, dl, true, now); err != nil || rr.State != Requeued {
		t.Fatalf("forced Requeue = %+v, %v; want Requeued", rr, err)
	}
	mustClaim(t, l, byName[0], "b:2")
	got, err := l.DeadLetter(ctx, "b", 2)
	if err != nil || got.Change != byName[0] {
		t.Fatalf("DeadLetter = %+v, %v; want the change by name", got, err)
	}
}
