package transport

import (
	"slices"
	"testing"
)

func TestAcksRuns(t *testing.T) {
	type step struct {
		answered, rejected []uint64
		wantUpTo           uint64
		wantSingle         []uint64
	}
	tests := []struct {
		name     string
		prefetch int
		steps    []step
	}{
		{"in order, one run", 64, []step{
			{answered: []uint64{1, 2, 3}, wantUpTo: 3},
			{answered: []uint64{4}, wantUpTo: 4},
		}},
		{"a gap holds the run", 64, []step{
			{answered: []uint64{2, 3}, wantUpTo: 0},
			{answered: []uint64{1}, wantUpTo: 3},
		}},
		{"rejected tags join a run but never end it", 64, []step{
			{answered: []uint64{1}, rejected: []uint64{2}, wantUpTo: 1},
			{rejected: []uint64{3}, wantUpTo: 0},
			{answered: []uint64{4}, wantUpTo: 4},
		}},
		{"answers held behind a slow call are acked one by one at half the prefetch", 4, []step{
			{answered: []uint64{2}, wantUpTo: 0},
			{answered: []uint64{3}, wantUpTo: 0, wantSingle: []uint64{2, 3}},
			{answered: []uint64{4}, wantUpTo: 0},
			{answered: []uint64{1}, wantUpTo: 4},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := newAcks(tt.prefetch)
			for i, st := range tt.steps {
				for _, tag := range st.answered {
					a.answered(tag)
				}
				for _, tag := range st.rejected {
					a.settledElse(tag)
				}
				upTo, single := a.take()
				slices.Sort(single)
				if upTo != st.wantUpTo || !slices.Equal(single, st.wantSingle) {
					t.Fatalf("step %d: take() = %d, %v; want %d, %v", i, upTo, single, st.wantUpTo, st.wantSingle)
				}
			}
		})
	}
}
