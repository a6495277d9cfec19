package amqprpc

import (
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

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
	sc := &serverCodec{maxBody: 1 << 20, running: map[uint64]*inbound{}}
	req := transport.Request{Delivery: amqp.Delivery{ContentType: "application/json", Type: "S.M", Body: []byte(`{"A":3,"MessageID":"forged","Redelivered":true}`), MessageId: "m-1", Redelivered: true}}
	in, own := sc.accept(req)
	if own != nil {
		t.Fatalf("accept(%+v) answers it itself with %+v; want it for net/rpc", req, own)
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
	_, err := ch.QueueDeclare(queue, true, false, false, false, nil)
	require.NoError(t, err)
	encodings(t, func(t *testing.T, enc codec.Encoding) {
		client := dial(t, queue, WithEncoding(enc))
		// A consumer of our own takes the request and dies without
		// acknowledging it, so the broker delivers it again.
		thief, err := conn.Channel()
		require.NoError(t, err)
		taken, err := thief.Consume(queue, "", false, false, false, false, nil)
		require.NoError(t, err)
		call := client.Go("Arith.Info", &InfoArgs{N: 5, Delivery: Delivery{MessageID: "forged", Redelivered: true}}, new(InfoReply), nil)
		first := brokertest.NextDelivery(t, taken, "request taken by the thief")
		thief.Close()
		startServer(t, newArith("s1"), queue)
		require.NoError(t, waitCall(t, call, 10*time.Second, "Info after a redelivery").Error, "Info after a redelivery")
		require.NotEmpty(t, first.MessageId, "the request's message_id")
		assert.Equal(t, InfoReply{N: 5, MessageID: first.MessageId, Redelivered: true}, *call.Reply.(*InfoReply), "Info after a redelivery")
		var fresh InfoReply
		require.NoError(t, client.Call("Arith.Info", &InfoArgs{N: 6}, &fresh), "Info on a first delivery")
		assert.False(t, fresh.Redelivered, "Info on a first delivery: Redelivered")
		assert.NotEmpty(t, fresh.MessageID, "Info on a first delivery: MessageID")
		assert.NotEqual(t, first.MessageId, fresh.MessageID, "Info on a first delivery: want a new MessageID")
	})
}
