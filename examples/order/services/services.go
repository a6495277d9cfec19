// Package services holds the order example's five services, each on a
// queue of its own. [Order] places an order by calling the other four over
// the broker: [Inventory] reserves stock, [Coupon] redeems a coupon,
// [Payment] charges a card and [Logistics] creates a shipment. When a step
// fails, Order undoes the steps that ran (a saga): it releases the stock,
// un-redeems the coupon, refunds the charge and cancels the shipment.
//
// The broker delivers each request at least once, so every method can run
// twice for one call, and a compensation can arrive before the step it
// undoes. Each service therefore keys its work by order id: a repeated step
// returns what the first one did, an undo of a step that never ran is
// remembered so that the step, should it come late, is refused.
package services

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net/rpc"
	"strings"
	"time"

	"github.com/amqprpc/amqprpc"
)

// Queues names the shop's service queues.
type Queues struct {
	Order, Inventory, Payment, Coupon, Logistics string
}

// NewQueues returns the queues prefix.order, prefix.inventory,
// prefix.payment, prefix.coupon and prefix.logistics.
func NewQueues(prefix string) Queues {
	return Queues{
		Order:     prefix + ".order",
		Inventory: prefix + ".inventory",
		Payment:   prefix + ".payment",
		Coupon:    prefix + ".coupon",
		Logistics: prefix + ".logistics",
	}
}

// Item is a quantity of one product.
type Item struct {
	SKU string
	Qty int
}

// OrderRef names the order whose step a compensation undoes.
type OrderRef struct {
	OrderID string
}

// QueueExpiry is how long a service queue outlives its last server: the
// broker then deletes it, so a demo leaves no queue behind.
const QueueExpiry = 10 * time.Second

// Serve serves rcvr's methods, as rpc.Register would, on queue until ctx
// ends. opts come after WithQueueExpiry(QueueExpiry) and can override it.
func Serve(ctx context.Context, url, queue string, rcvr any, opts ...amqprpc.ServerOption) error {
	return ServeAs(ctx, url, queue, "", rcvr, opts...)
}

// ServeAs is [Serve] with the service named name, as rpc.RegisterName
// would, rather than after rcvr's type ("" keeps the type's name): a
// payment service on PostgreSQL (package pgpayment) serves as "Payment".
func ServeAs(ctx context.Context, url, queue, name string, rcvr any, opts ...amqprpc.ServerOption) error {
	srv := rpc.NewServer()
	register := func() error { return srv.Register(rcvr) }
	if name != "" {
		register = func() error { return srv.RegisterName(name, rcvr) }
	}
	if err := register(); err != nil {
		return err
	}
	opts = append([]amqprpc.ServerOption{amqprpc.WithQueueExpiry(QueueExpiry)}, opts...)
	return amqprpc.Serve(ctx, srv, url, queue, opts...)
}

// WaitServed returns once a server answers calls on client's queue.
// [amqprpc.Serve] gives no sign that it has started, and until a server has
// declared its queue the broker returns requests to it
// ([amqprpc.ErrNoQueue]), so a caller started along with its servers asks
// again, for up to d. (A queue that exists with no server holds the
// question until one comes or the call times out.) It calls a method no
// service has: any reply, even net/rpc's "can't find service", means that
// a server took the request.
func WaitServed(client *rpc.Client, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		err := client.Call("Probe.Served", 0, nil)
		cause := amqprpc.Cause(err)
		switch {
		case errors.Is(cause, amqprpc.ErrNoQueue) && time.Now().Before(deadline):
			time.Sleep(50 * time.Millisecond) // no queue yet: ask again
		case cause != err: // the call failed on its way: no queue, a timeout...
			return err
		default: // a server answered
			return nil
		}
	}
}

// dollars formats an amount in cents.
func dollars(cents int) string {
	return fmt.Sprintf("$%d.%02d", cents/100, cents%100)
}

// items formats a list of items as "2 tea, 1 mug".
func items(list []Item) string {
	s := make([]string, len(list))
	for i, it := range list {
		s[i] = fmt.Sprintf("%d %s", it.Qty, it.SKU)
	}
	return strings.Join(s, ", ")
}

// orDiscard returns l, or a logger that drops everything when l is nil.
func orDiscard(l *log.Logger) *log.Logger {
	if l == nil {
		return log.New(io.Discard, "", 0)
	}
	return l
}
