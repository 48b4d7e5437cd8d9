package producer

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/orgconn/orgconn/jobs"
)

// RowError is one problem with one input line.
type RowError struct {
	Line    int    // 1-based physical line where the record starts; the header is line 1
	Field   string // column name, or "" for the record as a whole
	Problem string
}

func (e RowError) Error() string {
	if e.Field == "" {
		return fmt.Sprintf("line %d: %s", e.Line, e.Problem)
	}
	return fmt.Sprintf("line %d: %s: %s", e.Line, e.Field, e.Problem)
}

// Limits bound what a CSV reader accepts.
type Limits struct {
	// MaxRows is the most data rows a file may have. Zero means 10,000,000.
	MaxRows int
	// MaxRecordBytes is the longest a record may be. Zero means 64 KiB.
	MaxRecordBytes int
}

func (l Limits) withDefaults() Limits {
	if l.MaxRows <= 0 {
		l.MaxRows = 10_000_000
	}
	if l.MaxRecordBytes <= 0 {
		l.MaxRecordBytes = 64 << 10
	}
	return l
}

var (
	requiredColumns = []string{jobs.FieldAction}
	// orgColumns and connectionColumns name each side of the pair, by id or
	// by name: a header needs at least one column of each group.
	orgColumns        = []string{jobs.FieldOrgID, jobs.FieldOrgName}
	connectionColumns = []string{jobs.FieldConnectionID, jobs.FieldConnectionName}
	flagColumns       = []string{jobs.FieldAssign, jobs.FieldShowAsButton, jobs.FieldSignup}
	settingColumns    = []string{jobs.FieldOrgConnectionName, jobs.FieldAccessLevel}
)

// Columns lists the CSV columns orgconn reads: action, the organization's id
// and name, the connection's id and name, the three flags, then
// organization_connection_name and organization_access_level. action is
// required; a header needs org_id or org_name (or both), and connection_id
// or connection_name (or both); the others are optional.
func Columns() []string {
	out := []string{jobs.FieldAction, jobs.FieldOrgID, jobs.FieldConnectionID}
	out = append(out, flagColumns...)
	out = append(out, settingColumns...)
	return append(out, jobs.FieldOrgName, jobs.FieldConnectionName)
}

// ErrTooManyRows ends a read of a file with more rows than Limits.MaxRows.
var ErrTooManyRows = errors.New("too many rows")

// CSVReader reads changes from CSV, one record at a time, so that memory
// stays flat whatever the size of the file. The first record is the header:
// it names the columns, in any order and any case. A UTF-8 byte order mark is
// ignored; CRLF line ends and quoted fields (with commas, quotes and line
// breaks) are read as RFC 4180 says.
type CSVReader struct {
	r      *csv.Reader
	in     *boundedReader
	limits Limits
	index  map[string]int // column name → position
	width  int            // number of header columns
	rows   int
}

// NewCSVReader reads the header from r. Problems with the header are
// returned as []RowError (all of them) wrapped in a HeaderError.
func NewCSVReader(r io.Reader, limits Limits) (*CSVReader, error) {
	limits = limits.withDefaults()
	in := &boundedReader{r: r, limit: limits.MaxRecordBytes + 8<<10}
	cr := csv.NewReader(in)
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true
	rd := &CSVReader{r: cr, in: in, limits: limits}
	rec, err := cr.Read()
	if err == io.EOF {
		return nil, &HeaderError{[]RowError{{Line: 1, Field: "header", Problem: "the file is empty: it needs a header row naming its columns: " + strings.Join(Columns(), ",")}}}
	}
	if err != nil {
		return nil, &HeaderError{[]RowError{{Line: 1, Field: "header", Problem: "cannot read the header: " + csvProblem(err)}}}
	}
	line, _ := cr.FieldPos(0)
	if len(rec) > 0 {
		rec[0] = strings.TrimPrefix(rec[0], "\uFEFF")
	}
	var errs []RowError
	rd.index = map[string]int{}
	known := map[string]bool{}
	for _, c := range Columns() {
		known[c] = true
	}
	for i, name := range rec {
		n := strings.ToLower(strings.TrimSpace(name))
		switch {
		case n == "":
			errs = append(errs, RowError{line, fmt.Sprintf("column %d", i+1), "has no name"})
		case !known[n]:
			errs = append(errs, RowError{line, cutName(name), "unknown column; the columns are " + strings.Join(Columns(), ", ")})
		case hasIndex(rd.index, n):
			errs = append(errs, RowError{line, n, "column appears more than once"})
		default:
			rd.index[n] = i
		}
	}
	for _, c := range requiredColumns {
		if !hasIndex(rd.index, c) {
			errs = append(errs, RowError{line, c, "required column is missing from the header"})
		}
	}
	for _, group := range [][]string{orgColumns, connectionColumns} {
		if !hasIndex(rd.index, group[0]) && !hasIndex(rd.index, group[1]) {
			errs = append(errs, RowError{line, group[0], fmt.Sprintf("required column is missing from the header (or give %s instead)", group[1])})
		}
	}
	if len(errs) > 0 {
		return nil, &HeaderError{errs}
	}
	rd.width = len(rec)
	in.reset()
	return rd, nil
}

func hasIndex(m map[string]int, k string) bool { _, ok := m[k]; return ok }

