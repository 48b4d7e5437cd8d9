// Package desired plans and enqueues a desired state: a file that says how
// each listed (organization, connection) pair should be, diffed against the
// tenant's current state into the changes that make it so (orgconn apply),
// and the reverse of a batch, planned from the prior states the ledger
// recorded (orgconn rollback).
//
// It reads the tenant through a StateReader and records through a Recorder,
// both small interfaces that cmd wires to the Management API client and the
// ledger: the package imports no worker package, and sends no write itself —
// the changes go through the producer's import path to the workers.
package desired

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/orgconn/orgconn/jobs"
	"github.com/orgconn/orgconn/producer"
)

// Want is how one pair should be: absent, or present with the flags given
// (an Unset flag means "don't care").
type Want struct {
	// Line is the line of the desired file (the header is line 1); 0 for a
	// want that no file line states.
	Line         int
	OrgID        string
	ConnectionID string
	// OrgName and ConnectionName stand for OrgID and ConnectionID when
	// those are empty: Resolve looks them up. When both are given, the id
	// is used.
	OrgName        string
	ConnectionName string
	// Absent: the pair must have no association; the flags are Unset.
	Absent                  bool
	AssignMembershipOnLogin jobs.Flag
	ShowAsButton            jobs.Flag
	IsSignupEnabled         jobs.Flag
}

// Columns are the desired file's columns, the export's format: each side
// of the pair needs its id column (org_id, connection_id) or its name column
// (org_name, connection_name), or both.
var Columns = []string{jobs.FieldOrgID, jobs.FieldConnectionID, jobs.FieldAssign, jobs.FieldShowAsButton, jobs.FieldSignup, jobs.FieldOrgName, jobs.FieldConnectionName}

// MaxRows bounds a desired file.
const MaxRows = 1_000_000

// Read reads a desired file: a header naming its columns (any order, any
// case; a UTF-8 byte order mark is fine), then one row per pair. Every
// problem is returned as a producer.RowError naming the line and the field;
// wants are returned only when there is none. A pair listed twice is an
// error on its second line (a pair given by names is checked by Resolve,
// which a caller runs when NeedsNames).
func Read(r io.Reader) ([]Want, []producer.RowError, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	header, err := cr.Read()
	if err == io.EOF {
		return nil, []producer.RowError{{Line: 1, Field: "header", Problem: "the file is empty: it needs a header row naming its columns: " + strings.Join(Columns, ",")}}, nil
	}
	if err != nil {
		return nil, []producer.RowError{{Line: 1, Field: "header", Problem: "cannot read the header: " + err.Error()}}, nil
	}
	if len(header) > 0 {
		header[0] = strings.TrimPrefix(header[0], "\uFEFF")
	}
	index := map[string]int{}
	known := map[string]bool{}
	for _, c := range Columns {
		known[c] = true
	}
	var errs []producer.RowError
	for i, name := range header {
		n := strings.ToLower(strings.TrimSpace(name))
		_, dup := index[n]
		switch {
		case n == "":
			errs = append(errs, producer.RowError{Line: 1, Field: fmt.Sprintf("column %d", i+1), Problem: "has no name"})
		case !known[n]:
			errs = append(errs, producer.RowError{Line: 1, Field: fmt.Sprintf("%q", name), Problem: "unknown column; the columns are " + strings.Join(Columns, ", ")})
		case dup:
			errs = append(errs, producer.RowError{Line: 1, Field: n, Problem: "column appears more than once"})
		default:
			index[n] = i
		}
	}
	for _, c := range [][2]string{{jobs.FieldOrgID, jobs.FieldOrgName}, {jobs.FieldConnectionID, jobs.FieldConnectionName}} {
		_, id := index[c[0]]
		_, name := index[c[1]]
		if !id && !name {
			errs = append(errs, producer.RowError{Line: 1, Field: c[0], Problem: "required column is missing from the header (or give " + c[1] + ")"})
		}
	}
	if len(errs) > 0 {
		return nil, errs, nil
	}
	var wants []Want
	seen := map[[2]string]int{}
	for rows := 0; ; rows++ {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		line, _ := cr.FieldPos(0)
		var pe *csv.ParseError
		if errors.As(err, &pe) {
			errs = append(errs, producer.RowError{Line: pe.StartLine, Field: "CSV quoting", Problem: pe.Err.Error()})
			continue
		}
		if err != nil {
			return nil, nil, fmt.Errorf("read the desired file: %w", err)
		}
		if rows >= MaxRows {
			return nil, nil, fmt.Errorf("line %d: more than %d rows", line, MaxRows)
		}
		if len(rec) > len(header) {
			errs = append(errs, producer.RowError{Line: line, Field: fmt.Sprintf("column %d", len(header)+1), Problem: fmt.Sprintf("unexpected: the row has %d fields, the header has %d", len(rec), len(header))})
			continue
		}
		get := func(name string) string {
			i, ok := index[name]
			if !ok || i >= len(rec) {
				return ""
			}
			return strings.TrimSpace(rec[i])
		}
		w := Want{Line: line, OrgID: get(jobs.FieldOrgID), ConnectionID: get(jobs.FieldConnectionID),
			OrgName: get(jobs.FieldOrgName), ConnectionName: get(jobs.FieldConnectionName)}
		rowErrs := 0
		for _, f := range []struct {
			name string
			dst  *jobs.Flag
		}{{jobs.FieldAssign, &w.AssignMembershipOnLogin}, {jobs.FieldShowAsButton, &w.ShowAsButton}, {jobs.FieldSignup, &w.IsSignupEnabled}} {
			v, err := jobs.ParseFlag(get(f.name))
			if err != nil {
				errs = append(errs, producer.RowError{Line: line, Field: f.name, Problem: err.Error()})
				rowErrs++
				continue
			}
			*f.dst = v
		}
		if rowErrs > 0 {
			continue
		}
		check := w.change()
		check.OrgName, check.ConnectionName = w.OrgName, w.ConnectionName
		for _, fe := range check.Validate() {
			errs = append(errs, producer.RowError{Line: line, Field: fe.Field, Problem: fe.Problem})
			rowErrs++
		}
		if rowErrs > 0 {
			continue
		}
		if w.resolved() {
			// A pair by names is checked once Resolve knows its ids.
			if e, dup := duplicate(seen, w); dup {
				errs = append(errs, e)
				continue
			}
		}
		wants = append(wants, w)
	}
	if len(errs) > 0 {
		return nil, errs, nil
	}
	return wants, nil, nil
}

