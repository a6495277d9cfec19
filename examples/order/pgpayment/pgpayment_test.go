package pgpayment_test

import (
	"context"
	"log"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/amqprpc/amqprpc/examples/order/pgpayment"
	"github.com/amqprpc/amqprpc/examples/order/services"
)

// newPayment returns a Payment in a schema of the test's own.
func newPayment(t *testing.T) *pgpayment.Payment {
	t.Helper()
	db, schema := testSchema(t)
	p, err := pgpayment.New(context.Background(), db, schema, log.New(t.Output(), "payment: ", 0))
	if err != nil {
		t.Fatalf("pgpayment.New = %v", err)
	}
	return p
}

// TestPayment checks that Payment keeps services.Payment's rules: a second
// charge for an order returns the first and moves no money, even when it
// is the same request run again; a declined card moves none; a refund
// gives the money back once and refuses a charge that comes after it.
func TestPayment(t *testing.T) {
	p := newPayment(t)
	charge := func(order, card string, cents int, messageID string) (services.Charge, error) {
		args := &services.ChargeArgs{OrderID: order, Card: card, Amount: cents}
		args.MessageID = messageID
		var c services.Charge
		err := p.Charge(args, &c)
		return c, err
	}
	first, err := charge("o-1", services.GoodCard, 700, "m-1")
	if err != nil || first.ID == "" || first.Amount != 700 {
		t.Fatalf("Charge(o-1) = %+v, %v; want a charge of 700", first, err)
	}
	// The same request again (its first run was cut off after the commit),
	// and a new request for the same order.
	for _, id := range []string{"m-1", "m-2"} {
		if again, err := charge("o-1", services.GoodCard, 700, id); err != nil || again != first {
			t.Errorf("Charge(o-1) again, message %s = %+v, %v; want %+v", id, again, err, first)
		}
	}
	if _, err := charge("o-2", services.DeclinedCard, 500, "m-3"); err == nil || !strings.Contains(err.Error(), "declined") {
		t.Errorf("Charge with a declined card = %v; want declined", err)
	}
	var undone bool
	for i, want := range []bool{true, false} {
		if err := p.Refund(&services.OrderRef{OrderID: "o-1"}, &undone); err != nil || undone != want {
			t.Errorf("Refund(o-1) #%d = %v, %v; want %v", i+1, undone, err, want)
		}
	}
	if err := p.Refund(&services.OrderRef{OrderID: "o-3"}, &undone); err != nil || undone {
		t.Errorf("Refund of an order never charged = %v, %v; want false", undone, err)
	}
	if _, err := charge("o-3", services.GoodCard, 300, "m-4"); err == nil || !strings.Contains(err.Error(), "was cancelled") {
		t.Errorf("Charge after the order's refund = %v; want it refused as cancelled", err)
	}
	want := []services.Entry{{OrderID: "o-1", Amount: 700}, {OrderID: "o-1", Amount: -700}}
	if got := p.Ledger(); !slices.Equal(got, want) {
		t.Errorf("Ledger() = %v; want %v", got, want)
	}
}

// TestConcurrentCharges charges one order from many goroutines,
// as two instances might: one charge, and every other attempt returns it
// or fails without moving money.
func TestConcurrentCharges(t *testing.T) {
	p := newPayment(t)
	var wg sync.WaitGroup
	charges := make([]services.Charge, 8)
	for i := range charges {
		wg.Go(func() {
			_ = p.Charge(&services.ChargeArgs{OrderID: "o-race", Card: services.GoodCard, Amount: 100}, &charges[i])
		})
	}
	wg.Wait()
	if got, want := p.Ledger(), []services.Entry{{OrderID: "o-race", Amount: 100}}; !slices.Equal(got, want) {
		t.Fatalf("Ledger() = %v; want %v, one charge", got, want)
	}
	for _, c := range charges {
		if c.ID != "" && c.ID != "ch-1" {
			t.Errorf("a concurrent Charge returned %+v; want ch-1 or an error", c)
		}
	}
}
