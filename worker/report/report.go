// Package report writes a batch's per-line report from the ledger: every
// accepted line with its change and what became of it.
package report

import (
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/orgconn/orgconn/jobs"
	"github.com/orgconn/orgconn/worker/ledger"
)

// Columns are the report's CSV columns.
var Columns = []string{"line", "action", "org_id", "connection_id", "flags", "outcome", "reason", "http_status", "attempts"}

// The outcomes a report gives a line.
const (
	Applied    = "applied"
	Superseded = "superseded"
	Unchanged  = "unchanged"
	Failed     = "failed"
	Pending    = "pending"
)

// chunk is how many lines one read of the ledger covers.
const chunk = 1024

// Summary counts a report's lines by outcome.
type Summary struct {
	Lines      int `json:"lines"`
	Applied    int `json:"applied"`
	Superseded int `json:"superseded"`
	Unchanged  int `json:"unchanged"`
	Failed     int `json:"failed"`
	Pending    int `json:"pending"`
}

// Write writes the report of batch as CSV: a header (Columns), then one row
// per accepted line in line order. Lines never accepted (invalid rows
// skipped at import) are not in the ledger and not in the report. Memory
// stays flat whatever the batch's size. A batch the ledger does not know
// gives an error wrapping ledger.ErrNoBatch before anything is written.
func Write(ctx context.Context, l *ledger.Ledger, batch string, w io.Writer) (Summary, error) {
	var s Summary
	if _, err := l.Batch(ctx, batch); err != nil {
		return s, err
	}
	last, err := l.LastLine(ctx, batch)
	if err != nil {
		return s, err
	}
	cw := csv.NewWriter(w)
	if err := cw.Write(Columns); err != nil {
		return s, err
	}
	for from := 1; from <= last; from += chunk {
		lines, err := l.Lines(ctx, batch, from, min(from+chunk-1, last))
		if err != nil {
			return s, err
		}
		for _, ln := range lines {
			row := Row(ln)
			switch row[5] {
			case Applied:
				s.Applied++
			case Superseded:
				s.Superseded++
			case Unchanged:
				s.Unchanged++
			case Failed:
				s.Failed++
			default:
				s.Pending++
			}
			s.Lines++
			if err := cw.Write(row); err != nil {
				return s, err
			}
		}
		cw.Flush()
		if err := cw.Error(); err != nil {
			return s, fmt.Errorf("write report: %w", err)
		}
	}
	return s, nil
}

// Row is one line's report row, in Columns order.
func Row(ln ledger.Line) []string {
	var action, org, conn, flags string
	if ln.Known {
		c := ln.Change
		// A side given only by name shows as "name:…" (its pair key).
		action, org, conn = string(c.Action), c.OrgKey(), c.ConnectionKey()
		var fs []string
		for _, f := range c.Flags() {
			if f.Value.Set() {
				fs = append(fs, f.Name+"="+f.Value.String())
			}
		}
		if c.OrgConnectionName != "" {
			fs = append(fs, jobs.FieldOrgConnectionName+"="+c.OrgConnectionName)
		}
		if c.AccessLevel != "" {
			fs = append(fs, jobs.FieldAccessLevel+"="+string(c.AccessLevel))
		}
		flags = strings.Join(fs, ";")
	}
	outcome, reason, status := Pending, "", 0
	switch ln.Outcome {
	case ledger.Applied:
		outcome = Applied
	case ledger.Superseded:
		outcome, reason = Superseded, "a later change to the pair made it obsolete"
	case ledger.Unchanged:
		outcome, reason = Unchanged, "the tenant already reflected it: no write sent"
	case ledger.Dead:
		outcome = Failed
		if ln.Dead != nil {
			reason, status = describe(ln.Dead.Reason, ln.Dead.Message), ln.Dead.Status
		} else {
			reason = "dead letter purged"
		}
	default:
		switch {
		case ln.Failure != nil: // since it was accepted or requeued
			reason = "retrying after: " + describe(ln.Failure.Reason, ln.Failure.Message)
			status = ln.Failure.Status
		case ln.Dead != nil && ln.Dead.RequeuedAt != nil:
			reason = "requeued " + ln.Dead.RequeuedAt.UTC().Format(time.RFC3339) + " after: " + describe(ln.Dead.Reason, ln.Dead.Message)
			status = ln.Dead.Status
		}
	}
	st := ""
	if status != 0 {
		st = strconv.Itoa(status)
	}
	return []string{strconv.Itoa(ln.Line), action, org, conn, flags, outcome, reason, st, strconv.Itoa(ln.Attempts())}
}

func describe(reason, message string) string {
	if message == "" {
		return reason
	}
	return reason + ": " + message
}
