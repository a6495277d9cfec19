package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/amqprpc/amqprpc"
	"github.com/amqprpc/amqprpc/codec"
)

const callHelp = `Usage: amqprpc call [flags] QUEUE SERVICE.METHOD [JSON]

Calls SERVICE.METHOD of the amqprpc service that consumes QUEUE with the
argument JSON, and prints the reply as JSON, followed by a newline. Without
JSON the argument is read from stdin. A METHOD of '' sends no method, for
a server with a default method (or a RabbitMQ tutorial-style server).

The request is application/json; with -text it is text/plain, as RabbitMQ's
tutorial clients send it: a JSON string argument goes as its raw text,
anything else as JSON. A text reply that is not JSON is printed as a JSON
string.

Examples:
  amqprpc call arith Arith.Multiply '{"A":7,"B":8}'
  echo '{"A":17,"B":5}' | amqprpc call arith Arith.Divide
  amqprpc call -text rpc_queue '' 30
`

// callTimeout is call's default -timeout, amqprpc's default call timeout.
const callTimeout = 30 * time.Second

// runCall is amqprpc call.
func runCall(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	const cmd = "amqprpc call"
	fs := newFlagSet("call")
	var f connectFlags
	f.register(fs, callTimeout)
	text := fs.Bool("text", false, "send the request as text/plain instead of application/json")
	if code, done := parse(fs, callHelp, args, stdout, stderr); done {
		return code
	}
	rest := fs.Args()
	switch {
	case len(rest) < 2:
		return usageError(stderr, cmd, "want QUEUE SERVICE.METHOD [JSON], got "+plural(len(rest), "argument"))
	case len(rest) > 3:
		if strings.HasPrefix(rest[3], "-") {
			return usageError(stderr, cmd, fmt.Sprintf("flags go before QUEUE, and %q comes after the JSON argument", rest[3]))
		}
		return usageError(stderr, cmd, "want QUEUE SERVICE.METHOD [JSON], got "+plural(len(rest), "argument")+" (quote the JSON argument)")
	}
	queue, method := rest[0], rest[1]
	if problem := checkQueue(queue); problem != "" {
		return usageError(stderr, cmd, problem)
	}
	if method != "" && !strings.Contains(method, ".") {
		return usageError(stderr, cmd, fmt.Sprintf("method %q is not SERVICE.METHOD", method))
	}
	arg, problem := readArgument(rest, stdin)
	if problem != "" {
		return usageError(stderr, cmd, problem)
	}
	value, problem := argument(arg, *text)
	if problem != "" {
		return usageError(stderr, cmd, problem)
	}

	enc := codec.JSON
	if *text {
		enc = codec.Text
	}
	client, err := dial(cmd, &f, queue, enc)
	if err != nil {
		code, line := failure(cmd, method, err)
		fmt.Fprintln(stderr, line)
		return code
	}
	defer client.Close()
	var reply json.RawMessage
	if err := client.Call(method, value, &reply); err != nil {
		code, line := failure(cmd, method, err)
		fmt.Fprintln(stderr, line)
		return code
	}
	fmt.Fprintf(stdout, "%s\n", printable(reply))
	return exitOK
}

// readArgument returns the JSON argument: the third of rest, or stdin.
func readArgument(rest []string, stdin io.Reader) ([]byte, string) {
	switch {
	case len(rest) == 3:
		return []byte(rest[2]), ""
	case stdin == nil:
		return nil, "no JSON argument: give it after SERVICE.METHOD, or pipe it on stdin"
	}
	arg, err := io.ReadAll(io.LimitReader(stdin, amqprpc.DefaultMaxBodySize+1))
	if err != nil {
		return nil, "reading the JSON argument from stdin: " + err.Error()
	}
	return arg, ""
}

// argument checks the JSON argument and returns the value to send: the
// JSON itself, or with text a JSON string's text.
func argument(arg []byte, text bool) (any, string) {
	if len(arg) > amqprpc.DefaultMaxBodySize {
		return nil, fmt.Sprintf("the JSON argument is over %d bytes", amqprpc.DefaultMaxBodySize)
	}
	var v any
	if err := json.Unmarshal(arg, &v); err != nil {
		if len(bytes.TrimSpace(arg)) == 0 {
			return nil, "the JSON argument is empty (write null for no argument)"
		}
		hint := ""
		if c := bytes.TrimSpace(arg)[0]; c != '{' && c != '[' {
			hint = ` (a string needs quotes: '"text"')`
		}
		return nil, fmt.Sprintf("the argument is not JSON: %v%s", err, hint)
	}
	if s, ok := v.(string); ok && text {
		return s, ""
	}
	return json.RawMessage(arg), ""
}

// printable returns a reply as JSON: a text reply that is not JSON becomes
// a JSON string.
func printable(reply []byte) []byte {
	if json.Valid(reply) {
		return reply
	}
	b, _ := json.Marshal(string(reply))
	return b
}
