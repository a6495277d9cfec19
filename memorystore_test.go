package amqprpc

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestMemoryStoreBounded fills a small store: it keeps within its size by
// forgetting the entries written longest ago, and refuses a reply larger
// than itself.
func TestMemoryStoreBounded(t *testing.T) {
	ctx := context.Background()
	const max = 64 << 10
	m := NewMemoryStore(max)
	body := []byte(strings.Repeat("x", 1000))
	for i := range 1000 {
		if err := m.Put(ctx, fmt.Sprintf("q/%d", i), StoredReply{ContentType: "text/plain", Body: body}, time.Hour); err != nil {
			t.Fatalf("Put(%d) = %v", i, err)
		}
	}
	if m.size > max {
		t.Errorf("store holds %d bytes; want at most %d", m.size, max)
	}
	perEntry := memoryEntryOverhead + len("q/999") + len("text/plain") + len(body)
	if got, want := m.Len(), max/perEntry; got != want {
		t.Errorf("Len() = %d; want %d, as many as fit", got, want)
	}
	for _, tc := range []struct {
		key   string
		reply bool
	}{{"q/0", false}, {"q/998", true}, {"q/999", true}} {
		c, err := m.Claim(ctx, tc.key, "o", time.Minute)
		if err != nil || (c.Reply != nil) != tc.reply {
			t.Errorf("Claim(%q) = %+v, %v; want a reply: %v", tc.key, c, err, tc.reply)
		}
	}
	if err := m.Put(ctx, "q/big", StoredReply{Body: make([]byte, max)}, time.Hour); err == nil {
		t.Errorf("Put of a reply larger than the store = nil; want an error")
	}
	if c, _ := m.Claim(ctx, "q/998", "o", time.Minute); c.Reply == nil {
		t.Errorf("a refused Put dropped other entries")
	}
}

// TestMemoryStoreExpiry moves the store's clock: a claim lasts its lease, a
// reply its time to live, and expired entries are dropped as they are met.
func TestMemoryStoreExpiry(t *testing.T) {
	ctx := context.Background()
	now := time.Unix(1_000_000, 0)
	m := NewMemoryStore(0)
	m.now = func() time.Time { return now }
	if c, _ := m.Claim(ctx, "q/a", "o1", 10*time.Second); c.HeldBy != "" || c.Reply != nil {
		t.Fatalf("first Claim = %+v; want the claim", c)
	}
	now = now.Add(10*time.Second - time.Millisecond)
	if c, _ := m.Claim(ctx, "q/a", "o2", time.Second); c.HeldBy != "o1" {
		t.Fatalf("Claim within the lease = %+v; want held by o1", c)
	}
	now = now.Add(time.Millisecond)
	if c, _ := m.Claim(ctx, "q/a", "o2", time.Second); c.HeldBy != "" || c.Reply != nil {
		t.Fatalf("Claim at the end of the lease = %+v; want the claim", c)
	}
	if err := m.Put(ctx, "q/a", StoredReply{Body: []byte("r")}, time.Minute); err != nil {
		t.Fatal(err)
	}
	now = now.Add(time.Minute)
	if c, _ := m.Claim(ctx, "q/a", "o3", time.Second); c.Reply != nil {
		t.Fatalf("Claim after the reply's ttl = %+v; want the claim", c)
	}
	if got := m.Len(); got != 1 {
		t.Errorf("Len() = %d; want 1 (o3's claim)", got)
	}
}
