package amqprpc

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// ErrorHeader is the header of a reply that carries a failed call's error
// text instead of a body.
const ErrorHeader = "x-rpc-error"

// maxErrorText bounds the error text a server puts in a reply header. A
// content header cannot be split across frames, and a broker may set
// frame_max as low as 4096 bytes; a header over it would cost the server its
// connection.
const maxErrorText = 3 << 10

// maxShortString is AMQP's limit on a queue name or a short string property.
const maxShortString = 255

// maxExpiration is the longest expiration a request carries: 2^32-1 ms,
// about 49.7 days. RabbitMQ 3.10 refuses more than 10 years with 406
// PRECONDITION_FAILED, which closes the channel, and newer brokers carry a
// message's expiration over into AMQP 1.0's 32-bit time-to-live when it
// crosses protocols. A longer call timeout, or a context deadline further
// away, still holds for the caller: only the queue lets go of a request
// nobody took sooner.
const maxExpiration = math.MaxUint32 * time.Millisecond

// expiration is the expiration property for a request with left to live:
// whole milliseconds, at least 1 and at most maxExpiration.
func expiration(left time.Duration) string {
	return strconv.FormatInt(min(max(left.Milliseconds(), 1), maxExpiration.Milliseconds()), 10)
}

// checkQueueName rejects names the broker would refuse.
func checkQueueName(queue string) error {
	switch {
	case queue == "":
		return errors.New("amqprpc: empty queue name")
	case len(queue) > maxShortString:
		return fmt.Errorf("amqprpc: queue name of %d bytes, AMQP allows %d", len(queue), maxShortString)
	case strings.HasPrefix(queue, "amq."):
		return fmt.Errorf("amqprpc: queue name %q: the amq. prefix is reserved by the broker", queue)
	}
	return nil
}

// headerText reads a string header as AMQP clients in any language send it.
func headerText(v any) string {
	switch s := v.(type) {
	case string:
		return s
	case []byte:
		return string(s)
	case nil:
		return ""
	}
	return fmt.Sprint(v)
}

// truncateUTF8 cuts s to at most n bytes, on a rune boundary, marking a cut
// with "...", so an error text fits a header and stays valid UTF-8.
func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n - len("...")
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}
