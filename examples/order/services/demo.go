package services

import (
	"context"
	"fmt"
	"io"
	"net/rpc"
	"strings"

	"github.com/amqprpc/amqprpc"
)

// DemoCatalog returns the products the demo's Inventory starts with.
func DemoCatalog() map[string]Product {
	return map[string]Product{
		"tea": {Stock: 10, Price: 450},
		"mug": {Stock: 3, Price: 1200},
	}
}

// DemoCoupons returns the codes the demo's Coupon service knows, with their
// percent off.
func DemoCoupons() map[string]int {
	return map[string]int{"WELCOME10": 10, "SPRING20": 20}
}

// DemoOrder is an order of the demo and how it must end.
type DemoOrder struct {
	Args PlaceArgs
	// Fails is text the order's error must contain, or "" when the order
	// must succeed.
	Fails string
}

// DemoOrders returns the demo's orders, meant to be placed in turn against
// services that start from [DemoCatalog] and [DemoCoupons]. Their ids start
// with run.
func DemoOrders(run string) []DemoOrder {
	id := func(n int) string { return fmt.Sprintf("%s-%d", run, n) }
	const home = "1 Main St, Springfield"
	return []DemoOrder{{
		Args: PlaceArgs{OrderID: id(1), Items: []Item{{"tea", 2}, {"mug", 1}}, Coupon: "WELCOME10", Card: GoodCard, Address: home},
	}, {
		// Two mugs are left: the coupon redeemed at the same time is undone.
		Args:  PlaceArgs{OrderID: id(2), Items: []Item{{"mug", 5}}, Coupon: "SPRING20", Card: GoodCard, Address: home},
		Fails: "out of stock",
	}, {
		// The stock, the coupon (usable again after order 2) and the
		// shipment, created while the card was being charged, are undone.
		Args:  PlaceArgs{OrderID: id(3), Items: []Item{{"tea", 1}}, Coupon: "SPRING20", Card: DeclinedCard, Address: home},
		Fails: "declined",
	}, {
		// Order 1 used the coupon: the stock reserved meanwhile is released.
		Args:  PlaceArgs{OrderID: id(4), Items: []Item{{"tea", 1}}, Coupon: "WELCOME10", Card: GoodCard, Address: home},
		Fails: "already used",
	}, {
		// The card was charged while the shipment failed: it is refunded.
		Args:  PlaceArgs{OrderID: id(5), Items: []Item{{"mug", 1}}, Card: GoodCard, Address: "PO Box 42, Springfield"},
		Fails: "PO box",
	}}
}

// RunDemo places the demo's orders in turn through client, a client of the
// order queue, and prints how each ended to w. It fails when one ended
// otherwise than it must, or when ctx ends first.
func RunDemo(ctx context.Context, client *rpc.Client, run string, w io.Writer) error {
	var wrong []string
	for _, d := range DemoOrders(run) {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("demo: %w", err)
		}
		id := d.Args.OrderID
		fmt.Fprintf(w, "=== %s: %s\n", id, describe(&d.Args))
		var r Receipt
		err := amqprpc.Call(ctx, client, "Order.Place", &d.Args, &r)
		switch {
		case err == nil && d.Fails == "":
			fmt.Fprintf(w, "=== %s placed: %s paid of %s, charge %s, shipment %s\n\n", id, dollars(r.Paid), dollars(r.Total), r.ChargeID, r.ShipmentID)
		case err != nil && d.Fails != "" && strings.Contains(err.Error(), d.Fails):
			fmt.Fprintf(w, "=== %s refused, as it should be: %v\n\n", id, err)
		default:
			want := "to be placed"
			if d.Fails != "" {
				want = fmt.Sprintf("to fail with %q", d.Fails)
			}
			fmt.Fprintf(w, "=== %s: UNEXPECTED: got %v; want it %s\n\n", id, err, want)
			wrong = append(wrong, fmt.Sprintf("order %s: got %v; want it %s", id, err, want))
		}
	}
	if wrong != nil {
		return fmt.Errorf("demo: %s", strings.Join(wrong, "; "))
	}
	return nil
}

// Ledger is what [Payment], and the payment service on PostgreSQL
// (package pgpayment), tell of the money that moved.
type Ledger interface {
	Ledger() []Entry
}

// DemoState describes what the run of the demo named run left in the
// services: stock, coupons, and the money that moved for its orders.
func DemoState(inv *Inventory, c *Coupon, p Ledger, run string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "stock: tea %d, mug %d\n", inv.Stock("tea"), inv.Stock("mug"))
	fmt.Fprintf(&b, "coupons: WELCOME10 used by %q, SPRING20 used by %q\n", c.RedeemedBy("WELCOME10"), c.RedeemedBy("SPRING20"))
	b.WriteString("money:")
	for _, e := range p.Ledger() {
		if !strings.HasPrefix(e.OrderID, run+"-") {
			continue // another run's, in a shared ledger
		}
		sign := "+"
		if e.Amount < 0 {
			sign, e.Amount = "-", -e.Amount
		}
		fmt.Fprintf(&b, " %s%s (%s)", sign, dollars(e.Amount), e.OrderID)
	}
	return b.String()
}
