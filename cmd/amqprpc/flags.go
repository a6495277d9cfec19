package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/rpc"
	"os"
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/amqprpc/amqprpc"
	"github.com/amqprpc/amqprpc/codec"
)

// defaultURL is the broker when neither -url nor $AMQP_URL names one.
const defaultURL = "amqp://guest:guest@localhost:5672/"

// connectFlags are the flags every subcommand has.
type connectFlags struct {
	url     string
	timeout time.Duration
	direct  bool
}

// register adds the flags to fs, with timeout as -timeout's default.
func (f *connectFlags) register(fs *flag.FlagSet, timeout time.Duration) {
	// The default is resolved later, so that -h never prints a password
	// from $AMQP_URL.
	fs.StringVar(&f.url, "url", "", "broker `URL` (default $AMQP_URL, else "+defaultURL+")")
	fs.DurationVar(&f.timeout, "timeout", timeout, "how long to wait for the reply, and the request's expiration:\nhow long it may wait in the queue (connecting gives up after 10s)")
	fs.BoolVar(&f.direct, "direct", false, "receive the reply through direct reply-to (amq.rabbitmq.reply-to)\ninstead of a private reply queue")
}

func (f *connectFlags) brokerURL() string {
	switch {
	case f.url != "":
		return f.url
	case os.Getenv("AMQP_URL") != "":
		return os.Getenv("AMQP_URL")
	}
	return defaultURL
}

// newFlagSet returns the flag set of subcommand name. Its errors are
// reported by parse, in one line.
func newFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet("amqprpc "+name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return fs
}

// printHelp prints a subcommand's help, its flags and the exit statuses.
func printHelp(fs *flag.FlagSet, help string, stdout io.Writer) {
	printHelpWith(fs, help, exitHelp, stdout)
}

// printHelpWith prints a subcommand's help, its flags and exit, what its
// exit statuses mean.
func printHelpWith(fs *flag.FlagSet, help, exit string, stdout io.Writer) {
	fmt.Fprint(stdout, help)
	fmt.Fprintln(stdout, "\nFlags:")
	fs.SetOutput(stdout)
	fs.PrintDefaults()
	fs.SetOutput(io.Discard)
	fmt.Fprint(stdout, exit)
}

const exitHelp = `
Exit status: 0 a reply; 1 the server answered with an error (the service's
own, or a refusal such as an unknown method); 2 usage error; 3 failed on the
way (no broker, no such queue, access refused, no reply within -timeout).
`

// parse parses args into fs. done reports that the command ends here, with
// status code: after -h has printed help, or a flag error on stderr.
func parse(fs *flag.FlagSet, help string, args []string, stdout, stderr io.Writer) (code int, done bool) {
	err := fs.Parse(args)
	switch {
	case err == nil:
		return 0, false
	case errors.Is(err, flag.ErrHelp):
		printHelp(fs, help, stdout)
		return exitOK, true
	}
	return usageError(stderr, fs.Name(), err.Error()), true
}

// usageError reports a usage error in one line.
func usageError(stderr io.Writer, cmd, text string) int {
	fmt.Fprintf(stderr, "%s: %s (run %s -h for usage)\n", cmd, text, cmd)
	return exitUsage
}

// checkQueue rejects a queue name no service can have.
func checkQueue(queue string) string {
	switch {
	case queue == "":
		return "empty QUEUE"
	case len(queue) > 255:
		return fmt.Sprintf("QUEUE of %d bytes: AMQP allows 255", len(queue))
	case strings.HasPrefix(queue, "amq."):
		return fmt.Sprintf("QUEUE %q: the amq. prefix is reserved by the broker", queue)
	}
	return ""
}

// dial checks the flags and returns an amqprpc client of queue. The exit
// status and message of a failure come from failure.
func dial(cmd string, f *connectFlags, queue string, enc codec.Encoding) (*rpc.Client, error) {
	url, err := f.check()
	if err != nil {
		return nil, err
	}
	opts := []amqprpc.ClientOption{
		amqprpc.WithEncoding(enc),
		amqprpc.WithCallTimeout(f.timeout),
		amqprpc.WithConnectionName(cmd),
	}
	if f.direct {
		opts = append(opts, amqprpc.WithDirectReplyTo())
	}
	return amqprpc.Dial(url, queue, opts...)
}

// check checks -timeout and the broker URL, and returns the URL.
func (f *connectFlags) check() (string, error) {
	if f.timeout < time.Millisecond {
		return "", &usageErr{fmt.Sprintf("-timeout %v: want at least 1ms", f.timeout)}
	}
	url := f.brokerURL()
	if _, err := amqp.ParseURI(url); err != nil {
		// Not quoted: where it does not parse, the password cannot be
		// told apart to redact it.
		source := "-url"
		if f.url == "" {
			source = "$AMQP_URL"
		}
		return "", &usageErr{source + " is not an AMQP URL: want amqp://user:password@host:port/vhost, with reserved characters in the user or password percent-encoded"}
	}
	return url, nil
}
