package mgmttest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"unicode/utf8"
)

// Limits Auth0 enforces on the enabled-connections endpoints.
const (
	maxBody        = 1 << 20 // request bodies, bytes
	maxIDLength    = 50      // org id, connection id
	maxPerPage     = 100
	defaultPerPage = 50
)

// Descriptions Auth0 appends to validation messages, by property.
var propertyDescriptions = map[string]string{
	"id":                           "Organization identifier",
	"connectionId":                 "Connection identifier",
	"page":                         "Page index of the results to return. First page is 0.",
	"per_page":                     "Number of results per page. Defaults to 50.",
	"include_totals":               "Return results inside an object that contains the total result count (true) or as a direct array of results (false, default).",
	"connection_id":                "Single connection ID to add to the organization.",
	"assign_membership_on_login":   "When true, all users that log in with this connection will be automatically granted membership in the organization. When false, users must be granted membership in the organization before logging in with this connection.",
	"is_signup_enabled":            "Determines whether organization signup should be enabled for this organization connection. Only applicable for database connections. Default: false.",
	"show_as_button":               "Determines whether a connection should be displayed on this organization’s login prompt. Only applicable for enterprise connections. Default: true.",
	"organization_connection_name": "Name of the connection in the scope of this organization.",
	"organization_access_level":    "Access level of the organization's own administrators to this connection through the My Organization API.",
	"is_enabled":                   "Whether the connection is enabled for the organization.",
	"name":                         "Provide the name of the connection to retrieve.",
	"strategy":                     "Provide strategies to only retrieve connections with such strategies.",
	"fields":                       "A comma separated list of fields to include or exclude (depending on include_fields) from the result, empty to retrieve all fields.",
	"include_fields":               "true if the fields specified are to be included in the result, false otherwise (defaults to true).",
	"take":                         "Number of results per page. Defaults to 50.",
	"from":                         "Optional Id from which to start selection.",
}

// onProperty formats Auth0's "<kind> validation error: '<what>' on property <p> (<desc>)."
func onProperty(kind, what, prop string) string {
	return onPropertyWith(kind, what, prop, propertyDescriptions[prop])
}

// onPropertyWith is onProperty with the description given.
func onPropertyWith(kind, what, prop, desc string) string {
	return fmt.Sprintf("%s validation error: '%s' on property %s (%s).", kind, what, prop, desc)
}

// checkLength returns the schema error for a string outside 1–50 characters, or "".
func checkLength(v string) string {
	switch n := utf8.RuneCountInString(v); {
	case n < 1:
		return fmt.Sprintf("String is too short (%d chars), minimum 1", n)
	case n > maxIDLength:
		return fmt.Sprintf("String is too long (%d chars), maximum %d", n, maxIDLength)
	}
	return ""
}

// pathDescriptions are the descriptions of path parameters, by name.
var pathDescriptions = map[string]string{
	"id":            "Organization identifier",
	"connectionId":  "Connection identifier",
	"connection_id": "Connection identifier",
}

// checkPath validates the decoded path parameters; conn is ignored when hasConn is false.
// connProp names the connection parameter: "connectionId" on the legacy endpoints,
// "connection_id" on the newer ones.
func checkPath(org, conn string, hasConn bool, connProp string) (result, bool) {
	onPath := func(what, prop string) string {
		return fmt.Sprintf("Path validation error: '%s' on property %s (%s).", what, prop, pathDescriptions[prop])
	}
	if e := checkLength(org); e != "" {
		return fail(http.StatusBadRequest, onPath(e, "id"), codeInvalidURI), false
	}
	if hasConn {
		if e := checkLength(conn); e != "" {
			return fail(http.StatusBadRequest, onPath(e, connProp), codeInvalidURI), false
		}
	}
	return result{}, true
}

// listQuery is the validated query of the list call.
type listQuery struct {
	page, perPage int
	totals        bool
}

// parseListQuery validates page, per_page and include_totals. Other parameters are ignored.
func parseListQuery(q url.Values) (listQuery, result, bool) {
	lq := listQuery{perPage: defaultPerPage}
	bad := func(what, prop string) (listQuery, result, bool) {
		return lq, fail(http.StatusBadRequest, onProperty("Query", what, prop), codeInvalidQuery), false
	}
	integer := func(prop string, lo, hi int, dst *int) (string, bool) {
		vs, given := q[prop]
		if !given {
			return "", true
		}
		if len(vs) > 1 {
			return "Expected type integer but found type array", false
		}
		n, err := strconv.Atoi(vs[0])
		switch {
		case err != nil:
			return "Expected type integer but found type string", false
		case n < lo:
			return fmt.Sprintf("Value %d is less than minimum %d", n, lo), false
		case hi > 0 && n > hi:
			return fmt.Sprintf("Value %d is greater than maximum %d", n, hi), false
		}
		*dst = n
		return "", true
	}
	if what, ok := integer("page", 0, 0, &lq.page); !ok {
		return bad(what, "page")
	}
	if what, ok := integer("per_page", 1, maxPerPage, &lq.perPage); !ok {
		return bad(what, "per_page")
	}
	if vs, given := q["include_totals"]; given {
		switch {
		case len(vs) > 1:
			return bad("Expected type boolean but found type array", "include_totals")
		case vs[0] == "true":
			lq.totals = true
		case vs[0] == "false":
		default:
			return bad("Expected type boolean but found type string", "include_totals")
		}
	}
	return lq, result{}, true
}

