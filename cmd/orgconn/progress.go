package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/orgconn/orgconn/worker/ledger"
)

// isTerminal reports whether w is a terminal (a character device).
func (e *env) isTerminal(w io.Writer) bool {
	if e.terminal != nil {
		return e.terminal(w)
	}
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// progress shows a batch's progress while waiting: a bar redrawn in place
// (carriage return) on a terminal, else one line per reading.
type progress struct {
	w   io.Writer
	bar bool
	n   int // readings shown
}

func (p *progress) show(bc ledger.BatchCounts) {
	p.n++
	if !p.bar {
		fmt.Fprintln(p.w, progressLine(bc))
		return
	}
	const width = 30
	resolved := bc.Total - bc.Pending
	fill := 0
	if bc.Total > 0 {
		fill = int(int64(width) * resolved / bc.Total)
	}
	pct := 0.0
	if bc.Total > 0 {
		pct = 100 * float64(resolved) / float64(bc.Total)
	}
	fmt.Fprintf(p.w, "\r%s [%s%s] %d/%d %3.0f%%  %s  dead %d  retrying %d  %s\x1b[K",
		bc.Name, strings.Repeat("#", fill), strings.Repeat(".", width-fill), resolved, bc.Total, pct,
		rateText(bc), bc.Dead, bc.Retrying, etaText(bc))
	if bc.Done() {
		fmt.Fprintln(p.w)
	}
}

// finish ends a bar that was left mid-line (waiting interrupted).
func (p *progress) finish(bc ledger.BatchCounts) {
	if p.bar && p.n > 0 && !bc.Done() {
		fmt.Fprintln(p.w)
	}
}

// progressLine is one plain progress line.
func progressLine(bc ledger.BatchCounts) string {
	return fmt.Sprintf("%s: %d/%d resolved (%d applied, %d superseded, %d unchanged, %d dead-lettered), %d retrying, %d pending, %s, ETA %s",
		bc.Name, bc.Total-bc.Pending, bc.Total, bc.Applied, bc.Superseded, bc.Unchanged, bc.Dead, bc.Retrying, bc.Waiting(), rateText(bc), etaText(bc))
}

// finishedLine is the line that reports a finished batch.
func finishedLine(bc ledger.BatchCounts) string {
	return fmt.Sprintf("batch %s finished: %d applied, %d superseded, %d unchanged, %d dead-lettered", bc.Name, bc.Applied, bc.Superseded, bc.Unchanged, bc.Dead)
}

func rateText(bc ledger.BatchCounts) string {
	return fmt.Sprintf("%.1f/s", bc.Rate())
}

func etaText(bc ledger.BatchCounts) string {
	if bc.Done() {
		return "done"
	}
	eta, ok := bc.ETA()
	if !ok {
		return "unknown"
	}
	return eta.String()
}

// batchJSON is a batch's status in --json outputs.
type batchJSON struct {
	Batch        string    `json:"batch"`
	Source       string    `json:"source"`
	Created      time.Time `json:"created"`
	Updated      time.Time `json:"updated"`
	Total        int64     `json:"total"`
	Applied      int64     `json:"applied"`
	Superseded   int64     `json:"superseded"`
	Unchanged    int64     `json:"unchanged"`
	Retrying     int64     `json:"retrying"`
	DeadLettered int64     `json:"dead_lettered"`
	Purged       int64     `json:"purged"`
	Requeued     int64     `json:"requeued"`
	Pending      int64     `json:"pending"`
	Done         bool      `json:"done"`
	Rate         float64   `json:"rate_per_second"`
	RateWindow   float64   `json:"rate_window_seconds"`
	ETA          *float64  `json:"eta_seconds"` // null: no estimate
	// ETAAtBudget is the pending lines at the learned write budget (status
	// only; null when unknown).
	ETAAtBudget *float64 `json:"eta_at_budget_seconds,omitempty"`
}

func toJSON(bc ledger.BatchCounts) batchJSON {
	j := batchJSON{
		Batch: bc.Name, Source: bc.Source, Created: bc.Created.UTC(), Updated: bc.Updated.UTC(),
		Total: bc.Total, Applied: bc.Applied, Superseded: bc.Superseded, Unchanged: bc.Unchanged, Retrying: bc.Retrying,
		DeadLettered: bc.Dead, Purged: bc.Purged, Requeued: bc.Requeued, Pending: bc.Waiting(),
		Done: bc.Done(), Rate: bc.Rate(), RateWindow: bc.Window.Seconds(),
	}
	if eta, ok := bc.ETA(); ok {
		s := eta.Seconds()
		j.ETA = &s
	}
	return j
}

func writeJSON(w io.Writer, v any) {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
