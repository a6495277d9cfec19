package services

import (
	"fmt"
	"log"
	"strings"
	"sync"
)

// ShipArgs asks to ship an order's items to an address.
type ShipArgs struct {
	OrderID string
	Items   []Item
	Address string
}

// Shipment is an order's delivery.
type Shipment struct {
	ID, OrderID, Address string
	Cancelled            bool
}

// Logistics creates shipments. It does not deliver to PO boxes.
type Logistics struct {
	log *log.Logger

	mu        sync.Mutex           // guards shipments
	shipments map[string]*Shipment // by order id
}

// NewLogistics returns a Logistics that logs its work to l, if not nil.
func NewLogistics(l *log.Logger) *Logistics {
	return &Logistics{log: orDiscard(l), shipments: make(map[string]*Shipment)}
}

// Ship creates the shipment of an order. A repeated request for one order
// returns the first shipment.
func (lg *Logistics) Ship(args *ShipArgs, s *Shipment) error {
	lg.mu.Lock()
	defer lg.mu.Unlock()
	if prev, ok := lg.shipments[args.OrderID]; ok {
		if prev.Cancelled {
			return fmt.Errorf("order %s was cancelled", args.OrderID)
		}
		*s = *prev
		return nil
	}
	switch addr := strings.ToUpper(strings.TrimSpace(args.Address)); {
	case addr == "":
		return fmt.Errorf("no address")
	case strings.HasPrefix(addr, "PO BOX"):
		lg.log.Printf("%s: cannot deliver to %q", args.OrderID, args.Address)
		return fmt.Errorf("cannot deliver to a PO box: %q", args.Address)
	}
	shipment := &Shipment{ID: fmt.Sprintf("sh-%d", len(lg.shipments)+1), OrderID: args.OrderID, Address: args.Address}
	lg.shipments[args.OrderID] = shipment
	*s = *shipment
	lg.log.Printf("%s: shipment %s of %s to %q", args.OrderID, s.ID, items(args.Items), args.Address)
	return nil
}

// Cancel cancels the shipment of an order; undone says whether there was
// one. Once cancelled, the order cannot ship: a Ship that arrives late,
// after its order was given up, is refused.
func (lg *Logistics) Cancel(args *OrderRef, undone *bool) error {
	lg.mu.Lock()
	defer lg.mu.Unlock()
	s, ok := lg.shipments[args.OrderID]
	*undone = ok && !s.Cancelled
	if !ok {
		lg.shipments[args.OrderID] = &Shipment{OrderID: args.OrderID, Cancelled: true}
		return nil
	}
	if !s.Cancelled {
		s.Cancelled = true
		lg.log.Printf("%s: cancelled shipment %s", args.OrderID, s.ID)
	}
	return nil
}

// Shipment returns the shipment of an order, if any. It is for the process
// that holds the Logistics.
func (lg *Logistics) Shipment(orderID string) (Shipment, bool) {
	lg.mu.Lock()
	defer lg.mu.Unlock()
	s, ok := lg.shipments[orderID]
	if !ok {
		return Shipment{}, false
	}
	return *s, true
}
