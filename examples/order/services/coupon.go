package services

import (
	"fmt"
	"log"
	"sync"
)

// RedeemArgs asks to redeem a coupon for an order.
type RedeemArgs struct {
	OrderID, Code string
}

// Discount is what a redeemed coupon takes off an order.
type Discount struct {
	Code    string
	Percent int
}

// Coupon keeps single-use coupons.
type Coupon struct {
	log *log.Logger

	mu         sync.Mutex        // guards redeemedBy and cancelled
	percent    map[string]int    // by code; read-only
	redeemedBy map[string]string // code -> order id
	cancelled  map[string]bool   // order ids whose redemption was undone
}

// NewCoupon returns a Coupon service that knows codes (code -> percent
// off) and logs its work to l, if not nil.
func NewCoupon(codes map[string]int, l *log.Logger) *Coupon {
	percent := make(map[string]int, len(codes))
	for code, pct := range codes {
		percent[code] = pct
	}
	return &Coupon{
		log:        orDiscard(l),
		percent:    percent,
		redeemedBy: make(map[string]string),
		cancelled:  make(map[string]bool),
	}
}

// Redeem uses up a coupon for an order. A repeated request for the same
// order and code returns the same discount.
func (c *Coupon) Redeem(args *RedeemArgs, d *Discount) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	pct, ok := c.percent[args.Code]
	if !ok {
		return fmt.Errorf("no such coupon: %s", args.Code)
	}
	switch owner := c.redeemedBy[args.Code]; {
	case owner == args.OrderID:
		// Already redeemed by this order: a repeat.
	case owner != "":
		c.log.Printf("%s: %s already used", args.OrderID, args.Code)
		return fmt.Errorf("%s already used", args.Code)
	case c.cancelled[args.OrderID]:
		return fmt.Errorf("order %s was cancelled", args.OrderID)
	default:
		c.redeemedBy[args.Code] = args.OrderID
		c.log.Printf("%s: redeemed %s (%d%% off)", args.OrderID, args.Code, pct)
	}
	*d = Discount{Code: args.Code, Percent: pct}
	return nil
}

// Unredeem makes a coupon an order redeemed usable again; undone says
// whether the order held it. Once undone, the order cannot redeem again: a
// Redeem that arrives late, after its order was given up, is refused.
func (c *Coupon) Unredeem(args *RedeemArgs, undone *bool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cancelled[args.OrderID] = true
	*undone = c.redeemedBy[args.Code] == args.OrderID
	if *undone {
		delete(c.redeemedBy, args.Code)
		c.log.Printf("%s: %s is usable again", args.OrderID, args.Code)
	}
	return nil
}

// RedeemedBy returns the order that used a coupon, or "". It is for the
// process that holds the Coupon.
func (c *Coupon) RedeemedBy(code string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.redeemedBy[code]
}
