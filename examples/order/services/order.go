package services

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/rpc"
	"strings"
	"time"

	"github.com/amqprpc/amqprpc"
)

// PlaceArgs is an order to place.
type PlaceArgs struct {
	OrderID string
	Items   []Item
	Coupon  string // optional
	Card    string
	Address string

	// Delivery gives the order service the request's context: the
	// caller's deadline (and trace, when tracing is on), which it passes on
	// to the services it calls.
	amqprpc.Delivery
}

// Receipt is a placed order.
type Receipt struct {
	OrderID    string
	Total      int // cents, before the discount
	Paid       int // cents
	ChargeID   string
	ShipmentID string
}

// Order places orders by calling the inventory, coupon, payment and
// logistics services, through a client of each one's queue.
type Order struct {
	log                                   *log.Logger
	inventory, coupon, payment, logistics *rpc.Client
}

// DialOrder returns an Order that calls the services on the queues q names
// and logs its steps to l, if not nil. opts configure its clients. Close it
// once it no longer serves.
func DialOrder(url string, q Queues, l *log.Logger, opts ...amqprpc.ClientOption) (*Order, error) {
	o := &Order{log: orDiscard(l)}
	for _, c := range []struct {
		client **rpc.Client
		queue  string
	}{
		{&o.inventory, q.Inventory},
		{&o.coupon, q.Coupon},
		{&o.payment, q.Payment},
		{&o.logistics, q.Logistics},
	} {
		client, err := amqprpc.Dial(url, c.queue, opts...)
		if err != nil {
			o.Close()
			return nil, err
		}
		*c.client = client
	}
	return o, nil
}

// Close closes the Order's clients.
func (o *Order) Close() error {
	var errs []error
	for _, c := range []*rpc.Client{o.inventory, o.coupon, o.payment, o.logistics} {
		if c != nil {
			errs = append(errs, c.Close())
		}
	}
	return errors.Join(errs...)
}

// WaitServed waits until the four services are served, for up to d (see
// the function [WaitServed]).
func (o *Order) WaitServed(d time.Duration) error {
	return errors.Join(
		WaitServed(o.inventory, d), WaitServed(o.coupon, d),
		WaitServed(o.payment, d), WaitServed(o.logistics, d))
}

// step is a call to a service and how to undo it.
type step struct {
	service string
	call    *rpc.Call
	undo    func() *rpc.Call
}

// Place places an order in two rounds of calls, the calls of a round going
// out together: first reserving the stock and redeeming the coupon, then
// charging the card and creating the shipment, which need the price and the
// discount. When a step fails, Place undoes every step that ran, and fails
// with the reason. Since every step is keyed by the order id, Place too can
// run twice for one order: the second run finds the work done, or undone.
//
// Every call carries the request's context, so the caller's deadline bounds
// the steps, and one trace runs through them. The undo steps keep its trace
// but not its deadline (context.WithoutCancel): an order that ran out of
// time must still be undone.
func (o *Order) Place(args *PlaceArgs, receipt *Receipt) error {
	id := args.OrderID
	if id == "" || len(args.Items) == 0 {
		return errors.New("an order needs an id and items")
	}
	ctx := args.Context()
	undoCtx := context.WithoutCancel(ctx)
	ref := &OrderRef{OrderID: id}
	var ran []*step // what to undo should the order fail

	var res Reservation
	var disc Discount
	round := []*step{{
		service: "inventory",
		call:    goCall(ctx, o.inventory, "Inventory.Reserve", &ReserveArgs{OrderID: id, Items: args.Items}, &res),
		undo:    func() *rpc.Call { return goCall(undoCtx, o.inventory, "Inventory.Release", ref, new(bool)) },
	}}
	if args.Coupon != "" {
		redeem := &RedeemArgs{OrderID: id, Code: args.Coupon}
		round = append(round, &step{
			service: "coupon",
			call:    goCall(ctx, o.coupon, "Coupon.Redeem", redeem, &disc),
			undo:    func() *rpc.Call { return goCall(undoCtx, o.coupon, "Coupon.Unredeem", redeem, new(bool)) },
		})
	}
	o.log.Printf("%s: calling %s", id, together(round))
	if err := await(round, &ran); err != nil {
		return o.fail(id, err, ran)
	}

	paid := res.Total * (100 - disc.Percent) / 100
	var charge Charge
	var shipment Shipment
	round = []*step{{
		service: "payment",
		call:    goCall(ctx, o.payment, "Payment.Charge", &ChargeArgs{OrderID: id, Card: args.Card, Amount: paid}, &charge),
		undo:    func() *rpc.Call { return goCall(undoCtx, o.payment, "Payment.Refund", ref, new(bool)) },
	}, {
		service: "logistics",
		call:    goCall(ctx, o.logistics, "Logistics.Ship", &ShipArgs{OrderID: id, Items: args.Items, Address: args.Address}, &shipment),
		undo:    func() *rpc.Call { return goCall(undoCtx, o.logistics, "Logistics.Cancel", ref, new(bool)) },
	}}
	o.log.Printf("%s: calling %s", id, together(round))
	if err := await(round, &ran); err != nil {
		return o.fail(id, err, ran)
	}

	*receipt = Receipt{OrderID: id, Total: res.Total, Paid: paid, ChargeID: charge.ID, ShipmentID: shipment.ID}
	o.log.Printf("%s: placed: paid %s (%s), shipment %s", id, dollars(paid), charge.ID, shipment.ID)
	return nil
}

