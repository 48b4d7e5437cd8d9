package export

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Side files of an export to OUT.
const (
	partialSuffix    = ".partial"
	checkpointSuffix = ".checkpoint"
	tmpSuffix        = ".tmp"
)

// checkpointVersion is the version of the checkpoint's format.
const checkpointVersion = 1

// maxCheckpoint bounds the checkpoint file read: it holds one page of at most a few hundred
// organizations.
const maxCheckpoint = 4 << 20

// checkpoint is the durable state of an export to a file, stored as JSON in OUT.checkpoint.
type checkpoint struct {
	Version   int    `json:"version"`
	Selection string `json:"selection"` // Selection.key()
	Tenant    string `json:"tenant"`
	Columns   string `json:"columns"`
	// Listed is true once Page holds a page; Next is the cursor of the page after it and Last
	// says there is none.
	Listed bool           `json:"listed"`
	Page   []Organization `json:"page"`
	Next   string         `json:"next"`
	Last   bool           `json:"last"`
	// Done are the ids of Page whose rows are in OUT.partial.
	Done []string `json:"done"`
	// PartialBytes is the length of OUT.partial that holds the rows of every organization
	// done; anything after it is an unfinished write, cut off on resume.
	PartialBytes int64 `json:"partial_bytes"`
	// Counts so far, over every run.
	Orgs         int           `json:"orgs"`
	Associations int           `json:"associations"`
	NotFound     int           `json:"not_found"`
	NotFoundIDs  []string      `json:"not_found_ids"`
	Requests     int64         `json:"requests"`
	Elapsed      time.Duration `json:"elapsed_ns"`
	// Total is the number of organizations to export, -1 when unknown.
	Total int `json:"total"`
}

// store keeps an export's rows and checkpoint: in side files next to OUT, or in memory for a
// writer.
type store struct {
	cp      checkpoint
	resumed bool
	// runCounts reports this run's requests and elapsed time, added to cp's (earlier runs')
	// in the file.
	runCounts func() (int64, time.Duration)

	out, partialPath, checkpointPath string
	partial                          *os.File // nil in memory
	rows                             [][]string
}

func memoryStore(fresh checkpoint) *store {
	fresh.Columns = strings.Join(Columns, ",")
	return &store{cp: fresh}
}

// openStore resumes from the side files of out when its checkpoint exists, or starts afresh
// (emptying a partial file left without a checkpoint).
func openStore(out string, fresh checkpoint) (*store, error) {
	fresh.Columns = strings.Join(Columns, ",")
	s := &store{out: out, partialPath: out + partialSuffix, checkpointPath: out + checkpointSuffix}
	data, err := readBounded(s.checkpointPath, maxCheckpoint)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		f, err := os.OpenFile(s.partialPath, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
		if err != nil {
			return nil, fmt.Errorf("create the export's side file: %w", err)
		}
		s.partial, s.cp = f, fresh
		return s, nil
	case err != nil:
		return nil, fmt.Errorf("read the export's checkpoint: %w", err)
	}
	var cp checkpoint
	if err := json.Unmarshal(data, &cp); err != nil || cp.Version == 0 {
		return nil, &MismatchError{Checkpoint: s.checkpointPath, Problem: "it is not a checkpoint this orgconn can read"}
	}
	switch {
	case cp.Version != checkpointVersion || cp.Columns != fresh.Columns:
		return nil, &MismatchError{Checkpoint: s.checkpointPath, Problem: fmt.Sprintf("it was written by another version of orgconn (format %d, columns %s)", cp.Version, cp.Columns)}
	case cp.Tenant != fresh.Tenant:
		return nil, &MismatchError{Checkpoint: s.checkpointPath, Problem: fmt.Sprintf("it is an export of tenant %s, not %s", cp.Tenant, fresh.Tenant)}
	case cp.Selection != fresh.Selection:
		return nil, &MismatchError{Checkpoint: s.checkpointPath, Problem: fmt.Sprintf("it is an export of %s, not of %s", describeSelection(cp.Selection), describeSelection(fresh.Selection))}
	case len(cp.Done) > len(cp.Page) || cp.PartialBytes < 0:
		return nil, &MismatchError{Checkpoint: s.checkpointPath, Problem: "it is inconsistent (more organizations done than in its page)"}
	}
	f, err := os.OpenFile(s.partialPath, os.O_RDWR, 0)
	if err != nil {
		return nil, &MismatchError{Checkpoint: s.checkpointPath, Problem: fmt.Sprintf("its rows cannot be opened: %v", err)}
	}
	st, err := f.Stat()
	if err == nil && st.Size() < cp.PartialBytes {
		err = fmt.Errorf("%s holds %d bytes, fewer than the %d its checkpoint counts", s.partialPath, st.Size(), cp.PartialBytes)
	}
	if err == nil {
		err = f.Truncate(cp.PartialBytes) // an unfinished write after the last checkpoint
	}
	if err == nil {
		_, err = f.Seek(cp.PartialBytes, io.SeekStart)
	}
	if err != nil {
		f.Close()
		return nil, &MismatchError{Checkpoint: s.checkpointPath, Problem: err.Error()}
	}
	if cp.Done == nil {
		cp.Done = []string{}
	}
	s.partial, s.cp, s.resumed = f, cp, true
	return s, nil
}

