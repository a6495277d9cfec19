package services_test

import (
	"context"
	"errors"
	"net/rpc"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/amqprpc/amqprpc"
	"github.com/amqprpc/amqprpc/examples/kitchen/services"
	"github.com/amqprpc/amqprpc/internal/brokertest"
)

// kitchen serves the prep cook, the cutter and a chef on fresh queues until
// the test ends, and returns a client of the chef's queue.
func kitchen(t *testing.T, url string, q services.Queues) *rpc.Client {
	t.Helper()
	chef, err := services.DialChef(url, q, amqprpc.WithCallTimeout(10*time.Second))
	if err != nil {
		t.Fatalf("DialChef = %v", err)
	}
	t.Cleanup(func() { chef.Close() }) // after the chef's Serve has returned
	brokertest.Serve(t, func(ctx context.Context) error { return services.Serve(ctx, url, q.PrepCook, new(services.PrepCook)) })
	brokertest.Serve(t, func(ctx context.Context) error { return services.Serve(ctx, url, q.Cutter, new(services.Cutter)) })
	brokertest.Serve(t, func(ctx context.Context) error { return services.Serve(ctx, url, q.Chef, chef) })
	brokertest.WaitForConsumers(t, url, q.PrepCook, 1)
	brokertest.WaitForConsumers(t, url, q.Cutter, 1)
	brokertest.WaitForConsumers(t, url, q.Chef, 1)
	return brokertest.Dial(t, amqprpc.Dial, url, q.Chef, amqprpc.WithCallTimeout(10*time.Second))
}

func newQueues(t *testing.T, url string) services.Queues {
	return services.Queues{
		Chef:     brokertest.Queue(t, url, "kitchen-chef"),
		PrepCook: brokertest.Queue(t, url, "kitchen-prep-cook"),
		Cutter:   brokertest.Queue(t, url, "kitchen-cutter"),
	}
}

func TestCook(t *testing.T) {
	url := brokertest.URL(t)
	customer := kitchen(t, url, newQueues(t, url))

	var dish services.Dish
	if err := customer.Call("Chef.Cook", &services.DishArgs{Name: services.ScallionWithTofu}, &dish); err != nil {
		t.Fatalf("Call(%q, %q) = %v", "Chef.Cook", services.ScallionWithTofu, err)
	}
	want := services.Dish{Name: services.ScallionWithTofu, Steps: []services.Step{
		{By: "prep cook", Did: "washed the scallions"},
		{By: "cutter", Did: "cut the tofu into cubes"},
		{By: "chef", Did: "seasoned with salt, soy sauce and sesame oil"},
		{By: "chef", Did: "stir-fried it all and plated the dish"},
	}}
	if dish.Name != want.Name || !slices.Equal(dish.Steps, want.Steps) {
		t.Errorf("Cook(%q) = %+v; want %+v", services.ScallionWithTofu, dish, want)
	}

	err := customer.Call("Chef.Cook", &services.DishArgs{Name: "mapo tofu"}, &dish)
	if err == nil || err.Error() != `chef: no recipe for "mapo tofu"` {
		t.Errorf("Cook(%q) = %v; want the chef's error", "mapo tofu", err)
	}
}

// TestCookWithoutCutter checks that a helper's failure reaches the customer,
// saying who failed and why.
func TestCookWithoutCutter(t *testing.T) {
	url := brokertest.URL(t)
	q := newQueues(t, url)
	chef, err := services.DialChef(url, q, amqprpc.WithCallTimeout(10*time.Second))
	if err != nil {
		t.Fatalf("DialChef = %v", err)
	}
	t.Cleanup(func() { chef.Close() })
	brokertest.Serve(t, func(ctx context.Context) error { return services.Serve(ctx, url, q.PrepCook, new(services.PrepCook)) })
	brokertest.Serve(t, func(ctx context.Context) error { return services.Serve(ctx, url, q.Chef, chef) })
	brokertest.WaitForConsumers(t, url, q.PrepCook, 1)
	brokertest.WaitForConsumers(t, url, q.Chef, 1)
	customer := brokertest.Dial(t, amqprpc.Dial, url, q.Chef, amqprpc.WithCallTimeout(10*time.Second))

	// No cutter has declared its queue, so the broker returns the chef's
	// request to cut, and the chef's own call fails with that reason.
	err = customer.Call("Chef.Cook", &services.DishArgs{Name: services.ScallionWithTofu}, new(services.Dish))
	if err == nil || !strings.Contains(err.Error(), "cutter: "+amqprpc.ErrNoQueue.Error()) {
		t.Errorf("Cook without a cutter = %v; want the cutter's no such queue", err)
	}
	// The customer's call reached the chef: for the customer it is a
	// service error, not a missing queue.
	if errors.Is(amqprpc.Cause(err), amqprpc.ErrNoQueue) {
		t.Errorf("Cause(%v) matches ErrNoQueue; want a plain service error", err)
	}
}

func TestWaitServed(t *testing.T) {
	url := brokertest.URL(t)
	q := newQueues(t, url)

	// Nobody serves the cutter's queue: the broker keeps returning the probe.
	start := time.Now()
	err := services.WaitServed(brokertest.Dial(t, amqprpc.Dial, url, q.Cutter, amqprpc.WithCallTimeout(10*time.Second)), 300*time.Millisecond)
	if !errors.Is(amqprpc.Cause(err), amqprpc.ErrNoQueue) || time.Since(start) < 300*time.Millisecond {
		t.Errorf("WaitServed(no server) = %v after %v; want ErrNoQueue after 300ms", err, time.Since(start))
	}

	// A server that is still starting is waited for.
	client := brokertest.Dial(t, amqprpc.Dial, url, q.PrepCook, amqprpc.WithCallTimeout(10*time.Second))
	brokertest.Serve(t, func(ctx context.Context) error { return services.Serve(ctx, url, q.PrepCook, new(services.PrepCook)) })
	if err := services.WaitServed(client, 10*time.Second); err != nil {
		t.Fatalf("WaitServed = %v; want nil once the prep cook serves", err)
	}
	var step services.Step
	if err := client.Call("PrepCook.Wash", &services.WashArgs{Ingredient: "scallions"}, &step); err != nil {
		t.Errorf("Wash after WaitServed = %v", err)
	}
}
