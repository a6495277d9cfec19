package services_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/rpc"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/amqprpc/amqprpc"
	"github.com/amqprpc/amqprpc/examples/order/services"
	"github.com/amqprpc/amqprpc/internal/brokertest"
)

const home = "1 Main St, Springfield"

// shop is the five services, each served on a fresh queue, and a client of
// the order queue.
type shop struct {
	inventory *services.Inventory
	coupon    *services.Coupon
	payment   *services.Payment
	logistics *services.Logistics
	client    *rpc.Client
}

// shopConfig changes how openShop builds the shop.
type shopConfig struct {
	// wrapLogistics, if set, returns what to serve as Logistics instead of
	// the shop's Logistics.
	wrapLogistics func(*services.Logistics) any
	callTimeout   time.Duration // of the order service's calls; default 10s
}

// openShop serves the shop with the demo's catalog and coupons until the
// test ends.
func openShop(t *testing.T, cfg shopConfig) *shop {
	t.Helper()
	url := brokertest.URL(t)
	q := services.Queues{
		Order:     brokertest.Queue(t, url, "order"),
		Inventory: brokertest.Queue(t, url, "order-inventory"),
		Payment:   brokertest.Queue(t, url, "order-payment"),
		Coupon:    brokertest.Queue(t, url, "order-coupon"),
		Logistics: brokertest.Queue(t, url, "order-logistics"),
	}
	logger := func(name string) *log.Logger { return log.New(t.Output(), name+": ", 0) }
	s := &shop{
		inventory: services.NewInventory(services.DemoCatalog(), logger("inventory")),
		coupon:    services.NewCoupon(services.DemoCoupons(), logger("coupon")),
		payment:   services.NewPayment(logger("payment")),
		logistics: services.NewLogistics(logger("logistics")),
	}
	var logistics any = s.logistics
	if cfg.wrapLogistics != nil {
		logistics = cfg.wrapLogistics(s.logistics)
	}
	order, err := services.DialOrder(url, q, logger("order"), amqprpc.WithCallTimeout(cmpOr(cfg.callTimeout, 10*time.Second)))
	if err != nil {
		t.Fatalf("DialOrder = %v", err)
	}
	t.Cleanup(func() { order.Close() }) // after the order service's Serve has returned
	for _, svc := range []struct {
		name, queue string
		rcvr        any
	}{
		{"Inventory", q.Inventory, s.inventory},
		{"Coupon", q.Coupon, s.coupon},
		{"Payment", q.Payment, s.payment},
		{"Logistics", q.Logistics, logistics},
	} {
		brokertest.Serve(t, func(ctx context.Context) error { return serveAs(ctx, url, svc.queue, svc.name, svc.rcvr) })
	}
	// Registered last, its cleanup runs first: the order service stops
	// before the services it calls.
	brokertest.Serve(t, func(ctx context.Context) error { return services.Serve(ctx, url, q.Order, order) })
	for _, queue := range []string{q.Order, q.Inventory, q.Payment, q.Coupon, q.Logistics} {
		brokertest.WaitForConsumers(t, url, queue, 1)
	}
	s.client = brokertest.Dial(t, amqprpc.Dial, url, q.Order, amqprpc.WithCallTimeout(10*time.Second))
	return s
}

// serveAs serves rcvr on queue under the service name name.
func serveAs(ctx context.Context, url, queue, name string, rcvr any) error {
	srv := rpc.NewServer()
	if err := srv.RegisterName(name, rcvr); err != nil {
		return err
	}
	return amqprpc.Serve(ctx, srv, url, queue)
}

