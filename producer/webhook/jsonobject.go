package webhook

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// member is one name/value pair of a JSON object, in document order.
type member struct {
	name  string
	value json.RawMessage
}

// errNotObject is returned by readObject for JSON that is valid but not an
// object.
var errNotObject = errors.New("not a JSON object")

// readObject reads data, which must hold exactly one JSON object and nothing
// after it, into its members in order. Duplicate names are kept: the caller
// decides what they mean.
func readObject(data []byte) ([]member, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	tok, err := dec.Token()
	if err != nil {
		return nil, jsonProblem(err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		if err := skipRest(dec, tok); err != nil {
			return nil, err
		}
		return nil, errNotObject
	}
	var out []member
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, jsonProblem(err)
		}
		name, _ := tok.(string) // the decoder only yields strings as object keys
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, jsonProblem(err)
		}
		out = append(out, member{name, v})
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return nil, jsonProblem(err)
	}
	return out, expectEOF(dec)
}

// readArray reads data, which must hold exactly one JSON array, into its
// elements. It stops with an error once the array has more than max
// elements.
func readArray(data []byte, max int) ([]json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	tok, err := dec.Token()
	if err != nil {
		return nil, jsonProblem(err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '[' {
		return nil, errors.New("not a JSON array")
	}
	var out []json.RawMessage
	for dec.More() {
		if len(out) == max {
			return nil, fmt.Errorf("has more than %d elements", max)
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, jsonProblem(err)
		}
		out = append(out, v)
	}
	if _, err := dec.Token(); err != nil {
		return nil, jsonProblem(err)
	}
	return out, expectEOF(dec)
}

// skipRest consumes the rest of a top-level value that began with tok and
// checks that nothing follows it, so that malformed JSON is reported as such
// rather than as "not an object".
func skipRest(dec *json.Decoder, tok json.Token) error {
	if d, ok := tok.(json.Delim); ok && (d == '[' || d == '{') {
		depth := 1
		for depth > 0 {
			t, err := dec.Token()
			if err != nil {
				return jsonProblem(err)
			}
			if d, ok := t.(json.Delim); ok {
				if d == '[' || d == '{' {
					depth++
				} else {
					depth--
				}
			}
		}
	}
	return expectEOF(dec)
}

func expectEOF(dec *json.Decoder) error {
	if _, err := dec.Token(); err != io.EOF {
		if err != nil {
			return jsonProblem(err)
		}
		return errors.New("malformed JSON: more data after the JSON value")
	}
	return nil
}

// jsonProblem describes a decoding error for a client.
func jsonProblem(err error) error {
	var se *json.SyntaxError
	switch {
	case errors.As(err, &se):
		return fmt.Errorf("malformed JSON at byte %d: %s", se.Offset, strings.TrimPrefix(se.Error(), "json: "))
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return errors.New("malformed JSON: unexpected end of the body")
	}
	return fmt.Errorf("malformed JSON: %s", strings.TrimPrefix(err.Error(), "json: "))
}

// decodeString decodes a JSON string; null or an absent value (empty raw)
// means "not given" (""). Anything else is an error.
func decodeString(raw json.RawMessage) (string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	if raw[0] != '"' {
		return "", fmt.Errorf("must be a JSON string, got %s", shortJSON(raw))
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", fmt.Errorf("must be a JSON string, got %s", shortJSON(raw))
	}
	return s, nil
}

// shortJSON quotes a raw JSON value for an error message, cut so that
// hostile input cannot flood responses or logs.
func shortJSON(raw []byte) string {
	return quoteShort(string(raw))
}

// quoteShort quotes s cut to a readable length.
func quoteShort(s string) string {
	const max = 32
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	if utf8.RuneCountInString(s) <= max {
		return fmt.Sprintf("%q", s)
	}
	r := []rune(s)
	return fmt.Sprintf("%q", string(r[:max-1])+"…")
}
