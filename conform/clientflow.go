package conform

// The flow a client runs against ServeClient (docs/PROTOCOL.md §9,
// "Checking a client"): it calls Conformance.Echo with each step's name,
// gets a reply of the shape the step names, and sends back what it got
// with Conformance.Record, "<step> ok <result>" or "<step> error <text>";
// then it records "done". ServeClient judges the client by what it sent
// back.

import (
	"fmt"
	"sort"
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// The steps of the client flow: the arguments of Conformance.Echo that ask
// for a reply of a shape §4 allows.
const (
	stepPlain         = "plain"
	stepNoContentType = "content-type-absent"
	stepEmptyType     = "content-type-empty"
	stepExtra         = "extra-properties"
	stepError         = "error"
	stepErrorBody     = "error-with-body"
	stepErrorEmpty    = "error-empty"
	stepDelayed       = "delayed"
	stepConcurrent    = "concurrent-" // then 0 to concurrentSteps-1
	concurrentSteps   = 20
	flowDone          = "done"

	strayBody      = "a stray reply, which the client must drop"
	errorStepText  = "conform: an error reply"
	errorBodyText  = "conform: an error reply with a body"
	errorBodyBody  = "the body of an error reply, which the client must ignore"
	delayedBy      = 300 * time.Millisecond
	extraHeaderKey = "x-conform-extra"
)

// clientChecks are the checks of ServeClient, each a statement about what
// a client does with the replies of one step or more.
var clientChecks = []Check{
	{"plain", "§4", "a reply with the call's correlation_id is taken, the stray reply before it and the same reply after it dropped", nil},
	{"content-type-absent", "§4", "a reply without content_type is read as JSON", nil},
	{"content-type-empty", "§4", "a reply with an empty content_type is read as JSON", nil},
	{"extra-properties", "§4", "a reply with properties and headers the client does not expect is read as usual", nil},
	{"error-reply", "§4", "a reply with x-rpc-error fails the call with that text", nil},
	{"error-with-body", "§4", "a reply with x-rpc-error and a body fails the call with that text; the body is ignored", nil},
	{"error-empty", "§4", "a reply with an empty x-rpc-error fails the call (a malformed reply)", nil},
	{"delayed", "§4", "a reply that comes 300 ms later is taken", nil},
	{"concurrent", "§4", "20 calls made at once, answered last first, each get their own reply", nil},
	{"done", "§9", "the client ran the whole flow: it recorded done", nil},
}

// want is what a conformant client records for a step: "" for any error.
func want(step string) (outcome string, anyError bool) {
	switch step {
	case stepError:
		return step + " error " + errorStepText, false
	case stepErrorBody:
		return step + " error " + errorBodyText, false
	case stepErrorEmpty:
		return step + " error ", true
	}
	return step + " ok " + step, false
}

// isStep reports whether an Echo argument names a step of the flow.
func isStep(s string) bool {
	switch s {
	case stepPlain, stepNoContentType, stepEmptyType, stepExtra, stepError, stepErrorBody, stepErrorEmpty, stepDelayed:
		return true
	}
	return strings.HasPrefix(s, stepConcurrent)
}

// shaped is the outcome of Echo for a step: the reply of its shape.
func shaped(step string) outcome {
	out := outcome{body: jsonString(step), shape: step}
	switch step {
	case stepError:
		out = outcome{errText: errorStepText, shape: step}
	case stepErrorBody:
		out = outcome{errText: errorBodyText, shape: step}
	case stepErrorEmpty:
		out = outcome{errText: "", shape: step, emptyError: true}
	case stepDelayed:
		out.delay = delayedBy
	}
	return out
}

// shape makes msg the reply of out's step. It returns the properties to
// publish with the raw publisher instead, for an empty content_type,
// which amqp091-go cannot send.
func shape(out outcome, msg *amqp.Publishing) []rawProp {
	switch out.shape {
	case stepNoContentType:
		msg.ContentType = ""
	case stepEmptyType:
		return []rawProp{{propContentType, ""}, {propCorrelationID, msg.CorrelationId}}
	case stepExtra:
		msg.MessageId, msg.AppId, msg.Type = "conform-reply", "amqprpc conform", "Conformance.Echo"
		msg.Timestamp, msg.DeliveryMode, msg.Priority = time.Now(), amqp.Persistent, 1
		msg.Headers = amqp.Table{extraHeaderKey: "a header the client must ignore", extraHeaderKey + "-count": int32(1)}
	case stepErrorBody:
		msg.Body = jsonString(errorBodyBody)
	case stepErrorEmpty:
		msg.Headers = amqp.Table{errorHeader: ""}
	}
	return nil
}

// verdict judges a client by the outcomes it recorded.
func verdict(recorded map[string]int) []Result {
	byStep := make(map[string][]string)
	done := false
	for token, n := range recorded {
		if token == flowDone {
			done = true
			continue
		}
		step, _, _ := strings.Cut(token, " ")
		for range n {
			byStep[step] = append(byStep[step], token)
		}
	}
	results := make([]Result, 0, len(clientChecks))
	for _, c := range clientChecks {
		var err error
		switch c.Name {
		case "done":
			if !done {
				err = fmt.Errorf("the client never recorded %q: it stopped, or it did not run the whole flow", flowDone)
			}
		case "error-reply":
			err = judgeStep(stepError, byStep)
		case "concurrent":
			for i := range concurrentSteps {
				if err = judgeStep(fmt.Sprint(stepConcurrent, i), byStep); err != nil {
					break
				}
			}
		default:
			err = judgeStep(c.Name, byStep)
		}
		results = append(results, Result{Check: c, Err: err})
	}
	return results
}

// judgeStep checks what the client recorded for step.
func judgeStep(step string, byStep map[string][]string) error {
	got := byStep[step]
	sort.Strings(got)
	wanted, anyError := want(step)
	switch {
	case len(got) == 0:
		return fmt.Errorf("the client recorded nothing for %q; want %q", step, wanted)
	case len(got) > 1:
		return fmt.Errorf("the client recorded %d outcomes of %q (%+.120q): it took more than one reply to one call", len(got), step, got)
	case anyError && strings.HasPrefix(got[0], wanted):
		return nil
	case got[0] == wanted:
		return nil
	case strings.Contains(got[0], strayBody):
		return fmt.Errorf("the client took the stray reply (a correlation_id of no call of its own) for the reply to %q: it recorded %+.100q", step, got[0])
	case strings.HasPrefix(got[0], step+" ok ") && strings.HasPrefix(wanted, step+" error "):
		return fmt.Errorf("the client took an error reply for a result: it recorded %+.100q; want %+.100q", got[0], wanted)
	}
	return fmt.Errorf("the client recorded %+.100q, %s", got[0], differ(got[0], wanted))
}
