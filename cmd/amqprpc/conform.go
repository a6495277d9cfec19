package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"regexp"
	"strings"
	"time"

	"github.com/amqprpc/amqprpc/conform"
)

const conformHelp = `Usage:
  amqprpc conform server [flags] QUEUE   check the server on QUEUE against the protocol
  amqprpc conform client [flags] QUEUE   check a client, which runs the client flow on QUEUE

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

With -control it also checks the control protocol (PROTOCOL.md §13: PING,
INFO and STATS), which a server may or may not take part in.

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
	control := fs.Bool("control", false, "also check the control protocol (PROTOCOL.md §13)")
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

	opts := conform.ServerOptions{
		Timeout:  f.timeout,
		Prefetch: *prefetch,
		Control:  *control,
		Started: func() {
			fmt.Fprintf(stdout, "checking the server on queue %q against docs/PROTOCOL.md version %s (prefetch %d)\n", queue, conform.ProtocolVersion, *prefetch)
		},
		Checked: func(r conform.Result) { printResult(stdout, r) },
	}
	if re != nil {
		opts.Run = re.MatchString
	}
	report, err := conform.CheckServer(context.Background(), url, queue, opts)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %s\n", cmd, withoutPassword(err.Error(), url))
		return exitTransit
	}
	fmt.Fprintf(stdout, "%d passed, %d failed\n", report.Passed(), len(report.Failures()))
	if !report.OK() {
		return exitFailed
	}
	return exitOK
}

// printResult prints a PASS or FAIL line for one check.
func printResult(stdout io.Writer, r conform.Result) {
	if r.Err != nil {
		fmt.Fprintf(stdout, "FAIL  %-24s %-6s %s: %s\n", r.Name, r.Sections, r.What, oneLine(r.Err.Error()))
		return
	}
	fmt.Fprintf(stdout, "PASS  %-24s %-6s %s\n", r.Name, r.Sections, r.What)
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