// NeedsNames reports whether a want gives a name without the id, so that
// Resolve must look it up.
func NeedsNames(wants []Want) bool {
	for _, w := range wants {
		if !w.resolved() {
			return true
		}
	}
	return false
}

// resolved reports whether both sides of the pair have their ids.
func (w Want) resolved() bool { return w.OrgID != "" && w.ConnectionID != "" }

// duplicate records w's pair in seen (pair → first line), or returns the
// error of a pair seen already.
func duplicate(seen map[[2]string]int, w Want) (producer.RowError, bool) {
	k := [2]string{w.OrgID, w.ConnectionID}
	if first, dup := seen[k]; dup {
		return producer.RowError{Line: w.Line, Field: jobs.FieldConnectionID, Problem: fmt.Sprintf("%s/%s is listed on line %d too: list each pair once", w.OrgID, w.ConnectionID, first)}, true
	}
	seen[k] = w.Line
	return producer.RowError{}, false
}

// Resolve returns wants with every name that stands for a missing id
// replaced by the id r finds, looking each distinct name up once. Every
// name r does not know is reported ("line N: org_name: no organization
// named ..."), and so is a pair that, resolved, repeats another; wants are
// returned only when there is no problem. err is a failed look-up (safe to
// try again). A want that gives both an id and a name keeps its id and is
// not looked up.
func Resolve(ctx context.Context, wants []Want, r producer.Resolver) ([]Want, []producer.RowError, error) {
	names := producer.NewNameLookups(r)
	out := make([]Want, 0, len(wants))
	var errs []producer.RowError
	for _, w := range wants {
		ok := true
		for _, side := range []struct {
			kind, field string
			id          *string
			name        string
		}{{producer.KindOrganization, jobs.FieldOrgName, &w.OrgID, w.OrgName}, {producer.KindConnection, jobs.FieldConnectionName, &w.ConnectionID, w.ConnectionName}} {
			if *side.id != "" {
				continue
			}
			if r == nil {
				return nil, nil, fmt.Errorf("look up %s %q: no resolver to look names up", side.kind, side.name)
			}
			id, found, err := names.Look(ctx, side.kind, side.name)
			if err != nil {
				return nil, nil, err
			}
			if !found {
				errs = append(errs, producer.RowError{Line: w.Line, Field: side.field, Problem: fmt.Sprintf("no %s named %q", side.kind, side.name)})
				ok = false
				continue
			}
			*side.id = id
		}
		if ok {
			out = append(out, w)
		}
	}
	if len(errs) > 0 {
		return nil, errs, nil
	}
	seen := map[[2]string]int{}
	for _, w := range out {
		if e, dup := duplicate(seen, w); dup {
			errs = append(errs, e)
		}
	}
	if len(errs) > 0 {
		return nil, errs, nil
	}
	return out, nil, nil
}

// ReadFile reads the desired file at path (see Read).
func ReadFile(path string) ([]Want, []producer.RowError, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	return Read(f)
}

// change is the enable that makes the want true on an absent pair.
func (w Want) change() jobs.Change {
	return jobs.Change{Action: jobs.Enable, OrgID: w.OrgID, ConnectionID: w.ConnectionID,
		AssignMembershipOnLogin: w.AssignMembershipOnLogin, ShowAsButton: w.ShowAsButton, IsSignupEnabled: w.IsSignupEnabled}
}
