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
	// Absent: the pair must have no association; the flags are Unset.
	Absent                  bool
	AssignMembershipOnLogin jobs.Flag
	ShowAsButton            jobs.Flag
	IsSignupEnabled         jobs.Flag
}

// Columns are the desired file's columns, the export's format: org_id and
// connection_id are required.
var Columns = []string{jobs.FieldOrgID, jobs.FieldConnectionID, jobs.FieldAssign, jobs.FieldShowAsButton, jobs.FieldSignup}

// IgnoredColumns may appear in a desired file (the export writes them) and
// are not read.
var IgnoredColumns = []string{"org_name", "connection_name"}

// MaxRows bounds a desired file.
const MaxRows = 1_000_000

// Read reads a desired file: a header naming its columns (any order, any
// case; a UTF-8 byte order mark is fine), then one row per pair. Every
// problem is returned as a producer.RowError naming the line and the field;
// wants are returned only when there is none. A pair listed twice is an
// error on its second line.
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
	ignored := map[string]bool{}
	for _, c := range IgnoredColumns {
		ignored[c] = true
	}
	var errs []producer.RowError
	for i, name := range header {
		n := strings.ToLower(strings.TrimSpace(name))
		_, dup := index[n]
		switch {
		case n == "":
			errs = append(errs, producer.RowError{Line: 1, Field: fmt.Sprintf("column %d", i+1), Problem: "has no name"})
		case ignored[n]:
		case !known[n]:
			errs = append(errs, producer.RowError{Line: 1, Field: fmt.Sprintf("%q", name), Problem: "unknown column; the columns are " + strings.Join(append(append([]string{}, Columns...), IgnoredColumns...), ", ")})
		case dup:
			errs = append(errs, producer.RowError{Line: 1, Field: n, Problem: "column appears more than once"})
		default:
			index[n] = i
		}
	}
	for _, c := range Columns[:2] {
		if _, ok := index[c]; !ok {
			errs = append(errs, producer.RowError{Line: 1, Field: c, Problem: "required column is missing from the header"})
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
		w := Want{Line: line, OrgID: get(jobs.FieldOrgID), ConnectionID: get(jobs.FieldConnectionID)}
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
		for _, fe := range w.change().Validate() {
			errs = append(errs, producer.RowError{Line: line, Field: fe.Field, Problem: fe.Problem})
			rowErrs++
		}
		if rowErrs > 0 {
			continue
		}
		k := [2]string{w.OrgID, w.ConnectionID}
		if first, dup := seen[k]; dup {
			errs = append(errs, producer.RowError{Line: line, Field: jobs.FieldConnectionID, Problem: fmt.Sprintf("%s/%s is listed on line %d too: list each pair once", w.OrgID, w.ConnectionID, first)})
			continue
		}
		seen[k] = line
		wants = append(wants, w)
	}
	if len(errs) > 0 {
		return nil, errs, nil
	}
	return wants, nil, nil
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
