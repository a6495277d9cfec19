package conform

import (
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	amqp "github.com/rabbitmq/amqp091-go"
)

// reply publishes the reply to d, with the edge cases around it, and then
// acknowledges d.
func (s *conformServer) reply(ch *amqp.Channel, d *amqp.Delivery, out outcome) {
	s.control.count(d, out) // servercontrol.go
	note := s.note(d)
	if d.ReplyTo == "" {
		switch {
		case s.faults.neverAckNoReplyTo:
		case s.faults.requeueNoReplyTo && !d.Redelivered:
			_ = d.Nack(false, true)
		default:
			_ = d.Ack(false)
		}
		s.logf("%-20.40s correlation_id %.32q: ran, no reply_to so no reply%s", d.Type, d.CorrelationId, note)
		return
	}
	msg := amqp.Publishing{CorrelationId: d.CorrelationId, ContentType: jsonContentType, Body: out.body}
	if out.errText != "" {
		msg.Body = nil
		msg.Headers = amqp.Table{errorHeader: s.cut(out.errText)}
	}
	s.breakReply(d, &msg)
	raw := shape(out, &msg) // clientflow.go
	if s.edges {
		stray := amqp.Publishing{
			CorrelationId: "amqprpc-conform-stray-" + strconv.FormatInt(s.strays.Add(1), 10),
			ContentType:   jsonContentType,
			Body:          jsonString(strayBody),
		}
		_ = ch.Publish("", d.ReplyTo, false, false, stray)
	}
	publish := func() error {
		if raw != nil {
			return rawPublishTo(s.url, d.ReplyTo, false, raw, msg.Body, 10*time.Second)
		}
		return ch.Publish("", d.ReplyTo, false, false, msg)
	}
	err := publish()
	if (s.edges || s.faults.replyTwice) && err == nil {
		s.repeats.Add(1)
		_ = publish()
	}
	_ = d.Ack(false)
	s.answered.Add(1)
	result := "result " + string(out.body)
	if out.shape != "" {
		result += " (a reply of the shape " + out.shape + ")"
	}
	if out.errText != "" || out.emptyError {
		result = fmt.Sprintf("error %.60q", out.errText)
	}
	if err != nil {
		result = "reply not sent: " + err.Error()
	}
	s.logf("%-20.40s correlation_id %.32q: %s%s", d.Type, d.CorrelationId, result, note)
}

// note says what a client did that the protocol does not ask for.
func (s *conformServer) note(d *amqp.Delivery) string {
	var notes []string
	if d.CorrelationId == "" && d.ReplyTo != "" {
		notes = append(notes, "no correlation_id")
	}
	if d.Type == "" {
		notes = append(notes, "no type: the default method")
	}
	if d.Expiration == "" && d.ReplyTo != "" {
		notes = append(notes, "no expiration")
	}
	if len(notes) == 0 {
		return ""
	}
	return " (note: " + strings.Join(notes, "; ") + ")"
}

// cut cuts an error text to what a reply header carries (§4), on a
// character boundary.
func (s *conformServer) cut(text string) string {
	limit := maxErrorText
	if s.faults.cutAbove > 0 {
		limit = s.faults.cutAbove
	}
	if len(text) <= limit {
		return text
	}
	n := maxErrorText - len(s.faults.cutMarker)
	for !s.faults.cutInsideRune && n > 0 && !utf8.RuneStart(text[n]) {
		n--
	}
	return text[:n] + s.faults.cutMarker
}

// breakReply applies the faults to a reply.
func (s *conformServer) breakReply(d *amqp.Delivery, msg *amqp.Publishing) {
	f := s.faults
	switch {
	case f.dropCorrelationID:
		msg.CorrelationId = ""
	case f.cutCorrelationID && len(msg.CorrelationId) > 64:
		msg.CorrelationId = msg.CorrelationId[:64]
	}
	if f.errorInBody && msg.Headers != nil {
		msg.Body = jsonString(fmt.Sprint(msg.Headers[errorHeader]))
		msg.Headers = nil
	}
	if f.echoContentType {
		msg.ContentType = d.ContentType
	}
	if f.replyToOnReply {
		msg.ReplyTo = d.ReplyTo
	}
	if f.extraProperties {
		msg.MessageId, msg.AppId, msg.Timestamp = "conform-reply", "conform", time.Now()
	}
	if f.extraHeader {
		if msg.Headers == nil {
			msg.Headers = amqp.Table{}
		}
		msg.Headers["x-served-by"] = "conform"
	}
	if f.trailingNewline && msg.Body != nil {
		msg.Body = append(msg.Body, '\n')
	}
}

// logf writes one line to the server's log.
func (s *conformServer) logf(format string, args ...any) {
	s.logMu.Lock()
	defer s.logMu.Unlock()
	fmt.Fprintf(s.log, format+"\n", args...)
}
