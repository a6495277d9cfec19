package main

import (
	"errors"
	"fmt"
	"io"
	"net/rpc"
	"net/url"
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/amqprpc/amqprpc"
	"github.com/amqprpc/amqprpc/codec"
)

const pingHelp = `Usage: amqprpc ping [flags] QUEUE

Says whether the queue QUEUE exists, how many consumers (servers) it has and
how many requests wait in it, and then times a round trip: a no-op request
(type amqprpc.ping) that an amqprpc server answers in its codec, without
running any method.

Ping only amqprpc servers. A server that is not one (a RabbitMQ tutorial
server, say) may answer with an error, not answer, or crash on the ping; the
ping expires in the queue after -timeout (5s), so that a restarted server
does not meet it again.

Example:
  amqprpc ping arith
`

// pingTimeout is ping's default -timeout, and so its expiration: short, so
// that a ping nothing answers leaves the queue soon.
const pingTimeout = 5 * time.Second

// runPing is amqprpc ping.
func runPing(args []string, stdout, stderr io.Writer) int {
	const cmd = "amqprpc ping"
	fs := newFlagSet("ping")
	var f connectFlags
	f.register(fs, pingTimeout)
	if code, done := parse(fs, pingHelp, args, stdout, stderr); done {
		return code
	}
	if fs.NArg() != 1 {
		return usageError(stderr, cmd, "want QUEUE, got "+plural(fs.NArg(), "argument"))
	}
	queue := fs.Arg(0)
	if problem := checkQueue(queue); problem != "" {
		return usageError(stderr, cmd, problem)
	}
	client, err := dial(cmd, &f, queue, codec.JSON)
	if err != nil {
		code, line := failure(cmd, amqprpc.PingType, err)
		fmt.Fprintln(stderr, line)
		return code
	}
	defer client.Close()

	q, err := inspect(f.brokerURL(), queue)
	switch {
	case err != nil:
		fmt.Fprintf(stderr, "%s: could not inspect queue %q (%v); pinging anyway\n", cmd, queue, err)
	case !q.exists:
		fmt.Fprintf(stderr, "%s: no queue %q on the broker; start the service's server, or check the name (names are case-sensitive)\n", cmd, queue)
		return exitTransit
	default:
		fmt.Fprintf(stdout, "queue %q: %s, %s waiting\n", queue, plural(q.consumers, "consumer"), plural(q.messages, "request"))
		if q.consumers == 0 {
			fmt.Fprintf(stderr, "%s: nothing consumes queue %q, so nothing would answer; start a server\n", cmd, queue)
			return exitTransit
		}
	}

	return pingOnce(cmd, client, f.timeout, queue, stdout, stderr)
}

// pingOnce sends the ping and says what came back.
func pingOnce(cmd string, client *rpc.Client, timeout time.Duration, queue string, stdout, stderr io.Writer) int {
	start := time.Now()
	var pong string
	err := client.Call(amqprpc.PingType, "ping", &pong)
	rtt := time.Since(start).Round(time.Microsecond)
	var se rpc.ServerError
	switch {
	case err == nil:
		fmt.Fprintf(stdout, "ping: an amqprpc server answered in %v\n", rtt)
		return exitOK
	case errors.Is(amqprpc.Cause(err), amqprpc.ErrTimeout):
		fmt.Fprintf(stderr, "%s: no reply within %v, and the ping expires in the queue then; "+
			"something consumes %q, but an amqprpc server answers a ping at once: a server that is not one may ignore it, or crash on it\n",
			cmd, timeout, queue)
		return exitTransit
	case errors.As(err, &se) && amqprpc.Cause(err) == err:
		fmt.Fprintf(stderr, "%s: a server answered in %v, but with the error %q: it is not an amqprpc server, or one older than ping\n", cmd, rtt, string(se))
		return exitFailed
	}
	code, line := failure(cmd, amqprpc.PingType, err)
	fmt.Fprintln(stderr, line)
	return code
}

type queueState struct {
	exists              bool
	consumers, messages int
}

// inspect asks the broker about queue with a passive declare, on a
// connection of its own: the library does not lend out its connection.
func inspect(url, queue string) (queueState, error) {
	conn, err := amqp.DialConfig(url, amqp.Config{
		Dial:       amqp.DefaultDial(10 * time.Second),
		Properties: amqp.Table{"connection_name": "amqprpc ping"},
	})
	if err != nil {
		return queueState{}, errors.New(withoutPassword(err.Error(), url))
	}
	defer conn.Close()
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

// withoutPassword replaces the password of rawURL wherever it occurs in
// text.
func withoutPassword(text, rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return text
	}
	if pw, ok := u.User.Password(); ok && pw != "" {
		text = strings.ReplaceAll(text, pw, "xxxxx")
	}
	return text
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
