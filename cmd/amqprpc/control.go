package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/amqprpc/amqprpc"
	"github.com/amqprpc/amqprpc/internal/controltable"
)

// The control commands: ls, info and stats ask server instances through
// the control protocol (docs/PROTOCOL.md §13).

const lsHelp = `Usage: amqprpc ls [flags]

Lists the services on the broker that amqprpc servers serve: each service
queue, how many instances answered, and their versions. It asks every
instance (a PING control request) and waits -wait for the answers.

Example:
  amqprpc ls
`

const infoHelp = `Usage: amqprpc info [flags] QUEUE

Lists the instances that serve QUEUE: each one's id, version, host, process
id, uptime, prefetch, calls in flight and metadata (an INFO control
request). It stops waiting once every consumer of QUEUE has answered, or
after -wait.

Example:
  amqprpc info arith
  amqprpc info -json arith | jq '.[].host'
`

const statsHelp = `Usage: amqprpc stats [flags] QUEUE

Shows what each instance that serves QUEUE has done since it started, one
line per instance and method: the calls it answered, those that failed, the
average and total time from taking a request to its reply, and the last
error; then the totals over all instances (a STATS control request). Requests
refused before a method ran (unknown method, no method, unsupported content
type, body too large) are counted as (refused). It stops waiting once every
consumer of QUEUE has answered, or after -wait.

Example:
  amqprpc stats arith
  amqprpc stats -id 3f2a9c1e5b7d4e60 arith
`

const controlExitHelp = `
Exit status: 0 at least one instance answered; 1 none did (no such service,
no instance with -id, or servers that do not answer control requests);
2 usage error; 3 failed on the way (no broker, access refused).
`

// controlCommand is one of ls, info and stats.
type controlCommand struct {
	name  string
	help  string
	queue bool // takes QUEUE
	ask   func(ctx context.Context, url, queue string, opts ...amqprpc.ControlOption) ([]amqprpc.Instance, error)
	print func(w io.Writer, instances []amqprpc.Instance) error
}

var (
	lsCommand = controlCommand{name: "ls", help: lsHelp, ask: amqprpc.Ping, print: func(w io.Writer, in []amqprpc.Instance) error {
		return controltable.WriteServices(w, controltable.Services(in))
	}}
	infoCommand = controlCommand{name: "info", help: infoHelp, queue: true, ask: amqprpc.Info, print: func(w io.Writer, in []amqprpc.Instance) error {
		return controltable.WriteInfo(w, in, time.Now())
	}}
	statsCommand = controlCommand{name: "stats", help: statsHelp, queue: true, ask: amqprpc.Stats, print: controltable.WriteStats}
)

// controlFlags are the flags of ls, info and stats.
type controlFlags struct {
	connectFlags // -url only
	wait         time.Duration
	json         bool
	id           string
}

func (f *controlFlags) register(fs *flag.FlagSet, queue bool) {
	fs.StringVar(&f.url, "url", "", "broker `URL` (default $AMQP_URL, else "+defaultURL+")")
	fs.DurationVar(&f.wait, "wait", amqprpc.DefaultControlWait, "how long to wait for the instances' answers")
	fs.BoolVar(&f.json, "json", false, "print the answers as JSON")
	if queue {
		fs.StringVar(&f.id, "id", "", "ask only the instance with this `ID`")
	}
}

// run is amqprpc ls, info or stats.
func (c controlCommand) run(args []string, stdout, stderr io.Writer) int {
	cmd := "amqprpc " + c.name
	fs := newFlagSet(c.name)
	var f controlFlags
	f.register(fs, c.queue)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printHelpWith(fs, c.help, controlExitHelp, stdout)
			return exitOK
		}
		return usageError(stderr, cmd, err.Error())
	}
	queue, problem := c.queueArg(fs.Args())
	switch {
	case problem != "":
	case f.wait < time.Millisecond:
		problem = fmt.Sprintf("-wait %v: want at least 1ms", f.wait)
	case len(f.id) > 200:
		problem = fmt.Sprintf("-id of %d bytes: instance ids have at most 200", len(f.id))
	}
	if problem != "" {
		return usageError(stderr, cmd, problem)
	}
	f.timeout = f.wait // for check
	url, err := f.check()
	if err != nil {
		code, line := failure(cmd, "", err)
		fmt.Fprintln(stderr, line)
		return code
	}
	opts := []amqprpc.ControlOption{amqprpc.WithControlWait(f.wait), amqprpc.WithConnectionName(cmd)}
	if f.id != "" {
		opts = append(opts, amqprpc.WithInstance(f.id))
	}
	instances, err := c.ask(context.Background(), url, queue, opts...)
	if err != nil {
		return controlFailure(cmd, err, stderr)
	}
	if len(instances) == 0 {
		fmt.Fprintln(stderr, c.noAnswer(cmd, url, queue, &f))
		return exitFailed
	}
	if f.json {
		err = c.printJSON(stdout, instances)
	} else {
		err = c.print(stdout, instances)
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", cmd, err)
		return exitTransit
	}
	return exitOK
}

// queueArg checks the arguments: QUEUE for info and stats, none for ls.
func (c controlCommand) queueArg(args []string) (string, string) {
	switch {
	case !c.queue && len(args) > 0:
		return "", fmt.Sprintf("want no argument, got %q (flags go before arguments)", args[0])
	case !c.queue:
		return "", ""
	case len(args) != 1:
		return "", "want QUEUE, got " + plural(len(args), "argument")
	}
	return args[0], checkQueue(args[0])
}

// controlFailure reports a question that failed on the way.
func controlFailure(cmd string, err error, stderr io.Writer) int {
	var de *amqprpc.DialError
	if !errors.As(err, &de) && strings.Contains(err.Error(), "ACCESS_REFUSED") {
		fmt.Fprintf(stderr, "%s: %s; the broker user needs the permissions of the control protocol (docs/SECURITY.md)\n",
			cmd, strings.TrimPrefix(err.Error(), "amqprpc: "))
		return exitTransit
	}
	code, line := failure(cmd, "", err)
	fmt.Fprintln(stderr, line)
	return code
}

// noAnswer says why no instance answered, as far as the broker can tell.
func (c controlCommand) noAnswer(cmd, url, queue string, f *controlFlags) string {
	switch {
	case queue == "":
		return fmt.Sprintf("%s: no amqprpc server instance answered within %v", cmd, f.wait)
	case f.id != "":
		return fmt.Sprintf("%s: no instance %q of %q answered within %v (amqprpc info %s lists the ids)", cmd, f.id, queue, f.wait, queue)
	}
	q, err := inspect(url, queue)
	switch {
	case err == nil && !q.exists:
		return fmt.Sprintf("%s: no queue %q on the broker (names are case-sensitive; amqprpc ls lists the services)", cmd, queue)
	case err == nil && q.consumers > 0:
		return fmt.Sprintf("%s: no instance of %q answered within %v, though the queue has %s: servers older than the control protocol, run WithoutControl, or without its permissions do not answer",
			cmd, queue, f.wait, plural(q.consumers, "consumer"))
	}
	return fmt.Sprintf("%s: no instance of %q answered within %v", cmd, queue, f.wait)
}

// printJSON prints ls's services, or the documents the instances sent.
func (c controlCommand) printJSON(w io.Writer, instances []amqprpc.Instance) error {
	var v any
	if c.queue {
		docs := make([]json.RawMessage, len(instances))
		for i, in := range instances {
			docs[i] = in.Raw
		}
		v = docs
	} else {
		v = controltable.Services(instances)
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}
