package amqprpc_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/rpc"
	"os"
	"os/signal"
	"time"

	"github.com/amqprpc/amqprpc"
	"github.com/amqprpc/amqprpc/codec"
)

type Args struct{ A, B int }

type Arith int

func (t *Arith) Multiply(args *Args, reply *int) error {
	*reply = args.A * args.B
	return nil
}

func ExampleDial() {
	// Where the TCP version says rpc.Dial("tcp", "localhost:1234").
	client, err := amqprpc.Dial("amqp://guest:guest@localhost:5672/", "arith",
		amqprpc.WithCallTimeout(5*time.Second))
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()

	var product int
	if err := client.Call("Arith.Multiply", &Args{7, 8}, &product); err != nil {
		// Per-call failures are rpc.ServerError values; Cause makes them
		// testable with errors.Is.
		switch cause := amqprpc.Cause(err); {
		case errors.Is(cause, amqprpc.ErrTimeout):
			log.Print("no server answered in time")
		case errors.Is(cause, amqprpc.ErrNoQueue):
			log.Print("no server has declared the queue yet")
		default:
			log.Print(err)
		}
		return
	}
	fmt.Println(product)
}

func ExampleServe() {
	if err := rpc.Register(new(Arith)); err != nil {
		log.Fatal(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	// Where the TCP version says rpc.Accept(listener). Serve returns once ctx
	// ends and the calls in flight have replied.
	err := amqprpc.Serve(ctx, nil, "amqp://guest:guest@localhost:5672/", "arith",
		amqprpc.WithPrefetch(16))
	if err != nil {
		log.Fatal(err)
	}
}

func ExampleCause() {
	// What a caller sees when a call times out.
	err := rpc.ServerError(`amqprpc: call timed out: Arith.Multiply got no reply from queue "arith" within 30s`)
	fmt.Println(errors.Is(amqprpc.Cause(err), amqprpc.ErrTimeout))
	fmt.Println(errors.Is(amqprpc.Cause(err), amqprpc.ErrNoQueue))
	// Output:
	// true
	// false
}

// A client dialed with WithEncoding(codec.JSON) sends each argument as one
// JSON value under the content type that names it, so that a service in any
// language can read it, and reads a reply by its content type. The codec
// package does that encoding; this is what goes on the wire for a call.
func ExampleWithEncoding() {
	// client, err := amqprpc.Dial(url, "arith", amqprpc.WithEncoding(codec.JSON))
	// client.Call("Arith.Multiply", &Args{7, 8}, &product) publishes:
	var c codec.Codec
	body, err := c.Marshal(nil, codec.JSON, &Args{7, 8})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("request: content_type %s, body %s\n", codec.JSON.ContentType(), body)

	// A server in another language answers with a JSON body and no content
	// type; the client decodes it as JSON, the encoding an empty type means.
	enc, err := codec.ForContentType("")
	if err != nil {
		log.Fatal(err)
	}
	var product int
	if err := c.Unmarshal(enc, []byte("56"), &product); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("reply: body 56, no content_type: decoded as %s to %d\n", enc, product)
	// Output:
	// request: content_type application/json, body {"A":7,"B":8}
	// reply: body 56, no content_type: decoded as json to 56
}
