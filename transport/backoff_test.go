package transport

import (
	"testing"
	"time"
)

func TestBackoffDoublesWithinBounds(t *testing.T) {
	b := Backoff{Min: 100 * time.Millisecond, Max: 2 * time.Second}
	for attempt := 0; attempt < 40; attempt++ {
		ceiling := b.Min << min(attempt, 20)
		if ceiling > b.Max {
			ceiling = b.Max
		}
		for i := 0; i < 50; i++ {
			d := b.delay(attempt)
			if d < ceiling/2 || d > ceiling {
				t.Fatalf("Delay(%d) = %v; want within [%v, %v]", attempt, d, ceiling/2, ceiling)
			}
		}
	}
}

func TestBackoffJitters(t *testing.T) {
	b := Backoff{Min: time.Second, Max: time.Second}
	seen := map[time.Duration]bool{}
	for i := 0; i < 20; i++ {
		seen[b.delay(3)] = true
	}
	if len(seen) < 2 {
		t.Fatalf("20 delays took %d distinct values; want jitter", len(seen))
	}
}
