// Package pgpayment is the order example's payment service with its
// charges in PostgreSQL, which every instance of the service shares.
package pgpayment

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/amqprpc/amqprpc/examples/order/services"
)

// Payment is [services.Payment] with its charges and its ledger in
// PostgreSQL, which every instance of the payment service shares. A charge and the
// request's message id are written in one transaction: the money moves and
// the request is recorded as done together, or neither. So a request run
// again (its first run was cut off after the charge committed, before the
// reply was stored, and the broker delivered it again) finds its charge
// and moves no money, whichever instance runs it: what a reply store alone
// cannot give.
type Payment struct {
	db     *pgxpool.Pool
	tables string // the quoted schema, a dot
	log    *log.Logger
}

// New returns a Payment that keeps its tables in the schema
// named schema of db, making them if needed, and logs its work to l, if
// not nil.
func New(ctx context.Context, db *pgxpool.Pool, schema string, l *log.Logger) (*Payment, error) {
	if l == nil {
		l = log.New(io.Discard, "", 0)
	}
	p := &Payment{db: db, tables: pgx.Identifier{schema}.Sanitize() + ".", log: l}
	// Instances starting together make the tables one at a time.
	err := pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext($1))`, schema); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `CREATE SCHEMA IF NOT EXISTS `+pgx.Identifier{schema}.Sanitize()+`;
CREATE TABLE IF NOT EXISTS `+p.tables+`charges (
	order_id   text PRIMARY KEY,
	message_id text UNIQUE,                 -- the request that charged; NULL for an undo's mark
	charge_id  text NOT NULL DEFAULT '',
	amount     integer NOT NULL DEFAULT 0,  -- cents
	refunded   boolean NOT NULL DEFAULT false
);
CREATE TABLE IF NOT EXISTS `+p.tables+`ledger (
	seq      bigserial PRIMARY KEY,
	order_id text NOT NULL,
	amount   integer NOT NULL               -- cents; a refund is negative
)`)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("payment: tables in schema %q: %w", schema, err)
	}
	return p, nil
}

// Charge charges args.Amount to args.Card for args.OrderID, as
// [services.Payment.Charge] does: a repeated charge for an order returns the first
// one and moves no money, and an order refunded first is refused.
func (p *Payment) Charge(args *services.ChargeArgs, c *services.Charge) error {
	ctx := args.Context()
	return pgx.BeginFunc(ctx, p.db, func(tx pgx.Tx) error {
		var prev services.Charge
		var messageID *string
		err := tx.QueryRow(ctx, `SELECT charge_id, amount, refunded, message_id FROM `+p.tables+`charges
WHERE order_id = $1 FOR UPDATE`, args.OrderID).Scan(&prev.ID, &prev.Amount, &prev.Refunded, &messageID)
		switch {
		case err == nil && prev.Refunded:
			return fmt.Errorf("order %s was cancelled", args.OrderID)
		case err == nil:
			p.log.Printf("%s: already charged (%s, by message %s), not charging again (redelivered: %v, message %s)",
				args.OrderID, prev.ID, deref(messageID), args.Redelivered, args.MessageID)
			prev.OrderID = args.OrderID
			*c = prev
			return nil
		case !errors.Is(err, pgx.ErrNoRows):
			return err
		case args.Amount <= 0:
			return fmt.Errorf("bad amount %d", args.Amount)
		case args.Card == services.DeclinedCard:
			p.log.Printf("%s: card %s declined", args.OrderID, masked(args.Card))
			return fmt.Errorf("card %s declined", masked(args.Card))
		}
		var seq int64
		if err := tx.QueryRow(ctx, `INSERT INTO `+p.tables+`ledger (order_id, amount) VALUES ($1, $2) RETURNING seq`,
			args.OrderID, args.Amount).Scan(&seq); err != nil {
			return err
		}
		charge := services.Charge{ID: fmt.Sprintf("ch-%d", seq), OrderID: args.OrderID, Amount: args.Amount}
		// A charge for the order committed meanwhile by another instance
		// fails this insert, and the transaction with it: the caller's
		// retry finds that charge.
		if _, err := tx.Exec(ctx, `INSERT INTO `+p.tables+`charges (order_id, message_id, charge_id, amount) VALUES ($1, $2, $3, $4)`,
			args.OrderID, nullable(args.MessageID), charge.ID, charge.Amount); err != nil {
			return err
		}
		*c = charge
		p.log.Printf("%s: charged %s to card %s (%s)", args.OrderID, dollars(args.Amount), masked(args.Card), c.ID)
		return nil
	})
}

// Refund gives back the money charged for an order, as
// [services.Payment.Refund] does; undone says whether there was any.
func (p *Payment) Refund(args *services.OrderRef, undone *bool) error {
	ctx := context.Background()
	return pgx.BeginFunc(ctx, p.db, func(tx pgx.Tx) error {
		var c services.Charge
		err := tx.QueryRow(ctx, `SELECT charge_id, amount, refunded FROM `+p.tables+`charges WHERE order_id = $1 FOR UPDATE`,
			args.OrderID).Scan(&c.ID, &c.Amount, &c.Refunded)
		*undone = err == nil && !c.Refunded
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			// Remembered, so that the charge, should it come late, is refused.
			_, err = tx.Exec(ctx, `INSERT INTO `+p.tables+`charges (order_id, refunded) VALUES ($1, true) ON CONFLICT DO NOTHING`, args.OrderID)
			return err
		case err != nil || c.Refunded:
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE `+p.tables+`charges SET refunded = true WHERE order_id = $1`, args.OrderID); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO `+p.tables+`ledger (order_id, amount) VALUES ($1, $2)`, args.OrderID, -c.Amount); err != nil {
			return err
		}
		p.log.Printf("%s: refunded %s (%s)", args.OrderID, dollars(c.Amount), c.ID)
		return nil
	})
}

// Ledger returns every movement of money so far, in order, or nil when
// the database does not answer.
func (p *Payment) Ledger() []services.Entry {
	rows, err := p.db.Query(context.Background(), `SELECT order_id, amount FROM `+p.tables+`ledger ORDER BY seq`)
	if err != nil {
		return nil
	}
	entries, err := pgx.CollectRows(rows, pgx.RowToStructByPos[services.Entry])
	if err != nil {
		return nil
	}
	return entries
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// nullable is s, or NULL for "".
func nullable(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// dollars formats an amount in cents.
func dollars(cents int) string { return fmt.Sprintf("$%d.%02d", cents/100, cents%100) }

// masked shows only the last four digits of a card number.
func masked(card string) string {
	if len(card) < 4 {
		return "…"
	}
	return "…" + card[len(card)-4:]
}
