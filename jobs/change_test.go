package jobs

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestValidate(t *testing.T) {
	long := "org_" + strings.Repeat("x", 47) // 51 characters
	for _, tc := range []struct {
		name   string
		change Change
		want   []string // "field: substring of problem"
	}{
		{"enable ok", Change{Action: Enable, OrgID: "org_1", ConnectionID: "con_1"}, nil},
		{"update ok", Change{Action: Update, OrgID: "org_1", ConnectionID: "con_1", ShowAsButton: False}, nil},
		{"remove ok", Change{Action: Remove, OrgID: "org_1", ConnectionID: "con_1"}, nil},
		{"signup with membership ok", Change{Action: Enable, OrgID: "o", ConnectionID: "c", AssignMembershipOnLogin: True, IsSignupEnabled: True}, nil},
		{"50 characters ok", Change{Action: Remove, OrgID: long[:50], ConnectionID: "c"}, nil},
		{"unknown action", Change{Action: "disable", OrgID: "o", ConnectionID: "c"}, []string{`action: "disable" is not an action`}},
		{"empty action", Change{OrgID: "o", ConnectionID: "c"}, []string{"action: is empty"}},
		{"empty ids", Change{Action: Enable}, []string{"org_id: is empty", "connection_id: is empty"}},
		{"long id", Change{Action: Enable, OrgID: long, ConnectionID: "c"}, []string{"org_id: ", "is 51 characters, the limit is 50"}},
		{"letters digits _ -", Change{Action: Enable, OrgID: "org_A1b2-C3", ConnectionID: "con-Z_9"}, nil},
		{"space", Change{Action: Enable, OrgID: "org 1", ConnectionID: "c"}, []string{`org_id: "org 1" contains " ": ` + IDCharacters}},
		{"slash", Change{Action: Enable, OrgID: "o", ConnectionID: "../c"}, []string{`connection_id: "../c" contains ".": ` + IDCharacters}},
		{"dot dot", Change{Action: Remove, OrgID: "org_abc", ConnectionID: ".."}, []string{`connection_id: ".." contains ".": only letters, digits, "_" and "-" are allowed`}},
		{"dot", Change{Action: Remove, OrgID: ".", ConnectionID: "c"}, []string{`org_id: "." contains ".": ` + IDCharacters}},
		{"percent", Change{Action: Enable, OrgID: "o%2F", ConnectionID: "c"}, []string{`org_id: "o%2F" contains "%": ` + IDCharacters}},
		{"control", Change{Action: Enable, OrgID: "o\x00", ConnectionID: "c"}, []string{`org_id: "o\x00" contains "\x00": ` + IDCharacters}},
		{"unicode", Change{Action: Enable, OrgID: "org_é", ConnectionID: "c"}, []string{`org_id: "org_é" contains "é": ` + IDCharacters}},
		{"bad utf8", Change{Action: Enable, OrgID: "o\xff", ConnectionID: "c"}, []string{"org_id: is not valid UTF-8"}},
		{"flag on remove", Change{Action: Remove, OrgID: "o", ConnectionID: "c", ShowAsButton: True}, []string{"show_as_button: is not allowed on remove"}},
		{"update without flags", Change{Action: Update, OrgID: "o", ConnectionID: "c"}, []string{"action: update needs at least one of"}},
		{"signup without membership", Change{Action: Enable, OrgID: "o", ConnectionID: "c", AssignMembershipOnLogin: False, IsSignupEnabled: True}, []string{"is_signup_enabled: " + SignupNeedsMembership}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			errs := tc.change.Validate()
			if len(tc.want) == 0 {
				if len(errs) > 0 {
					t.Fatalf("Validate() = %v, want no errors", errs)
				}
				return
			}
			all := ""
			for _, e := range errs {
				all += e.Error() + "\n"
			}
			for _, w := range tc.want {
				if !strings.Contains(all, w) {
					t.Errorf("Validate() = %q, want it to contain %q", all, w)
				}
			}
		})
	}
}

func TestCheckIDRefusesWhatAURLPathWouldChange(t *testing.T) {
	for _, id := range []string{".", "..", "a/b", "%2e%2e", "a?b", "a#b", "a;b", "a\\b", "a b", "a\tb", "a\nb", "é", "ｏｒｇ", "org_\u202e", "a:b", "a@b", "a+b", "a~b", "a.b"} {
		if CheckID(id) == "" {
			t.Errorf("CheckID(%q) accepted it", id)
		}
	}
	for _, id := range []string{"org_A1b2C3d4E5f6G7h8", "con_DbPw0000000000001", "acme-1", "x", strings.Repeat("a", MaxIDLength)} {
		if p := CheckID(id); p != "" {
			t.Errorf("CheckID(%q) = %q, want it accepted", id, p)
		}
	}
}

