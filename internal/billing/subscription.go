package billing

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/stripe/stripe-go/v76"
	"gorm.io/gorm"

	"github.com/tollgate-billing/tollgate/internal/orgs"
	"github.com/tollgate-billing/tollgate/internal/plans"
	"github.com/tollgate-billing/tollgate/internal/store"
	"github.com/tollgate-billing/tollgate/internal/stripeclient"
	"github.com/tollgate-billing/tollgate/internal/stripeshape"
)

// Outcome says what applying a Stripe object did.
type Outcome string

const (
	// Applied: the object was newer than what was stored and is stored now;
	// Result.Changes lists what differed (nothing, for a no-op).
	Applied Outcome = "applied"
	// Stale: a newer event was applied already; the object was dropped.
	Stale Outcome = "stale"
	// UnknownOrg: no organisation owns the object; it was dropped.
	UnknownOrg Outcome = "unknown_org"
	// UnknownSubscription: the subscription is not stored yet; its own
	// events will create it.
	UnknownSubscription Outcome = "unknown_subscription"
	// Ignored: the object carries nothing Tollgate keeps.
	Ignored Outcome = "ignored"
	// Invalid: the object carries a value Tollgate cannot store or act on
	// (a stripein.Unusable); nothing of it was applied.
	Invalid Outcome = "invalid"
)

// Result is what applying a Stripe object did.
type Result struct {
	Outcome Outcome
	OrgID   string
	// Changes are human-readable differences, e.g. "status: active → past_due".
	Changes []string
}

func (r *Result) note(change string) {
	if change != "" {
		r.Changes = append(r.Changes, change)
	}
}

// merge adds what a later step did: its outcome, organisation and changes.
func (r *Result) merge(o Result) {
	r.Outcome, r.Changes = o.Outcome, append(r.Changes, o.Changes...)
	if o.OrgID != "" {
		r.OrgID = o.OrgID
	}
}

// SubscriptionUpdate is a Stripe subscription object and how Tollgate got it.
type SubscriptionUpdate struct {
	Sub *stripe.Subscription
	// At is the `created` time of the event that carried Sub, or when Sub
	// was fetched from Stripe. An update older than the last one applied to
	// the same subscription is dropped.
	At time.Time
	// OrgID is the owner when the caller knows it (Checkout, reconciliation);
	// otherwise it is found through the customer, then metadata.org_id.
	OrgID string
	// PlanHint is the plan the Checkout session sold, used when the price
	// is missing from the plans config.
	PlanHint string
	// Rank orders updates that share At's second, which Stripe's one-second
	// event times cannot.
	Rank Rank
	// Raw is the object's JSON as Stripe sent it, when it came in an event:
	// the fields later API versions moved are read from it (stripeshape).
	Raw []byte
}

// Rank is how late in a subscription's life an update stands within one
// second: a subscription is often created incomplete and activated in the
// same second, and its events may arrive in either order.
type Rank int

const (
	RankCreated Rank = iota // customer.subscription.created
	RankUpdated             // customer.subscription.updated (and paused, resumed, …)
	RankDeleted             // customer.subscription.deleted
	// RankFetched is an object read from Stripe's API: its state as of At,
	// at least as new as any event of that second.
	RankFetched
)

// RankForEvent ranks a subscription event type.
func RankForEvent(eventType string) Rank {
	switch eventType {
	case "customer.subscription.created":
		return RankCreated
	case "customer.subscription.deleted":
		return RankDeleted
	}
	return RankUpdated
}

