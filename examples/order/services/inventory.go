package services

import (
	"fmt"
	"log"
	"sync"
)

// Product is a product's stock and unit price in cents.
type Product struct {
	Stock, Price int
}

// ReserveArgs asks to set items aside for an order.
type ReserveArgs struct {
	OrderID string
	Items   []Item
}

// Reservation is stock set aside for an order, and its price in cents.
type Reservation struct {
	OrderID string
	Items   []Item
	Total   int
}

// Inventory keeps the stock of the shop's products.
type Inventory struct {
	log *log.Logger

	mu           sync.Mutex             // guards products, reservations and released
	products     map[string]Product     // by SKU
	reservations map[string]Reservation // by order id
	released     map[string]bool        // order ids whose reservation was undone
}

// NewInventory returns an Inventory holding catalog (by SKU) that logs its
// work to l, if not nil.
func NewInventory(catalog map[string]Product, l *log.Logger) *Inventory {
	products := make(map[string]Product, len(catalog))
	for sku, p := range catalog {
		products[sku] = p
	}
	return &Inventory{
		log:          orDiscard(l),
		products:     products,
		reservations: make(map[string]Reservation),
		released:     make(map[string]bool),
	}
}

// Reserve sets the items aside, all of them or none, and returns their
// price. A repeated request for one order returns the first reservation and
// takes no more stock.
func (inv *Inventory) Reserve(args *ReserveArgs, r *Reservation) error {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	if prev, ok := inv.reservations[args.OrderID]; ok {
		*r = prev
		return nil
	}
	if inv.released[args.OrderID] {
		return fmt.Errorf("order %s was cancelled", args.OrderID)
	}
	total := 0
	for _, it := range args.Items {
		p, ok := inv.products[it.SKU]
		switch {
		case !ok:
			return fmt.Errorf("no such product: %s", it.SKU)
		case it.Qty < 1:
			return fmt.Errorf("bad quantity %d of %s", it.Qty, it.SKU)
		case it.Qty > p.Stock:
			inv.log.Printf("%s: out of stock: %s (want %d, have %d)", args.OrderID, it.SKU, it.Qty, p.Stock)
			return fmt.Errorf("out of stock: %s (want %d, have %d)", it.SKU, it.Qty, p.Stock)
		}
		total += it.Qty * p.Price
	}
	for _, it := range args.Items {
		p := inv.products[it.SKU]
		p.Stock -= it.Qty
		inv.products[it.SKU] = p
	}
	*r = Reservation{OrderID: args.OrderID, Items: args.Items, Total: total}
	inv.reservations[args.OrderID] = *r
	inv.log.Printf("%s: reserved %s (%s)", args.OrderID, items(args.Items), dollars(total))
	return nil
}

// Release puts an order's reserved items back in stock; undone says whether
// there was anything to put back. Once released, an order cannot reserve
// again: a Reserve that arrives late, after its order was given up, is
// refused.
func (inv *Inventory) Release(args *OrderRef, undone *bool) error {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	inv.released[args.OrderID] = true
	r, ok := inv.reservations[args.OrderID]
	*undone = ok
	if !ok {
		return nil
	}
	delete(inv.reservations, args.OrderID)
	for _, it := range r.Items {
		p := inv.products[it.SKU]
		p.Stock += it.Qty
		inv.products[it.SKU] = p
	}
	inv.log.Printf("%s: released %s", args.OrderID, items(r.Items))
	return nil
}

// Stock returns the stock of a product. It is for the process that holds
// the Inventory (net/rpc serves only methods of the form M(args, *reply)
// error).
func (inv *Inventory) Stock(sku string) int {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	return inv.products[sku].Stock
}
