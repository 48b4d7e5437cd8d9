package jobs

import "testing"

// Tasks already queued by running fleets must still be read, and tasks
// queued now must be read by workers already running: the type name, the id
// and the payload bytes of a change task never change.
func TestTaskOfIsWhatFleetsStore(t *testing.T) {
	c := Change{Action: Enable, OrgID: "org_1", ConnectionID: "con_1", AssignMembershipOnLogin: True, IsSignupEnabled: False}
	task, err := TaskOf(c, Origin{Batch: "b1", Line: 7, Event: "evt_1"})
	if err != nil {
		t.Fatal(err)
	}
	const payload = `{"v":1,"change":{"action":"enable","org_id":"org_1","connection_id":"con_1","assign_membership_on_login":true,"is_signup_enabled":false},"origin":{"batch":"b1","line":7,"event":"evt_1"}}`
	if task.Type != "orgconn:change:v1" || task.ID != "b1:7" || string(task.Payload) != payload || task.MaxRetry != 1_000_000 {
		t.Fatalf("task %s %s %s retry %d", task.Type, task.ID, task.Payload, task.MaxRetry)
	}
	if _, err := DecodePayload(task.Payload); err != nil {
		t.Fatal(err)
	}
}