func cmpOr(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

func (s *shop) place(args services.PlaceArgs) (services.Receipt, error) {
	var r services.Receipt
	err := s.client.Call("Order.Place", &args, &r)
	return r, err
}

// wantStock checks the stock of each product.
func (s *shop) wantStock(t *testing.T, want map[string]int) {
	t.Helper()
	for sku, n := range want {
		if got := s.inventory.Stock(sku); got != n {
			t.Errorf("Stock(%q) = %d; want %d", sku, got, n)
		}
	}
}

// wantLedger checks the money that moved.
func (s *shop) wantLedger(t *testing.T, want ...services.Entry) {
	t.Helper()
	if got := s.payment.Ledger(); !slices.Equal(got, want) {
		t.Errorf("Ledger() = %v; want %v", got, want)
	}
}

// wantUndone checks that an order's step was undone: a late request for
// that step is refused, since each undo leaves a mark that the order was
// given up.
func wantUndone(t *testing.T, step string, late error) {
	t.Helper()
	if late == nil || !strings.Contains(late.Error(), "was cancelled") {
		t.Errorf("%s again after the order failed = %v; want it refused as cancelled", step, late)
	}
}

func TestPlace(t *testing.T) {
	for _, tt := range []struct {
		name  string
		setup func(s *shop)
		args  services.PlaceArgs
		fails string // "" when the order must be placed
		check func(t *testing.T, s *shop, id string)
	}{{
		name: "placed",
		args: services.PlaceArgs{Items: []services.Item{{"tea", 2}, {"mug", 1}}, Coupon: "WELCOME10", Card: services.GoodCard, Address: home},
		check: func(t *testing.T, s *shop, id string) {
			s.wantStock(t, map[string]int{"tea": 8, "mug": 2})
			s.wantLedger(t, services.Entry{OrderID: id, Amount: 1890})
			if got := s.coupon.RedeemedBy("WELCOME10"); got != id {
				t.Errorf("RedeemedBy(WELCOME10) = %q; want %q", got, id)
			}
			if sh, ok := s.logistics.Shipment(id); !ok || sh.Cancelled || sh.Address != home {
				t.Errorf("Shipment(%q) = %+v, %v; want a live shipment to %q", id, sh, ok, home)
			}
		},
	}, {
		name:  "out of stock",
		args:  services.PlaceArgs{Items: []services.Item{{"mug", 5}}, Coupon: "SPRING20", Card: services.GoodCard, Address: home},
		fails: "inventory: out of stock: mug (want 5, have 3)",
		check: func(t *testing.T, s *shop, id string) {
			s.wantStock(t, map[string]int{"mug": 3})
			s.wantLedger(t)
			// The coupon, redeemed while the stock was checked, is usable again.
			if got := s.coupon.RedeemedBy("SPRING20"); got != "" {
				t.Errorf("RedeemedBy(SPRING20) = %q; want it usable again", got)
			}
			wantUndone(t, "Redeem", s.coupon.Redeem(&services.RedeemArgs{OrderID: id, Code: "SPRING20"}, new(services.Discount)))
			if sh, ok := s.logistics.Shipment(id); ok {
				t.Errorf("Shipment(%q) = %+v; want none", id, sh)
			}
		},
	}, {
		name:  "card declined",
		args:  services.PlaceArgs{Items: []services.Item{{"tea", 1}}, Coupon: "SPRING20", Card: services.DeclinedCard, Address: home},
		fails: "payment: card …0002 declined",
		check: func(t *testing.T, s *shop, id string) {
			s.wantStock(t, map[string]int{"tea": 10})
			wantUndone(t, "Reserve", s.inventory.Reserve(&services.ReserveArgs{OrderID: id, Items: []services.Item{{"tea", 1}}}, new(services.Reservation)))
			s.wantLedger(t)
			if got := s.coupon.RedeemedBy("SPRING20"); got != "" {
				t.Errorf("RedeemedBy(SPRING20) = %q; want it usable again", got)
			}
			wantUndone(t, "Redeem", s.coupon.Redeem(&services.RedeemArgs{OrderID: id, Code: "SPRING20"}, new(services.Discount)))
			// The shipment was created while the card was charged.
			if sh, ok := s.logistics.Shipment(id); !ok || sh.ID == "" || !sh.Cancelled {
				t.Errorf("Shipment(%q) = %+v, %v; want a cancelled shipment", id, sh, ok)
			}
		},
	}, {
		name: "coupon already used",
		setup: func(s *shop) {
			_ = s.coupon.Redeem(&services.RedeemArgs{OrderID: "earlier", Code: "WELCOME10"}, new(services.Discount))
		},
		args:  services.PlaceArgs{Items: []services.Item{{"tea", 1}}, Coupon: "WELCOME10", Card: services.GoodCard, Address: home},
		fails: "coupon: WELCOME10 already used",
		check: func(t *testing.T, s *shop, id string) {
			s.wantStock(t, map[string]int{"tea": 10})
			wantUndone(t, "Reserve", s.inventory.Reserve(&services.ReserveArgs{OrderID: id, Items: []services.Item{{"tea", 1}}}, new(services.Reservation)))
			if got := s.coupon.RedeemedBy("WELCOME10"); got != "earlier" {
				t.Errorf("RedeemedBy(WELCOME10) = %q; want %q still", got, "earlier")
			}
			s.wantLedger(t)
		},
	}, {
		name:  "undeliverable",
		args:  services.PlaceArgs{Items: []services.Item{{"mug", 1}}, Card: services.GoodCard, Address: "PO Box 42, Springfield"},
		fails: `logistics: cannot deliver to a PO box: "PO Box 42, Springfield"`,
		check: func(t *testing.T, s *shop, id string) {
			s.wantStock(t, map[string]int{"mug": 3})
			// The card was charged while the shipment was refused.
			s.wantLedger(t, services.Entry{OrderID: id, Amount: 1200}, services.Entry{OrderID: id, Amount: -1200})
			wantUndone(t, "Charge", s.payment.Charge(&services.ChargeArgs{OrderID: id, Card: services.GoodCard, Amount: 1200}, new(services.Charge)))
		},
	}} {
		t.Run(tt.name, func(t *testing.T) {
			s := openShop(t, shopConfig{})
			if tt.setup != nil {
				tt.setup(s)
			}
			id := "t-" + strings.ReplaceAll(tt.name, " ", "-")
			tt.args.OrderID = id
			r, err := s.place(tt.args)
			switch {
			case tt.fails == "" && err != nil:
				t.Fatalf("Place(%s) = %v; want it placed", id, err)
			case tt.fails == "" && r != (services.Receipt{OrderID: id, Total: 2100, Paid: 1890, ChargeID: "ch-1", ShipmentID: "sh-1"}):
				t.Errorf("Place(%s) = %+v; want $18.90 paid of $21.00", id, r)
			case tt.fails != "" && err == nil:
				t.Fatalf("Place(%s) = %+v; want it to fail with %q", id, r, tt.fails)
			case tt.fails != "":
				var se rpc.ServerError
				if want := "order " + id + " failed: " + tt.fails; !errors.As(err, &se) || err.Error() != want {
					t.Errorf("Place(%s) = %v; want the service error %q", id, err, want)
				}
			}
			tt.check(t, s, id)
		})
	}
}

// TestDemo runs the demo's orders as `go run ./examples/order` does.
func TestDemo(t *testing.T) {
	s := openShop(t, shopConfig{})
	if err := services.RunDemo(context.Background(), s.client, "demo", t.Output()); err != nil {
		t.Fatalf("RunDemo = %v", err)
	}
	want := "stock: tea 8, mug 2\n" +
		"coupons: WELCOME10 used by \"demo-1\", SPRING20 used by \"\"\n" +
		"money: +$18.90 (demo-1) +$12.00 (demo-5) -$12.00 (demo-5)"
	if got := services.DemoState(s.inventory, s.coupon, s.payment, "demo"); got != want {
		t.Errorf("DemoState after the demo = %q; want %q", got, want)
	}
}

// TestPlaceConcurrently places more orders than there are mugs, all at
// once: the order service takes many calls at a time, and no mug is sold
// twice.
func TestPlaceConcurrently(t *testing.T) {
	s := openShop(t, shopConfig{})
	const orders = 8
	errs := make([]error, orders)
	var wg sync.WaitGroup
	for i := range orders {
		wg.Go(func() {
			_, errs[i] = s.place(services.PlaceArgs{OrderID: fmt.Sprint("c-", i), Items: []services.Item{{"mug", 1}}, Card: services.GoodCard, Address: home})
		})
	}
	wg.Wait()
	placed := 0
	for i, err := range errs {
		switch {
		case err == nil:
			placed++
		case !strings.Contains(err.Error(), "out of stock: mug"):
			t.Errorf("Place(c-%d) = %v; want placed or out of stock", i, err)
		}
	}
	if placed != 3 {
		t.Errorf("%d orders placed; want 3, one per mug", placed)
	}
	s.wantStock(t, map[string]int{"mug": 0})
	if n := len(s.payment.Ledger()); n != 3 {
		t.Errorf("%d charges; want 3", n)
	}
}

// slowLogistics is a Logistics whose Ship waits until the test releases it.
type slowLogistics struct {
	*services.Logistics
	release chan struct{}
	shipped chan error // Ship's result, once released
}

func (l *slowLogistics) Ship(args *services.ShipArgs, s *services.Shipment) error {
	<-l.release
	err := l.Logistics.Ship(args, s)
	l.shipped <- err
	return err
}

// TestPlaceUndoesTimedOutStep checks that a step whose call timed out is
// undone too, since it may have run, and that when it does run late it is
// refused.
func TestPlaceUndoesTimedOutStep(t *testing.T) {
	slow := &slowLogistics{release: make(chan struct{}), shipped: make(chan error, 1)}
	s := openShop(t, shopConfig{
		wrapLogistics: func(l *services.Logistics) any { slow.Logistics = l; return slow },
		callTimeout:   2 * time.Second, // long enough for the other steps on a busy broker
	})
	var once sync.Once
	release := func() { once.Do(func() { close(slow.release) }) }
	t.Cleanup(release) // runs before the servers stop, which wait for Ship

	id := "t-slow"
	_, err := s.place(services.PlaceArgs{OrderID: id, Items: []services.Item{{"tea", 1}}, Card: services.GoodCard, Address: home})
	if err == nil || !strings.Contains(err.Error(), "logistics: "+amqprpc.ErrTimeout.Error()) {
		t.Fatalf("Place(%s) with a stuck logistics = %v; want its call timed out", id, err)
	}
	s.wantStock(t, map[string]int{"tea": 10})
	s.wantLedger(t, services.Entry{OrderID: id, Amount: 450}, services.Entry{OrderID: id, Amount: -450})

	release()
	select {
	case err := <-slow.shipped:
		wantUndone(t, "the late Ship", err)
	case <-time.After(10 * time.Second):
		t.Fatal("Ship did not run within 10s of its release")
	}
	if sh, ok := s.logistics.Shipment(id); !ok || sh.ID != "" || !sh.Cancelled {
		t.Errorf("Shipment(%q) = %+v, %v; want no shipment, only the cancellation", id, sh, ok)
	}
}

// TestChargeTwice checks that a second charge for one order, as a retry of
// the order service would send, moves no money.
func TestChargeTwice(t *testing.T) {
	url := brokertest.URL(t)
	queue := brokertest.Queue(t, url, "order-payment")
	pay := services.NewPayment(log.New(t.Output(), "payment: ", 0))
	brokertest.Serve(t, func(ctx context.Context) error { return serveAs(ctx, url, queue, "Payment", pay) })
	brokertest.WaitForConsumers(t, url, queue, 1)
	client := brokertest.Dial(t, amqprpc.Dial, url, queue, amqprpc.WithCallTimeout(10*time.Second))

	args := &services.ChargeArgs{OrderID: "t-twice", Card: services.GoodCard, Amount: 700}
	var first, second services.Charge
	if err := client.Call("Payment.Charge", args, &first); err != nil {
		t.Fatalf("Charge = %v", err)
	}
	if err := client.Call("Payment.Charge", args, &second); err != nil || second != first {
		t.Errorf("Charge again = %+v, %v; want %+v again", second, err, first)
	}
	if got, want := pay.Ledger(), []services.Entry{{OrderID: "t-twice", Amount: 700}}; !slices.Equal(got, want) {
		t.Errorf("Ledger() = %v; want %v, one charge", got, want)
	}
}

// stuckPayment is a Payment whose Charge, once it has charged, reports its
// argument and then never answers until released: a server that dies
// between doing the work and acknowledging the request.
type stuckPayment struct {
	*services.Payment
	charged chan services.ChargeArgs
	release chan struct{}
}

func (p *stuckPayment) Charge(args *services.ChargeArgs, c *services.Charge) error {
	err := p.Payment.Charge(args, c)
	p.charged <- *args
	<-p.release
	return err
}

// seenPayment is a Payment that reports the argument of every Charge.
type seenPayment struct {
	*services.Payment
	seen chan services.ChargeArgs
}

func (p *seenPayment) Charge(args *services.ChargeArgs, c *services.Charge) error {
	p.seen <- *args
	return p.Payment.Charge(args, c)
}

// TestRedeliveredCharge kills a payment server's connection after it has
// charged a card and before it answered: the broker delivers the request
// again, to a second server on the same ledger, marked redelivered and with
// the same message id, and the card is not charged twice.
func TestRedeliveredCharge(t *testing.T) {
	url := brokertest.URL(t)
	queue := brokertest.Queue(t, url, "order-payment")
	pay := services.NewPayment(log.New(t.Output(), "payment: ", 0))

	// The first server borrows a connection the test can cut.
	conn, err := amqp.Dial(url)
	if err != nil {
		t.Fatalf("amqp.Dial = %v", err)
	}
	defer conn.Close()
	codec, err := amqprpc.NewServerCodec(conn, queue, amqprpc.WithPrefetch(1))
	if err != nil {
		t.Fatalf("NewServerCodec = %v", err)
	}
	stuck := &stuckPayment{Payment: pay, charged: make(chan services.ChargeArgs, 1), release: make(chan struct{})}
	srv := rpc.NewServer()
	if err := srv.RegisterName("Payment", stuck); err != nil {
		t.Fatalf("RegisterName = %v", err)
	}
	served := make(chan struct{})
	go func() {
		defer close(served)
		srv.ServeCodec(codec)
	}()
	defer func() {
		close(stuck.release)
		codec.Close()
		<-served
	}()

	client := brokertest.Dial(t, amqprpc.Dial, url, queue, amqprpc.WithCallTimeout(10*time.Second))
	call := client.Go("Payment.Charge", &services.ChargeArgs{OrderID: "t-redelivered", Card: services.GoodCard, Amount: 900}, new(services.Charge), nil)
	var first services.ChargeArgs
	select {
	case first = <-stuck.charged:
	case <-time.After(10 * time.Second):
		t.Fatal("the first server did not charge within 10s")
	}
	if first.Redelivered || first.MessageID == "" {
		t.Errorf("first delivery: Redelivered = %v, MessageID = %q; want false and an id", first.Redelivered, first.MessageID)
	}
	// The server "dies": the request it never acknowledged goes back to the queue.
	conn.Close()

	second := &seenPayment{Payment: pay, seen: make(chan services.ChargeArgs, 1)}
	brokertest.Serve(t, func(ctx context.Context) error { return serveAs(ctx, url, queue, "Payment", second) })
	var again services.ChargeArgs
	select {
	case again = <-second.seen:
	case <-time.After(10 * time.Second):
		t.Fatal("the request was not delivered again within 10s")
	}
	if !again.Redelivered || again.MessageID != first.MessageID {
		t.Errorf("second delivery: Redelivered = %v, MessageID = %q; want true and %q", again.Redelivered, again.MessageID, first.MessageID)
	}
	<-call.Done
	if c := call.Reply.(*services.Charge); call.Error != nil || c.ID != "ch-1" {
		t.Errorf("Charge = %+v, %v; want the first charge, ch-1", c, call.Error)
	}
	if got, want := pay.Ledger(), []services.Entry{{OrderID: "t-redelivered", Amount: 900}}; !slices.Equal(got, want) {
		t.Errorf("Ledger() = %v; want %v, one charge", got, want)
	}
}