// describeSelection names a Selection.key() for messages.
func describeSelection(key string) string {
	if key == "all" {
		return "every organization (--all)"
	}
	return "another list of organizations (" + strings.TrimPrefix(key, "orgs:")[:min(12, len(key)-5)] + "…)"
}

// readBounded reads a file of at most limit bytes.
func readBounded(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err == nil && int64(len(data)) > limit {
		err = fmt.Errorf("%s is larger than %d bytes", path, limit)
	}
	return data, err
}

func (s *store) close() {
	if s.partial != nil {
		s.partial.Close()
		s.partial = nil
	}
}

// commitPage makes page the one being read, none of it done.
func (s *store) commitPage(page OrganizationPage) error {
	s.cp.Listed = true
	s.cp.Page = slices.Clone(page.Organizations)
	if s.cp.Page == nil {
		s.cp.Page = []Organization{}
	}
	s.cp.Done = []string{}
	s.cp.Next = page.Next
	s.cp.Last = page.Next == ""
	return s.saveCheckpoint()
}

// commitOrgs records the rows of finished organizations: appended to the partial file and
// fsynced, then counted done in the checkpoint.
func (s *store) commitOrgs(done []orgResult) error {
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	rows := 0
	for _, r := range done {
		assocs := slices.Clone(r.rows)
		slices.SortFunc(assocs, func(a, b Association) int { return strings.Compare(a.ConnectionID, b.ConnectionID) })
		for _, a := range assocs {
			if s.partial == nil {
				s.rows = append(s.rows, a.record())
			} else {
				_ = w.Write(a.record()) // a bytes.Buffer does not fail
			}
		}
		rows += len(assocs)
	}
	w.Flush()
	if s.partial != nil && buf.Len() > 0 {
		if _, err := s.partial.Write(buf.Bytes()); err != nil {
			return fmt.Errorf("write %s: %w", s.partialPath, err)
		}
		if err := s.partial.Sync(); err != nil {
			return fmt.Errorf("sync %s: %w", s.partialPath, err)
		}
		s.cp.PartialBytes += int64(buf.Len())
	}
	for _, r := range done {
		s.cp.Done = append(s.cp.Done, r.org.ID)
		if r.notFound {
			// Keep the lowest ids, whatever order the reads finish in.
			s.cp.NotFound++
			i, _ := slices.BinarySearch(s.cp.NotFoundIDs, r.org.ID)
			s.cp.NotFoundIDs = slices.Insert(s.cp.NotFoundIDs, i, r.org.ID)
			s.cp.NotFoundIDs = s.cp.NotFoundIDs[:min(len(s.cp.NotFoundIDs), MaxNotFoundIDs)]
		}
	}
	s.cp.Orgs += len(done)
	s.cp.Associations += rows
	return s.saveCheckpoint()
}

