package webhook

import (
	"bytes"
	"encoding/json"
	"fmt"
	"unicode"
	"unicode/utf8"

	"github.com/orgconn/orgconn/jobs"
)

// Event is one CloudEvent of an Auth0 Event Streams delivery.
type Event struct {
	ID     string // unique per event; Auth0 may deliver the same id more than once
	Type   string // e.g. "organization.created"
	Source string // e.g. "urn:auth0:acme.eu.auth0.com"
	Time   string // as sent; informational
	// Org is data.object of an event whose type the rules handle; nil for
	// other events, whose data is not read.
	Org *Organization
	// Connection is what an organization.connection.* event says of its
	// pair, as far as it could be read; nil for other events.
	Connection *ConnectionEvent
}

// Organization connection event types: they confirm writes (orgconn's or
// anyone's) and queue nothing.
const (
	EventConnectionAdded   = "organization.connection.added"
	EventConnectionUpdated = "organization.connection.updated"
	EventConnectionRemoved = "organization.connection.removed"
)

// IsConnectionEvent reports whether eventType is one of the
// organization.connection.* events.
func IsConnectionEvent(eventType string) bool {
	switch eventType {
	case EventConnectionAdded, EventConnectionUpdated, EventConnectionRemoved:
		return true
	}
	return false
}

// ConnectionEvent is the pair an organization.connection.* event is about.
// The events are in Early Access and their data is not documented: the ids
// are read from data.object's organization_id or organization.id, and
// connection_id or connection.id, and left empty when absent or not valid
// ids. Such an event is never refused for its data: it queues nothing.
type ConnectionEvent struct {
	OrgID        string
	ConnectionID string
}

// Organization is the organization an event is about: its data.object.
type Organization struct {
	ID   string
	Name string
	// Metadata holds the organization's metadata; Auth0 metadata values are
	// strings, and values of other JSON types are left out.
	Metadata map[string]string
}

// Limits of a delivery.
const (
	// MaxEvents is the most events one delivery (a JSON array) may carry.
	MaxEvents = 1000
	// maxAttrLength bounds the id, type and time attributes, in bytes.
	maxAttrLength = 256
	// maxSourceLength bounds the source attribute, in bytes.
	maxSourceLength = 2048
)

// cloudEvent is the envelope of a CloudEvents 1.0 event in structured JSON
// mode. Extension attributes (a0tenant, a0stream, …) are allowed and ignored.
type cloudEvent struct {
	SpecVersion json.RawMessage `json:"specversion"`
	ID          json.RawMessage `json:"id"`
	Type        json.RawMessage `json:"type"`
	Source      json.RawMessage `json:"source"`
	Time        json.RawMessage `json:"time"`
	Data        json.RawMessage `json:"data"`
}

// DecodeEvents decodes and validates an Auth0 Event Streams delivery: one
// CloudEvent 1.0 JSON object, or an array of 1 to MaxEvents of them. The
// data of an event is read only when handles reports true for its type; for
// such events data.object must be an organization with a valid id.
//
// It is all or nothing: either every event is valid and the complete list is
// returned with no problems, or nil is returned with every problem found.
func DecodeEvents(body []byte, handles func(eventType string) bool) ([]Event, []Problem) {
	var ps problems
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		ps.add(nil, "", "the body is empty: send a CloudEvent or an array of CloudEvents")
		return nil, ps.result()
	}
	if trimmed[0] != '[' {
		ev := decodeEvent(trimmed, nil, handles, &ps)
		if len(ps.list) > 0 {
			return nil, ps.result()
		}
		return []Event{ev}, nil
	}
	items, err := readArray(trimmed, MaxEvents)
	switch {
	case err != nil:
		ps.add(nil, "", err.Error())
	case len(items) == 0:
		ps.add(nil, "", "the array of events is empty")
	}
	if len(ps.list) > 0 {
		return nil, ps.result()
	}
	out := make([]Event, len(items))
	for i, raw := range items {
		out[i] = decodeEvent(raw, &i, handles, &ps)
	}
	if len(ps.list) > 0 {
		return nil, ps.result()
	}
	return out, nil
}