// ApplySubscription stores a Stripe subscription in tx, the transaction that
// also records the event that carried it, and keeps the organisation's
// effective plan in step. It is the one path by which subscriptions change:
// webhooks, API responses and reconciliation all come through here.
//
// It is order-safe: each subscription keeps the time of the last update
// applied, and older updates are dropped, so events delivered out of order
// end in Stripe's latest state. An update for a subscription not stored yet
// creates it, whichever event comes first.
//
// Every caller judged the subscription (stripein.Subscription) where it
// came from Stripe: a webhook event (ApplySubscriptionEvent), a fetch
// (FetchSubscription, CheckoutSubscription), an answer to a change (Cancel,
// Resume) or `stripe sync`; it is trusted here.
func (s *Service) ApplySubscription(ctx context.Context, tx *gorm.DB, u SubscriptionUpdate) (Result, error) {
	sub := u.Sub
	if sub == nil || sub.ID == "" {
		return Result{Outcome: Ignored}, nil
	}
	tx = tx.WithContext(ctx)
	at := u.At.UTC()

	orgID, outcome, err := s.ownerOf(ctx, tx, u)
	if err != nil || orgID == "" {
		return Result{Outcome: outcome}, err
	}
	org, ok, err := orgs.Lock(ctx, s.db, tx, orgID)
	if err != nil || !ok {
		return Result{Outcome: UnknownOrg}, err
	}
	res := Result{Outcome: Applied, OrgID: orgID}
	row, found, err := s.lockSubscription(tx, sub.ID)
	if err != nil {
		return res, err
	}
	if found && row.LastEventAt != nil {
		last := row.LastEventAt.UTC()
		switch {
		case at.Before(last), at.Equal(last) && u.Rank < Rank(row.LastEventRank):
			return Result{Outcome: Stale, OrgID: row.OrgID}, nil
		case at.Equal(last) && u.Rank == Rank(row.LastEventRank) && u.Rank != RankFetched && s.stripe != nil:
			// Two updates in one second carry no order at all: the caller
			// asks Stripe for the subscription as it is now, outside the
			// transaction, and applies that.
			return res, &FetchFirst{SubscriptionID: sub.ID}
		}
	}
	before, err := s.standingOf(tx, org)
	if err != nil {
		return res, err
	}
	next := row
	s.copyFromStripe(ctx, &next, sub, u, at)
	next.LastEventRank = int(u.Rank)
	if !found {
		next.ID, next.OrgID = store.NewID(), orgID
		if err := tx.Create(&next).Error; err != nil {
			return res, fmt.Errorf("insert subscription %s: %w", sub.ID, err)
		}
		res.Changes = append(res.Changes, fmt.Sprintf("subscription %s created: status %s, plan %s, price %s", sub.ID, next.Status, next.PlanID, next.PriceID))
	} else {
		if err := tx.Save(&next).Error; err != nil {
			return res, fmt.Errorf("update subscription %s: %w", sub.ID, err)
		}
		res.Changes = append(res.Changes, subscriptionDiff(row, next)...)
	}
	change, err := s.linkCustomer(ctx, tx, &org, next.StripeCustomerID)
	if err != nil {
		return res, err
	}
	res.note(change)
	change, err = s.refreshOrgPlan(ctx, tx, &org, before)
	res.note(change)
	s.notifyChanged(tx, res)
	return res, err
}

// MarkPastDue records a failed payment on a subscription: an active or
// trialing subscription becomes past_due (and keeps its plan). Stripe sends
// the subscription's own update too; this makes the failure visible even if
// that one is late.
func (s *Service) MarkPastDue(ctx context.Context, tx *gorm.DB, stripeSubscriptionID string, at time.Time) (Result, error) {
	if stripeSubscriptionID == "" {
		return Result{Outcome: Ignored}, nil
	}
	tx = tx.WithContext(ctx)
	at = at.UTC()
	orgID, _, err := s.FindOrg(ctx, tx, Owner{SubscriptionID: stripeSubscriptionID})
	if err != nil || orgID == "" {
		return Result{Outcome: UnknownSubscription}, err
	}
	org, ok, err := orgs.Lock(ctx, s.db, tx, orgID)
	if err != nil || !ok {
		return Result{Outcome: UnknownOrg}, err
	}
	row, found, err := s.lockSubscription(tx, stripeSubscriptionID)
	if err != nil || !found {
		return Result{Outcome: UnknownSubscription}, err
	}
	if row.LastEventAt != nil && at.Before(*row.LastEventAt) {
		return Result{Outcome: Stale, OrgID: orgID}, nil
	}
	res := Result{Outcome: Applied, OrgID: orgID}
	if row.Status != "active" && row.Status != "trialing" {
		return res, nil
	}
	before, err := s.standingOf(tx, org)
	if err != nil {
		return res, err
	}
	next := row
	next.Status, next.LastEventAt, next.UpdatedAt = "past_due", &at, s.clock.Now()
	// The lowest rank: the subscription's own events of this second (an
	// update, or its deletion when Stripe cancels on a failed payment) say
	// more than this inference and must win.
	next.LastEventRank = int(RankCreated)
	if err := tx.Save(&next).Error; err != nil {
		return res, fmt.Errorf("mark subscription %s past due: %w", stripeSubscriptionID, err)
	}
	res.Changes = subscriptionDiff(row, next)
	change, err := s.refreshOrgPlan(ctx, tx, &org, before)
	res.note(change)
	s.notifyChanged(tx, res)
	return res, err
}

