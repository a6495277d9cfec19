package pgpayment_test

// Payment instances in processes of their own, killed with SIGKILL: after
// publishing a Charge's reply and before acknowledging its request, and in
// the middle of a Charge. The test binary doubles as the payment server
// (runPaymentChild); the parent reads what each child prints.

import (
	"bufio"
	"cmp"
	"context"
	"fmt"
	"log"
	"net/rpc"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/amqprpc/amqprpc"
	"github.com/amqprpc/amqprpc/examples/order/pgpayment"
	"github.com/amqprpc/amqprpc/examples/order/services"
	"github.com/amqprpc/amqprpc/internal/brokertest"
	"github.com/amqprpc/amqprpc/redisstore"
)

// The environment of a payment child.
const (
	childQueueEnv  = "ORDER_TEST_PAYMENT_QUEUE" // set: the binary is a payment child
	childNameEnv   = "ORDER_TEST_PAYMENT_NAME"
	childSchemaEnv = "ORDER_TEST_PAYMENT_SCHEMA"
	childStoreEnv  = "ORDER_TEST_PAYMENT_STORE" // "redis" or ""
	childDieEnv    = "ORDER_TEST_PAYMENT_HANG"  // "after-reply", "after-charge" or ""
)

// childPayment is a pgpayment.Payment that says when Charge runs and, told to, hangs
// once it has charged, until killed: cut off mid-run.
type childPayment struct {
	*pgpayment.Payment
	name, hang string
}

func (p *childPayment) Charge(args *services.ChargeArgs, c *services.Charge) error {
	fmt.Printf("RAN %s\n", p.name)
	err := p.Payment.Charge(args, c)
	if p.hang == "after-charge" {
		fmt.Printf("CHARGED %s\n", p.name)
		select {} // until killed
	}
	return err
}

// runPaymentChild serves payment as the environment says, until killed.
// Its hook prints TAKEN when it takes a request and ENDED once the reply
// is published; told to, it hangs right then, before the request is
// acknowledged (the server acknowledges each run of replies after their
// CallEnds), until killed.
func runPaymentChild(queue string) int {
	ctx := context.Background()
	name, hang := os.Getenv(childNameEnv), os.Getenv(childDieEnv)
	db, err := pgxpool.New(ctx, postgresURL())
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	pay, err := pgpayment.New(ctx, db, os.Getenv(childSchemaEnv), log.New(os.Stderr, name+": ", 0))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	hook := func(ctx context.Context, info *amqprpc.CallInfo) (context.Context, amqprpc.CallEnd) {
		fmt.Printf("TAKEN %s %s\n", name, info.Method)
		return ctx, func(_ time.Duration, err error) {
			fmt.Printf("ENDED %s %s %v\n", name, info.Method, err)
			if hang == "after-reply" && info.Method == "Payment.Charge" {
				select {} // until killed, the request unacknowledged
			}
		}
	}
	opts := []amqprpc.ServerOption{amqprpc.WithPrefetch(1), amqprpc.WithServerHook(hook)}
	if os.Getenv(childStoreEnv) == "redis" {
		opts = append(opts, amqprpc.WithReplyStore(redisstore.New(redis.NewClient(&redis.Options{Addr: redisAddr()})), time.Minute))
	}
	srv := rpc.NewServer()
	if err := srv.RegisterName("Payment", &childPayment{Payment: pay, name: name, hang: hang}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := amqprpc.Serve(ctx, srv, cmp.Or(os.Getenv("AMQP_URL"), brokertest.DefaultURL), queue, opts...); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// paymentChild is a payment server in a process of its own.
type paymentChild struct {
	cmd *exec.Cmd

	mu    sync.Mutex // guards lines
	lines []string   // what it printed
}

// startPaymentChild starts a payment child on queue and waits until it
// consumes; it is killed when the test ends, if still alive.
func startPaymentChild(t *testing.T, queue, schema, name, store, hang string, consumers int) *paymentChild {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childQueueEnv+"="+queue, childNameEnv+"="+name, childSchemaEnv+"="+schema,
		childStoreEnv+"="+store, childDieEnv+"="+hang, "AMQP_URL="+brokertest.URL(t))
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &paymentChild{cmd: cmd}
	scanned := make(chan struct{})
	go func() {
		defer close(scanned)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			c.mu.Lock()
			c.lines = append(c.lines, sc.Text())
			c.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-scanned // the pipe ends when the process does
		_ = cmd.Wait()
	})
	// A child connects to the broker, PostgreSQL and Redis, and makes its
	// tables, before it consumes: slower than a server in the test's own
	// process on a loaded machine.
	conn, _ := brokertest.Conn(t, brokertest.URL(t))
	brokertest.WaitFor(t, 30*time.Second, fmt.Sprintf("%d consumers on %q", consumers, queue), func() bool {
		return brokertest.Consumers(conn, queue) >= consumers
	})
	return c
}