// decodeEvent decodes and checks one event, adding its problems to ps.
func decodeEvent(raw []byte, index *int, handles func(string) bool, ps *problems) Event {
	if len(raw) == 0 || raw[0] != '{' {
		if _, err := readObject(raw); err != nil && err != errNotObject {
			ps.add(index, "", err.Error())
		} else {
			ps.add(index, "", "an event must be a JSON object (a CloudEvent)")
		}
		return Event{}
	}
	if _, err := readObject(raw); err != nil { // syntax, with a byte offset
		ps.add(index, "", err.Error())
		return Event{}
	}
	var ce cloudEvent
	if err := json.Unmarshal(raw, &ce); err != nil {
		ps.add(index, "", jsonProblem(err).Error())
		return Event{}
	}
	var ev Event
	attr := func(name string, raw json.RawMessage, max int, required bool) string {
		if len(raw) == 0 || string(raw) == "null" {
			if required {
				ps.add(index, name, "is missing")
			}
			return ""
		}
		s, err := decodeString(raw)
		if err != nil {
			ps.add(index, name, err.Error())
			return ""
		}
		if p := checkAttr(s, max); p != "" {
			ps.add(index, name, p)
			return ""
		}
		return s
	}
	if v := attr("specversion", ce.SpecVersion, maxAttrLength, true); v != "" && v != "1.0" {
		ps.add(index, "specversion", fmt.Sprintf("is %s: only CloudEvents 1.0 is accepted", quoteShort(v)))
	}
	ev.ID = attr("id", ce.ID, maxAttrLength, true)
	ev.Type = attr("type", ce.Type, maxAttrLength, true)
	ev.Source = attr("source", ce.Source, maxSourceLength, true)
	ev.Time = attr("time", ce.Time, maxAttrLength, false)
	switch {
	case IsConnectionEvent(ev.Type):
		ev.Connection = decodeConnectionEvent(ce.Data)
	case ev.Type != "" && handles != nil && handles(ev.Type):
		ev.Org = decodeOrganization(ce.Data, index, ps)
	}
	return ev
}

// decodeConnectionEvent reads what it can of an organization.connection.*
// event's data; see ConnectionEvent.
func decodeConnectionEvent(data json.RawMessage) *ConnectionEvent {
	var d struct {
		Object struct {
			OrganizationID json.RawMessage `json:"organization_id"`
			ConnectionID   json.RawMessage `json:"connection_id"`
			Organization   struct {
				ID json.RawMessage `json:"id"`
			} `json:"organization"`
			Connection struct {
				ID json.RawMessage `json:"id"`
			} `json:"connection"`
		} `json:"object"`
	}
	out := &ConnectionEvent{}
	if json.Unmarshal(data, &d) != nil {
		return out
	}
	id := func(raws ...json.RawMessage) string {
		for _, raw := range raws {
			if s, err := decodeString(raw); err == nil && s != "" && jobs.CheckID(s) == "" {
				return s
			}
		}
		return ""
	}
	out.OrgID = id(d.Object.OrganizationID, d.Object.Organization.ID)
	out.ConnectionID = id(d.Object.ConnectionID, d.Object.Connection.ID)
	return out
}

// checkAttr returns what is wrong with a CloudEvent string attribute, or "".
func checkAttr(s string, max int) string {
	switch {
	case s == "":
		return "is empty"
	case len(s) > max:
		return fmt.Sprintf("is %d bytes, the limit is %d", len(s), max)
	case !utf8.ValidString(s):
		return "is not valid UTF-8"
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return fmt.Sprintf("%s contains a control character", quoteShort(s))
		}
	}
	return ""
}

// orgData is the data of an organization event.
type orgData struct {
	Object *struct {
		ID       json.RawMessage            `json:"id"`
		Name     json.RawMessage            `json:"name"`
		Metadata map[string]json.RawMessage `json:"metadata"`
	} `json:"object"`
}

// decodeOrganization reads data.object of an organization event.
func decodeOrganization(data json.RawMessage, index *int, ps *problems) *Organization {
	if len(data) == 0 || string(data) == "null" {
		ps.add(index, "data", "is missing: an organization event carries data.object")
		return nil
	}
	var d orgData
	if err := json.Unmarshal(data, &d); err != nil {
		ps.add(index, "data", "must be an object holding the organization in data.object: "+jsonProblem(err).Error())
		return nil
	}
	if d.Object == nil {
		ps.add(index, "data.object", "is missing: an organization event carries the organization in data.object")
		return nil
	}
	org := &Organization{}
	bad := false
	id, err := decodeString(d.Object.ID)
	if err != nil {
		ps.add(index, "data.object.id", err.Error())
		bad = true
	} else if p := jobs.CheckID(id); p != "" {
		ps.add(index, "data.object.id", p)
		bad = true
	}
	org.ID = id
	if org.Name, err = decodeString(d.Object.Name); err != nil {
		ps.add(index, "data.object.name", err.Error())
		bad = true
	}
	for k, v := range d.Object.Metadata {
		if s, err := decodeString(v); err == nil && string(v) != "null" {
			if org.Metadata == nil {
				org.Metadata = map[string]string{}
			}
			org.Metadata[k] = s
		}
	}
	if bad {
		return nil
	}
	return org
}
