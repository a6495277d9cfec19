package amqprpc_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/rpc"
	"time"

	"github.com/amqprpc/amqprpc"
)

func ExampleCall() {
	client, err := amqprpc.Dial("amqp://guest:guest@localhost:5672/", "arith")
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()

	// The call gives up after 2s, the request expires in the queue by then,
	// and the service sees the deadline.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var product int
	err = amqprpc.Call(ctx, client, "Arith.Multiply", &Args{7, 8}, &product)
	if errors.Is(err, context.DeadlineExceeded) {
		log.Print("no answer within 2s")
		return
	}
	fmt.Println(product, err)
}

// QuoteArgs is an argument that carries the request's Delivery, and with it
// the request's context.
type QuoteArgs struct {
	SKU string
	amqprpc.Delivery
}

// Shop is a service that calls another service.
type Shop struct{ prices *rpc.Client }

func (s *Shop) Quote(args *QuoteArgs, cents *int) error {
	// The price service gets the caller's deadline (and trace, when
	// tracing is on).
	return amqprpc.Call(args.Context(), s.prices, "Prices.Get", args.SKU, cents)
}

func ExampleDelivery_Context() {
	prices, err := amqprpc.Dial("amqp://guest:guest@localhost:5672/", "prices")
	if err != nil {
		log.Fatal(err)
	}
	defer prices.Close()
	srv := rpc.NewServer()
	if err := srv.Register(&Shop{prices: prices}); err != nil {
		log.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	if err := amqprpc.Serve(ctx, srv, "amqp://guest:guest@localhost:5672/", "shop"); err != nil {
		log.Fatal(err)
	}
}

// tokenKey is where the server hook puts the caller's token.
type tokenKey struct{}

func ExampleWithHooks() {
	// The client sends a token in a header; the server puts it in the
	// context that services get from Delivery.Context, and logs each call.
	hooks := amqprpc.WithHooks(
		func(ctx context.Context, info *amqprpc.CallInfo) amqprpc.CallEnd {
			info.Header["x-token"] = "s3cret"
			return nil
		},
		func(ctx context.Context, info *amqprpc.CallInfo) (context.Context, amqprpc.CallEnd) {
			token, _ := info.Header["x-token"].(string)
			return context.WithValue(ctx, tokenKey{}, token), func(d time.Duration, err error) {
				log.Printf("%s %s in %v: %v", info.Method, info.CorrelationID, d, err)
			}
		})
	client, err := amqprpc.Dial("amqp://guest:guest@localhost:5672/", "arith", hooks)
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	go amqprpc.Serve(ctx, nil, "amqp://guest:guest@localhost:5672/", "arith", hooks)
}
