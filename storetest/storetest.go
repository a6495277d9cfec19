// Package storetest checks that an [amqprpc.ReplyStore] keeps the contract a
// server relies on: claims that exclude other owners until they expire or
// are released, replies stored exactly and kept for their time, and one
// winner when many claim at once. Every store of this repository runs it,
// and so can a store of yours:
//
//	func TestContract(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) amqprpc.ReplyStore { return newPostgresStore(t) })
//	}
//
// The tests use keys of their own, unique to each run, so a store shared
// with other users (a Redis server, a database) can be tested in place.
// They take about 3 s, most of it waiting for claims and replies to
// expire.
package storetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/amqprpc/amqprpc"
)

// Timings of the tests. A store may round times to the millisecond.
const (
	// long is a lease or time to live that does not run out in a test.
	long = time.Minute
	// short is a lease or time to live that the tests wait out.
	short = 300 * time.Millisecond
	// expiryBound bounds how long after short a store may take to let an
	// entry go.
	expiryBound = 5 * time.Second
)

// Run runs the contract's tests, each as a subtest of t, on the stores
// newStore returns (a new one per subtest, or the same one: each subtest
// uses keys of its own).
func Run(t *testing.T, newStore func(t *testing.T) amqprpc.ReplyStore) {
	for _, tc := range []struct {
		name string
		test func(*testing.T, amqprpc.ReplyStore, func(string) string)
	}{
		{"claim-free-key", testClaimFree},
		{"claim-held-by-another", testClaimHeld},
		{"claim-renewed-by-owner", testClaimRenewed},
		{"reply-stored-exactly", testReplyExact},
		{"reply-replaces-any-claim", testReplyReplacesClaim},
		{"release-by-owner", testReleaseByOwner},
		{"release-by-another-does-nothing", testReleaseByAnother},
		{"release-keeps-reply", testReleaseKeepsReply},
		{"claim-expires", testClaimExpires},
		{"renewal-extends-lease", testRenewalExtends},
		{"reply-expires", testReplyExpires},
		{"put-copies-body", testPutCopies},
		{"one-winner", testOneWinner},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store := newStore(t)
			prefix := "storetest/" + rand.Text()[:10] + "/"
			tc.test(t, store, func(name string) string { return prefix + name })
		})
	}
}

// ctx bounds one store call.
func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

func claim(t *testing.T, s amqprpc.ReplyStore, key, owner string, lease time.Duration) amqprpc.Claim {
	t.Helper()
	c, err := s.Claim(ctx(t), key, owner, lease)
	if err != nil {
		t.Fatalf("Claim(%q, %q, %v) = %v", key, owner, lease, err)
	}
	return c
}

func put(t *testing.T, s amqprpc.ReplyStore, key string, r amqprpc.StoredReply, ttl time.Duration) {
	t.Helper()
	if err := s.Put(ctx(t), key, r, ttl); err != nil {
		t.Fatalf("Put(%q, %v) = %v", key, ttl, err)
	}
}

func release(t *testing.T, s amqprpc.ReplyStore, key, owner string) {
	t.Helper()
	if err := s.Release(ctx(t), key, owner); err != nil {
		t.Fatalf("Release(%q, %q) = %v", key, owner, err)
	}
}

// wantClaimed checks that owner got the claim.
func wantClaimed(t *testing.T, c amqprpc.Claim, owner string) {
	t.Helper()
	if c.Reply != nil || c.HeldBy != "" {
		t.Fatalf("Claim(..., %q) = %s; want the claim", owner, show(c))
	}
}

// wantHeld checks that the claim is held by holder.
func wantHeld(t *testing.T, c amqprpc.Claim, holder string) {
	t.Helper()
	if c.Reply != nil || c.HeldBy != holder {
		t.Fatalf("Claim = %s; want it held by %q", show(c), holder)
	}
}

// wantReply checks that the claim found r.
func wantReply(t *testing.T, c amqprpc.Claim, r amqprpc.StoredReply) {
	t.Helper()
	if c.Reply == nil || c.Reply.ContentType != r.ContentType || !bytes.Equal(c.Reply.Body, r.Body) || c.Reply.Error != r.Error {
		t.Fatalf("Claim = %s; want the reply %+v", show(c), r)
	}
}

