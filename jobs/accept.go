package jobs

// Row is a line of a batch handed to the ledger: its 1-based line number and
// its change. Producers hand rows over; the ledger (worker/ledger) records
// each line of a batch at most once and fixes its place in its pair's order,
// the pair being Change.PairKey (ids, or a name not yet resolved).
type Row struct {
	Line   int
	Change Change
}

// MaxAcceptRows bounds the rows of one accept call: the ledger records at
// most this many at once (one atomic script run), so producers hand rows over
// in chunks no larger.
const MaxAcceptRows = 512

// Acceptance says what accepting a row did.
type Acceptance int8

// The acceptances.
const (
	// Resolved: accepted before and already resolved; nothing to do.
	Resolved Acceptance = 0
	// Accepted: newly accepted; its task must be enqueued.
	Accepted Acceptance = 1
	// StillPending: accepted before and not resolved; its task should exist
	// (enqueueing it again is harmless and repairs an interrupted import).
	StillPending Acceptance = 2
)
