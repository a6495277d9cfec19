package main

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"regexp"
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

const conformHelp = `Usage:
  amqprpc conform server [flags] QUEUE   check the server on QUEUE against the protocol
  amqprpc conform client [flags] QUEUE   serve QUEUE with edge cases, for a client to call

Both sides of docs/PROTOCOL.md, for implementations in any language. The
server on QUEUE serves the conformance service of PROTOCOL.md §9. Run
amqprpc conform server -h or amqprpc conform client -h for the flags.
`

// runConform is amqprpc conform.
func runConform(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, conformHelp)
		return exitUsage
	}
	switch args[0] {
	case "server":
		return runConformServer(args[1:], stdout, stderr)
	case "client":
		return runConformClient(args[1:], stdout, stderr)
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, conformHelp)
		return exitOK
	}
	fmt.Fprintf(stderr, "amqprpc conform: unknown command %q (want server or client; run amqprpc conform -h)\n", args[0])
	return exitUsage
}

const conformServerHelp = `Usage: amqprpc conform server [flags] QUEUE

Checks the server that consumes QUEUE, in any language, against
docs/PROTOCOL.md: it sends requests over the raw wire (JSON, with
amqp091-go, and a few with properties present but empty) and prints one
line per check, PASS or FAIL, with the section of PROTOCOL.md it tests,
then "N passed, M failed".

The server must serve the conformance service of PROTOCOL.md §9
(Conformance.Echo, Add, Fail, Sleep, Record and Count, with
Conformance.Echo as its default method) and run the requests it holds at
once. The expired-not-run check fills the server's prefetch with Sleep
calls, so -prefetch must be the server's prefetch (basic.qos). The run
takes a few seconds; nothing but the checker should call the server.

Example:
  go run ./examples/conformance -queue conformance &
  amqprpc conform server conformance
`

// conformExitHelp replaces exitHelp for conform server.
const conformExitHelp = `
Exit status: 0 every check passed; 1 a check failed; 2 usage error; 3 the
checks could not run (no broker, no such queue, nothing consumes it).
`

// runConformServer is amqprpc conform server.
func runConformServer(args []string, stdout, stderr io.Writer) int {
	const cmd = "amqprpc conform server"
	fs := newFlagSet("conform server")
	var f connectFlags
	fs.StringVar(&f.url, "url", "", "broker `URL` (default $AMQP_URL, else "+defaultURL+")")
	fs.DurationVar(&f.timeout, "timeout", 5*time.Second, "how long to wait for each reply")
	prefetch := fs.Int("prefetch", 10, "the server's prefetch: how many requests it holds unacknowledged at once")
	runRE := fs.String("run", "", "run only the checks whose names match this `regexp`")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printHelpWith(fs, conformServerHelp, conformExitHelp, stdout)
			return exitOK
		}
		return usageError(stderr, cmd, err.Error())
	}
	queue, problem := queueAndPrefetch(fs, *prefetch)
	if problem != "" {
		return usageError(stderr, cmd, problem)
	}
	var re *regexp.Regexp
	if *runRE != "" {
		var err error
		if re, err = regexp.Compile(*runRE); err != nil {
			return usageError(stderr, cmd, "-run: "+err.Error())
		}
	}
	url, err := f.check()
	if err != nil {
		code, line := failure(cmd, "", err)
		fmt.Fprintln(stderr, line)
		return code
	}

	k, err := newChecker(url, queue, f.timeout, *prefetch)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %s\n", cmd, withoutPassword(err.Error(), url))
		return exitTransit
	}
	defer k.close()
	fmt.Fprintf(stdout, "checking the server on queue %q against docs/PROTOCOL.md version %s (prefetch %d)\n", queue, protocolVersion, *prefetch)
	passed, failed := runChecks(k, re, stdout)
	fmt.Fprintf(stdout, "%d passed, %d failed\n", passed, failed)
	if failed > 0 || passed == 0 {
		return exitFailed
	}
	return exitOK
}

