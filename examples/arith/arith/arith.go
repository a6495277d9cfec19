// Package arith is net/rpc's own example service, unchanged: the same
// type serves over TCP with rpc.Accept or over RabbitMQ with amqprpc.Serve.
package arith

import "errors"

// Args are the operands of a call.
type Args struct {
	A, B int
}

// Quotient is the result of Divide.
type Quotient struct {
	Quo, Rem int
}

// Arith is the service.
type Arith int

// Multiply sets reply to A*B.
func (t *Arith) Multiply(args *Args, reply *int) error {
	*reply = args.A * args.B
	return nil
}

// Divide sets quo to A/B and A%B, or fails when B is zero.
func (t *Arith) Divide(args *Args, quo *Quotient) error {
	if args.B == 0 {
		return errors.New("divide by zero")
	}
	quo.Quo = args.A / args.B
	quo.Rem = args.A % args.B
	return nil
}
