package services

import (
	"fmt"
	"log"
	"sync"

	"github.com/amqprpc/amqprpc"
)

// Test cards: Payment declines DeclinedCard and accepts any other.
const (
	GoodCard     = "4242 4242 4242 4242"
	DeclinedCard = "4000 0000 0000 0002"
)

// ChargeArgs asks to charge a card for an order.
type ChargeArgs struct {
	OrderID string
	Card    string
	Amount  int // cents

	// Delivery tells the service about the request's AMQP message; the
	// server fills it in, callers leave it zero.
	amqprpc.Delivery
}

// Charge is money taken for an order.
type Charge struct {
	ID       string
	OrderID  string
	Amount   int // cents
	Refunded bool
}

// Entry is a movement of money: a charge, or a refund (a negative Amount).
type Entry struct {
	OrderID string
	Amount  int
}

// Payment charges cards.
type Payment struct {
	log *log.Logger

	mu      sync.Mutex         // guards charges and ledger
	charges map[string]*Charge // by order id
	ledger  []Entry
}

// NewPayment returns a Payment that logs its work to l, if not nil.
func NewPayment(l *log.Logger) *Payment {
	return &Payment{log: orDiscard(l), charges: make(map[string]*Charge)}
}

// Charge charges args.Amount to args.Card for args.OrderID.
//
// The broker delivers a request at least once: this one may be a
// redelivery of a request that already charged the card, whose server then
// died before acknowledging it, and the order service may retry a call it
// got no answer to. So charges are keyed by order id, not by message: a
// repeated charge for an order returns the first one and moves no money.
// (The message id, args.MessageID, is the same on every delivery of one
// request but differs between two requests for the same order.)
func (p *Payment) Charge(args *ChargeArgs, c *Charge) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if prev, ok := p.charges[args.OrderID]; ok {
		if prev.Refunded {
			return fmt.Errorf("order %s was cancelled", args.OrderID)
		}
		p.log.Printf("%s: already charged (%s), not charging again (redelivered: %v, message %s)",
			args.OrderID, prev.ID, args.Redelivered, args.MessageID)
		*c = *prev
		return nil
	}
	switch {
	case args.Amount <= 0:
		return fmt.Errorf("bad amount %d", args.Amount)
	case args.Card == DeclinedCard:
		p.log.Printf("%s: card %s declined", args.OrderID, masked(args.Card))
		return fmt.Errorf("card %s declined", masked(args.Card))
	}
	charge := &Charge{ID: fmt.Sprintf("ch-%d", len(p.ledger)+1), OrderID: args.OrderID, Amount: args.Amount}
	p.charges[args.OrderID] = charge
	*c = *charge
	p.ledger = append(p.ledger, Entry{OrderID: args.OrderID, Amount: args.Amount})
	p.log.Printf("%s: charged %s to card %s (%s)", args.OrderID, dollars(args.Amount), masked(args.Card), c.ID)
	return nil
}

// Refund gives back the money charged for an order; undone says whether
// there was any. Once refunded, an order cannot be charged: a Charge that
// arrives late, after its order was given up, is refused.
func (p *Payment) Refund(args *OrderRef, undone *bool) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	c, ok := p.charges[args.OrderID]
	*undone = ok && !c.Refunded
	if !ok {
		p.charges[args.OrderID] = &Charge{OrderID: args.OrderID, Refunded: true}
		return nil
	}
	if c.Refunded {
		return nil
	}
	c.Refunded = true
	p.ledger = append(p.ledger, Entry{OrderID: args.OrderID, Amount: -c.Amount})
	p.log.Printf("%s: refunded %s (%s)", args.OrderID, dollars(c.Amount), c.ID)
	return nil
}

// Ledger returns every movement of money so far, in order. It is for the
// process that holds the Payment.
func (p *Payment) Ledger() []Entry {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Entry(nil), p.ledger...)
}

// masked shows only the last four digits of a card number.
func masked(card string) string {
	if len(card) < 4 {
		return "…"
	}
	return "…" + card[len(card)-4:]
}
