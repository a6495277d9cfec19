package amqprpc_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/amqprpc/amqprpc"
)

// A health check: is the service served, and is any instance failing?
func ExampleStats() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	instances, err := amqprpc.Stats(ctx, "amqp://monitor:secret@localhost:5672/", "arith")
	if err != nil {
		log.Fatal(err) // no broker, or the user may not ask
	}
	if len(instances) == 0 {
		log.Fatal("no instance of arith answered")
	}
	for _, in := range instances {
		for _, m := range in.Methods {
			if m.Errors > 0 {
				fmt.Printf("%s on %s (pid %d): %d of %d %s calls failed, the last with %q\n",
					in.ID, in.Host, in.PID, m.Errors, m.Calls, m.Name, m.LastError)
			}
		}
	}
}

func ExampleWithVersion() {
	// What amqprpc info and stats show for this instance.
	err := amqprpc.Serve(context.Background(), nil, "amqp://guest:guest@localhost:5672/", "arith",
		amqprpc.WithVersion("1.4.2"), amqprpc.WithMetadata(map[string]string{"region": "eu"}))
	if err != nil {
		log.Fatal(err)
	}
}
