package jobs

import "testing"

func TestPairStateEncodesAndParses(t *testing.T) {
	for _, s := range []PairState{Absent, {Present: true}, {Present: true, AssignMembershipOnLogin: true, IsSignupEnabled: true}, {Present: true, ShowAsButton: true}} {
		got, err := ParsePairState(s.Encode())
		if err != nil || got != s {
			t.Errorf("ParsePairState(%q) = %+v, %v; want %+v", s.Encode(), got, err, s)
		}
	}
	for _, bad := range []string{"", "p", "p0101", "x010", "p012"} {
		if _, err := ParsePairState(bad); err == nil {
			t.Errorf("ParsePairState(%q) succeeded", bad)
		}
	}
}

func TestReflectsAndAfterAgree(t *testing.T) {
	on := PairState{Present: true, AssignMembershipOnLogin: true, ShowAsButton: false}
	cases := []struct {
		s       PairState
		c       Change
		reflect bool
		after   PairState
		ok      bool
	}{
		{on, Change{Action: Enable, AssignMembershipOnLogin: True}, true, on, true},
		{on, Change{Action: Enable}, true, on, true},
		{on, Change{Action: Enable, ShowAsButton: True}, false, PairState{Present: true, AssignMembershipOnLogin: true, ShowAsButton: true}, true},
		{Absent, Change{Action: Enable}, false, PairState{Present: true, ShowAsButton: true}, true},
		{Absent, Change{Action: Remove}, true, Absent, true},
		{on, Change{Action: Remove}, false, Absent, true},
		{on, Change{Action: Update, ShowAsButton: False}, true, on, true},
		{Absent, Change{Action: Update, ShowAsButton: False}, false, Absent, false},
	}
	for _, tc := range cases {
		if got := tc.s.Reflects(tc.c); got != tc.reflect {
			t.Errorf("%v.Reflects(%v) = %v", tc.s, tc.c, got)
		}
		after, ok := tc.s.After(tc.c)
		if after != tc.after || ok != tc.ok {
			t.Errorf("%v.After(%v) = %v, %v; want %v, %v", tc.s, tc.c, after, ok, tc.after, tc.ok)
		}
		// A change that reflects leaves the state as it is.
		if tc.reflect && after != tc.s {
			t.Errorf("%v reflects %v but After changes it to %v", tc.s, tc.c, after)
		}
	}
}

func TestDifferingGivesOnlyTheFlagsThatDiffer(t *testing.T) {
	from := PairState{Present: true, ShowAsButton: true}
	c, ok := from.Differing("org_1", "con_1", PairState{Present: true, ShowAsButton: false, IsSignupEnabled: false})
	if !ok || c.Action != Update || c.ShowAsButton != False || c.AssignMembershipOnLogin.Set() || c.IsSignupEnabled.Set() {
		t.Errorf("Differing = %v, %v", c, ok)
	}
	if _, ok := from.Differing("org_1", "con_1", from); ok {
		t.Error("Differing of equal states reports a change")
	}
}

func TestParseReadMode(t *testing.T) {
	for in, want := range map[string]ReadMode{"never": ReadNever, " Auto ": ReadAuto, "ALWAYS": ReadAlways} {
		if got, err := ParseReadMode(in); err != nil || got != want {
			t.Errorf("ParseReadMode(%q) = %q, %v", in, got, err)
		}
	}
	if _, err := ParseReadMode("sometimes"); err == nil {
		t.Error("ParseReadMode(sometimes) succeeded")
	}
}