// ownerOf finds the organisation of a subscription update: a stored
// subscription keeps its organisation; a new one belongs to the caller's
// organisation, else the customer's, else metadata.org_id's when Tollgate
// opened a checkout of that organisation for the subscription's customer
// (FindOrg). When none, the outcome says why.
func (s *Service) ownerOf(ctx context.Context, tx *gorm.DB, u SubscriptionUpdate) (string, Outcome, error) {
	var ids []string
	if err := tx.Model(&Subscription{}).Where("stripe_subscription_id = ?", u.Sub.ID).Limit(1).Pluck("org_id", &ids).Error; err != nil {
		return "", UnknownOrg, fmt.Errorf("find subscription %s: %w", u.Sub.ID, err)
	}
	if len(ids) > 0 {
		if u.OrgID != "" && u.OrgID != ids[0] {
			s.log.Warn("subscription is stored under another organisation; keeping it there",
				"stripe_subscription_id", u.Sub.ID, "stored_org_id", ids[0], "claimed_org_id", u.OrgID)
		}
		return ids[0], "", nil
	}
	if u.OrgID != "" {
		return u.OrgID, "", nil
	}
	return s.FindOrg(ctx, tx, Owner{CustomerID: customerID(u.Sub), MetadataOrgIDs: []string{u.Sub.Metadata["org_id"]},
		Object: "subscription", ObjectID: u.Sub.ID})
}

// lockSubscription loads and locks a stored subscription. Two first events
// for one subscription cannot both insert it: they already wait for each
// other on the organisation's lock, and the second then finds the row.
func (s *Service) lockSubscription(tx *gorm.DB, stripeID string) (Subscription, bool, error) {
	var row Subscription
	err := s.db.ForUpdate(tx).Where("stripe_subscription_id = ?", stripeID).Take(&row).Error
	if store.IsNotFound(err) {
		return row, false, nil
	}
	if err != nil {
		return row, false, fmt.Errorf("lock subscription %s: %w", stripeID, err)
	}
	return row, true, nil
}

// copyFromStripe overwrites row with what Stripe says. Every field comes
// from the object, so the newest object applied decides the whole row.
func (s *Service) copyFromStripe(ctx context.Context, row *Subscription, sub *stripe.Subscription, u SubscriptionUpdate, at time.Time) {
	row.StripeSubscriptionID = sub.ID
	if c := customerID(sub); c != "" {
		row.StripeCustomerID = c
	}
	if sub.Status != "" {
		row.Status = strings.ToLower(string(sub.Status))
	}
	price, plan, known := s.priceOf(sub)
	switch {
	case known:
		row.PriceID, row.PlanID, row.PlanMismatch = price, plan.ID, false
	case price == "":
		// No item carries a price (a trimmed payload): nothing to go by
		// but what was stored or sold.
		if row.PlanID == "" {
			row.PlanID = s.soldPlan(sub, u.PlanHint)
		}
	default:
		row.PriceID, row.PlanMismatch = price, true
		if p, ok := s.catalog.ByID(row.PlanID); !ok || !p.Paid() {
			row.PlanID = s.soldPlan(sub, u.PlanHint)
		}
		PlanMismatches.Inc()
		s.log.ErrorContext(ctx, "Stripe price is not in the plans file; keeping the last plan a known price named: add the price to PLANS_FILE",
			"stripe_subscription_id", sub.ID, "price_id", price, "plan_kept", row.PlanID, "status", row.Status)
	}
	// From 2025-03-31 the period is on each item: take the one of the price
	// that decided the plan, falling back to the subscription's own.
	start, end := sub.CurrentPeriodStart, sub.CurrentPeriodEnd
	if p, ok := stripeshape.ItemPeriods(u.Raw)[price]; ok {
		start, end = p.Start, p.End
	}
	if t := stripeclient.Time(start); t != nil {
		row.CurrentPeriodStart = t
	}
	if t := stripeclient.Time(end); t != nil {
		row.CurrentPeriodEnd = t
	}
	row.CancelAtPeriodEnd = sub.CancelAtPeriodEnd
	row.CanceledAt = stripeclient.Time(sub.CanceledAt)
	if created := stripeclient.Time(sub.Created); created != nil {
		row.CreatedAt = *created
	} else if row.CreatedAt.IsZero() {
		row.CreatedAt = at
	}
	row.LastEventAt = &at
	row.UpdatedAt = s.clock.Now()
}

