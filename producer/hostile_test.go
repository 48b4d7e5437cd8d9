package producer

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/hibiken/asynq"
	"github.com/orgconn/orgconn/worker/ledger"
	"github.com/redis/go-redis/v9"
)

// countingQueue records enqueues without a Redis.
type countingQueue struct{ n atomic.Int64 }

func (q *countingQueue) EnqueueContext(ctx context.Context, task *asynq.Task, opts ...asynq.Option) (*asynq.TaskInfo, error) {
	q.n.Add(1)
	return &asynq.TaskInfo{}, nil
}

// physicalLines is the number of lines a reader numbering from 1 can name
// in data: the line breaks plus one.
func physicalLines(data []byte) int {
	return bytes.Count(data, []byte("\n")) + bytes.Count(data, []byte("\r")) + 1
}

// FuzzReader feeds arbitrary bytes to the CSV reader and to a whole import:
// nothing panics; every problem names a line that exists and a field; and
// an import either enqueues every valid row (all rows valid) or nothing.
// The seed corpus is in testdata/fuzz/FuzzReader.
func FuzzReader(f *testing.F) {
	f.Add([]byte("action,org_id,connection_id\nenable,org_1,con_1\n"))
	f.Add([]byte("\uFEFFaction,org_id,connection_id\r\nremove,org_1,con_1\r\n"))
	f.Add([]byte("action,org_name,connection_name,organization_connection_name,organization_access_level\ndisable,acme,google-oauth2,\"Acme \"\"G\"\"\",full\nupdate,Acme,x_y,,admin\n"))
	mr := miniredis.NewMiniRedis()
	if err := mr.Start(); err != nil {
		f.Fatal(err)
	}
	f.Cleanup(mr.Close)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	f.Cleanup(func() { rdb.Close() })
	l, err := ledger.New(rdb, "fuzz", 0)
	if err != nil {
		f.Fatal(err)
	}
	dir := f.TempDir()
	var seq atomic.Int64

	f.Fuzz(func(t *testing.T, data []byte) {
		lines := physicalLines(data)
		check := func(where string, errs []RowError) {
			for _, e := range errs {
				if e.Line < 1 || e.Line > lines {
					t.Errorf("%s: error names line %d of a %d-line input: %v", where, e.Line, lines, e)
				}
				if e.Field == "" || e.Problem == "" {
					t.Errorf("%s: error names no field or no problem: %q", where, e.Error())
				}
			}
		}

		// The reader alone.
		rd, err := NewCSVReader(bytes.NewReader(data), Limits{MaxRows: 1000, MaxRecordBytes: 4 << 10})
		var he *HeaderError
		switch {
		case errors.As(err, &he):
			check("header", he.Errors)
		case err != nil:
			t.Fatalf("NewCSVReader returned %T %v, want a HeaderError", err, err)
		default:
			for {
				rec, err := rd.Next()
				if err != nil {
					break
				}
				if rec.Line < 2 || rec.Line > lines {
					t.Errorf("record at line %d of a %d-line input", rec.Line, lines)
				}
				check("row", rec.Errors)
			}
		}

		// A whole import: all or nothing.
		path := filepath.Join(dir, fmt.Sprintf("in-%d.csv", seq.Add(1)))
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		defer os.Remove(path)
		q := &countingQueue{}
		im, err := NewImporter(Config{Ledger: l, Queue: q, Limits: Limits{MaxRows: 1000, MaxRecordBytes: 4 << 10}})
		if err != nil {
			t.Fatal(err)
		}
		batch := fmt.Sprintf("fuzz-%d", seq.Add(1))
		res, err := im.ImportFile(context.Background(), path, Options{Batch: batch})
		check("import", res.Errors)
		switch {
		case err != nil || res.Rejected || res.Invalid > 0:
			if q.n.Load() != 0 || res.Enqueued != 0 {
				t.Fatalf("an import with problems (%+v, %v) enqueued %d tasks", res, err, q.n.Load())
			}
		default:
			if int(q.n.Load()) != res.Valid || res.Enqueued != res.Valid {
				t.Fatalf("a valid import (%+v) enqueued %d tasks, want %d", res, q.n.Load(), res.Valid)
			}
		}
	})
}

// read returns every record of a CSV text, failing on a header error.
func read(t *testing.T, text string) []Record {
	t.Helper()
	rd, err := NewCSVReader(strings.NewReader(text), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	var out []Record
	for {
		rec, err := rd.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, rec)
	}
}

func TestReaderKeepsLineNumbersAcrossQuotedLineBreaks(t *testing.T) {
	text := "\uFEFFaction,org_id,connection_id,show_as_button\r\n" + // 1, with a BOM and CRLF
		"enable,org_1,con_1,\"true\"\r\n" + // 2
		"enable,\"org_2\",\"con,1\",\r\n" + // 3: a comma inside quotes (an invalid id)
		"update,org_3,\"con\r\n_2\",true\r\n" + // 4-5: a line break inside quotes
		"remove,\"org\n\n_4\",con_1,\r\n" + // 6-8
		"remove,org_5,con_1,\r\n" // 9
	recs := read(t, text)
	var lines []int
	for _, r := range recs {
		lines = append(lines, r.Line)
	}
	if fmt.Sprint(lines) != "[2 3 4 6 9]" {
		t.Fatalf("records start at lines %v, want [2 3 4 6 9]", lines)
	}
	if len(recs[0].Errors) != 0 || recs[0].Change.OrgID != "org_1" || len(recs[4].Errors) != 0 {
		t.Errorf("valid rows read as %+v and %+v", recs[0], recs[4])
	}
	if recs[1].Change.ConnectionID != "con,1" || len(recs[1].Errors) != 1 || recs[1].Errors[0].Line != 3 || recs[1].Errors[0].Field != "connection_id" {
		t.Errorf("quoted comma: record %+v, want connection id \"con,1\" read whole and refused on line 3", recs[1])
	}
	for _, i := range []int{2, 3} { // a line break inside an id is a control character
		if len(recs[i].Errors) == 0 || recs[i].Errors[0].Line != recs[i].Line || recs[i].Errors[0].Field != "connection_id" && recs[i].Errors[0].Field != "org_id" {
			t.Errorf("record %d: errors %v, want one naming line %d and the id field", i, recs[i].Errors, recs[i].Line)
		}
	}
}

