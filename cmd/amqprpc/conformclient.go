package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/amqprpc/amqprpc/conform"
)

const conformClientHelp = `Usage: amqprpc conform client [flags] QUEUE

Serves the conformance service of docs/PROTOCOL.md §9 on QUEUE, with the
edge cases a client must cope with, so that a client in any language can
run its calls against it:

  - before each reply, a stray reply to the same reply_to with a
    correlation_id no call has (as a late reply to a call that timed out
    would be), holding a value the client must not take;
  - after each reply, the same reply again (as after a redelivery, §6);
  - requests that arrive together are answered last first (replies out of
    order);
  - Conformance.Fail answers with an error reply (x-rpc-error);
  - Conformance.Sleep answers after the time it is given (a delayed reply).

It declares QUEUE (durable and auto-delete: the broker deletes it once
this command stops), prints one line per request, and runs until it is
interrupted or -for has passed. A client should get exactly the results
PROTOCOL.md §9 gives for each call, and see the stray and repeated replies
only as replies to no call of its own.

Example:
  amqprpc conform client conformance &
  python3 examples/interop/python/client.py --conformance --queue conformance
`

const conformClientExitHelp = `
Exit status: 0 served until interrupted or -for passed; 2 usage error; 3
could not serve (no broker, queue declared otherwise).
`

// runConformClient is amqprpc conform client.
func runConformClient(args []string, stdout, stderr io.Writer) int {
	const cmd = "amqprpc conform client"
	fs := newFlagSet("conform client")
	var f connectFlags
	fs.StringVar(&f.url, "url", "", "broker `URL` (default $AMQP_URL, else "+defaultURL+")")
	prefetch := fs.Int("prefetch", 10, "requests held, and answered, at once")
	forTime := fs.Duration("for", 0, "stop after this long (0: run until interrupted)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printHelpWith(fs, conformClientHelp, conformClientExitHelp, stdout)
			return exitOK
		}
		return usageError(stderr, cmd, err.Error())
	}
	queue, problem := queueAndPrefetch(fs, *prefetch)
	if problem != "" {
		return usageError(stderr, cmd, problem)
	}
	f.timeout = time.Second // unused, but check wants a valid one
	url, err := f.check()
	if err != nil {
		code, line := failure(cmd, "", err)
		fmt.Fprintln(stderr, line)
		return code
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *forTime > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *forTime)
		defer cancel()
	}
	ready := func() {
		fmt.Fprintf(stdout, "serving the conformance service on queue %q with edge cases (prefetch %d); Ctrl-C to stop\n", queue, *prefetch)
	}
	report, err := conform.ServeClient(ctx, url, queue, conform.ClientOptions{Prefetch: *prefetch, Log: stdout, Ready: ready})
	if err != nil {
		fmt.Fprintf(stderr, "%s: %s\n", cmd, withoutPassword(err.Error(), url))
		return exitTransit
	}
	fmt.Fprintf(stdout, "stopped: answered %s, with %d stray and %d repeated replies\n",
		plural(report.Answered, "request"), report.Strays, report.Repeats)
	return exitOK
}
