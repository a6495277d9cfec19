package amqprpc

import (
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/amqprpc/amqprpc/codec"
	"github.com/amqprpc/amqprpc/internal/brokertest"
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

type InfoArgs struct {
	N int
	Delivery
}

type InfoReply struct {
	N           int
	MessageID   string
	Redelivered bool
}

// Info reports the delivery its request arrived in.
func (t *Arith) Info(args *InfoArgs, reply *InfoReply) error {
	t.calls.Add(1)
	*reply = InfoReply{N: args.N, MessageID: args.MessageID, Redelivered: args.Redelivered}
	return nil
}

func TestServiceSeesDelivery(t *testing.T) {
	queue := testQueue(t)
	conn, ch := rawConn(t)
	if _, err := ch.QueueDeclare(queue, true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	encodings(t, func(t *testing.T, enc codec.Encoding) {
		client := dial(t, queue, WithEncoding(enc))
		// A consumer of our own takes the request and dies without
		// acknowledging it, so the broker delivers it again.
		thief, err := conn.Channel()
		if err != nil {
			t.Fatal(err)
		}
		taken, err := thief.Consume(queue, "", false, false, false, false, nil)
		if err != nil {
			t.Fatal(err)
		}
		call := client.Go("Arith.Info", &InfoArgs{N: 5, Delivery: Delivery{MessageID: "forged", Redelivered: true}}, new(InfoReply), nil)
		first := brokertest.NextDelivery(t, taken, "request taken by the thief")
		thief.Close()
		startServer(t, newArith("s1"), queue)
		<-call.Done
		got := call.Reply.(*InfoReply)
		if call.Error != nil || got.N != 5 || !got.Redelivered || got.MessageID != first.MessageId || got.MessageID == "" {
			t.Fatalf("Info after a redelivery = %+v, %v; want N 5, Redelivered, MessageID %q", got, call.Error, first.MessageId)
		}
		var fresh InfoReply
		if err := client.Call("Arith.Info", &InfoArgs{N: 6}, &fresh); err != nil || fresh.Redelivered || fresh.MessageID == "" || fresh.MessageID == first.MessageId {
			t.Fatalf("Info on a first delivery = %+v, %v; want not redelivered, a new MessageID", fresh, err)
		}
	})
}
