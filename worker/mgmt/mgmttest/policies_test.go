package mgmttest

import (
	"flag"
	"testing"
)

func TestPolicyText(t *testing.T) {
	var hp HeaderPolicy
	var rm ResetMeaning
	var dp DuplicatePolicy
	var mp MissingPolicy
	fs := flag.NewFlagSet("sim", flag.ContinueOnError)
	fs.TextVar(&hp, "header-policy", Tightest, "")
	fs.TextVar(&rm, "reset", ResetFull, "")
	fs.TextVar(&dp, "enable-existing", Conflict409, "")
	fs.TextVar(&mp, "remove-missing", NotFound404, "")
	if err := fs.Parse([]string{"-header-policy=alternate", "-reset=next", "-enable-existing=upsert", "-remove-missing=nocontent"}); err != nil {
		t.Fatal(err)
	}
	if hp != Alternate || rm != ResetNext || dp != Upsert201 || mp != NoContent204 {
		t.Fatalf("parsed %v %v %v %v", hp, rm, dp, mp)
	}
	if err := hp.UnmarshalText([]byte("loosest")); err == nil {
		t.Fatal("unknown policy accepted")
	}
	if _, err := HeaderPolicy(9).MarshalText(); err == nil {
		t.Fatal("undefined policy marshalled")
	}
	for _, p := range []HeaderPolicy{Tightest, GlobalOnly, EndpointOnly, Alternate} {
		b, err := p.MarshalText()
		var back HeaderPolicy
		if err != nil || back.UnmarshalText(b) != nil || back != p {
			t.Fatalf("%v does not round-trip: %s %v", p, b, err)
		}
	}
}
