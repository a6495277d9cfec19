// Command order places orders through five services, each on its own queue:
// an order service that calls inventory, coupon, payment and logistics
// services, and undoes the steps that ran when one fails. It places five
// demo orders (one succeeds; the others run out of stock, have their card
// declined, bring a used coupon, or ask for delivery to a PO box), prints
// every step, and exits with status 1 if an order did not end as it should.
//
// By default every service runs in this process:
//
//	go run ./examples/order
//
// or one role per process, the order role last (it places the demo orders
// and exits):
//
//	go run ./examples/order -role=inventory
//	go run ./examples/order -role=coupon
//	go run ./examples/order -role=payment
//	go run ./examples/order -role=logistics
//	go run ./examples/order -role=order
package main

import (
	"cmp"
	"context"
	"flag"
	"fmt"
	"log"
	"math/rand/v2"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/amqprpc/amqprpc"
	"github.com/amqprpc/amqprpc/examples/order/services"
	"github.com/amqprpc/amqprpc/internal/controltable"
)

// callTimeout bounds every call; the demo must end by itself.
const callTimeout = 10 * time.Second

func main() {
	url := flag.String("url", cmp.Or(os.Getenv("AMQP_URL"), "amqp://guest:guest@127.0.0.1:5672/"), "broker URL")
	prefix := flag.String("prefix", "shop", "prefix of the queue names")
	role := flag.String("role", "all", "all, order, inventory, coupon, payment or logistics")
	flag.Parse()
	log.SetFlags(0)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *url, services.NewQueues(*prefix), *role); err != nil {
		log.Fatal(err)
	}
}

// run plays role until ctx ends or, for the roles that place the demo
// orders, until they are placed.
func run(ctx context.Context, url string, q services.Queues, role string) error {
	logger := func(name string) *log.Logger { return log.New(os.Stdout, name+": ", 0) }
	switch role {
	case "inventory":
		return serve(ctx, url, q.Inventory, services.NewInventory(services.DemoCatalog(), logger("inventory")))
	case "coupon":
		return serve(ctx, url, q.Coupon, services.NewCoupon(services.DemoCoupons(), logger("coupon")))
	case "payment":
		return serve(ctx, url, q.Payment, services.NewPayment(logger("payment")))
	case "logistics":
		return serve(ctx, url, q.Logistics, services.NewLogistics(logger("logistics")))
	case "order":
		return placeDemoOrders(ctx, url, q, nil, nil)
	case "all":
		inv := services.NewInventory(services.DemoCatalog(), logger("inventory"))
		coupon := services.NewCoupon(services.DemoCoupons(), logger("coupon"))
		pay := services.NewPayment(logger("payment"))
		return placeDemoOrders(ctx, url, q, map[string]any{
			q.Inventory: inv,
			q.Coupon:    coupon,
			q.Payment:   pay,
			q.Logistics: services.NewLogistics(logger("logistics")),
		}, func() { fmt.Println(services.DemoState(inv, coupon, pay)) })
	}
	return fmt.Errorf("-role=%q: want all, order, inventory, coupon, payment or logistics", role)
}

// serve serves one service until ctx ends.
func serve(ctx context.Context, url, queue string, rcvr any) error {
	fmt.Printf("serving %q (Ctrl-C to stop)\n", queue)
	return services.Serve(ctx, url, queue, rcvr)
}

// placeDemoOrders serves the order service, and the services others holds
// (queue to service) if any, while it places the demo orders; then it
// calls report, if any, and prints the services' stats.
func placeDemoOrders(ctx context.Context, url string, q services.Queues, others map[string]any, report func()) error {
	order, err := services.DialOrder(url, q, log.New(os.Stdout, "order: ", 0), amqprpc.WithCallTimeout(callTimeout))
	if err != nil {
		return err
	}
	defer order.Close() // once its server has returned

	// Callers stop before the services they call: the order service may be
	// in the middle of an order when the demo ends, and needs the others to
	// finish it (the deferred calls run in reverse).
	callees := startServers(url, others)
	defer callees.stop()
	if err := order.WaitServed(15 * time.Second); err != nil {
		return fmt.Errorf("waiting for the services: %w", err)
	}
	defer startServers(url, map[string]any{q.Order: order}).stop()

	client, err := amqprpc.Dial(url, q.Order, amqprpc.WithCallTimeout(callTimeout))
	if err != nil {
		return err
	}
	defer client.Close()
	if err := services.WaitServed(client, 15*time.Second); err != nil {
		return fmt.Errorf("waiting for the order service: %w", err)
	}
	run := fmt.Sprintf("o%03d", rand.N(1000)) // ids unique to this run
	if err := services.RunDemo(ctx, client, run, os.Stdout); err != nil {
		return err
	}
	if report != nil {
		report()
	}
	return printStats(ctx, url, q)
}

// printStats prints what each service's instances have done, as amqprpc
// stats QUEUE prints it, while they still serve: amqprpc.Stats asks them
// through the control protocol.
func printStats(ctx context.Context, url string, q services.Queues) error {
	for _, queue := range []string{q.Order, q.Inventory, q.Coupon, q.Payment, q.Logistics} {
		instances, err := amqprpc.Stats(ctx, url, queue)
		if err != nil {
			return err
		}
		if len(instances) == 0 {
			return fmt.Errorf("amqprpc.Stats(%q): no instance answered", queue)
		}
		fmt.Printf("\n%s (amqprpc stats %s):\n", queue, queue)
		if err := controltable.WriteStats(os.Stdout, instances); err != nil {
			return err
		}
	}
	return nil
}

// servers are services served in the background.
type servers struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// startServers serves each service of rcvrs (queue to service) until stop.
func startServers(url string, rcvrs map[string]any) *servers {
	ctx, cancel := context.WithCancel(context.Background())
	s := &servers{cancel: cancel}
	for queue, rcvr := range rcvrs {
		s.wg.Go(func() {
			if err := services.Serve(ctx, url, queue, rcvr); err != nil {
				log.Printf("serve %q: %v", queue, err)
			}
		})
	}
	return s
}

// stop stops the servers and waits until each has replied to the calls it
// had taken.
func (s *servers) stop() {
	s.cancel()
	s.wg.Wait()
}