// soldPlan is the plan Tollgate recorded when it sold a subscription whose
// price the plans file does not know: its metadata.plan_id, else the plan
// the Checkout session sold, else free. Never a plan nobody bought.
func (s *Service) soldPlan(sub *stripe.Subscription, hint string) string {
	for _, id := range []string{sub.Metadata["plan_id"], hint} {
		if p, ok := s.catalog.ByID(id); ok && p.Paid() {
			return p.ID
		}
	}
	return plans.FreePlanID
}

// refreshOrgPlan keeps organizations.plan_id equal to the effective plan of
// the organisation's current subscription, records a change in the plan
// history (planhistory.go), and announces a change of plan or status from
// before, in tx.
func (s *Service) refreshOrgPlan(ctx context.Context, tx *gorm.DB, org *orgs.Organization, before standing) (string, error) {
	after, err := s.standingOf(tx, *org)
	if err != nil {
		return "", err
	}
	change := ""
	if after.plan != org.PlanID {
		now := s.clock.Now()
		if err := orgs.SetPlan(ctx, tx, org.ID, after.plan, now); err != nil {
			return "", fmt.Errorf("set plan of org %s: %w", org.ID, err)
		}
		if err := recordPlanChange(tx, *org, after.plan, now); err != nil {
			return "", err
		}
		change = fmt.Sprintf("organisation plan: %s → %s", org.PlanID, after.plan)
		org.PlanID = after.plan
	}
	return change, s.announceStanding(ctx, tx, org.ID, before, after)
}

func subscriptionDiff(a, b Subscription) []string {
	var out []string
	add := func(name, x, y string) {
		if x != y {
			out = append(out, fmt.Sprintf("subscription %s %s: %s → %s", b.StripeSubscriptionID, name, x, y))
		}
	}
	add("status", a.Status, b.Status)
	add("plan", a.PlanID, b.PlanID)
	add("price", a.PriceID, b.PriceID)
	add("plan_mismatch", fmt.Sprint(a.PlanMismatch), fmt.Sprint(b.PlanMismatch))
	add("cancel_at_period_end", fmt.Sprint(a.CancelAtPeriodEnd), fmt.Sprint(b.CancelAtPeriodEnd))
	add("current_period_end", timeString(a.CurrentPeriodEnd), timeString(b.CurrentPeriodEnd))
	add("canceled_at", timeString(a.CanceledAt), timeString(b.CanceledAt))
	return out
}

func customerID(sub *stripe.Subscription) string {
	if sub.Customer == nil {
		return ""
	}
	return sub.Customer.ID
}

// priceOf is the price that decides a subscription's plan: the first item
// whose price the plans file knows, with that plan. Tollgate sells one
// item per subscription; one added by hand in the dashboard must not hide
// it. known is false when no item's price is in the file; price is then the
// first item's ("" without any).
func (s *Service) priceOf(sub *stripe.Subscription) (price string, plan plans.Plan, known bool) {
	if sub.Items == nil {
		return "", plans.Plan{}, false
	}
	for _, it := range sub.Items.Data {
		if it == nil || it.Price == nil || it.Price.ID == "" {
			continue
		}
		if p, ok := s.catalog.ByPriceID(it.Price.ID); ok {
			return it.Price.ID, p, true
		}
		if price == "" {
			price = it.Price.ID
		}
	}
	return price, plans.Plan{}, false
}

func timeString(t *time.Time) string {
	if t == nil {
		return "none"
	}
	return t.UTC().Format(time.RFC3339)
}