// saveCheckpoint writes the checkpoint atomically: a temporary file, fsynced, renamed over the
// old one. The directory is not fsynced: a rename lost in a crash leaves the previous
// checkpoint, which is consistent with the rows (it counts fewer of them, and the rows after
// its count are cut on resume), so it costs only repeated reads; finish syncs it.
func (s *store) saveCheckpoint() error {
	if s.partial == nil {
		return nil
	}
	cp := s.cp
	if s.runCounts != nil {
		req, el := s.runCounts()
		cp.Requests += req
		cp.Elapsed += el
	}
	data, err := json.Marshal(cp)
	if err != nil {
		return fmt.Errorf("encode the export's checkpoint: %w", err)
	}
	if err := writeAtomically(s.checkpointPath, false, func(w io.Writer) error { _, err := w.Write(data); return err }); err != nil {
		return fmt.Errorf("save the export's checkpoint: %w", err)
	}
	return nil
}

// writeAtomically writes path through path+".tmp": written, fsynced, closed, renamed, and,
// when syncDirectory, the directory fsynced. A failure removes the temporary file and leaves
// path as it was.
func writeAtomically(path string, syncDirectory bool, write func(io.Writer) error) error {
	tmp := path + tmpSuffix
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	err = write(f)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	if syncDirectory {
		syncDir(filepath.Dir(path))
	}
	return nil
}

// syncDir fsyncs a directory so that a rename in it is durable; where directories cannot be
// synced it does nothing.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
}

// finish writes the sorted rows with a header: to w in memory, else to OUT (atomically),
// then removes the side files.
func (s *store) finish(w io.Writer) error {
	if s.partial == nil {
		s.rows = sortRows(s.rows)
		s.cp.Associations = len(s.rows)
		return writeRows(w, s.rows)
	}
	if _, err := s.partial.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("read %s: %w", s.partialPath, err)
	}
	r := csv.NewReader(io.LimitReader(s.partial, s.cp.PartialBytes))
	r.FieldsPerRecord = len(Columns)
	r.ReuseRecord = false
	rows, err := r.ReadAll()
	if err != nil {
		return fmt.Errorf("%s is damaged (%v): remove it and %s and export again", s.partialPath, err, s.checkpointPath)
	}
	if len(rows) != s.cp.Associations {
		return fmt.Errorf("%s holds %d rows, its checkpoint counts %d: remove it and %s and export again", s.partialPath, len(rows), s.cp.Associations, s.checkpointPath)
	}
	rows = sortRows(rows)
	s.cp.Associations = len(rows)
	if err := writeAtomically(s.out, true, func(w io.Writer) error { return writeRows(w, rows) }); err != nil {
		return fmt.Errorf("write %s: %w (the rows are still in %s: run the export again to retry)", s.out, err, s.partialPath)
	}
	s.close()
	for _, p := range []string{s.checkpointPath, s.partialPath} {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%s is written, but its side file could not be removed: %w", s.out, err)
		}
	}
	syncDir(filepath.Dir(s.out))
	return nil
}

// sortRows sorts rows (in the order they were read) by organization id, then connection id,
// and keeps one row per pair: the one read last. A pair shows up twice only when the listing
// gave an organization on two pages (organizations created or renamed while it was paged).
func sortRows(rows [][]string) [][]string {
	slices.SortStableFunc(rows, func(a, b []string) int { return cmp.Or(strings.Compare(a[0], b[0]), strings.Compare(a[1], b[1])) })
	out := rows[:0]
	for i, r := range rows {
		if i+1 < len(rows) && rows[i+1][0] == r[0] && rows[i+1][1] == r[1] {
			continue // a later read of the same pair follows
		}
		out = append(out, r)
	}
	return out
}

// writeRows writes the header and rows.
func writeRows(w io.Writer, rows [][]string) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(Columns); err != nil {
		return err
	}
	if err := cw.WriteAll(rows); err != nil {
		return err
	}
	return cw.Error()
}

// sortedUnique returns ids sorted, without duplicates.
func sortedUnique(ids []string) []string {
	return slices.Compact(slices.Sorted(slices.Values(ids)))
}

// digest is a short hash of a list of ids, naming a selection.
func digest(ids []string) string {
	h := sha256.Sum256([]byte(strings.Join(ids, "\n")))
	return hex.EncodeToString(h[:])
}
