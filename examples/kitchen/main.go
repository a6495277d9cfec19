// Command kitchen shows a service that calls other services: a chef, asked
// for scallion with tofu, has a prep cook wash the scallions and a cutter
// cut the tofu, each a service on its own queue, then seasons and cooks the
// dish. All three services and the customer run in this process, and every
// call between them goes through the broker:
//
//	go run ./examples/kitchen
package main

import (
	"cmp"
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/amqprpc/amqprpc"
	"github.com/amqprpc/amqprpc/examples/kitchen/services"
)

func main() {
	url := flag.String("url", cmp.Or(os.Getenv("AMQP_URL"), "amqp://guest:guest@127.0.0.1:5672/"), "broker URL")
	prefix := flag.String("prefix", "kitchen", "prefix of the queue names")
	flag.Parse()
	log.SetFlags(0)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *url, services.NewQueues(*prefix)); err != nil {
		log.Fatal(err)
	}
}

// run serves the kitchen, orders two dishes as a customer, and closes the
// kitchen.
func run(ctx context.Context, url string, q services.Queues) error {
	chef, err := services.DialChef(url, q, amqprpc.WithCallTimeout(10*time.Second))
	if err != nil {
		return err
	}
	defer chef.Close() // once the chef's server has returned

	// The chef closes before his helpers: he may be in the middle of a
	// dish, and needs them to finish it (deferred calls run in reverse).
	defer startServers(url, map[string]any{q.PrepCook: new(services.PrepCook), q.Cutter: new(services.Cutter)}).stop()
	if err := chef.WaitServed(15 * time.Second); err != nil {
		return err
	}
	defer startServers(url, map[string]any{q.Chef: chef}).stop()
	fmt.Printf("the prep cook, the cutter and the chef serve %q, %q and %q\n", q.PrepCook, q.Cutter, q.Chef)

	customer, err := amqprpc.Dial(url, q.Chef, amqprpc.WithCallTimeout(10*time.Second))
	if err != nil {
		return err
	}
	defer customer.Close()
	if err := services.WaitServed(customer, 15*time.Second); err != nil {
		return err
	}

	fmt.Printf("customer: one %s, please\n", services.ScallionWithTofu)
	var dish services.Dish
	// amqprpc.Call, unlike customer.Call, gives up when ctx ends (Ctrl-C),
	// and the chef gets ctx's deadline and trace, if any.
	if err := amqprpc.Call(ctx, customer, "Chef.Cook", &services.DishArgs{Name: services.ScallionWithTofu}, &dish); err != nil {
		return err
	}
	for i, s := range dish.Steps {
		fmt.Printf("  %d. %-10s %s\n", i+1, s.By+":", s.Did)
	}
	fmt.Printf("customer: here is my %s\n", dish.Name)

	// The chef's error reaches the customer as rpc.ServerError.
	fmt.Println("customer: one mapo tofu, please")
	err = amqprpc.Call(ctx, customer, "Chef.Cook", &services.DishArgs{Name: "mapo tofu"}, &dish)
	fmt.Printf("  error %q\n", err)
	return ctx.Err()
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
