// Package reconcile heals Tollgate's copy of Stripe. Stripe stops retrying a
// webhook after three days; an event lost for longer (an outage, a
// misconfigured endpoint, a bug fixed since) leaves a subscription or
// invoice out of date. Sync re-reads each customer's subscriptions and
// invoices from Stripe and applies them through the same code path as the
// webhooks, so both agree on what Stripe's state means.
package reconcile

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/client"
	"gorm.io/gorm"

	"github.com/tollgate-billing/tollgate/internal/apperr"
	"github.com/tollgate-billing/tollgate/internal/billing"
	"github.com/tollgate-billing/tollgate/internal/clock"
	"github.com/tollgate-billing/tollgate/internal/invoices"
	"github.com/tollgate-billing/tollgate/internal/orgs"
	"github.com/tollgate-billing/tollgate/internal/overage"
	"github.com/tollgate-billing/tollgate/internal/store"
	"github.com/tollgate-billing/tollgate/internal/stripeclient"
	"github.com/tollgate-billing/tollgate/internal/stripein"
	"github.com/tollgate-billing/tollgate/internal/stripeshape"
)

// Syncer re-reads Stripe and applies what it finds.
type Syncer struct {
	db       *store.DB
	billing  *billing.Service
	invoices *invoices.Service
	stripe   *client.API
	clock    clock.Clock
	log      *slog.Logger
	// overage, when set, finishes pending overage charges (WithOverage).
	overage *overage.Service
}

// WithOverage makes Sync also finish each organisation's pending overage
// charges: offered to its newest draft subscription-cycle invoice, or
// recorded from the item Stripe shows a lost answer created.
func (s *Syncer) WithOverage(o *overage.Service) *Syncer {
	s.overage = o
	return s
}

// New returns a Syncer; sc nil means Stripe is not configured.
func New(db *store.DB, b *billing.Service, inv *invoices.Service, sc *client.API, c clock.Clock, log *slog.Logger) *Syncer {
	if log == nil {
		log = slog.Default()
	}
	return &Syncer{db: db, billing: b, invoices: inv, stripe: sc, clock: c, log: log}
}

// Sync reconciles one organisation (by id or external id), or every
// organisation with a Stripe customer when org is "", and writes one line
// per change to out. An organisation that fails is reported and the others
// still sync; the error then names every failure.
func (s *Syncer) Sync(ctx context.Context, org string, out io.Writer) error {
	if s.stripe == nil {
		return apperr.New(apperr.StripeNotConfigured, "Stripe is not configured: set STRIPE_SECRET_KEY")
	}
	list, err := orgs.WithStripeCustomer(ctx, s.db.DB, org)
	if err != nil {
		return fmt.Errorf("list organisations to sync: %w", err)
	}
	if org != "" && len(list) == 0 {
		return fmt.Errorf("no organisation with id or external id %q", org)
	}
	var errs []error
	changes := 0
	for _, o := range list {
		n, err := s.syncOrg(ctx, o, out)
		changes += n
		if err != nil {
			fmt.Fprintf(out, "org %s (%s): FAILED: %v\n", o.ID, o.ExternalID, err)
			errs = append(errs, fmt.Errorf("org %s: %w", o.ID, err))
		}
	}
	fmt.Fprintf(out, "synced %d organisation(s): %d change(s), %d failure(s)\n", len(list), changes, len(errs))
	return errors.Join(errs...)
}

