// Command order places orders through five services, each on its own queue:
// an order service that calls inventory, coupon, payment and logistics
// services, and undoes the steps that ran when one fails. It places five
// demo orders (one succeeds; the others run out of stock, have their card
// declined, bring a used coupon, or ask for delivery to a PO box), prints
// every step, and exits with status 1 if an order did not end as it should.
//
// Payment runs as two instances on one queue, with a reply store on Redis
// that they share (a request delivered again, after one of them died before
// acknowledging it, is answered with the reply already sent) and their
// charges in PostgreSQL (a charge and its request's message id written in
// one transaction).
//
// By default every service runs in this process (from examples/order, its
// own module):
//
//	go run .
//
// or one role per process, the order role last (it places the demo orders
// and exits):
//
//	go run . -role=inventory
//	go run . -role=coupon
//	go run . -role=payment    # twice, for two instances
//	go run . -role=logistics
//	go run . -role=order
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

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/amqprpc/amqprpc"
	"github.com/amqprpc/amqprpc/examples/order/pgpayment"
	"github.com/amqprpc/amqprpc/examples/order/services"
	"github.com/amqprpc/amqprpc/internal/controltable"
	"github.com/amqprpc/amqprpc/redisstore"
)

const (
	// callTimeout bounds every call; the demo must end by itself.
	callTimeout = 10 * time.Second
	// replyTTL is how long payment's replies are kept: at least the
	// longest call timeout of its callers.
	replyTTL = time.Minute
	// payments is how many instances of payment the all role serves.
	payments = 2
)

// config is what the flags say.
type config struct {
	url, redis, postgres, prefix string
	q                            services.Queues
}

func main() {
	var cfg config
	flag.StringVar(&cfg.url, "url", cmp.Or(os.Getenv("AMQP_URL"), "amqp://guest:guest@127.0.0.1:5672/"), "broker URL")
	flag.StringVar(&cfg.redis, "redis", cmp.Or(os.Getenv("REDIS_ADDR"), "127.0.0.1:6379"),
		"Redis address for payment's reply store; empty for none")
	flag.StringVar(&cfg.postgres, "postgres", cmp.Or(os.Getenv("POSTGRES_URL"), "postgres://postgres@127.0.0.1:5432/test"),
		"PostgreSQL URL for payment's charges; empty to keep them in memory")
	flag.StringVar(&cfg.prefix, "prefix", "shop", "prefix of the queue names, and payment's PostgreSQL schema")
	role := flag.String("role", "all", "all, order, inventory, coupon, payment or logistics")
	flag.Parse()
	log.SetFlags(0)
	cfg.q = services.NewQueues(cfg.prefix)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg, *role); err != nil {
		log.Fatal(err)
	}
}

// logger logs a service's work to standard output.
func logger(name string) *log.Logger { return log.New(os.Stdout, name+": ", 0) }

// run plays role until ctx ends or, for the roles that place the demo
// orders, until they are placed.
func run(ctx context.Context, cfg config, role string) error {
	q := cfg.q
	switch role {
	case "inventory":
		return serve(ctx, cfg.url, service{q.Inventory, services.NewInventory(services.DemoCatalog(), logger("inventory")), nil})
	case "coupon":
		return serve(ctx, cfg.url, service{q.Coupon, services.NewCoupon(services.DemoCoupons(), logger("coupon")), nil})
	case "logistics":
		return serve(ctx, cfg.url, service{q.Logistics, services.NewLogistics(logger("logistics")), nil})
	case "payment", "all":
		pay, opts, closeAll, err := payment(ctx, cfg)
		if err != nil {
			return err
		}
		defer closeAll()
		svc := service{q.Payment, pay, opts}
		if role == "payment" {
			return serve(ctx, cfg.url, svc)
		}
		inv := services.NewInventory(services.DemoCatalog(), logger("inventory"))
		coupon := services.NewCoupon(services.DemoCoupons(), logger("coupon"))
		others := []service{{q.Inventory, inv, nil}, {q.Coupon, coupon, nil}, {q.Logistics, services.NewLogistics(logger("logistics")), nil}}
		for range payments {
			others = append(others, svc)
		}
		runID, err := placeDemoOrders(ctx, cfg.url, q, others)
		if err == nil {
			fmt.Println(services.DemoState(inv, coupon, pay, runID))
		}
		return err
	case "order":
		_, err := placeDemoOrders(ctx, cfg.url, q, nil)
		return err
	}
	return fmt.Errorf("-role=%q: want all, order, inventory, coupon, payment or logistics", role)
}

