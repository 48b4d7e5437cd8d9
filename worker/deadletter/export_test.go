package deadletter

import (
	"bytes"
	"testing"

	"github.com/orgconn/orgconn/jobs"
	"github.com/orgconn/orgconn/worker/ledger"
)

// Export keeps the six columns while no change needs more, and writes the
// new columns (names, organization_connection_name, level) when one does,
// so that a dead letter of the newer vocabulary can be fixed and imported.
func TestExportWritesTheNewColumnsWhenNeeded(t *testing.T) {
	old := Entry{DeadLetter: ledger.DeadLetter{Batch: "b", Line: 2, Change: jobs.Change{Action: jobs.Enable, OrgID: "org_1", ConnectionID: "con_1", ShowAsButton: jobs.True}}}
	var buf bytes.Buffer
	if n, err := Export(&buf, []Entry{old}); err != nil || n != 1 {
		t.Fatalf("Export = %d, %v", n, err)
	}
	if want := "action,org_id,connection_id,assign_membership_on_login,show_as_button,is_signup_enabled\nenable,org_1,con_1,,true,\n"; buf.String() != want {
		t.Errorf("Export = %q, want %q", buf.String(), want)
	}
	newer := Entry{DeadLetter: ledger.DeadLetter{Batch: "b", Line: 3, Change: jobs.Change{Action: jobs.Disable, OrgName: "acme", ConnectionName: "google-oauth2", OrgConnectionName: "Acme, Inc.", AccessLevel: jobs.LevelLimited}}}
	buf.Reset()
	if n, err := Export(&buf, []Entry{old, newer}); err != nil || n != 2 {
		t.Fatalf("Export = %d, %v", n, err)
	}
	want := "action,org_id,connection_id,assign_membership_on_login,show_as_button,is_signup_enabled,organization_connection_name,organization_access_level,org_name,connection_name\n" +
		"enable,org_1,con_1,,true,,,,,\n" +
		"disable,,,,,,\"Acme, Inc.\",limited,acme,google-oauth2\n"
	if buf.String() != want {
		t.Errorf("Export = %q, want %q", buf.String(), want)
	}
}
