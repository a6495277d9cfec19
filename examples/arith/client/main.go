// Command client calls net/rpc's Arith example through RabbitMQ. Over TCP
// it would be rpc.Dial("tcp", addr); here the only change is the
// amqprpc.Dial line.
package main

import (
	"errors"
	"flag"
	"fmt"
	"log"
	"net/rpc"
	"os"
	"time"

	"github.com/amqprpc/amqprpc"
	"github.com/amqprpc/amqprpc/examples/arith/arith"
)

func main() {
	url := flag.String("url", envOr("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/"), "broker URL")
	queue := flag.String("queue", "arith", "service queue")
	wait := flag.Duration("wait", 15*time.Second, "how long to wait for the server's queue to appear")
	flag.Parse()

	client, err := amqprpc.Dial(*url, *queue)
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()

	// The server may still be starting: until it has declared its queue the
	// broker returns requests, which fails the call with ErrNoQueue.
	args := &arith.Args{A: 7, B: 8}
	var product int
	for deadline := time.Now().Add(*wait); ; {
		err = client.Call("Arith.Multiply", args, &product)
		if !errors.Is(amqprpc.Cause(err), amqprpc.ErrNoQueue) || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err != nil {
		log.Fatal("Arith.Multiply: ", err)
	}
	fmt.Printf("Arith.Multiply(%d, %d) = %d\n", args.A, args.B, product)

	var quo arith.Quotient
	if err := client.Call("Arith.Divide", &arith.Args{A: 17, B: 5}, &quo); err != nil {
		log.Fatal("Arith.Divide: ", err)
	}
	fmt.Printf("Arith.Divide(17, 5) = %d remainder %d\n", quo.Quo, quo.Rem)

	// A service error reaches the caller as rpc.ServerError, as over TCP.
	err = client.Call("Arith.Divide", &arith.Args{A: 1, B: 0}, &quo)
	var se rpc.ServerError
	fmt.Printf("Arith.Divide(1, 0) = error %q (rpc.ServerError: %v)\n", err, errors.As(err, &se))

	// Many calls in flight at once over one client, with client.Go.
	calls := make([]*rpc.Call, 10)
	for i := range calls {
		calls[i] = client.Go("Arith.Multiply", &arith.Args{A: i, B: i}, new(int), nil)
	}
	for i, c := range calls {
		<-c.Done
		if c.Error != nil {
			log.Fatal("Arith.Multiply: ", c.Error)
		}
		fmt.Printf("Arith.Multiply(%d, %d) = %d (client.Go)\n", i, i, *c.Reply.(*int))
	}
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
