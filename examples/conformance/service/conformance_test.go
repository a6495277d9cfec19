package service

import (
	"strings"
	"testing"
	"time"
)

func TestConformance(t *testing.T) {
	var c Conformance
	var s string
	if err := c.Echo("hello ✓", &s); err != nil || s != "hello ✓" {
		t.Errorf(`Echo("hello ✓") = %q, %v; want "hello ✓", nil`, s, err)
	}
	var n int
	if err := c.Add(&Args{2, 3}, &n); err != nil || n != 5 {
		t.Errorf("Add(2, 3) = %d, %v; want 5, nil", n, err)
	}
	for _, text := range []string{"conformance: failed as asked", strings.Repeat("€", 2000)} {
		if err := c.Fail(text, &s); err == nil || err.Error() != text {
			t.Errorf("Fail(%.20q) = %v; want an error with that text", text, err)
		}
	}
	// An empty text would read as success to net/rpc: Fail refuses it.
	if err := c.Fail("", &s); err == nil || err.Error() == "" {
		t.Errorf(`Fail("") = %v; want an error with a text`, err)
	}
	start := time.Now()
	if err := c.Sleep(20, &n); err != nil || n != 20 || time.Since(start) < 20*time.Millisecond {
		t.Errorf("Sleep(20) = %d, %v after %v; want 20, nil after 20ms or more", n, err, time.Since(start))
	}
	for _, ms := range []int{-1, MaxSleep + 1} {
		if err := c.Sleep(ms, &n); err == nil {
			t.Errorf("Sleep(%d) = nil error; want one", ms)
		}
	}
	for want := 1; want <= 2; want++ {
		if err := c.Record("t", &n); err != nil || n != want {
			t.Errorf("Record(t) = %d, %v; want %d, nil", n, err, want)
		}
	}
	if err := c.Count("t", &n); err != nil || n != 2 {
		t.Errorf("Count(t) = %d, %v; want 2, nil", n, err)
	}
	if err := c.Count("other", &n); err != nil || n != 0 {
		t.Errorf("Count(other) = %d, %v; want 0, nil", n, err)
	}
}
