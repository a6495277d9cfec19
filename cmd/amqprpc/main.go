// Command amqprpc calls amqprpc services from a terminal or a script, as
// grpcurl does for gRPC:
//
//	amqprpc call [flags] QUEUE SERVICE.METHOD [JSON]
//	amqprpc ping [flags] QUEUE
//	amqprpc ls [flags]
//	amqprpc info [flags] QUEUE
//	amqprpc stats [flags] QUEUE
//	amqprpc conform server [flags] QUEUE
//	amqprpc conform client [flags] QUEUE
//
// call sends the JSON argument (read from stdin when it is not given) to
// the service queue and prints the reply as JSON. ping says whether the
// queue exists, how many servers consume it and how many requests wait in
// it, and times a no-op request that an amqprpc server answers itself.
//
// ls, info and stats ask server instances about themselves through the
// control protocol (docs/PROTOCOL.md §13): ls lists the services on the
// broker with their instances and versions, info lists the instances of
// one service (host, pid, uptime, calls in flight), and stats shows per
// instance and method the calls, errors, processing time and last error.
// With -json they print JSON; their exit status is 0 when an instance
// answered, 1 when none did.
//
// Exit status: 0 a reply; 1 the server answered with an error; 2 a usage
// error; 3 the call failed on the way (no broker, no such queue, access
// refused, no reply within -timeout).
//
// conform checks implementations of docs/PROTOCOL.md in any language
// (package github.com/amqprpc/amqprpc/conform): conform server checks the
// server on a queue, which serves the conformance service of PROTOCOL.md
// §9, and exits 0 only if every check passes; conform client serves that
// service with the edge cases a client must cope with while a client runs
// the client flow of §9, and exits 0 only if the client passes every
// check.
//
// Install it with
//
//	go install github.com/amqprpc/amqprpc/cmd/amqprpc@latest
package main

import (
	"fmt"
	"io"
	"os"
)

// Exit statuses.
const (
	exitOK      = 0 // a reply
	exitFailed  = 1 // the server answered with an error
	exitUsage   = 2 // the command line or the argument is wrong
	exitTransit = 3 // the call failed on the way
)

const usage = `amqprpc calls net/rpc services served over RabbitMQ with amqprpc.

Usage:
  amqprpc call [flags] QUEUE SERVICE.METHOD [JSON]   call a method, print the reply as JSON
  amqprpc ping [flags] QUEUE                         check that a server answers on QUEUE
  amqprpc ls [flags]                                 list the services and their instances
  amqprpc info [flags] QUEUE                         list the instances that serve QUEUE
  amqprpc stats [flags] QUEUE                        calls, errors and times per instance and method
  amqprpc conform server [flags] QUEUE               check a server in any language against the protocol
  amqprpc conform client [flags] QUEUE               check a client in any language against the protocol

Run amqprpc COMMAND -h (call, ping, ls, info, stats, conform) for the flags and examples.
The broker URL comes from -url, else $AMQP_URL, else amqp://guest:guest@localhost:5672/.

Exit status: 0 a reply, 1 the server answered with an error, 2 usage error,
3 failed on the way (no broker, no such queue, access refused, timeout).
For ls, info and stats: 0 an instance answered, 1 none did.
`

func main() {
	os.Exit(run(os.Args[1:], stdinUnlessTerminal(), os.Stdout, os.Stderr))
}

// stdinUnlessTerminal returns os.Stdin, or nil when it is a terminal: a
// JSON argument is only read from a pipe or a file, never waited for.
func stdinUnlessTerminal() io.Reader {
	fi, err := os.Stdin.Stat()
	if err != nil || fi.Mode()&os.ModeCharDevice != 0 {
		return nil
	}
	return os.Stdin
}

// run is the whole command; stdin may be nil.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	switch args[0] {
	case "call":
		return runCall(args[1:], stdin, stdout, stderr)
	case "ping":
		return runPing(args[1:], stdout, stderr)
	case "ls":
		return lsCommand.run(args[1:], stdout, stderr)
	case "info":
		return infoCommand.run(args[1:], stdout, stderr)
	case "stats":
		return statsCommand.run(args[1:], stdout, stderr)
	case "conform":
		return runConform(args[1:], stdout, stderr)
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage)
		return exitOK
	}
	fmt.Fprintf(stderr, "amqprpc: unknown command %q (want call, ping, ls, info, stats or conform; run amqprpc -h)\n", args[0])
	return exitUsage
}
