package ratelimit

import "testing"

func TestPacesAreTheSlowestBucketOfEachClass(t *testing.T) {
	st := State{Buckets: []BucketState{
		{ID: "rw10", Classes: "rw", Rate: 2.5},
		{ID: "w5", Classes: "w", Rate: 25.0 / 60},
		{ID: "r5", Classes: "r", Rate: 50.0 / 60},
		{ID: "w99", Classes: "-", Rate: 0.01}, // retired: paces nothing
	}}
	p := st.Paces()
	if p.Read != 50.0/60 || p.Write != 25.0/60 {
		t.Errorf("Paces = %+v, want read 50/min, write 25/min", p)
	}
	if p := (State{}).Paces(); p.Read != 0 || p.Write != 0 {
		t.Errorf("Paces of no bucket = %+v, want unknown (0)", p)
	}
}
