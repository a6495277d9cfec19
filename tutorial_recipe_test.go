package amqprpc_test

// The recipe of the README's section "RabbitMQ's tutorial programs": the
// code between the "README" marks below is printed there verbatim, and
// TestTutorialRecipe checks that it is and runs it against tutorial-style
// programs.

import (
	"context"
	"fmt"
	"net/rpc"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/amqprpc/amqprpc"
	"github.com/amqprpc/amqprpc/codec"
	"github.com/amqprpc/amqprpc/examples/interop/gotutorial"
	"github.com/amqprpc/amqprpc/internal/brokertest"
	"github.com/amqprpc/amqprpc/internal/interoptest"
)

// Fib is the tutorial's service for net/rpc.
type Fib struct{}

// Compute sets r to the n-th Fibonacci number.
func (Fib) Compute(n int, r *int) error {
	if n < 0 || n > 92 {
		return fmt.Errorf("want n from 0 to 92, got %d", n)
	}
	a, b := 0, 1
	for range n {
		a, b = b, a+b
	}
	*r = a
	return nil
}

// README: server
// serveTutorial answers RabbitMQ's tutorial clients on their queue.
func serveTutorial(ctx context.Context, url, queue string) error {
	srv := rpc.NewServer()
	if err := srv.RegisterName("Fibonacci", Fib{}); err != nil {
		return err
	}
	return amqprpc.Serve(ctx, srv, url, queue,
		amqprpc.WithDefaultMethod("Fibonacci.Compute"), // their requests have no type
		amqprpc.WithQuorumQueue())                      // as their servers declare rpc_queue
}

// README: end

// README: client
// callTutorial asks a tutorial server for fib(n).
func callTutorial(url, queue string, n int) (int, error) {
	client, err := amqprpc.Dial(url, queue, amqprpc.WithEncoding(codec.Text)) // "30" in, "832040" out
	if err != nil {
		return 0, err
	}
	defer client.Close()
	var r int
	err = client.Call("", n, &r) // "": no type, for a server that has one method
	return r, err
}

// README: end

// TestTutorialRecipe: the README's recipe is this file's, and works: the
// server serves a queue a tutorial server declared, for the Python and Ruby
// tutorial-style clients; the client calls the Go, Python and PHP
// tutorial-style servers.
func TestTutorialRecipe(t *testing.T) {
	recipeInReadme(t)
	url := brokertest.URL(t)
	dir := interoptest.Dir(t)

	t.Run("server", func(t *testing.T) {
		queue := brokertest.Queue(t, url, "recipe-server")
		_, ch := brokertest.Conn(t, url)
		// Declared first as RabbitMQ's tutorial servers do.
		if _, err := ch.QueueDeclare(queue, true, false, false, false, amqp.Table{"x-queue-type": "quorum"}); err != nil {
			t.Fatal(err)
		}
		srv := brokertest.Serve(t, func(ctx context.Context) error { return serveTutorial(ctx, url, queue) })
		brokertest.WaitForConsumers(t, url, queue, 1, srv)
		for _, client := range []func(t *testing.T) []string{
			func(t *testing.T) []string {
				return []string{interoptest.Python(t), filepath.Join(dir, "python", "fib_client.py")}
			},
			func(t *testing.T) []string {
				return []string{interoptest.Ruby(t), filepath.Join(dir, "ruby", "fib_client.rb")}
			},
		} {
			argv := append(client(t), "--queue", queue, "30")
			out := runProgram(t, url, argv...)
			if out != "fib(30) = 832040\n" {
				t.Errorf("%s printed %q; want fib(30) = 832040", argv[1], out)
			}
		}
	})
	t.Run("client", func(t *testing.T) {
		servers := map[string]func(t *testing.T, queue string){
			"go": func(t *testing.T, queue string) {
				srv := brokertest.Serve(t, func(ctx context.Context) error { return gotutorial.Serve(ctx, url, queue, nil) })
				brokertest.WaitForConsumers(t, url, queue, 1, srv)
			},
			"python": func(t *testing.T, queue string) {
				interoptest.StartServer(t, url, interoptest.Python(t), filepath.Join(dir, "python", "fib_server.py"), "--queue", queue)
			},
			"php": func(t *testing.T, queue string) {
				interoptest.StartServer(t, url, interoptest.PHP(t), filepath.Join(dir, "php", "fib_server.php"), "--queue", queue)
			},
		}
		for name, start := range servers {
			t.Run(name, func(t *testing.T) {
				queue := brokertest.Queue(t, url, "recipe-client-"+name)
				start(t, queue)
				if got, err := callTutorial(url, queue, 30); err != nil || got != 832040 {
					t.Errorf("callTutorial(30) = %d, %v; want 832040, nil", got, err)
				}
			})
		}
	})
}

// recipeInReadme checks that the README shows the code between the
// README marks of this file as it is.
func recipeInReadme(t *testing.T) {
	t.Helper()
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	self, err := os.ReadFile("tutorial_recipe_test.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, part := range []string{"server", "client"} {
		_, rest, _ := strings.Cut(string(self), "// README: "+part+"\n")
		code, _, _ := strings.Cut(rest, "\n// README: end")
		if code == "" || !strings.Contains(string(readme), "```go\n"+code+"```") {
			t.Errorf("README.md does not show the recipe's %s as tutorial_recipe_test.go has it:\n%s", part, code)
		}
	}
}

// runProgram runs a program with AMQP_URL set, within 60 s, and returns
// what it printed, failing the test unless it exits 0.
func runProgram(t *testing.T, url string, argv ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), "AMQP_URL="+url)
	cmd.WaitDelay = 5 * time.Second
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Errorf("%s: %v; stderr:\n%s", strings.Join(argv[:2], " "), err, stderr.String())
	}
	return string(out)
}