// payment returns the payment service and its server options as the flags
// say: its charges in PostgreSQL or in memory, its replies in a store on
// Redis or in none; closeAll closes the connections it opened.
func payment(ctx context.Context, cfg config) (pay services.Ledger, opts []amqprpc.ServerOption, closeAll func(), err error) {
	var closers []func()
	closeAll = func() {
		for _, c := range closers {
			c()
		}
	}
	pay = services.NewPayment(logger("payment"))
	if cfg.postgres != "" {
		db, err := pgxpool.New(ctx, cfg.postgres)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("payment: PostgreSQL at %s: %w (-postgres='' keeps charges in memory)", cfg.postgres, err)
		}
		closers = append(closers, db.Close)
		if pay, err = pgpayment.New(ctx, db, cfg.prefix, logger("payment")); err != nil {
			closeAll()
			return nil, nil, nil, fmt.Errorf("%w (-postgres='' keeps charges in memory)", err)
		}
	}
	if cfg.redis != "" {
		rdb := redis.NewClient(&redis.Options{Addr: cfg.redis})
		closers = append(closers, func() { rdb.Close() })
		if err := rdb.Ping(ctx).Err(); err != nil {
			closeAll()
			return nil, nil, nil, fmt.Errorf("payment: Redis at %s: %w (-redis='' runs without a reply store)", cfg.redis, err)
		}
		opts = append(opts, amqprpc.WithReplyStore(redisstore.New(rdb), replyTTL))
	}
	return pay, opts, closeAll, nil
}

// service is a service to serve: its queue, its receiver, its server's
// options.
type service struct {
	queue string
	rcvr  any
	opts  []amqprpc.ServerOption
}

// serve serves one service until ctx ends.
func serve(ctx context.Context, url string, svc service) error {
	fmt.Printf("serving %q (Ctrl-C to stop)\n", svc.queue)
	return services.ServeAs(ctx, url, svc.queue, serviceName(svc.rcvr), svc.rcvr, svc.opts...)
}

// serviceName is the name a receiver serves under: "Payment" for either
// payment service, its type's name for the others.
func serviceName(rcvr any) string {
	if _, ok := rcvr.(services.Ledger); ok {
		return "Payment"
	}
	return ""
}

// placeDemoOrders serves the order service, and the services in others if
// any, while it places the demo orders, and returns the id of this run of
// the demo (the start of its order ids). Then it prints the services'
// stats.
func placeDemoOrders(ctx context.Context, url string, q services.Queues, others []service) (string, error) {
	order, err := services.DialOrder(url, q, logger("order"), amqprpc.WithCallTimeout(callTimeout))
	if err != nil {
		return "", err
	}
	defer order.Close() // once its server has returned

	// Callers stop before the services they call: the order service may be
	// in the middle of an order when the demo ends, and needs the others to
	// finish it (the deferred calls run in reverse).
	callees := startServers(url, others)
	defer callees.stop()
	if err := order.WaitServed(15 * time.Second); err != nil {
		return "", fmt.Errorf("waiting for the services: %w", err)
	}
	defer startServers(url, []service{{q.Order, order, nil}}).stop()

	client, err := amqprpc.Dial(url, q.Order, amqprpc.WithCallTimeout(callTimeout))
	if err != nil {
		return "", err
	}
	defer client.Close()
	if err := services.WaitServed(client, 15*time.Second); err != nil {
		return "", fmt.Errorf("waiting for the order service: %w", err)
	}
	run := fmt.Sprintf("o%06d", rand.N(1_000_000)) // ids unique to this run
	if err := services.RunDemo(ctx, client, run, os.Stdout); err != nil {
		return run, err
	}
	return run, printStats(ctx, url, q)
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

// startServers serves each service of svcs until stop.
func startServers(url string, svcs []service) *servers {
	ctx, cancel := context.WithCancel(context.Background())
	s := &servers{cancel: cancel}
	for _, svc := range svcs {
		s.wg.Go(func() {
			if err := services.ServeAs(ctx, url, svc.queue, serviceName(svc.rcvr), svc.rcvr, svc.opts...); err != nil {
				log.Printf("serve %q: %v", svc.queue, err)
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
