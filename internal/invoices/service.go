// Package invoices keeps a copy of each organisation's Stripe invoices and
// lists them newest first with keyset cursors. Stripe is the source of
// truth: rows are written only from Stripe's invoice objects (webhook
// events and reconciliation) through Apply.
package invoices

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"gorm.io/gorm"

	"github.com/tollgate-billing/tollgate/internal/apperr"
	"github.com/tollgate-billing/tollgate/internal/clock"
	"github.com/tollgate-billing/tollgate/internal/store"
	"github.com/tollgate-billing/tollgate/internal/stripein"
)

// Page sizes.
const (
	DefaultPageSize = 20
	MaxPageSize     = 100
)

// Statuses are Stripe's invoice statuses, as stored.
var Statuses = []string{"draft", "open", "paid", "void", "uncollectible"}

// Service lists and stores invoices.
type Service struct {
	db    *store.DB
	clock clock.Clock
	log   *slog.Logger
	// emitter, when set, hears invoices becoming paid (EmitTo).
	emitter Emitter
}

// Emitter tells the host application what changed (outbound.Service). Emit
// runs in the transaction that stores the invoice, so a rolled-back event
// sends nothing.
type Emitter interface {
	Emit(ctx context.Context, tx *gorm.DB, orgID, eventType string, data any) error
}

// EmitTo sends invoice.paid events to e. Call it at start-up; without it
// invoices emit nothing.
func (s *Service) EmitTo(e Emitter) { s.emitter = e }

// NewService returns the invoice service.
func NewService(db *store.DB, c clock.Clock, log *slog.Logger) *Service {
	if log == nil {
		log = slog.Default()
	}
	return &Service{db: db, clock: c, log: log}
}

// Page is one page of invoices, newest first.
type Page struct {
	Invoices []Invoice
	// Cursors[i] is the cursor of Invoices[i]: pass it as `after` to get
	// the invoices that follow it.
	Cursors     []string
	EndCursor   string // "" on an empty page
	HasNextPage bool
}

// List returns up to first invoices of the organisation after the cursor,
// newest first, optionally only those in one status. first above
// MaxPageSize is capped; below 1, a bad cursor or an unknown status is
// BAD_USER_INPUT.
func (s *Service) List(ctx context.Context, orgID string, first int, after, status string) (Page, error) {
	if first < 1 {
		return Page{}, apperr.ArgError("first", "first must be at least 1")
	}
	first = min(first, MaxPageSize)
	if status != "" && !slices.Contains(Statuses, status) {
		return Page{}, apperr.New(apperr.BadInput, fmt.Sprintf("status must be one of %v", Statuses))
	}
	q := s.db.WithContext(ctx).Where("org_id = ?", orgID)
	if status != "" {
		q = q.Where("status = ?", status)
	} else {
		// A status outside the schema's enum (Stripe's "deleted" for a
		// deleted draft, or one Stripe adds later) would reach clients as
		// an enum value they cannot handle: such an invoice is not listed.
		q = q.Where("status IN ?", Statuses)
	}
	if after != "" {
		c, err := decodeCursor(after)
		if err == nil && !store.PlausibleID(c.id) {
			err = errors.New("invoice cursor names no storable id")
		}
		if err != nil {
			return Page{}, apperr.BadCursor(err)
		}
		// Row-value comparison follows the (created_at DESC, id DESC) index.
		q = q.Where("(created_at, id) < (?, ?)", c.createdAt, c.id)
	}
	var rows []Invoice
	if err := q.Order("created_at DESC, id DESC").Limit(first + 1).Find(&rows).Error; err != nil {
		return Page{}, fmt.Errorf("list invoices of org %s: %w", orgID, err)
	}
	p := Page{HasNextPage: len(rows) > first}
	p.Invoices = rows[:min(len(rows), first)]
	for i := range p.Invoices {
		servable(&p.Invoices[i])
	}
	p.Cursors = make([]string, len(p.Invoices))
	for i, inv := range p.Invoices {
		p.Cursors[i] = encodeCursor(inv)
	}
	if n := len(p.Cursors); n > 0 {
		p.EndCursor = p.Cursors[n-1]
	}
	return p, nil
}

// servable clears what a row stored before Tollgate judged Stripe's values
// (stripein) may hold and no client may be served: a link that is not a
// safe https URL (the billing page puts it in an href), a time the Time
// scalar cannot write.
func servable(inv *Invoice) {
	for _, link := range []**string{&inv.HostedInvoiceURL, &inv.PDFURL} {
		if *link != nil && stripein.PageURL(**link) == "" {
			*link = nil
		}
	}
	for _, t := range []**time.Time{&inv.PeriodStart, &inv.PeriodEnd, &inv.PaidAt} {
		if *t != nil && !clock.InYears((*t).Unix()) {
			*t = nil
		}
	}
}