func show(c amqprpc.Claim) string {
	switch {
	case c.Reply != nil:
		return fmt.Sprintf("reply {%q, %q, error %q}", c.Reply.ContentType, c.Reply.Body, c.Reply.Error)
	case c.HeldBy != "":
		return fmt.Sprintf("held by %q", c.HeldBy)
	}
	return "claimed"
}

func testClaimFree(t *testing.T, s amqprpc.ReplyStore, key func(string) string) {
	wantClaimed(t, claim(t, s, key("a"), "owner-1", long), "owner-1")
	// Keys are independent.
	wantClaimed(t, claim(t, s, key("b"), "owner-2", long), "owner-2")
}

func testClaimHeld(t *testing.T, s amqprpc.ReplyStore, key func(string) string) {
	wantClaimed(t, claim(t, s, key("a"), "owner-1", long), "owner-1")
	wantHeld(t, claim(t, s, key("a"), "owner-2", long), "owner-1")
}

func testClaimRenewed(t *testing.T, s amqprpc.ReplyStore, key func(string) string) {
	wantClaimed(t, claim(t, s, key("a"), "owner-1", long), "owner-1")
	wantClaimed(t, claim(t, s, key("a"), "owner-1", long), "owner-1")
	wantHeld(t, claim(t, s, key("a"), "owner-2", long), "owner-1")
}

func testReplyExact(t *testing.T, s amqprpc.ReplyStore, key func(string) string) {
	for i, r := range []amqprpc.StoredReply{
		{ContentType: "application/x-gob", Body: []byte{0, 1, 2, 0xff, 0xfe, '\n', 0}},
		{ContentType: "application/json", Body: []byte(`{"ID":"ch-1"}`)},
		{ContentType: "application/json", Error: "card …0002 declined"},
		{ContentType: "", Body: nil},
		{ContentType: "text/plain", Body: bytes.Repeat([]byte("x"), 256<<10)},
	} {
		k := key(fmt.Sprint(i))
		wantClaimed(t, claim(t, s, k, "owner-1", long), "owner-1")
		put(t, s, k, r, long)
		wantReply(t, claim(t, s, k, "owner-2", long), r)
		wantReply(t, claim(t, s, k, "owner-1", long), r) // its claim is gone too
	}
}

func testReplyReplacesClaim(t *testing.T, s amqprpc.ReplyStore, key func(string) string) {
	r := amqprpc.StoredReply{ContentType: "application/json", Body: []byte("42")}
	wantClaimed(t, claim(t, s, key("a"), "owner-1", long), "owner-1")
	put(t, s, key("a"), r, long) // by a server whose claim had expired, say
	wantReply(t, claim(t, s, key("a"), "owner-3", long), r)
	put(t, s, key("b"), r, long) // no claim at all
	wantReply(t, claim(t, s, key("b"), "owner-3", long), r)
}

func testReleaseByOwner(t *testing.T, s amqprpc.ReplyStore, key func(string) string) {
	wantClaimed(t, claim(t, s, key("a"), "owner-1", long), "owner-1")
	release(t, s, key("a"), "owner-1")
	wantClaimed(t, claim(t, s, key("a"), "owner-2", long), "owner-2")
	release(t, s, key("never-claimed"), "owner-1") // nothing to release: no error
}

func testReleaseByAnother(t *testing.T, s amqprpc.ReplyStore, key func(string) string) {
	wantClaimed(t, claim(t, s, key("a"), "owner-1", long), "owner-1")
	release(t, s, key("a"), "owner-2")
	wantHeld(t, claim(t, s, key("a"), "owner-2", long), "owner-1")
}

func testReleaseKeepsReply(t *testing.T, s amqprpc.ReplyStore, key func(string) string) {
	r := amqprpc.StoredReply{ContentType: "application/json", Body: []byte(`"kept"`)}
	wantClaimed(t, claim(t, s, key("a"), "owner-1", long), "owner-1")
	put(t, s, key("a"), r, long)
	release(t, s, key("a"), "owner-1")
	wantReply(t, claim(t, s, key("a"), "owner-2", long), r)
}

// eventually polls f until it reports true, and fails the test if it does
// not within short plus expiryBound. It returns how long it took.
func eventually(t *testing.T, what string, f func() bool) time.Duration {
	t.Helper()
	begin := time.Now()
	for !f() {
		if time.Since(begin) > short+expiryBound {
			t.Fatalf("%s: not within %v", what, short+expiryBound)
		}
		time.Sleep(20 * time.Millisecond) // polling for an expiry, with a deadline
	}
	return time.Since(begin)
}

