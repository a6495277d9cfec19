package amqprpc

import "context"

// Delivery tells a service about the AMQP message its request arrived in.
// Embed it in a method's argument type and the server fills it in after
// decoding the body and before calling the method:
//
//	type ReserveArgs struct {
//		SKU      string
//		Quantity int
//		amqprpc.Delivery
//	}
//
//	func (s *Inventory) Reserve(args *ReserveArgs, reply *Reservation) error {
//		if args.Redelivered {
//			// This request may have run before (at-least-once delivery):
//			// look args.MessageID up before reserving twice.
//		}
//		...
//	}
//
// Callers leave it zero. Its fields are never read from the body: JSON skips
// them, and the server overwrites whatever a gob body carried.
type Delivery struct {
	// MessageID is the request's message_id property: unique per request
	// from Go callers, and the same on every delivery of one request.
	MessageID string `json:"-"`
	// Redelivered is set when the broker has delivered this request before,
	// to this server or another, without it being acknowledged.
	Redelivered bool `json:"-"`

	ctx context.Context // the request's; see Context (context.go)
}

// setDelivery is how the server codec finds an embedded Delivery. An
// embedded *Delivery left nil is left alone.
func (d *Delivery) setDelivery(messageID string, redelivered bool) {
	if d == nil {
		return
	}
	d.MessageID = messageID
	d.Redelivered = redelivered
}

// deliveryReceiver is implemented by argument types that embed Delivery.
type deliveryReceiver interface {
	setDelivery(messageID string, redelivered bool)
}
