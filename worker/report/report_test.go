package report

import (
	"strings"
	"testing"
	"time"

	"github.com/orgconn/orgconn/jobs"
	"github.com/orgconn/orgconn/worker/ledger"
)

func TestRowSaysWhyALineIsPending(t *testing.T) {
	c := jobs.Change{Action: jobs.Update, OrgID: "o", ConnectionID: "c", ShowAsButton: jobs.True, IsSignupEnabled: jobs.False}
	at := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name string
		ln   ledger.Line
		want string
	}{
		{"retrying", ledger.Line{Line: 7, Outcome: ledger.Retrying, Change: c, Known: true,
			Failure: &ledger.Failure{Failed: 2, Reason: "server_error", Status: 503, Message: "down"}},
			"7|update|o|c|show_as_button=true;is_signup_enabled=false|pending|retrying after: server_error: down|503|2"},
		{"requeued", ledger.Line{Line: 8, Outcome: ledger.Pending, Change: c, Known: true,
			Dead: &ledger.DeadLetter{Reason: "retries_exhausted", Status: 503, Attempts: 8, RequeuedAt: &at}},
			"8|update|o|c|show_as_button=true;is_signup_enabled=false|pending|requeued 2026-11-01T12:00:00Z after: retries_exhausted|503|0"},
		{"unknown change", ledger.Line{Line: 9, Outcome: ledger.Applied},
			"9|||||applied|||1"},
		{"purged", ledger.Line{Line: 10, Outcome: ledger.Dead, Change: c, Known: true},
			"10|update|o|c|show_as_button=true;is_signup_enabled=false|failed|dead letter purged||0"},
	} {
		if got := strings.Join(Row(tc.ln), "|"); got != tc.want {
			t.Errorf("%s: Row = %q, want %q", tc.name, got, tc.want)
		}
	}
}

// The newer vocabulary: a side given only by name shows as its pair key's
// "name:…", and the association's name and level are among the flags.
func TestRowShowsNamesAndTheNewFields(t *testing.T) {
	c := jobs.Change{Action: jobs.Disable, OrgName: "acme", ConnectionID: "con_1", ShowAsButton: jobs.False, OrgConnectionName: "Acme SSO", AccessLevel: jobs.LevelReadonly}
	ln := ledger.Line{Line: 4, Outcome: ledger.Dead, Change: c, Known: true,
		Dead: &ledger.DeadLetter{Reason: "unknown_name", Message: `no organization named "acme"`, Attempts: 1}}
	want := `4|disable|name:acme|con_1|show_as_button=false;organization_connection_name=Acme SSO;organization_access_level=readonly|failed|unknown_name: no organization named "acme"||1`
	if got := strings.Join(Row(ln), "|"); got != want {
		t.Errorf("Row = %q, want %q", got, want)
	}
}
