package jobs

import (
	"encoding/json"
	"fmt"
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
		{"unknown action", Change{Action: "deactivate", OrgID: "o", ConnectionID: "c"}, []string{`action: "deactivate" is not an action: use enable, disable, update or remove`}},
		{"disable ok", Change{Action: Disable, OrgID: "org_1", ConnectionID: "con_1"}, nil},
		{"disable with settings ok", Change{Action: Disable, OrgID: "org_1", ConnectionID: "con_1", ShowAsButton: True, OrgConnectionName: "Acme SSO", AccessLevel: LevelFull}, nil},
		{"update with a name only ok", Change{Action: Update, OrgID: "org_1", ConnectionID: "con_1", OrgConnectionName: "Acme SSO"}, nil},
		{"update with a level only ok", Change{Action: Update, OrgID: "org_1", ConnectionID: "con_1", AccessLevel: LevelNone}, nil},
		{"level without name is not refused per row", Change{Action: Enable, OrgID: "org_1", ConnectionID: "con_1", AccessLevel: LevelFull}, nil},
		{"names instead of ids ok", Change{Action: Enable, OrgName: "acme-corp_2", ConnectionName: "Username-Password-Authentication"}, nil},
		{"ids and names ok", Change{Action: Remove, OrgID: "org_1", OrgName: "acme", ConnectionID: "con_1", ConnectionName: "google-oauth2"}, nil},
		{"no org at all", Change{Action: Enable, ConnectionID: "c"}, []string{"org_id: is empty: give an org_id or an org_name"}},
		{"no connection at all", Change{Action: Enable, OrgName: "acme"}, []string{"connection_id: is empty: give a connection_id or a connection_name"}},
		{"org name uppercase", Change{Action: Enable, OrgName: "Acme", ConnectionID: "c"}, []string{`org_name: "Acme" contains "A": only lowercase letters, digits, "_" and "-" are allowed`}},
		{"org name with a dot", Change{Action: Enable, OrgName: "acme.io", ConnectionID: "c"}, []string{`org_name: "acme.io" contains ".": ` + OrgNameCharacters}},
		{"org name is an id", Change{Action: Enable, OrgName: "org_abc", ConnectionID: "c"}, []string{`org_name: "org_abc" starts with "org_": that is an organization id, give it as org_id`}},
		{"org name 51", Change{Action: Enable, OrgName: strings.Repeat("a", 51), ConnectionID: "c"}, []string{"org_name: ", "is 51 characters, the limit is 50"}},
		{"org name 50 ok", Change{Action: Enable, OrgName: strings.Repeat("a", 50), ConnectionID: "c"}, nil},
		{"org name invalid beside an id", Change{Action: Enable, OrgID: "org_1", OrgName: "A B", ConnectionID: "c"}, []string{`org_name: "A B" contains "A"`}},
		{"org name bad utf8", Change{Action: Enable, OrgName: "a\xff", ConnectionID: "c"}, []string{"org_name: is not valid UTF-8"}},
		{"connection name underscore", Change{Action: Enable, OrgID: "o", ConnectionName: "my_db"}, []string{`connection_name: "my_db" contains "_": only letters, digits and "-" are allowed`}},
		{"connection name 129", Change{Action: Enable, OrgID: "o", ConnectionName: strings.Repeat("C", 129)}, []string{"connection_name: ", "is 129 characters, the limit is 128"}},
		{"connection name 128 ok", Change{Action: Enable, OrgID: "o", ConnectionName: strings.Repeat("C", 128)}, nil},
		{"org connection name 51", Change{Action: Enable, OrgID: "o", ConnectionID: "c", OrgConnectionName: strings.Repeat("é", 51)}, []string{"organization_connection_name: ", "is 51 characters, the limit is 50"}},
		{"org connection name 50 runes ok", Change{Action: Enable, OrgID: "o", ConnectionID: "c", OrgConnectionName: strings.Repeat("é", 50)}, nil},
		{"org connection name punctuation ok", Change{Action: Enable, OrgID: "o", ConnectionID: "c", OrgConnectionName: "Acme / SSO (EU) — 2026"}, nil},
		{"org connection name control", Change{Action: Enable, OrgID: "o", ConnectionID: "c", OrgConnectionName: "a\tb"}, []string{`organization_connection_name: "a\tb" contains the control character "\t"`}},
		{"org connection name spaces", Change{Action: Enable, OrgID: "o", ConnectionID: "c", OrgConnectionName: " Acme"}, []string{`organization_connection_name: " Acme" begins or ends with white space`}},
		{"org connection name bad utf8", Change{Action: Enable, OrgID: "o", ConnectionID: "c", OrgConnectionName: "\xff"}, []string{"organization_connection_name: is not valid UTF-8"}},
		{"level unknown", Change{Action: Enable, OrgID: "o", ConnectionID: "c", AccessLevel: "admin"}, []string{`organization_access_level: "admin" is not one of none, readonly, limited, full`}},
		{"name on remove", Change{Action: Remove, OrgID: "o", ConnectionID: "c", OrgConnectionName: "x"}, []string{"organization_connection_name: is not allowed on remove"}},
		{"level on remove", Change{Action: Remove, OrgID: "o", ConnectionID: "c", AccessLevel: LevelNone}, []string{"organization_access_level: is not allowed on remove"}},
		{"signup without membership on disable", Change{Action: Disable, OrgID: "o", ConnectionID: "c", AssignMembershipOnLogin: False, IsSignupEnabled: True}, []string{"is_signup_enabled: " + SignupNeedsMembership}},
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
	if got, ok := ParseAction(" Disable"); !ok || got != Disable {
		t.Errorf(`ParseAction(" Disable") = %v, %v`, got, ok)
	}
	for _, bad := range []string{"", "deactivate", "enabled", "delete"} {
		if _, ok := ParseAction(bad); ok {
			t.Errorf("ParseAction(%q) succeeded", bad)
		}
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

func TestParseAccessLevel(t *testing.T) {
	for in, want := range map[string]AccessLevel{"": "", "  ": "", "none": LevelNone, " ReadOnly ": LevelReadonly, "LIMITED": LevelLimited, "full": LevelFull} {
		got, err := ParseAccessLevel(in)
		if err != nil || got != want {
			t.Errorf("ParseAccessLevel(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"admin", "read-only", "0", "nonee"} {
		_, err := ParseAccessLevel(in)
		if want := fmt.Sprintf("%q is not one of none, readonly, limited, full", in); err == nil || err.Error() != want {
			t.Errorf("ParseAccessLevel(%q) error = %v, want %s", in, err, want)
		}
	}
	for l, needs := range map[AccessLevel]bool{"": false, LevelNone: false, LevelReadonly: true, LevelLimited: true, LevelFull: true} {
		if l.NeedsName() != needs {
			t.Errorf("%q.NeedsName() = %v", l, !needs)
		}
	}
}

func TestNeedsConnectionsAPI(t *testing.T) {
	base := Change{Action: Enable, OrgID: "org_1", ConnectionID: "con_1", AssignMembershipOnLogin: True}
	for _, tc := range []struct {
		name string
		edit func(*Change)
		want bool
	}{
		{"legacy enable", func(*Change) {}, false},
		{"legacy update", func(c *Change) { c.Action = Update }, false},
		{"legacy remove", func(c *Change) { c.Action, c.AssignMembershipOnLogin = Remove, Unset }, false},
		{"disable", func(c *Change) { c.Action = Disable }, true},
		{"organization_connection_name", func(c *Change) { c.OrgConnectionName = "Acme" }, true},
		{"organization_access_level", func(c *Change) { c.AccessLevel = LevelNone }, true},
		{"names only", func(c *Change) { c.OrgID, c.OrgName, c.ConnectionID, c.ConnectionName = "", "acme", "", "google" }, false},
	} {
		c := base
		tc.edit(&c)
		if got := c.NeedsConnectionsAPI(); got != tc.want {
			t.Errorf("%s: NeedsConnectionsAPI() = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestPairKey(t *testing.T) {
	for _, tc := range []struct {
		c          Change
		key        string
		unresolved bool
	}{
		{Change{OrgID: "org_1", ConnectionID: "con_1"}, "org_1/con_1", false},
		{Change{OrgID: "org_1", OrgName: "acme", ConnectionID: "con_1", ConnectionName: "google"}, "org_1/con_1", false},
		{Change{OrgName: "acme", ConnectionID: "con_1"}, "name:acme/con_1", true},
		{Change{OrgID: "org_1", ConnectionName: "google"}, "org_1/name:google", true},
		{Change{OrgName: "acme", ConnectionName: "google"}, "name:acme/name:google", true},
	} {
		if got := tc.c.PairKey(); got != tc.key {
			t.Errorf("%+v.PairKey() = %q, want %q", tc.c, got, tc.key)
		}
		if got := tc.c.Unresolved(); got != tc.unresolved {
			t.Errorf("%+v.Unresolved() = %v, want %v", tc.c, got, tc.unresolved)
		}
	}
}

func TestChangeString(t *testing.T) {
	c := Change{Action: Disable, OrgName: "acme", ConnectionID: "con_1", ShowAsButton: False, OrgConnectionName: `Acme "SSO"`, AccessLevel: LevelLimited}
	if got, want := c.String(), `disable name:acme/con_1 show_as_button=false organization_connection_name="Acme \"SSO\"" organization_access_level=limited`; got != want {
		t.Errorf("String() = %s, want %s", got, want)
	}
}

// A payload written by a fleet that knew only three actions and three flags
// decodes to the same change, and such a change still encodes to the same
// bytes.
func TestOldPayloadDecodesUnchanged(t *testing.T) {
	const old = `{"v":1,"change":{"action":"update","org_id":"org_1","connection_id":"con_1","show_as_button":false},"origin":{"batch":"b1","line":3}}`
	p, err := DecodePayload([]byte(old))
	if err != nil {
		t.Fatal(err)
	}
	want := Change{Action: Update, OrgID: "org_1", ConnectionID: "con_1", ShowAsButton: False}
	if p.Change != want || p.Origin != (Origin{Batch: "b1", Line: 3}) {
		t.Fatalf("DecodePayload(old) = %+v", p)
	}
	again, err := EncodePayload(p.Change, p.Origin)
	if err != nil || string(again) != old {
		t.Fatalf("EncodePayload = %s, %v; want the old bytes %s", again, err, old)
	}
}

func TestNewFieldsPayloadRoundTrip(t *testing.T) {
	c := Change{Action: Disable, OrgName: "acme", ConnectionID: "con_1", ConnectionName: "google-oauth2", IsSignupEnabled: False,
		OrgConnectionName: "Acme Google", AccessLevel: LevelReadonly}
	data, err := EncodePayload(c, Origin{Batch: "b", Line: 2})
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"v":1,"change":{"action":"disable","org_id":"","connection_id":"con_1","is_signup_enabled":false,"organization_connection_name":"Acme Google","organization_access_level":"readonly","org_name":"acme","connection_name":"google-oauth2"},"origin":{"batch":"b","line":2}}`
	if string(data) != want {
		t.Fatalf("EncodePayload = %s, want %s", data, want)
	}
	p, err := DecodePayload(data)
	if err != nil || p.Change != c {
		t.Fatalf("DecodePayload = %+v, %v; want %+v", p.Change, err, c)
	}
	bad := `{"v":1,"change":{"action":"enable","org_id":"org_1","connection_id":"con_1","organization_access_level":"admin"},"origin":{"batch":"b","line":2}}`
	if _, err := DecodePayload([]byte(bad)); err == nil || !strings.Contains(err.Error(), "organization_access_level") {
		t.Fatalf("DecodePayload(level admin) = %v, want an error naming organization_access_level", err)
	}
}
