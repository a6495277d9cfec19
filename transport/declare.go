package transport

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	amqp "github.com/rabbitmq/amqp091-go"
)

// inequivalent reads the broker's 406 text for a declaration that differs
// from the existing queue: the argument, what was asked and what the queue
// has. RabbitMQ names only the first argument that differs.
var inequivalent = regexp.MustCompile(`inequivalent arg '([^']+)' for queue .*: received (?:the value )?('[^']*'|none).* but current is (?:the value )?('[^']*'|none)`)

// declareHint says which server option matches the existing queue, when
// err is the broker's refusal of a declaration that differs from it, or
// returns "". The option names are the root package's.
func declareHint(err error) string {
	var ae *amqp.Error
	if !errors.As(err, &ae) || ae.Code != amqp.PreconditionFailed {
		return ""
	}
	m := inequivalent.FindStringSubmatch(ae.Reason)
	if m == nil {
		return ""
	}
	arg, current := m[1], m[3]
	switch {
	case arg == "x-queue-type" && current == "'quorum'":
		return "the queue is a quorum queue: serve it with WithQuorumQueue()"
	case arg == "x-queue-type":
		return fmt.Sprintf("the queue's type is %s, not quorum: serve it without WithQuorumQueue()", typeName(current))
	case arg == "durable" && current == "'false'":
		return "the queue is not durable: serve it with WithTransientQueue()"
	case arg == "durable":
		return "the queue is durable: serve it without WithTransientQueue() (a durable classic queue is the default; a quorum queue needs WithQuorumQueue())"
	case arg == "x-expires" && current == "none":
		return "the queue has no x-expires: serve it without WithQueueExpiry()"
	case arg == "x-expires":
		ms := strings.Trim(current, "'")
		return fmt.Sprintf("the queue has x-expires %s ms: serve it with WithQueueExpiry(%s * time.Millisecond)", ms, ms)
	}
	return fmt.Sprintf("the queue was declared with %s %s, which no server option sets: serve a queue of another name, or delete this one", arg, strings.Trim(current, "'"))
}

// typeName is a queue type as the 406 text gives it: none is classic.
func typeName(current string) string {
	if current == "none" {
		return "classic"
	}
	return strings.Trim(current, "'")
}
