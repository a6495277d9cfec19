package amqprpc

import (
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/amqprpc/amqprpc/transport"
)

type argsWithDelivery struct {
	A int
	Delivery
}

type argsWithDeliveryPointer struct {
	A int
	*Delivery
}

func TestReadRequestBodyFillsDelivery(t *testing.T) {
	sc := &serverCodec{maxBody: 1 << 20, pending: map[uint64]*inbound{}}
	req := transport.Request{Delivery: amqp.Delivery{ContentType: "application/json", Type: "S.M", Body: []byte(`{"A":3,"MessageID":"forged","Redelivered":true}`), MessageId: "m-1", Redelivered: true}}
	in, refusal := sc.accept(req)
	if refusal != "" {
		t.Fatal(refusal)
	}

	sc.cur = in
	var a argsWithDelivery
	if err := sc.ReadRequestBody(&a); err != nil || a.A != 3 || a.MessageID != "m-1" || !a.Redelivered {
		t.Fatalf("ReadRequestBody(embedded Delivery) = %+v, %v; want A 3, MessageID m-1, Redelivered", a, err)
	}
	req.Redelivered = false
	in, _ = sc.accept(req)
	sc.cur = in
	a = argsWithDelivery{}
	if err := sc.ReadRequestBody(&a); err != nil || a.MessageID != "m-1" || a.Redelivered {
		t.Fatalf("ReadRequestBody = %+v, %v; want the forged body fields overwritten", a, err)
	}

	// An embedded *Delivery left nil must not crash the server.
	sc.cur = in
	var p argsWithDeliveryPointer
	if err := sc.ReadRequestBody(&p); err != nil || p.A != 3 {
		t.Fatalf("ReadRequestBody(nil *Delivery) = %+v, %v; want A 3", p, err)
	}
}
