package transport

import (
	"errors"
	"strings"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"
)

// TestDeclareHint: the option that matches the existing queue, from the
// texts RabbitMQ 3.10 sends; nothing for other errors.
func TestDeclareHint(t *testing.T) {
	refused := func(reason string) error {
		return &amqp.Error{Code: amqp.PreconditionFailed, Reason: "PRECONDITION_FAILED - inequivalent arg " + reason}
	}
	for _, tt := range []struct {
		err  error
		want string
	}{
		{refused(`'x-queue-type' for queue 'q' in vhost '/': received none but current is the value 'quorum' of type 'longstr'`), "with WithQuorumQueue()"},
		{refused(`'x-queue-type' for queue 'q' in vhost '/': received the value 'quorum' of type 'longstr' but current is none`), "classic, not quorum: serve it without WithQuorumQueue()"},
		{refused(`'durable' for queue 'q' in vhost '/': received 'true' but current is 'false'`), "with WithTransientQueue()"},
		{refused(`'durable' for queue 'q' in vhost '/': received 'false' but current is 'true'`), "without WithTransientQueue()"},
		{refused(`'x-expires' for queue 'q' in vhost '/': received '10000' but current is '5000'`), "WithQueueExpiry(5000 * time.Millisecond)"},
		{refused(`'x-expires' for queue 'q' in vhost '/': received the value '10000' of type 'long' but current is none`), "without WithQueueExpiry()"},
		{refused(`'x-max-length' for queue 'q' in vhost '/': received none but current is the value '5' of type 'long'`), "x-max-length 5, which no server option sets"},
		{&amqp.Error{Code: amqp.AccessRefused, Reason: "ACCESS_REFUSED"}, ""},
		{errors.New("other"), ""},
	} {
		got := declareHint(tt.err)
		if (tt.want == "") != (got == "") || !strings.Contains(got, tt.want) {
			t.Errorf("declareHint(%v) = %q; want %q", tt.err, got, tt.want)
		}
	}
}