func TestReaderNamesMalformedQuotingWithLineAndField(t *testing.T) {
	recs := read(t, "action,org_id,connection_id\nenable,org_1,con_1\nenable,org\"_2,con_1\nremove,org_3,con_1\n")
	if len(recs) != 3 || len(recs[1].Errors) != 1 {
		t.Fatalf("records = %+v", recs)
	}
	if got := recs[1].Errors[0].Error(); !strings.HasPrefix(got, "line 3: CSV quoting: ") {
		t.Errorf("error = %q, want it to name line 3 and CSV quoting", got)
	}
	if recs[2].Line != 4 || len(recs[2].Errors) != 0 {
		t.Errorf("the row after a malformed one = %+v", recs[2])
	}
}

func TestReaderRefusesDuplicateColumnsNamingThem(t *testing.T) {
	_, err := NewCSVReader(strings.NewReader("action,org_id,Connection_ID,connection_id\n"), Limits{})
	var he *HeaderError
	if !errors.As(err, &he) || !strings.Contains(err.Error(), "line 1: connection_id: column appears more than once") {
		t.Fatalf("err = %v, want the duplicate connection_id named", err)
	}
}

func TestReaderSurvivesBinaryGarbage(t *testing.T) {
	garbage := make([]byte, 64<<10)
	for i := range garbage {
		garbage[i] = byte(i*7919 + i/13)
	}
	for name, data := range map[string][]byte{
		"garbage":              garbage,
		"garbage after header": append([]byte("action,org_id,connection_id\n"), garbage...),
		"NUL bytes":            []byte("action,org_id,connection_id\nenable,org\x00_1,con_1\n"),
		"invalid UTF-8":        []byte("action,org_id,connection_id\nenable,org_\xff\xfe,con_1\n"),
	} {
		t.Run(name, func(t *testing.T) {
			q := &countingQueue{}
			im := &Importer{cfg: Config{Queue: q}.withDefaults()}
			res, err := im.Validate(bytes.NewReader(data))
			if err == nil && res.Invalid == 0 {
				t.Fatalf("garbage validated: %+v", res)
			}
			for _, e := range res.Errors {
				if e.Line < 1 || e.Field == "" {
					t.Errorf("error without line or field: %q", e.Error())
				}
			}
			t.Logf("%d rows, %d invalid, err %v; first: %v", res.Rows, res.Invalid, err, first(res.Errors))
		})
	}
}

func first(errs []RowError) string {
	if len(errs) == 0 {
		return "-"
	}
	return errs[0].Error()
}

// writeBigCSV writes rows data rows, one in ten invalid, and returns the
// path and size.
func writeBigCSV(t *testing.T, rows int) (string, int64) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "big.csv")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	fmt.Fprintln(w, "action,org_id,connection_id,assign_membership_on_login,show_as_button,is_signup_enabled")
	for i := range rows {
		switch i % 10 {
		case 3:
			fmt.Fprintf(w, "enable,org_%016d,con_%016d,yes,,\n", i, i%97) // bad flag
		default:
			fmt.Fprintf(w, "enable,org_%016d,con_%016d,true,,\n", i, i%97)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	st, _ := f.Stat()
	f.Close()
	return path, st.Size()
}

// peakHeap samples the heap in use every 5 ms until stop is called.
func peakHeap() (stop func() uint64) {
	var peak atomic.Uint64
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
			select {
			case <-done:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	return func() uint64 { close(done); wg.Wait(); return peak.Load() }
}

// TestValidateBigFileInBoundedMemory validates a file of 100,000 rows
// (1,000,000 with ORGCONN_FULL=1), one in ten invalid, and checks that the
// heap in use never grows by more than 16 MiB — a fraction of the file, and
// the same whatever its size.
func TestValidateBigFileInBoundedMemory(t *testing.T) {
	rows := 100_000
	if os.Getenv("ORGCONN_FULL") == "1" {
		rows = 1_000_000
	}
	path, size := writeBigCSV(t, rows)
	runtime.GC()
	var base runtime.MemStats
	runtime.ReadMemStats(&base)
	stop := peakHeap()
	start := time.Now()
	res, err := ValidateFile(path, Config{}, "big")
	took := time.Since(start)
	peak := stop()
	if err != nil {
		t.Fatal(err)
	}
	if res.Rows != rows || res.Invalid != rows/10 || len(res.Errors) != 1000 || res.ErrorsOmitted != rows/10-1000 {
		t.Fatalf("result = %d rows, %d invalid, %d errors kept, %d omitted", res.Rows, res.Invalid, len(res.Errors), res.ErrorsOmitted)
	}
	growth := int64(peak) - int64(base.HeapInuse)
	t.Logf("%d rows (%.1f MiB) validated in %v; heap in use %.1f MiB before, peak %.1f MiB (+%.1f MiB)",
		rows, float64(size)/(1<<20), took.Round(time.Millisecond), float64(base.HeapInuse)/(1<<20), float64(peak)/(1<<20), float64(growth)/(1<<20))
	if growth > 16<<20 {
		t.Errorf("heap grew by %.1f MiB validating a %.1f MiB file; want at most 16 MiB", float64(growth)/(1<<20), float64(size)/(1<<20))
	}
}
