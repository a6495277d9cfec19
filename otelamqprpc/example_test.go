package otelamqprpc_test

import (
	"context"
	"log"
	"net/rpc"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/amqprpc/amqprpc"
	"github.com/amqprpc/amqprpc/otelamqprpc"
)

// Kitchen is a service that calls another: its argument embeds
// amqprpc.Delivery, and it passes args.Context() on.
type Kitchen struct{ pantry *rpc.Client }

type DishArgs struct {
	Name string
	amqprpc.Delivery
}

func (k *Kitchen) Cook(args *DishArgs, dish *string) error {
	// The pantry's span is a child of this request's SERVER span.
	var item string
	if err := amqprpc.Call(args.Context(), k.pantry, "Pantry.Get", args.Name, &item); err != nil {
		return err
	}
	*dish = "cooked " + item
	return nil
}

func ExampleWithTracing() {
	// The global providers and propagator, as a program sets them up once.
	tp := sdktrace.NewTracerProvider()
	defer tp.Shutdown(context.Background())
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagation.TraceContext{})

	const url = "amqp://guest:guest@localhost:5672/"
	pantry, err := amqprpc.Dial(url, "pantry", otelamqprpc.WithTracing())
	if err != nil {
		log.Fatal(err)
	}
	defer pantry.Close()
	srv := rpc.NewServer()
	if err := srv.Register(&Kitchen{pantry: pantry}); err != nil {
		log.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	go amqprpc.Serve(ctx, srv, url, "kitchen", otelamqprpc.WithTracing())

	client, err := amqprpc.Dial(url, "kitchen", otelamqprpc.WithTracing())
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
	ctx, span := tp.Tracer("shop").Start(ctx, "lunch")
	defer span.End()
	var dish string
	// One trace: lunch, then the CLIENT and SERVER spans of Kitchen.Cook,
	// then those of Pantry.Get.
	if err := amqprpc.Call(ctx, client, "Kitchen.Cook", &DishArgs{Name: "tofu"}, &dish); err != nil {
		log.Print(err)
	}
}