// errBodyTooLarge reports a request body over maxBody.
var errBodyTooLarge = errors.New("request body larger than 1 MB")

// readBody reads at most maxBody bytes of the request body.
func readBody(r *http.Request) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxBody {
		return nil, errBodyTooLarge
	}
	return b, nil
}

// payload is a validated POST or PATCH body; nil flags were not given.
type payload struct {
	connectionID string
	assign       *bool
	signup       *bool
	show         *bool
}

// Properties of the POST and PATCH bodies, in the order their types are checked.
var (
	createProperties = []string{"assign_membership_on_login", "connection_id", "is_signup_enabled", "show_as_button"}
	updateProperties = []string{"assign_membership_on_login", "is_signup_enabled", "show_as_button"}
)

// decodeObject checks what every POST and PATCH body must be, as Auth0 does: Content-Type,
// size, JSON syntax, an object; it returns the object's properties.
func decodeObject(contentType string, body []byte, readErr error) (map[string]json.RawMessage, result, bool) {
	invalid := func(msg string) (map[string]json.RawMessage, result, bool) {
		return nil, fail(http.StatusBadRequest, msg, codeInvalidBody), false
	}
	if mt, _, err := mime.ParseMediaType(contentType); err != nil || mt != "application/json" {
		return invalid(fmt.Sprintf("Invalid request payload: Content-Type must be application/json, not %q.", contentType))
	}
	switch {
	case errors.Is(readErr, errBodyTooLarge):
		return nil, fail(http.StatusRequestEntityTooLarge, fmt.Sprintf("Payload content length greater than maximum allowed: %d", maxBody), ""), false
	case readErr != nil:
		return invalid("Invalid request payload: the body could not be read.")
	}
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return invalid("Payload validation error: 'Expected type object but found type null'.")
	}
	if !json.Valid(body) {
		return invalid("Invalid request payload JSON format")
	}
	if t := jsonType(body); t != "object" {
		return invalid(fmt.Sprintf("Payload validation error: 'Expected type object but found type %s'.", t))
	}
	var props map[string]json.RawMessage
	if err := json.Unmarshal(body, &props); err != nil {
		return invalid("Invalid request payload JSON format")
	}
	return props, result{}, true
}

// checkPropertyNames returns Auth0's message for a body whose property
// names break its schema — one not allowed (additionalProperties false),
// connection_id missing from a create, no property in an update — or "".
// Shared by the legacy and the newer endpoints.
func checkPropertyNames(props map[string]json.RawMessage, allowed []string, create bool) string {
	for _, name := range slices.Sorted(maps.Keys(props)) {
		if !slices.Contains(allowed, name) {
			return fmt.Sprintf("Payload validation error: 'Additional properties not allowed: %s'.", name)
		}
	}
	if create {
		if _, given := props["connection_id"]; !given {
			return "Payload validation error: 'Missing required property: connection_id'."
		}
	} else if len(props) == 0 {
		return "Payload validation error: 'Too few properties defined (0), minimum 1'."
	}
	return ""
}

// parsePayload validates a legacy POST (create) or PATCH body as Auth0 does: Content-Type,
// size, JSON syntax, an object, no additional properties, required properties, types, lengths.
func parsePayload(contentType string, body []byte, readErr error, create bool) (payload, result, bool) {
	var p payload
	invalid := func(msg string) (payload, result, bool) {
		return p, fail(http.StatusBadRequest, msg, codeInvalidBody), false
	}
	props, res, ok := decodeObject(contentType, body, readErr)
	if !ok {
		return p, res, false
	}

	allowed := updateProperties
	if create {
		allowed = createProperties
	}
	if msg := checkPropertyNames(props, allowed, create); msg != "" {
		return invalid(msg)
	}
	for _, name := range allowed {
		raw, given := props[name]
		if !given {
			continue
		}
		want := "boolean"
		if name == "connection_id" {
			want = "string"
		}
		if got := jsonType(raw); got != want {
			return invalid(onProperty("Payload", fmt.Sprintf("Expected type %s but found type %s", want, got), name))
		}
		switch name {
		case "connection_id":
			_ = json.Unmarshal(raw, &p.connectionID)
			if e := checkLength(p.connectionID); e != "" {
				return invalid(onProperty("Payload", e, name))
			}
		case "assign_membership_on_login":
			p.assign = decodeBool(raw)
		case "is_signup_enabled":
			p.signup = decodeBool(raw)
		case "show_as_button":
			p.show = decodeBool(raw)
		}
	}
	return p, result{}, true
}

// jsonType names the JSON Schema type of a valid JSON value.
func jsonType(raw []byte) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return "null"
	}
	switch raw[0] {
	case '{':
		return "object"
	case '[':
		return "array"
	case '"':
		return "string"
	case 't', 'f':
		return "boolean"
	case 'n':
		return "null"
	}
	if f, err := strconv.ParseFloat(string(raw), 64); err == nil && f == float64(int64(f)) {
		return "integer"
	}
	return "number"
}

func decodeBool(raw json.RawMessage) *bool {
	var b bool
	_ = json.Unmarshal(raw, &b)
	return &b
}