// count returns how many lines the child printed that start with prefix.
func (c *paymentChild) count(prefix string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, l := range c.lines {
		if strings.HasPrefix(l, prefix) {
			n++
		}
	}
	return n
}

// await waits up to d until the child has printed a line starting with
// prefix.
func (c *paymentChild) await(t *testing.T, d time.Duration, prefix string) {
	t.Helper()
	brokertest.WaitFor(t, d, "a line "+prefix, func() bool { return c.count(prefix) > 0 })
}

func (c *paymentChild) kill(t *testing.T) {
	t.Helper()
	if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
}

// TestPaymentKilledAfterReply kills a payment instance with SIGKILL after
// it has published a Charge's reply and before it acknowledged the
// request: the broker delivers the request again, to the second instance.
// With the Redis reply store the second answers it from the store, and
// Charge ran once; without, Charge runs again, and only its PostgreSQL
// transaction keeps the money from moving twice. Either way the card is
// charged once and the caller has its reply.
func TestPaymentKilledAfterReply(t *testing.T) {
	testRedis(t)
	for _, tc := range []struct {
		store string
		runs  int
	}{{"redis", 1}, {"", 2}} {
		t.Run("store="+cmp.Or(tc.store, "none"), func(t *testing.T) {
			url := brokertest.URL(t)
			queue := brokertest.Queue(t, url, "order-payment-killed")
			db, schema := testSchema(t)
			a := startPaymentChild(t, queue, schema, "A", tc.store, "after-reply", 1)
			client := brokertest.Dial(t, amqprpc.Dial, url, queue, amqprpc.WithCallTimeout(30*time.Second))
			var charge services.Charge
			if err := client.Call("Payment.Charge", &services.ChargeArgs{OrderID: "k-1", Card: services.GoodCard, Amount: 900}, &charge); err != nil {
				t.Fatalf("Charge = %v", err)
			}
			a.await(t, 10*time.Second, "ENDED A Payment.Charge") // published; A now hangs before the ack
			b := startPaymentChild(t, queue, schema, "B", tc.store, "", 2)
			a.kill(t)
			b.await(t, 20*time.Second, "ENDED B Payment.Charge") // the request, delivered again, is answered
			if runs := a.count("RAN") + b.count("RAN"); runs != tc.runs {
				t.Errorf("Charge ran %d times (A %d, B %d); want %d", runs, a.count("RAN"), b.count("RAN"), tc.runs)
			}
			wantOneCharge(t, db, schema, "k-1", 900)
		})
	}
}

// TestPaymentCutMidRun kills a payment instance with SIGKILL in the middle
// of a Charge, after its transaction committed and before it returned:
// there is no reply to store, so once the dead instance's claim has
// expired the second instance runs Charge again. The reply store cannot
// help there; pgpayment's transaction, which wrote the charge with the
// request's message id, does: Charge ran twice, the card was charged once,
// and the caller gets that charge.
func TestPaymentCutMidRun(t *testing.T) {
	testRedis(t)
	url := brokertest.URL(t)
	queue := brokertest.Queue(t, url, "order-payment-cut")
	db, schema := testSchema(t)
	a := startPaymentChild(t, queue, schema, "A", "redis", "after-charge", 1)
	client := brokertest.Dial(t, amqprpc.Dial, url, queue, amqprpc.WithCallTimeout(60*time.Second))
	call := client.Go("Payment.Charge", &services.ChargeArgs{OrderID: "k-2", Card: services.GoodCard, Amount: 1200}, new(services.Charge), nil)
	a.await(t, 10*time.Second, "CHARGED A")
	b := startPaymentChild(t, queue, schema, "B", "redis", "", 2)
	begin := time.Now()
	a.kill(t)
	select {
	case <-call.Done:
	case <-time.After(45 * time.Second):
		t.Fatal("no reply within 45s of the kill")
	}
	t.Logf("answered %v after the kill (the dead instance's claim lasts up to its 10s lease)", time.Since(begin).Round(time.Millisecond))
	got := call.Reply.(*services.Charge)
	if call.Error != nil || got.Amount != 1200 || got.ID == "" {
		t.Fatalf("Charge = %+v, %v; want the charge of 1200", got, call.Error)
	}
	if runs := a.count("RAN") + b.count("RAN"); runs != 2 {
		t.Errorf("Charge ran %d times; want 2, the cut-off run and the one after it", runs)
	}
	wantOneCharge(t, db, schema, "k-2", 1200)
}

// wantOneCharge checks that the ledger in schema holds one charge, of cents
// for order.
func wantOneCharge(t *testing.T, db *pgxpool.Pool, schema, order string, cents int) {
	t.Helper()
	p, err := pgpayment.New(context.Background(), db, schema, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := p.Ledger(), []services.Entry{{OrderID: order, Amount: cents}}; !slices.Equal(got, want) {
		t.Errorf("Ledger() = %v; want %v, the card charged once", got, want)
	}
}