// goCall runs [amqprpc.Call] in the background and returns the call, as
// client.Go does for a call without a context.
func goCall(ctx context.Context, client *rpc.Client, method string, args, reply any) *rpc.Call {
	call := &rpc.Call{ServiceMethod: method, Args: args, Reply: reply, Done: make(chan *rpc.Call, 1)}
	go func() {
		call.Error = amqprpc.Call(ctx, client, method, args, reply)
		call.Done <- call
	}()
	return call
}

// together names the services steps call, "a", "a and b at once" or "a, b
// and c at once".
func together(steps []*step) string {
	names := make([]string, len(steps))
	for i, s := range steps {
		names[i] = s.service
	}
	if len(names) == 1 {
		return names[0]
	}
	return strings.Join(names[:len(names)-1], ", ") + " and " + names[len(names)-1] + " at once"
}

// await waits for the calls of a round of steps, adds the steps that ran
// (or may have) to ran, and returns the failures, if any.
func await(round []*step, ran *[]*step) error {
	var failures []string
	for _, s := range round {
		<-s.call.Done
		if err := s.call.Error; err != nil {
			failures = append(failures, s.service+": "+err.Error())
			if !mayHaveRun(err) {
				continue
			}
		}
		*ran = append(*ran, s)
	}
	if failures != nil {
		return errors.New(strings.Join(failures, "; "))
	}
	return nil
}

// mayHaveRun reports whether a failed call may have done its work all the
// same. A service's own error means it did nothing (each service checks
// before it acts), and a request the broker returned reached no service;
// but a call that failed on its way, timed out or cut off by a lost
// connection, may have run, so its step is undone too. Undoing is
// idempotent, and harmless for a step that did not run.
func mayHaveRun(err error) bool {
	cause := amqprpc.Cause(err)
	if errors.Is(cause, amqprpc.ErrNoQueue) {
		return false
	}
	return cause != err // a failure of the call, not of the service
}

// fail undoes the steps that ran, all at once, and returns why the order
// failed.
func (o *Order) fail(id string, reason error, ran []*step) error {
	if len(ran) == 0 {
		o.log.Printf("%s: %v; nothing to undo", id, reason)
	} else {
		o.log.Printf("%s: %v; undoing %s", id, reason, together(ran))
	}
	undos := make([]*rpc.Call, len(ran))
	for i, s := range ran {
		undos[i] = s.undo()
	}
	var failures []string
	for i, c := range undos {
		<-c.Done
		if c.Error != nil {
			failures = append(failures, fmt.Sprintf("undo %s: %v", ran[i].service, c.Error))
		}
	}
	if failures != nil {
		// The order is left half done: an operator, or a retry of the
		// undo steps (they are idempotent), must finish the job.
		o.log.Printf("%s: %s", id, strings.Join(failures, "; "))
		return fmt.Errorf("order %s failed: %v (and %s)", id, reason, strings.Join(failures, "; "))
	}
	return fmt.Errorf("order %s failed: %v", id, reason)
}

// describe says what an order asks for.
func describe(args *PlaceArgs) string {
	coupon := "no coupon"
	if args.Coupon != "" {
		coupon = "coupon " + args.Coupon
	}
	return fmt.Sprintf("%s, %s, card %s, to %q", items(args.Items), coupon, masked(args.Card), args.Address)
}
