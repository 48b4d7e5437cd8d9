package producer

import (
	"strings"
	"testing"
)

// TestIdsThatWouldChangeAURLPathAreRefusedOnTheirLine: the CSV reader
// refuses, naming line and field, every id outside letters, digits, '_' and
// '-' (a dot segment such as ".." would turn DELETE …/enabled_connections/..
// into DELETE /organizations/org_abc once resolved).
func TestIdsThatWouldChangeAURLPathAreRefusedOnTheirLine(t *testing.T) {
	recs := read(t, "action,org_id,connection_id\n"+
		"remove,org_abc,con_1\n"+ // 2: fine
		"remove,org_abc,..\n"+ // 3
		"remove,.,con_1\n"+ // 4
		"enable,org_abc,a%2Fb\n"+ // 5
		"enable,org_é,con-1\n") // 6
	want := map[int]string{
		3: `line 3: connection_id: ".." contains ".": only letters, digits, "_" and "-" are allowed`,
		4: `line 4: org_id: "." contains ".": only letters, digits, "_" and "-" are allowed`,
		5: `line 5: connection_id: "a%2Fb" contains "%": only letters, digits, "_" and "-" are allowed`,
		6: `line 6: org_id: "org_é" contains "é": only letters, digits, "_" and "-" are allowed`,
	}
	if len(recs) != 5 || len(recs[0].Errors) != 0 {
		t.Fatalf("records = %+v", recs)
	}
	for _, r := range recs[1:] {
		var got []string
		for _, e := range r.Errors {
			got = append(got, e.Error())
		}
		if strings.Join(got, "\n") != want[r.Line] {
			t.Errorf("line %d: errors %q, want %q", r.Line, got, want[r.Line])
		}
	}
}
