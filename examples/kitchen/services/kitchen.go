// Package services holds the kitchen example's three services, each on a
// queue of its own: a [PrepCook] who washes, a [Cutter] who cuts, and a
// [Chef] who makes a dish by calling the other two over the broker and then
// seasons and cooks it. A service that calls others is a caller like any
// other: the Chef holds an *rpc.Client for each.
package services

import (
	"context"
	"errors"
	"fmt"
	"net/rpc"
	"time"

	"github.com/amqprpc/amqprpc"
)

// ScallionWithTofu is the dish the Chef knows how to make.
const ScallionWithTofu = "scallion with tofu"

// Queues names the kitchen's service queues.
type Queues struct {
	Chef, PrepCook, Cutter string
}

// NewQueues returns the queues prefix.chef, prefix.prep-cook and
// prefix.cutter.
func NewQueues(prefix string) Queues {
	return Queues{Chef: prefix + ".chef", PrepCook: prefix + ".prep-cook", Cutter: prefix + ".cutter"}
}

// Step is one thing done for a dish, and who did it.
type Step struct {
	By, Did string
}

// WashArgs asks the prep cook to wash an ingredient.
type WashArgs struct {
	Ingredient string
}

// PrepCook washes ingredients.
type PrepCook struct{}

// Wash washes args.Ingredient.
func (*PrepCook) Wash(args *WashArgs, step *Step) error {
	if args.Ingredient == "" {
		return errors.New("wash what?")
	}
	*step = Step{By: "prep cook", Did: "washed the " + args.Ingredient}
	return nil
}

// CutArgs asks the cutter to cut an ingredient into a shape.
type CutArgs struct {
	Ingredient, Shape string
}

// Cutter cuts ingredients.
type Cutter struct{}

// Cut cuts args.Ingredient into args.Shape.
func (*Cutter) Cut(args *CutArgs, step *Step) error {
	if args.Ingredient == "" || args.Shape == "" {
		return fmt.Errorf("cut %q into %q?", args.Ingredient, args.Shape)
	}
	*step = Step{By: "cutter", Did: fmt.Sprintf("cut the %s into %s", args.Ingredient, args.Shape)}
	return nil
}

// DishArgs names the dish to make. Its Delivery gives the chef the
// request's context, with the customer's deadline (and trace, when tracing
// is on), which he passes on to his helpers.
type DishArgs struct {
	Name string
	amqprpc.Delivery
}

// Dish is a finished dish and the steps that made it, in order.
type Dish struct {
	Name  string
	Steps []Step
}

// Chef makes dishes, with the help of the prep cook and the cutter, which
// it calls through clients of their queues.
type Chef struct {
	prepCook, cutter *rpc.Client
}

// DialChef returns a Chef that calls the prep cook and the cutter on the
// queues q names. Close it once it no longer serves.
func DialChef(url string, q Queues, opts ...amqprpc.ClientOption) (*Chef, error) {
	prepCook, err := amqprpc.Dial(url, q.PrepCook, opts...)
	if err != nil {
		return nil, err
	}
	cutter, err := amqprpc.Dial(url, q.Cutter, opts...)
	if err != nil {
		prepCook.Close()
		return nil, err
	}
	return &Chef{prepCook: prepCook, cutter: cutter}, nil
}

// Close closes the Chef's clients. It is no RPC method: net/rpc serves only
// methods of the form M(args, *reply) error.
func (c *Chef) Close() error {
	return errors.Join(c.prepCook.Close(), c.cutter.Close())
}

// Cook makes the dish args names: the prep cook washes the scallions while
// the cutter cuts the tofu, then the chef seasons and stir-fries.
func (c *Chef) Cook(args *DishArgs, dish *Dish) error {
	if args.Name != ScallionWithTofu {
		return fmt.Errorf("chef: no recipe for %q", args.Name)
	}
	// Washing and cutting do not depend on each other: both calls go out at
	// once, within the customer's deadline and trace, and the chef waits
	// for the two.
	ctx := args.Context()
	wash := goCall(ctx, c.prepCook, "PrepCook.Wash", &WashArgs{Ingredient: "scallions"}, new(Step))
	cut := goCall(ctx, c.cutter, "Cutter.Cut", &CutArgs{Ingredient: "tofu", Shape: "cubes"}, new(Step))
	<-wash.Done
	<-cut.Done
	if err := errors.Join(failed("prep cook", wash), failed("cutter", cut)); err != nil {
		return fmt.Errorf("chef: no %s today: %w", args.Name, err)
	}
	*dish = Dish{Name: args.Name, Steps: []Step{
		*wash.Reply.(*Step),
		*cut.Reply.(*Step),
		{By: "chef", Did: "seasoned with salt, soy sauce and sesame oil"},
		{By: "chef", Did: "stir-fried it all and plated the dish"},
	}}
	return nil
}

// goCall runs [amqprpc.Call] in the background and returns the call, as
// client.Go does for a call without a context.
func goCall(ctx context.Context, client *rpc.Client, method string, args, reply any) *rpc.Call {
	call := &rpc.Call{ServiceMethod: method, Args: args, Reply: reply, Done: make(chan *rpc.Call, 1)}
	go func() {
		call.Error = amqprpc.Call(ctx, client, method, args, reply)
		call.Done <- call
	}()
	return call
}

// failed returns the call's error, saying who failed, or nil.
func failed(who string, call *rpc.Call) error {
	if call.Error == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", who, call.Error)
}

// WaitServed waits until the prep cook and the cutter are served, for up
// to d (see the function WaitServed).
func (c *Chef) WaitServed(d time.Duration) error {
	return errors.Join(WaitServed(c.prepCook, d), WaitServed(c.cutter, d))
}

// QueueExpiry is how long a service queue outlives its last server: the
// broker then deletes it, so a demo leaves no queue behind.
const QueueExpiry = 10 * time.Second

// Serve serves rcvr's methods, as rpc.Register would, on queue until ctx
// ends. opts come after WithQueueExpiry(QueueExpiry) and can override it.
func Serve(ctx context.Context, url, queue string, rcvr any, opts ...amqprpc.ServerOption) error {
	srv := rpc.NewServer()
	if err := srv.Register(rcvr); err != nil {
		return err
	}
	opts = append([]amqprpc.ServerOption{amqprpc.WithQueueExpiry(QueueExpiry)}, opts...)
	return amqprpc.Serve(ctx, srv, url, queue, opts...)
}

// WaitServed returns once a server answers calls on client's queue.
// [amqprpc.Serve] gives no sign that it has started, and until a server has
// declared its queue the broker returns requests to it
// ([amqprpc.ErrNoQueue]), so a caller started along with its servers asks
// again, for up to d. (A queue that exists with no server holds the
// question until one comes or the call times out.) It asks with
// [amqprpc.PingType], which an amqprpc server answers in its codec without
// running or counting a call.
func WaitServed(client *rpc.Client, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		var pong string
		err := client.Call(amqprpc.PingType, "", &pong)
		cause := amqprpc.Cause(err)
		switch {
		case errors.Is(cause, amqprpc.ErrNoQueue) && time.Now().Before(deadline):
			time.Sleep(50 * time.Millisecond) // no queue yet: ask again
		case cause != err: // the call failed on its way: no queue, a timeout...
			return err
		default: // a server answered
			return nil
		}
	}
}