// HeaderError is a header that cannot be used; nothing can be read.
type HeaderError struct{ Errors []RowError }

func (e *HeaderError) Error() string {
	msgs := make([]string, len(e.Errors))
	for i, r := range e.Errors {
		msgs[i] = r.Error()
	}
	return strings.Join(msgs, "; ")
}

// Record is one data row read from CSV.
type Record struct {
	Line   int
	Change jobs.Change
	Errors []RowError // empty when the row is valid
}

// Next returns the next data row, valid or not, or io.EOF at the end. Any
// other error ends reading: ErrTooManyRows, an over-long record, or a failure
// of the underlying reader.
func (rd *CSVReader) Next() (Record, error) {
	rd.in.reset()
	rec, err := rd.r.Read()
	if err == io.EOF {
		return Record{}, io.EOF
	}
	if rd.in.exceeded {
		line, _ := rd.r.FieldPos(0)
		return Record{}, fmt.Errorf("line %d or after: a record is longer than %d bytes: %w", line, rd.limits.MaxRecordBytes, errRecordTooLong)
	}
	rd.rows++
	if rd.rows > rd.limits.MaxRows {
		return Record{}, fmt.Errorf("more than %d data rows: %w", rd.limits.MaxRows, ErrTooManyRows)
	}
	if err != nil {
		var pe *csv.ParseError
		if !errors.As(err, &pe) {
			return Record{}, fmt.Errorf("read CSV: %w", err)
		}
		return Record{Line: pe.StartLine, Errors: []RowError{{Line: pe.StartLine, Field: "CSV quoting", Problem: fmt.Sprintf("%s at line %d, character %d (a field holding a quote must be quoted, and quotes inside it doubled)", pe.Err, pe.Line, pe.Column)}}}, nil
	}
	line, _ := rd.r.FieldPos(0)
	return rd.parse(line, rec), nil
}

var errRecordTooLong = errors.New("record too long")

func (rd *CSVReader) parse(line int, rec []string) Record {
	out := Record{Line: line}
	if len(rec) > rd.width {
		for i := rd.width; i < len(rec); i++ {
			out.Errors = append(out.Errors, RowError{line, fmt.Sprintf("column %d", i+1), fmt.Sprintf("unexpected: the row has %d fields, the header has %d", len(rec), rd.width)})
		}
		return out
	}
	get := func(name string) (string, bool) {
		i, ok := rd.index[name]
		if !ok {
			return "", true // optional column not in the header: not given
		}
		if i >= len(rec) {
			out.Errors = append(out.Errors, RowError{line, name, fmt.Sprintf("missing: the row has %d fields, the header has %d", len(rec), rd.width)})
			return "", false
		}
		return rec[i], true
	}
	action, okA := get(jobs.FieldAction)
	org, okO := get(jobs.FieldOrgID)
	conn, okC := get(jobs.FieldConnectionID)
	orgName, okON := get(jobs.FieldOrgName)
	connName, okCN := get(jobs.FieldConnectionName)
	connectionName, okN := get(jobs.FieldOrgConnectionName)
	c := jobs.Change{OrgID: org, ConnectionID: conn, OrgName: orgName, ConnectionName: connName, OrgConnectionName: connectionName}
	if a, ok := jobs.ParseAction(action); ok {
		c.Action = a
	} else {
		c.Action = jobs.Action(action)
	}
	if v, ok := get(jobs.FieldAccessLevel); ok {
		l, err := jobs.ParseAccessLevel(v)
		if err != nil {
			out.Errors = append(out.Errors, RowError{line, jobs.FieldAccessLevel, err.Error()})
		}
		c.AccessLevel = l
	}
	flags := []*jobs.Flag{&c.AssignMembershipOnLogin, &c.ShowAsButton, &c.IsSignupEnabled}
	for i, name := range flagColumns {
		v, ok := get(name)
		if !ok {
			continue
		}
		f, err := jobs.ParseFlag(v)
		if err != nil {
			out.Errors = append(out.Errors, RowError{line, name, err.Error()})
			continue
		}
		*flags[i] = f
	}
	if len(out.Errors) > 0 || !okA || !okO || !okC || !okON || !okCN || !okN {
		return out
	}
	for _, fe := range c.Validate() {
		out.Errors = append(out.Errors, RowError{line, fe.Field, fe.Problem})
	}
	out.Change = c
	return out
}

func csvProblem(err error) string {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

func cutName(s string) string {
	s = strings.ToValidUTF8(s, "?")
	if len(s) > 40 {
		return fmt.Sprintf("%q…", s[:40])
	}
	return fmt.Sprintf("%q", s)
}

// boundedReader fails a read once more than limit bytes were read since the
// last reset, so a single huge record cannot exhaust memory.
type boundedReader struct {
	r        io.Reader
	limit    int
	n        int
	exceeded bool
}

func (b *boundedReader) reset() { b.n = 0 }

func (b *boundedReader) Read(p []byte) (int, error) {
	if b.n >= b.limit {
		b.exceeded = true
		return 0, errRecordTooLong
	}
	if len(p) > b.limit-b.n {
		p = p[:b.limit-b.n]
	}
	n, err := b.r.Read(p)
	b.n += n
	return n, err
}