// syncOrg fetches first and writes after, in one transaction: no Stripe
// call holds a database connection, and an organisation is never left
// half-synced.
func (s *Syncer) syncOrg(ctx context.Context, o orgs.Organization, out io.Writer) (int, error) {
	if o.StripeCustomerID == nil || *o.StripeCustomerID == "" {
		fmt.Fprintf(out, "org %s (%s): no Stripe customer; nothing to sync\n", o.ID, o.ExternalID)
		return 0, nil
	}
	customer := *o.StripeCustomerID
	// A checkout whose Stripe answer was lost is recorded now, so that the
	// next checkout expires it.
	resolved, err := s.billing.ResolvePendingCheckouts(ctx, o.ID)
	if err != nil {
		return 0, err
	}
	// Stripe's answer holds every change made before the fetch began, so the
	// events for those are dropped if they arrive later. Events carry whole
	// seconds, so the answer counts as of the second before the one the fetch
	// began in: an event from that second or later may be newer than what
	// was read (listing can take seconds), and is applied when it arrives.
	at := s.clock.Now().Truncate(time.Second).Add(-time.Second)
	subs, invs, err := s.fetch(ctx, customer)
	if err != nil {
		return 0, err
	}
	subs, invs, skipped := s.usable(ctx, o.ID, subs, invs)
	var lines []string
	err = s.db.Tx(ctx, func(tx *gorm.DB) error {
		lines = append(append([]string(nil), resolved...), skipped...)
		// The organisation's lock first, as every path that emits its
		// events takes it: an invoice found paid here emits invoice.paid.
		if err := s.billing.LockOrg(ctx, tx, o.ID); err != nil {
			return err
		}
		for _, sub := range subs {
			res, err := s.billing.ApplySubscription(ctx, tx, billing.SubscriptionUpdate{Sub: sub, At: at, OrgID: o.ID, Rank: billing.RankFetched})
			if err != nil {
				return err
			}
			lines = append(lines, res.Changes...)
		}
		for _, inv := range invs {
			res, err := s.invoices.Apply(ctx, tx, o.ID, inv, at)
			if err != nil {
				return err
			}
			lines = append(lines, res.Changes...)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	if s.overage != nil {
		// After the commit: this calls Stripe.
		billed, err := s.overage.Sync(ctx, o.ID, invs)
		if err != nil {
			return 0, err
		}
		lines = append(lines, billed...)
	}
	for _, l := range lines {
		fmt.Fprintf(out, "org %s (%s): %s\n", o.ID, o.ExternalID, l)
	}
	if len(lines) == 0 {
		fmt.Fprintf(out, "org %s (%s): in sync (%d subscription(s), %d invoice(s))\n", o.ID, o.ExternalID, len(subs), len(invs))
	}
	s.log.InfoContext(ctx, "stripe sync", "org_id", o.ID, "stripe_customer_id", customer,
		"subscriptions", len(subs), "invoices", len(invs), "changes", len(lines))
	return len(lines), nil
}

// usable keeps the objects Tollgate can use, judged here, where they come
// from Stripe, by the rules the webhooks judge events by (stripein); the
// apply paths trust them. It returns a line for each one it skips: one
// unusable object must not stop the organisation's sync, nor reach a
// query or the overage hooks.
func (s *Syncer) usable(ctx context.Context, orgID string, subs []*stripe.Subscription, invs []*stripe.Invoice) ([]*stripe.Subscription, []*stripe.Invoice, []string) {
	var lines []string
	skip := func(err error) {
		s.log.WarnContext(ctx, "stripe sync skipped an object Tollgate cannot use", "org_id", orgID, "error", err)
		lines = append(lines, "skipped: "+err.Error())
	}
	keptSubs := subs[:0:0]
	for _, sub := range subs {
		if err := stripein.Subscription(sub, nil); err != nil {
			skip(err)
			continue
		}
		keptSubs = append(keptSubs, sub)
	}
	keptInvs := invs[:0:0]
	for _, inv := range invs {
		stripeshape.Invoice(inv, nil)
		if err := stripein.Invoice(inv); err != nil {
			skip(err)
			continue
		}
		keptInvs = append(keptInvs, inv)
	}
	return keptSubs, keptInvs, lines
}

func (s *Syncer) fetch(ctx context.Context, customer string) ([]*stripe.Subscription, []*stripe.Invoice, error) {
	sp := &stripe.SubscriptionListParams{Customer: stripe.String(customer), Status: stripe.String("all")}
	sp.Context = ctx
	var subs []*stripe.Subscription
	si := s.stripe.Subscriptions.List(sp)
	for si.Next() {
		subs = append(subs, si.Subscription())
	}
	if err := si.Err(); err != nil {
		return nil, nil, stripeclient.Error("list subscriptions of customer "+customer, err)
	}
	ip := &stripe.InvoiceListParams{Customer: stripe.String(customer)}
	ip.Context = ctx
	var invs []*stripe.Invoice
	ii := s.stripe.Invoices.List(ip)
	for ii.Next() {
		invs = append(invs, ii.Invoice())
	}
	if err := ii.Err(); err != nil {
		return nil, nil, stripeclient.Error("list invoices of customer "+customer, err)
	}
	return subs, invs, nil
}
