package jobs

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// TypeChange is the asynq task type of a change. It is stored in Redis with
// every queued task: never rename it. A payload with a different layout gets a
// new type name (orgconn:change:v2) and workers keep a handler for the old one
// until no task of it remains.
const TypeChange = "orgconn:change:v1"

// PayloadVersion is the version written into every payload of TypeChange.
//
// The fields added for the Organization connections API and for names
// (organization_connection_name, organization_access_level, org_name,
// connection_name) and the action disable are optional and left out when not
// given, so they did not change the layout: payloads queued before them
// decode unchanged, and a change without them encodes to the same bytes as
// before. A worker built before them refuses a payload that carries them
// (unknown fields, or an unknown action) and archives it as a bad payload:
// upgrade every worker before importing changes that use them.
const PayloadVersion = 1

// Origin says where a change came from: a batch (a CSV import or one webhook
// request) and its line there, and for webhook events the event id.
type Origin struct {
	Batch string `json:"batch"`
	Line  int    `json:"line"`            // 1-based; for CSV the physical line of the row, header = 1
	Event string `json:"event,omitempty"` // CloudEvent id, for changes made from an Auth0 event
}

// Payload is the body of a TypeChange task.
type Payload struct {
	Version int    `json:"v"`
	Change  Change `json:"change"`
	Origin  Origin `json:"origin"`
}

// EncodePayload returns the task payload for c from origin o.
func EncodePayload(c Change, o Origin) ([]byte, error) {
	return json.Marshal(Payload{Version: PayloadVersion, Change: c, Origin: o})
}

// DecodePayload parses and validates a task payload. It rejects unknown
// fields, other versions and invalid changes, so a worker never acts on a
// payload it does not fully understand.
func DecodePayload(data []byte) (Payload, error) {
	var p Payload
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return Payload{}, fmt.Errorf("decode %s payload: %w", TypeChange, err)
	}
	if dec.More() {
		return Payload{}, fmt.Errorf("decode %s payload: trailing data after the JSON object", TypeChange)
	}
	if p.Version != PayloadVersion {
		return Payload{}, fmt.Errorf("decode %s payload: version %d, this worker reads version %d", TypeChange, p.Version, PayloadVersion)
	}
	if errs := p.Change.Validate(); len(errs) > 0 {
		return Payload{}, fmt.Errorf("decode %s payload: invalid change: %v", TypeChange, errs[0])
	}
	if err := CheckBatch(p.Origin.Batch); err != nil {
		return Payload{}, fmt.Errorf("decode %s payload: %w", TypeChange, err)
	}
	if p.Origin.Line < 1 {
		return Payload{}, fmt.Errorf("decode %s payload: line %d, want 1 or more", TypeChange, p.Origin.Line)
	}
	return p, nil
}

// MaxBatchLength bounds batch names, which appear in Redis keys and task ids.
const MaxBatchLength = 64

// CheckBatch returns an error unless name is 1 to 64 characters from
// A-Z a-z 0-9 . _ - (it appears in Redis keys and task ids).
func CheckBatch(name string) error {
	if name == "" {
		return fmt.Errorf("batch name is empty")
	}
	if len(name) > MaxBatchLength {
		return fmt.Errorf("batch name %s is %d characters, the limit is %d", quoteShort(name), len(name), MaxBatchLength)
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return fmt.Errorf("batch name %s contains %q: use letters, digits, '.', '_' and '-'", quoteShort(name), r)
		}
	}
	return nil
}

// TaskID is the asynq task id of the change at line of batch: "<batch>:<line>".
// It is deterministic, so enqueueing the same line again is detected.
func TaskID(batch string, line int) string {
	return batch + ":" + strconv.Itoa(line)
}

// ParseTaskID splits a TaskID into batch and line.
func ParseTaskID(id string) (batch string, line int, err error) {
	i := strings.LastIndexByte(id, ':')
	if i < 0 {
		return "", 0, fmt.Errorf("task id %s: want <batch>:<line>", quoteShort(id))
	}
	line, err = strconv.Atoi(id[i+1:])
	if err != nil || line < 1 {
		return "", 0, fmt.Errorf("task id %s: line is not a positive number", quoteShort(id))
	}
	if err := CheckBatch(id[:i]); err != nil {
		return "", 0, fmt.Errorf("task id %s: %w", quoteShort(id), err)
	}
	return id[:i], line, nil
}

// MaxRetry is the queue's retry limit of change tasks, stored with every
// task. Workers count failed attempts themselves and dead-letter a change
// when their own limit is reached; the queue's limit is set far above it
// because asynq archives a task that reached its limit even when the handler
// only asked to be run later.
const MaxRetry = 1_000_000

// Task is a change task as the queue stores it, in no queue library's terms:
// the producer's enqueue and the worker's requeue turn it into an asynq task
// (type, payload, id and retry limit as given, in the queue they use). Type,
// ID and the Payload's layout are persisted in Redis: never change them for
// an existing type.
type Task struct {
	Type     string // TypeChange
	ID       string // TaskID(origin.Batch, origin.Line): deterministic, so a line is queued once
	Payload  []byte // EncodePayload(change, origin)
	MaxRetry int    // MaxRetry
}

// TaskOf returns the task of the change c at origin o.
func TaskOf(c Change, o Origin) (Task, error) {
	id := TaskID(o.Batch, o.Line)
	data, err := EncodePayload(c, o)
	if err != nil {
		return Task{}, fmt.Errorf("encode task %s: %w", id, err)
	}
	return Task{Type: TypeChange, ID: id, Payload: data, MaxRetry: MaxRetry}, nil
}
