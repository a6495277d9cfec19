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

Checks a client in any language against docs/PROTOCOL.md: it serves the
conformance service of §9 on QUEUE, with the edge cases a client must cope
with, while the client runs the client flow of §9 against it:

  - the client calls Conformance.Echo with the name of each step (plain,
    content-type-absent, content-type-empty, extra-properties, error,
    error-with-body, error-empty, delayed), and gets a reply of the shape
    the step names; then concurrent-0 to concurrent-19, all at once;
  - after each call it sends back what it got with Conformance.Record:
    "<step> ok <result>", or "<step> error <error text>";
  - at the end it records "done".

Every reply comes after a stray reply to the same reply_to, with a
correlation_id no call has, and is sent twice (as after a redelivery, §6);
requests that arrive together are answered last first.

It declares QUEUE (durable and auto-delete: the broker deletes it once
this command stops), prints one line per request, and once the client has
recorded "done" (or it is interrupted, or -for has passed) one line per
check, PASS or FAIL, then "N passed, M failed".

Example:
  amqprpc conform client conformance &
  /usr/bin/python3 examples/interop/python/client.py --conformance --queue conformance
`

const conformClientExitHelp = `
Exit status: 0 the client passed every check; 1 a check failed (or the
client did not finish the flow); 2 usage error; 3 could not serve (no
broker, queue declared otherwise).
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
		fmt.Fprintf(stdout, "serving the conformance service on queue %q with edge cases (prefetch %d), for a client to run the client flow of docs/PROTOCOL.md version %s\n", queue, *prefetch, conform.ProtocolVersion)
	}
	report, err := conform.ServeClient(ctx, url, queue, conform.ClientOptions{Prefetch: *prefetch, Log: stdout, Ready: ready})
	if err != nil {
		fmt.Fprintf(stderr, "%s: %s\n", cmd, withoutPassword(err.Error(), url))
		return exitTransit
	}
	fmt.Fprintf(stdout, "stopped: answered %s, with %d stray and %d repeated replies\n",
		plural(report.Answered, "request"), report.Strays, report.Repeats)
	for _, r := range report.Results {
		printResult(stdout, r)
	}
	fmt.Fprintf(stdout, "%d passed, %d failed\n", report.Passed(), len(report.Failures()))
	if !report.OK() {
		return exitFailed
	}
	return exitOK
}
