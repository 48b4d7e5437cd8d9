package export

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/orgconn/orgconn/jobs"
)

// Limits of a file of organization ids (ReadOrgIDs).
const (
	// MaxOrgListBytes is the largest file read: about 300,000 ids.
	MaxOrgListBytes = 16 << 20
	// MaxOrgListLine is the longest line, comment included.
	MaxOrgListLine = 1024
	// maxListErrors is how many bad lines one error reports.
	maxListErrors = 10
)

// ReadOrgIDs reads organization ids, one a line. Blank lines are skipped, and so is anything
// from a '#' (a comment: ids never hold one); surrounding white space, a UTF-8 byte order mark
// and CRLF line ends are ignored. Every id must pass jobs.CheckID. The error names each bad
// line (the first ten) with what is wrong; a file larger than MaxOrgListBytes, a line longer
// than MaxOrgListLine or a file with no id is refused whole. Duplicates are kept (Run drops
// them).
func ReadOrgIDs(r io.Reader) ([]string, error) {
	br := bufio.NewReaderSize(io.LimitReader(r, MaxOrgListBytes+1), 64<<10)
	var ids []string
	var problems []string
	bad := 0
	read := 0
	for line := 1; ; line++ {
		text, err := br.ReadSlice('\n')
		read += len(text)
		if errors.Is(err, bufio.ErrBufferFull) || len(text) > MaxOrgListLine+2 {
			return nil, fmt.Errorf("line %d is longer than %d bytes: want one organization id a line", line, MaxOrgListLine)
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		if read > MaxOrgListBytes {
			return nil, fmt.Errorf("the file is larger than %d MiB: split it", MaxOrgListBytes>>20)
		}
		if line == 1 {
			text = bytes.TrimPrefix(text, []byte("\xef\xbb\xbf"))
		}
		id, _, _ := strings.Cut(string(text), "#")
		id = strings.TrimSpace(id)
		if id != "" {
			if p := jobs.CheckID(id); p != "" {
				bad++
				if len(problems) < maxListErrors {
					problems = append(problems, fmt.Sprintf("line %d: org_id %s", line, p))
				}
			} else {
				ids = append(ids, id)
			}
		}
		if errors.Is(err, io.EOF) {
			break
		}
	}
	switch {
	case bad > len(problems):
		problems = append(problems, fmt.Sprintf("and %d more bad lines", bad-len(problems)))
		fallthrough
	case bad > 0:
		return nil, errors.New(strings.Join(problems, "\n"))
	case len(ids) == 0:
		return nil, errors.New("no organization id in it: want one id a line (# starts a comment)")
	}
	return ids, nil
}