// runChecks runs the checks whose names re matches (all of them when re
// is nil), in order, prints a PASS or FAIL line for each to stdout, and
// counts them.
func runChecks(k *checker, re *regexp.Regexp, stdout io.Writer) (passed, failed int) {
	for _, c := range conformChecks {
		if re != nil && !re.MatchString(c.name) {
			continue
		}
		if err := c.run(k); err != nil {
			failed++
			fmt.Fprintf(stdout, "FAIL  %-24s %-6s %s: %s\n", c.name, c.sections, c.what, oneLine(err.Error()))
			continue
		}
		passed++
		fmt.Fprintf(stdout, "PASS  %-24s %-6s %s\n", c.name, c.sections, c.what)
	}
	return passed, failed
}

// protocolVersion is the version of docs/PROTOCOL.md the checks check.
const protocolVersion = "1.0"

// checker holds what the checks share: one connection, a caller with a
// private reply queue and one with direct reply-to.
type checker struct {
	url, queue string
	timeout    time.Duration
	prefetch   int
	token      string // unique to this run: Record tokens and correlation ids
	conn       *amqp.Connection
	private    *caller
	direct     *caller
}

// newChecker connects and checks that something consumes queue.
func newChecker(url, queue string, timeout time.Duration, prefetch int) (*checker, error) {
	conn, err := amqp.DialConfig(url, amqp.Config{
		Dial:       amqp.DefaultDial(10 * time.Second),
		Properties: amqp.Table{"connection_name": "amqprpc conform server"},
	})
	if err != nil {
		return nil, fmt.Errorf("cannot connect to the broker: %w", err)
	}
	k := &checker{url: url, queue: queue, timeout: timeout, prefetch: prefetch, conn: conn,
		token: "conform-" + strings.ToLower(rand.Text()[:10])}
	ok := false
	defer func() {
		if !ok {
			k.close()
		}
	}()
	q, err := inspectOn(conn, queue)
	switch {
	case err != nil:
		return nil, err
	case !q.exists:
		return nil, fmt.Errorf("no queue %q on the broker; start the server to check, or check the name", queue)
	case q.consumers == 0:
		return nil, fmt.Errorf("nothing consumes queue %q; start the server to check", queue)
	case q.messages > 0:
		return nil, fmt.Errorf("queue %q holds %d requests already; the checks need it empty and the server idle", queue, q.messages)
	}
	if k.private, err = newCaller(conn, queue, k.token+"-p", false); err != nil {
		return nil, err
	}
	if k.direct, err = newCaller(conn, queue, k.token+"-d", true); err != nil {
		return nil, err
	}
	ok = true
	return k, nil
}

func (k *checker) close() {
	if k.private != nil {
		k.private.close()
	}
	if k.direct != nil {
		k.direct.close()
	}
	k.conn.Close()
}

// inspectOn asks the broker about queue on a channel of its own.
func inspectOn(conn *amqp.Connection, queue string) (queueState, error) {
	ch, err := conn.Channel()
	if err != nil {
		return queueState{}, err
	}
	defer ch.Close()
	q, err := ch.QueueDeclarePassive(queue, false, false, false, false, nil)
	var ae *amqp.Error
	switch {
	case errors.As(err, &ae) && ae.Code == amqp.NotFound:
		return queueState{}, nil
	case err != nil:
		return queueState{}, err
	}
	return queueState{exists: true, consumers: q.Consumers, messages: q.Messages}, nil
}

func contextWithTimeout(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}

// oneLine keeps a message on one line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// queueAndPrefetch checks the arguments both conform commands take: one
// QUEUE, and a -prefetch of 1 to 1000. It returns the queue, or what is
// wrong.
func queueAndPrefetch(fs *flag.FlagSet, prefetch int) (string, string) {
	if fs.NArg() != 1 {
		return "", "want QUEUE, got " + plural(fs.NArg(), "argument")
	}
	queue := fs.Arg(0)
	if problem := checkQueue(queue); problem != "" {
		return "", problem
	}
	if prefetch < 1 || prefetch > 1000 {
		return "", fmt.Sprintf("-prefetch %d: want 1 to 1000", prefetch)
	}
	return queue, ""
}
