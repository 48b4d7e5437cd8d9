package deadletter

import (
	"encoding/csv"
	"io"

	"github.com/orgconn/orgconn/jobs"
)

// ImportHeader is the header of an import file, which Export writes.
var ImportHeader = []string{jobs.FieldAction, jobs.FieldOrgID, jobs.FieldConnectionID, jobs.FieldAssign, jobs.FieldShowAsButton, jobs.FieldSignup}

// Export writes the changes of the entries that are still dead-lettered
// (not pending after a requeue) as an import file, in the order given, and
// returns how many rows it wrote. Importing the file, fixed or not, accepts
// its rows as new changes: each takes effect after every change to its pair
// accepted before.
func Export(w io.Writer, entries []Entry) (int, error) {
	cw := csv.NewWriter(w)
	if err := cw.Write(ImportHeader); err != nil {
		return 0, err
	}
	n := 0
	for _, e := range entries {
		if e.Requeued() {
			continue
		}
		c := e.Change
		if err := cw.Write([]string{string(c.Action), c.OrgID, c.ConnectionID, c.AssignMembershipOnLogin.String(), c.ShowAsButton.String(), c.IsSignupEnabled.String()}); err != nil {
			return n, err
		}
		n++
	}
	cw.Flush()
	return n, cw.Error()
}
