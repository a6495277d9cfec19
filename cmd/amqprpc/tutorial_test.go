package main

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/amqprpc/amqprpc/examples/interop/gotutorial"
	"github.com/amqprpc/amqprpc/internal/brokertest"
	"github.com/amqprpc/amqprpc/internal/interoptest"
)

// TestCallTutorialServers: amqprpc call, with -text or without, calls
// tutorial-style Fibonacci servers in Go, Python, Ruby and PHP, which
// ignore the type and answer the number as text (text/plain, no
// content_type, application/octet-stream).
func TestCallTutorialServers(t *testing.T) {
	url := brokertest.URL(t)
	for _, server := range []struct {
		name  string
		start func(t *testing.T, queue string)
	}{
		{"go", func(t *testing.T, queue string) {
			srv := brokertest.Serve(t, func(ctx context.Context) error { return gotutorial.Serve(ctx, url, queue, nil) })
			brokertest.WaitForConsumers(t, url, queue, 1, srv)
		}},
		{"python", func(t *testing.T, queue string) {
			interoptest.StartServer(t, url, interoptest.Python(t), filepath.Join(interoptest.Dir(t), "python", "fib_server.py"), "--queue", queue)
		}},
		{"ruby", func(t *testing.T, queue string) {
			interoptest.StartServer(t, url, interoptest.Ruby(t), filepath.Join(interoptest.Dir(t), "ruby", "fib_server.rb"), "--queue", queue)
		}},
		{"php", func(t *testing.T, queue string) {
			interoptest.StartServer(t, url, interoptest.PHP(t), filepath.Join(interoptest.Dir(t), "php", "fib_server.php"), "--queue", queue)
		}},
	} {
		t.Run(server.name, func(t *testing.T) {
			queue := brokertest.Queue(t, url, "tutorial-"+server.name)
			server.start(t, queue)
			for _, args := range [][]string{
				{"call", "-text", "-timeout", "10s", queue, "", "30"},
				{"call", "-timeout", "10s", queue, "", "30"},
			} {
				start := time.Now()
				r := cli(t, url, nil, args...)
				if r.code != exitOK || r.stdout != "832040\n" || r.stderr != "" {
					t.Errorf("amqprpc %q = exit %d, stdout %q, stderr %q after %v; want exit 0 and 832040",
						args, r.code, r.stdout, r.stderr, time.Since(start).Round(time.Millisecond))
				}
			}
		})
	}
}