func TestValidateCutsLongValues(t *testing.T) {
	errs := Change{Action: Enable, OrgID: strings.Repeat("a", 10000), ConnectionID: "c"}.Validate()
	if len(errs) != 1 || len(errs[0].Error()) > 120 {
		t.Fatalf("Validate() = %v, want one short error", errs)
	}
}

func TestParseFlag(t *testing.T) {
	for in, want := range map[string]Flag{"": Unset, "  ": Unset, "true": True, "TRUE": True, " false ": False} {
		got, err := ParseFlag(in)
		if err != nil || got != want {
			t.Errorf("ParseFlag(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"yes", "1", "t", "truee"} {
		if _, err := ParseFlag(in); err == nil || !strings.Contains(err.Error(), "use true, false, or leave it empty") {
			t.Errorf("ParseFlag(%q) error = %v, want a usage error", in, err)
		}
	}
}

func TestParseAction(t *testing.T) {
	for in, want := range map[string]Action{"enable": Enable, " Update ": Update, "REMOVE": Remove} {
		if got, ok := ParseAction(in); !ok || got != want {
			t.Errorf("ParseAction(%q) = %v, %v", in, got, ok)
		}
	}
	if _, ok := ParseAction("disable"); ok {
		t.Error(`ParseAction("disable") succeeded`)
	}
}

func TestFlagJSON(t *testing.T) {
	c := Change{Action: Enable, OrgID: "o", ConnectionID: "c", ShowAsButton: False, IsSignupEnabled: True}
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"action":"enable","org_id":"o","connection_id":"c","show_as_button":false,"is_signup_enabled":true}`; string(b) != want {
		t.Fatalf("Marshal = %s, want %s", b, want)
	}
	var back Change
	if err := json.Unmarshal(b, &back); err != nil || back != c {
		t.Fatalf("Unmarshal = %+v, %v; want %+v", back, err, c)
	}
	if err := json.Unmarshal([]byte(`{"show_as_button":"true"}`), &back); err == nil {
		t.Fatal(`a string "true" was accepted as a flag`)
	}
}

func TestPayloadRoundTrip(t *testing.T) {
	c := Change{Action: Update, OrgID: "org_1", ConnectionID: "con_1", AssignMembershipOnLogin: True}
	o := Origin{Batch: "b-1", Line: 7}
	data, err := EncodePayload(c, o)
	if err != nil {
		t.Fatal(err)
	}
	p, err := DecodePayload(data)
	if err != nil {
		t.Fatal(err)
	}
	if p.Change != c || p.Origin != o || p.Version != PayloadVersion {
		t.Fatalf("DecodePayload = %+v", p)
	}
}

func TestDecodePayloadRejects(t *testing.T) {
	for name, data := range map[string]string{
		"not json":       `{`,
		"unknown field":  `{"v":1,"change":{"action":"remove","org_id":"o","connection_id":"c"},"origin":{"batch":"b","line":2},"x":1}`,
		"other version":  `{"v":2,"change":{"action":"remove","org_id":"o","connection_id":"c"},"origin":{"batch":"b","line":2}}`,
		"invalid change": `{"v":1,"change":{"action":"remove","org_id":"","connection_id":"c"},"origin":{"batch":"b","line":2}}`,
		"bad batch":      `{"v":1,"change":{"action":"remove","org_id":"o","connection_id":"c"},"origin":{"batch":"a b","line":2}}`,
		"no line":        `{"v":1,"change":{"action":"remove","org_id":"o","connection_id":"c"},"origin":{"batch":"b"}}`,
		"trailing":       `{"v":1,"change":{"action":"remove","org_id":"o","connection_id":"c"},"origin":{"batch":"b","line":2}} {}`,
	} {
		if _, err := DecodePayload([]byte(data)); err == nil {
			t.Errorf("%s: DecodePayload succeeded, want an error", name)
		}
	}
}

func TestTaskID(t *testing.T) {
	id := TaskID("import-2026.11", 42)
	b, l, err := ParseTaskID(id)
	if err != nil || b != "import-2026.11" || l != 42 {
		t.Fatalf("ParseTaskID(%q) = %q, %d, %v", id, b, l, err)
	}
	for _, bad := range []string{"x", "b:0", "b:-1", ":3", "a b:3"} {
		if _, _, err := ParseTaskID(bad); err == nil {
			t.Errorf("ParseTaskID(%q) succeeded", bad)
		}
	}
}
