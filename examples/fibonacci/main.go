// Command fibonacci is RabbitMQ's classic RPC tutorial in net/rpc: a
// Fibonacci service on the queue "rpc_queue", served by two instances that
// take one request at a time, and a client that sends a burst of calls and
// shows which instance answered each.
//
// By default it runs both instances and the client in one process:
//
//	go run ./examples/fibonacci
//
// or one role per process:
//
//	go run ./examples/fibonacci -role=server -name=alice
//	go run ./examples/fibonacci -role=server -name=bob
//	go run ./examples/fibonacci -role=client
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
	"github.com/amqprpc/amqprpc/examples/fibonacci/service"
)

func main() {
	url := flag.String("url", cmp.Or(os.Getenv("AMQP_URL"), "amqp://guest:guest@127.0.0.1:5672/"), "broker URL")
	queue := flag.String("queue", service.Queue, "service queue")
	role := flag.String("role", "all", "all (two servers and the client), server or client")
	name := flag.String("name", fmt.Sprintf("server-%d", os.Getpid()), "instance name, for -role=server")
	calls := flag.Int("calls", 20, "calls in the burst")
	flag.Parse()
	log.SetFlags(0)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch *role {
	case "all":
		err = runAll(ctx, *url, *queue, *calls)
	case "server":
		fmt.Printf("instance %s: serving %q, one request at a time (Ctrl-C to stop)\n", *name, *queue)
		err = service.Serve(ctx, *url, *queue, *name)
	case "client":
		err = runClient(*url, *queue, *calls)
	default:
		err = fmt.Errorf("-role=%q: want all, server or client", *role)
	}
	if err != nil {
		log.Fatal(err)
	}
}

// runAll serves two instances, runs the client, and stops the instances.
func runAll(ctx context.Context, url, queue string, calls int) error {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait() // after cancel: Serve returns once its calls have replied
	defer cancel()
	for _, name := range []string{"alice", "bob"} {
		wg.Go(func() {
			if err := service.Serve(ctx, url, queue, name); err != nil {
				log.Printf("instance %s: %v", name, err)
				cancel()
			}
		})
	}
	fmt.Printf("instances alice and bob serve %q, one request at a time each\n", queue)
	return runClient(url, queue, calls)
}

// runClient calls Sum once, then Fib in a burst, and prints who answered.
func runClient(url, queue string, calls int) error {
	client, err := amqprpc.Dial(url, queue, amqprpc.WithCallTimeout(10*time.Second))
	if err != nil {
		return err
	}
	defer client.Close()

	if err := service.WaitServed(client, 15*time.Second); err != nil {
		return err
	}
	var sum service.Reply
	if err := client.Call("Fibonacci.Sum", &service.Args{N: 5}, &sum); err != nil {
		return fmt.Errorf("Sum(5): %w", err)
	}
	fmt.Printf("Sum(5)   = %-20d answered by %s\n", sum.Value, sum.Instance)

	replies, err := service.Burst(client, calls)
	if err != nil {
		return err
	}
	answered := map[string]int{}
	for n, r := range replies {
		fmt.Printf("Fib(%2d)  = %-20d answered by %s\n", n, r.Value, r.Instance)
		answered[r.Instance]++
	}
	fmt.Printf("answers per instance: %v\n", answered)

	// A service error reaches the caller as rpc.ServerError, as over TCP.
	err = client.Call("Fibonacci.Fib", &service.Args{N: 1000}, new(service.Reply))
	fmt.Printf("Fib(1000) = error %q (%T)\n", err, err)
	return nil
}