func testClaimExpires(t *testing.T, s amqprpc.ReplyStore, key func(string) string) {
	begin := time.Now()
	wantClaimed(t, claim(t, s, key("a"), "owner-1", short), "owner-1")
	eventually(t, "owner-2 takes over owner-1's expired claim", func() bool {
		c := claim(t, s, key("a"), "owner-2", long)
		if c.HeldBy == "" && c.Reply == nil {
			return true
		}
		wantHeld(t, c, "owner-1")
		return false
	})
	if took := time.Since(begin); took < short {
		t.Fatalf("a claim with a lease of %v was taken over after %v; want no sooner than the lease", short, took)
	}
	wantHeld(t, claim(t, s, key("a"), "owner-1", long), "owner-2")
}

func testRenewalExtends(t *testing.T, s amqprpc.ReplyStore, key func(string) string) {
	const lease = 2 * time.Second
	begin := time.Now()
	wantClaimed(t, claim(t, s, key("a"), "owner-1", lease), "owner-1")
	time.Sleep(lease / 2) // half the lease goes by
	wantClaimed(t, claim(t, s, key("a"), "owner-1", lease), "owner-1")
	time.Sleep(lease/2 + lease/5) // past the first lease, within the renewed one
	c := claim(t, s, key("a"), "owner-2", long)
	if time.Since(begin) < lease*3/2 {
		wantHeld(t, c, "owner-1")
	} // else the machine stalled past the renewed lease too: nothing to check
}

func testReplyExpires(t *testing.T, s amqprpc.ReplyStore, key func(string) string) {
	r := amqprpc.StoredReply{ContentType: "application/json", Body: []byte("1")}
	begin := time.Now()
	put(t, s, key("a"), r, short)
	eventually(t, "the reply expires", func() bool {
		c := claim(t, s, key("a"), "owner-1", long)
		if c.Reply == nil {
			wantClaimed(t, c, "owner-1")
			return true
		}
		wantReply(t, c, r)
		return false
	})
	if took := time.Since(begin); took < short {
		t.Fatalf("a reply kept for %v was gone after %v; want it kept that long", short, took)
	}
}

func testPutCopies(t *testing.T, s amqprpc.ReplyStore, key func(string) string) {
	body := []byte("original")
	put(t, s, key("a"), amqprpc.StoredReply{ContentType: "text/plain", Body: body}, long)
	copy(body, "XXXXXXXX") // the caller reuses its buffer
	c := claim(t, s, key("a"), "owner-1", long)
	wantReply(t, c, amqprpc.StoredReply{ContentType: "text/plain", Body: []byte("original")})
	copy(c.Reply.Body, "YYYYYYYY") // and the one it got back
	wantReply(t, claim(t, s, key("a"), "owner-1", long), amqprpc.StoredReply{ContentType: "text/plain", Body: []byte("original")})
}

func testOneWinner(t *testing.T, s amqprpc.ReplyStore, key func(string) string) {
	const owners = 16
	for round := range 5 {
		k := key(fmt.Sprint(round))
		var wg sync.WaitGroup
		claims := make([]amqprpc.Claim, owners)
		errs := make([]error, owners)
		for i := range owners {
			wg.Go(func() { claims[i], errs[i] = s.Claim(ctx(t), k, fmt.Sprintf("owner-%d", i), long) })
		}
		wg.Wait()
		winners := 0
		var winner string
		for i, c := range claims {
			if errs[i] != nil {
				t.Fatalf("Claim by owner-%d = %v", i, errs[i])
			}
			if c.Reply == nil && c.HeldBy == "" {
				winners++
				winner = fmt.Sprintf("owner-%d", i)
			}
		}
		if winners != 1 {
			t.Fatalf("round %d: %d of %d owners claiming at once got the claim; want 1", round, winners, owners)
		}
		for i, c := range claims {
			if o := fmt.Sprintf("owner-%d", i); o != winner && c.HeldBy != winner {
				t.Fatalf("round %d: %s was told %s; want held by the winner %s", round, o, show(c), winner)
			}
		}
	}
}
