package otelamqprpc_test

import (
	"context"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/amqprpc/amqprpc"
	kitchen "github.com/amqprpc/amqprpc/examples/kitchen/services"
	order "github.com/amqprpc/amqprpc/examples/order/services"
)

// oneTrace checks that spans are n spans of the trace of root.
func oneTrace(t *testing.T, spans []sdktrace.ReadOnlySpan, root trace.Span, n int) {
	t.Helper()
	id := root.SpanContext().TraceID()
	for _, s := range spans {
		if s.SpanContext().TraceID() != id {
			t.Errorf("span %s %s is in trace %s; want every span in the caller's %s:%s", s.SpanKind(), s.Name(), s.SpanContext().TraceID(), id, describe(spans))
			return
		}
	}
	if len(spans) != n {
		t.Errorf("%d spans; want %d:%s", len(spans), n, describe(spans))
	}
}

// TestKitchenIsOneTrace serves the kitchen example with tracing: the chef
// passes his request's context to his helpers, so one dish is one trace
// of seven spans (the customer's, and a CLIENT and a SERVER span for each
// of the three calls).
func TestKitchenIsOneTrace(t *testing.T) {
	tel := newTelemetry(t)
	url := brokerURL(t)
	q := kitchen.Queues{Chef: testQueue(t, "chef"), PrepCook: testQueue(t, "prep-cook"), Cutter: testQueue(t, "cutter")}
	chef, err := kitchen.DialChef(url, q, tel.tracing(), amqprpc.WithCallTimeout(10*time.Second))
	if err != nil {
		t.Fatalf("DialChef = %v", err)
	}
	t.Cleanup(func() { chef.Close() }) // after the chef's server has stopped
	serve(t, q.PrepCook, "PrepCook", new(kitchen.PrepCook), tel.tracing())
	serve(t, q.Cutter, "Cutter", new(kitchen.Cutter), tel.tracing())
	serve(t, q.Chef, "Chef", chef, tel.tracing())
	customer := dial(t, q.Chef, tel.tracing())

	ctx, root := tel.root(context.Background())
	var dish kitchen.Dish
	err = amqprpc.Call(ctx, customer, "Chef.Cook", &kitchen.DishArgs{Name: kitchen.ScallionWithTofu}, &dish)
	root.End()
	if err != nil {
		t.Fatalf("Call(Chef.Cook) = %v", err)
	}
	oneTrace(t, tel.waitSpans(t, 7), root, 7)
}

// TestOrderIsOneTrace serves the order example with tracing: placing an
// order is one trace through the five services (the caller's span, and a
// CLIENT and a SERVER span for the order and each of its four steps).
func TestOrderIsOneTrace(t *testing.T) {
	tel := newTelemetry(t)
	url := brokerURL(t)
	q := order.Queues{
		Order: testQueue(t, "order"), Inventory: testQueue(t, "inventory"), Payment: testQueue(t, "payment"),
		Coupon: testQueue(t, "coupon"), Logistics: testQueue(t, "logistics"),
	}
	o, err := order.DialOrder(url, q, nil, tel.tracing(), amqprpc.WithCallTimeout(10*time.Second))
	if err != nil {
		t.Fatalf("DialOrder = %v", err)
	}
	t.Cleanup(func() { o.Close() }) // after the order service has stopped
	serve(t, q.Inventory, "Inventory", order.NewInventory(order.DemoCatalog(), nil), tel.tracing())
	serve(t, q.Coupon, "Coupon", order.NewCoupon(order.DemoCoupons(), nil), tel.tracing())
	serve(t, q.Payment, "Payment", order.NewPayment(nil), tel.tracing())
	serve(t, q.Logistics, "Logistics", order.NewLogistics(nil), tel.tracing())
	serve(t, q.Order, "Order", o, tel.tracing())
	client := dial(t, q.Order, tel.tracing())

	args := order.DemoOrders("t")[0].Args // placed, with a coupon: four steps
	ctx, root := tel.root(context.Background())
	var receipt order.Receipt
	err = amqprpc.Call(ctx, client, "Order.Place", &args, &receipt)
	root.End()
	if err != nil || receipt.ShipmentID == "" {
		t.Fatalf("Call(Order.Place) = %+v, %v; want it placed", receipt, err)
	}
	oneTrace(t, tel.waitSpans(t, 11), root, 11)
}
