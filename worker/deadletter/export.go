package deadletter

import (
	"encoding/csv"
	"io"

	"github.com/orgconn/orgconn/jobs"
)

// ImportHeader is the header of an import file, which Export writes.
var ImportHeader = []string{jobs.FieldAction, jobs.FieldOrgID, jobs.FieldConnectionID, jobs.FieldAssign, jobs.FieldShowAsButton, jobs.FieldSignup}

// ImportHeaderFull is ImportHeader with the columns of the newer
// vocabulary, which Export writes when a change uses them (a name, an
// organization_connection_name or an organization_access_level).
var ImportHeaderFull = append(append([]string{}, ImportHeader...),
	jobs.FieldOrgConnectionName, jobs.FieldAccessLevel, jobs.FieldOrgName, jobs.FieldConnectionName)

// needsFullHeader reports whether a change of entries has a field only
// ImportHeaderFull has a column for.
func needsFullHeader(entries []Entry) bool {
	for _, e := range entries {
		c := e.Change
		if !e.Requeued() && (c.OrgConnectionName != "" || c.AccessLevel != "" || c.OrgName != "" || c.ConnectionName != "") {
			return true
		}
	}
	return false
}

// Export writes the changes of the entries that are still dead-lettered
// (not pending after a requeue) as an import file, in the order given (with
// the header ImportHeader, or ImportHeaderFull when a change needs it), and
// returns how many rows it wrote. Importing the file, fixed or not, accepts
// its rows as new changes: each takes effect after every change to its pair
// accepted before.
func Export(w io.Writer, entries []Entry) (int, error) {
	cw := csv.NewWriter(w)
	full := needsFullHeader(entries)
	header := ImportHeader
	if full {
		header = ImportHeaderFull
	}
	if err := cw.Write(header); err != nil {
		return 0, err
	}
	n := 0
	for _, e := range entries {
		if e.Requeued() {
			continue
		}
		c := e.Change
		row := []string{string(c.Action), c.OrgID, c.ConnectionID, c.AssignMembershipOnLogin.String(), c.ShowAsButton.String(), c.IsSignupEnabled.String()}
		if full {
			row = append(row, c.OrgConnectionName, string(c.AccessLevel), c.OrgName, c.ConnectionName)
		}
		if err := cw.Write(row); err != nil {
			return n, err
		}
		n++
	}
	cw.Flush()
	return n, cw.Error()
}
