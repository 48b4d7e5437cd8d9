package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/orgconn/orgconn/worker/mgmt/mgmttest"
)

// simulateOnce runs `orgconn simulate` with args on a free port and a context already
// cancelled: it starts, prints its banner, and stops at once.
func simulateOnce(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var out, errOut bytes.Buffer
	e := &env{stdin: strings.NewReader(""), stdout: &out, stderr: &errOut, getenv: func(string) string { return "" }}
	code := run(ctx, append([]string{"simulate", "--addr", "127.0.0.1:0"}, args...), e)
	return code, out.String(), errOut.String()
}

func TestSimulateHelpListsShapes(t *testing.T) {
	code, out, _ := runCmd(t, nil, "simulate", "--help")
	if code != exitOK {
		t.Fatalf("--help: exit %d", code)
	}
	for _, sh := range mgmttest.Shapes() {
		if !strings.Contains(out, sh.Name) || !strings.Contains(out, sh.Doc) {
			t.Errorf("--help lacks shape %s (%s):\n%s", sh.Name, sh.Doc, out)
		}
	}
	for _, fl := range []string{"-shape", "-time-scale", "-500", "-502-html", "-tcp-reset"} {
		if !strings.Contains(out, fl) {
			t.Errorf("--help lacks %s", fl)
		}
	}
}

func TestSimulateUsageErrors(t *testing.T) {
	code, _, errOut := runCmd(t, nil, "simulate", "--shape", "gold")
	if code != exitUsage || !strings.Contains(errOut, `unknown shape "gold"`) {
		t.Fatalf("unknown shape: exit %d, %q", code, errOut)
	}
	for _, sh := range mgmttest.Shapes() {
		if !strings.Contains(errOut, sh.Name) {
			t.Errorf("the error does not name shape %s: %q", sh.Name, errOut)
		}
	}
	if code, _, errOut := runCmd(t, nil, "simulate", "--time-scale", "-2"); code != exitUsage || !strings.Contains(errOut, "--time-scale") {
		t.Fatalf("negative time scale: exit %d, %q", code, errOut)
	}
	if code, _, errOut := runCmd(t, nil, "simulate", "--burst", "-1"); code != exitUsage || !strings.Contains(errOut, "burst -1") {
		t.Fatalf("negative burst: exit %d, %q", code, errOut)
	}
}

func TestSimulateShapeAndOverrides(t *testing.T) {
	tests := []struct {
		args []string
		want []string
	}{
		{[]string{"--shape", "split"}, []string{"shape split, time scale 1", "global burst 10, 20/s; writes burst 5, 8/s; reads burst 5, 10/s; headers tightest, reset full; /oauth/token burst 10, 10/s"}},
		// Explicit flags win over the shape; the others keep the shape's values.
		{[]string{"--shape", "split", "--write-rate", "4", "--header-policy", "endpoint"}, []string{"global burst 10, 20/s; writes burst 5, 4/s; reads burst 5, 10/s; headers endpoint"}},
		{[]string{"--shape", "window", "--time-scale", "3"}, []string{"global 10 per 333.333333ms; writes 120 per 5s"}},
		{[]string{"--shape", "essentials", "--time-scale", "60"}, []string{"global burst 10, 150/s; writes burst 5, 25/s; reads burst 5, 50/s"}},
		{[]string{"--shape", "burst-headers", "--reset", "next"}, []string{"headers global-unless-refused, reset next"}},
		// Without a shape the flags alone count, and the time scale still applies.
		{[]string{"--burst", "4", "--rate", "2", "--time-scale", "5"}, []string{"global burst 4, 10/s; headers tightest, reset full\n"}},
	}
	for _, tt := range tests {
		code, out, errOut := simulateOnce(t, tt.args...)
		if code != exitOK {
			t.Fatalf("%v: exit %d, %q", tt.args, code, errOut)
		}
		for _, w := range tt.want {
			if !strings.Contains(out, w) {
				t.Errorf("%v: banner lacks %q:\n%s", tt.args, w, out)
			}
		}
	}
}

func TestWithShapeTakesOnlyGivenFlags(t *testing.T) {
	sh, err := mgmttest.LookupShape("burst-headers")
	if err != nil {
		t.Fatal(err)
	}
	flags := mgmttest.Config{Orgs: 3, Global: mgmttest.Bucket{Burst: 99, Rate: 99}, Faults: mgmttest.Faults{HTML502: 0.5}}
	got := withShape(flags, sh, 1, map[string]bool{"burst": true})
	want := sh.Config(1)
	if got.Global.Burst != 99 || got.Global.Rate != want.Global.Rate || got.Write != want.Write || got.HeaderPolicy != want.HeaderPolicy ||
		!got.AuthSpends || got.TokenLimit != want.TokenLimit || got.Orgs != 3 || got.Faults.HTML502 != 0.5 {
		t.Fatalf("withShape = %+v", got)
	}
}
