package billing

import (
	"context"
	"fmt"
	"time"

	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/client"
	"gorm.io/gorm"

	"github.com/tollgate-billing/tollgate/internal/apperr"
	"github.com/tollgate-billing/tollgate/internal/orgs"
	"github.com/tollgate-billing/tollgate/internal/store"
	"github.com/tollgate-billing/tollgate/internal/stripeclient"
	"github.com/tollgate-billing/tollgate/internal/stripein"
)

// States of a checkout session record.
const (
	// checkoutPending: recorded, and Stripe maybe asked; its answer is not
	// recorded yet.
	checkoutPending = "pending"
	// checkoutOpen: Stripe's session id is recorded; it may still be paid.
	checkoutOpen = "open"
	// checkoutClosed: expired, completed, refused or never sent; nothing
	// more to do.
	checkoutClosed = "closed"
)

// checkoutLifetime is how long Stripe keeps a Checkout session open (its
// default expiry) and, no shorter, an idempotency key: an older record can
// be closed without asking Stripe.
const checkoutLifetime = 24 * time.Hour

// CheckoutMetadataKey names, in a session's metadata, the record Tollgate
// made of it, so that its completion finds the record even if the session's
// id was never recorded.
const CheckoutMetadataKey = "tollgate_checkout_id"

// checkoutSession is Tollgate's record of one Checkout session it asked
// Stripe for, with everything the request sent, so that the request can be
// repeated word for word under its idempotency key.
type checkoutSession struct {
	ID    string `gorm:"primaryKey"`
	OrgID string
	// OrgExternalID is the organisation's external id as the session's
	// metadata carries it ("" for a record made before it did).
	OrgExternalID   string
	StripeSessionID *string
	State           string
	PlanID          string
	PriceID         string
	CustomerID      string
	SuccessURL      string
	CancelURL       string
	CreatedAt       time.Time
	UpdatedAt       time.Time
}

func (checkoutSession) TableName() string { return "checkout_sessions" }

// claimCheckout records a new pending session for the organisation and
// returns it with every earlier one not yet closed. Under the
// organisation's lock, of two concurrent checkouts (on any replica) the
// second sees the first and closes it.
func (s *Service) claimCheckout(ctx context.Context, orgID string, a checkoutSession) (checkoutSession, []checkoutSession, error) {
	now := s.clock.Now()
	a.ID, a.OrgID, a.State, a.CreatedAt, a.UpdatedAt = store.NewID(), orgID, checkoutPending, now, now
	var earlier []checkoutSession
	err := s.db.Tx(ctx, func(tx *gorm.DB) error {
		if _, ok, err := orgs.Lock(ctx, s.db, tx, orgID); err != nil || !ok {
			if err == nil {
				err = apperr.ErrNotFound
			}
			return err
		}
		if err := tx.Where("org_id = ? AND state <> ?", orgID, checkoutClosed).Order("created_at").Find(&earlier).Error; err != nil {
			return fmt.Errorf("load open checkout sessions of org %s: %w", orgID, err)
		}
		if err := tx.Create(&a).Error; err != nil {
			return fmt.Errorf("record checkout session of org %s: %w", orgID, err)
		}
		return nil
	})
	return a, earlier, err
}

// markCheckout records what became of a session: its Stripe id (when not
// empty) and its state. A closed record stays closed.
func (s *Service) markCheckout(ctx context.Context, id, stripeID, state string) error {
	set := map[string]any{"state": state, "updated_at": s.clock.Now()}
	if stripeID != "" {
		set["stripe_session_id"] = stripeID
	}
	err := s.db.WithContext(ctx).Model(&checkoutSession{}).Where("id = ? AND state <> ?", id, checkoutClosed).Updates(set).Error
	if err != nil {
		return fmt.Errorf("record checkout session %s as %s: %w", id, state, err)
	}
	return nil
}

// storedSubscription returns the organisation's copy of a Stripe
// subscription, nil when none is stored.
func (s *Service) storedSubscription(ctx context.Context, orgID, stripeID string) (*Subscription, error) {
	var subs []Subscription
	if err := s.db.WithContext(ctx).Where("org_id = ? AND stripe_subscription_id = ?", orgID, stripeID).Limit(1).Find(&subs).Error; err != nil {
		return nil, fmt.Errorf("look up subscription %s of org %s: %w", stripeID, orgID, err)
	}
	if len(subs) == 0 {
		return nil, nil
	}
	return &subs[0], nil
}

// CheckoutCompleted closes the record of a completed Checkout session once
// its completion has been processed with the subscription it sold (call it
// in that transaction): the next checkout need not ask Stripe about it.
// recordID is the session's metadata.tollgate_checkout_id, which finds a
// record whose Stripe id was never stored.
func (s *Service) CheckoutCompleted(tx *gorm.DB, orgID, sessionID, recordID string) error {
	err := tx.Model(&checkoutSession{}).Where("org_id = ? AND (stripe_session_id = ? OR id = ?)", orgID, sessionID, recordID).
		Updates(map[string]any{"state": checkoutClosed, "updated_at": s.clock.Now()}).Error
	if err != nil {
		return fmt.Errorf("close checkout session %s of org %s: %w", sessionID, orgID, err)
	}
	return nil
}

// createdCheckoutOrg returns the organisation named by a completed
// session's metadata.org_id when Tollgate recorded that session for it
// (checkoutOpened). "" when none does: metadata on a session Tollgate did
// not open places nothing.
func (s *Service) createdCheckoutOrg(ctx context.Context, tx *gorm.DB, cs *stripe.CheckoutSession, customerID string) (string, error) {
	orgID := cs.Metadata["org_id"]
	ok, err := s.checkoutOpened(ctx, tx, orgID, customerID, cs)
	if err != nil || !ok {
		return "", err
	}
	return orgID, nil
}

// checkoutOpened reports whether Tollgate recorded a checkout session for
// the organisation, opened for the customer: the one rule by which a
// metadata.org_id places a Stripe object whose customer is linked to no
// organisation (anyone with access to the Stripe account can write
// metadata; only Tollgate writes checkout_sessions).
//
// For a completed session (cs not nil) the record must be that session:
// by its id, or, for a record whose Stripe answer was lost (no id
// recorded), by the record id Tollgate put in metadata.tollgate_checkout_id;
// a record made with another customer does not match. Any other object
// (a subscription or invoice, which carries no session id) needs a record
// of the organisation made with that very customer, in any state: its
// events may arrive before, or long after, the session's completion.
func (s *Service) checkoutOpened(ctx context.Context, tx *gorm.DB, orgID, customerID string, cs *stripe.CheckoutSession) (bool, error) {
	if orgID == "" {
		return false, nil
	}
	tx = tx.WithContext(ctx)
	var recs []checkoutSession
	if cs == nil {
		if customerID == "" {
			return false, nil
		}
		err := tx.Where("org_id = ? AND customer_id = ?", orgID, customerID).Limit(1).Find(&recs).Error
		if err != nil {
			return false, fmt.Errorf("look up checkout sessions of org %s for customer %s: %w", orgID, customerID, err)
		}
		return len(recs) > 0, nil
	}
	err := tx.Where("org_id = ? AND (stripe_session_id = ? OR (stripe_session_id IS NULL AND id = ?))", orgID, cs.ID, cs.Metadata[CheckoutMetadataKey]).
		Limit(1).Find(&recs).Error
	if err != nil {
		return false, fmt.Errorf("look up checkout session %s of org %s: %w", cs.ID, orgID, err)
	}
	if len(recs) == 0 {
		return false, nil
	}
	if rec := recs[0]; rec.CustomerID != "" && rec.CustomerID != customerID {
		s.log.WarnContext(ctx, "completed checkout names another customer than the one Tollgate opened it for",
			"checkout_session_id", cs.ID, "org_id", orgID, "recorded_customer", rec.CustomerID, "stripe_customer_id", customerID)
		return false, nil
	}
	return true, nil
}

// ResolvePendingCheckouts learns the Stripe id of every session of the
// organisation whose creation was never recorded, by asking again under its
// idempotency key, so that the next checkout can expire it. Sessions younger
// than a minute may still be in a caller's hands and are left alone. It
// returns a line per session resolved.
func (s *Service) ResolvePendingCheckouts(ctx context.Context, orgID string) ([]string, error) {
	sc, err := s.stripeClient()
	if err != nil {
		return nil, err
	}
	var pending []checkoutSession
	if err := s.db.WithContext(ctx).Where("org_id = ? AND state = ? AND created_at < ?", orgID, checkoutPending, s.clock.Now().Add(-time.Minute)).
		Order("created_at").Find(&pending).Error; err != nil {
		return nil, fmt.Errorf("load pending checkout sessions of org %s: %w", orgID, err)
	}
	var lines []string
	for _, a := range pending {
		if s.clock.Now().Sub(a.CreatedAt) > checkoutLifetime {
			if err := s.markCheckout(ctx, a.ID, "", checkoutClosed); err != nil {
				return lines, err
			}
			lines = append(lines, "checkout "+a.ID+" closed: older than Stripe keeps sessions open")
			continue
		}
		id, err := s.resolvePending(ctx, sc, a)
		if err != nil {
			return lines, err
		}
		if id == "" {
			lines = append(lines, "checkout "+a.ID+" closed: Stripe never created it")
		} else {
			lines = append(lines, "checkout "+a.ID+" recorded as Stripe session "+id)
		}
	}
	return lines, nil
}

// resolvePending asks Stripe again, under its idempotency key, for a
// session whose answer was never recorded, and records what it learns:
// the session's id (returned), or, when Stripe refuses, that none was ever
// created ("" returned, the record closed). An unusable answer is settled
// by settleUnusable, not left pending.
func (s *Service) resolvePending(ctx context.Context, sc *client.API, a checkoutSession) (string, error) {
	sess, err := sc.CheckoutSessions.New(s.sessionParams(ctx, a))
	if err == nil && stripein.Session("checkout session", sess.ID, sess.URL) != nil {
		// Asking again would replay the same answer: settle it now.
		if err := s.settleUnusable(ctx, a, sess); err != nil || !stripein.ValidID(sess.ID) {
			return "", err
		}
		return sess.ID, nil
	}
	if refused(err) {
		return "", s.markCheckout(ctx, a.ID, "", checkoutClosed)
	}
	if err != nil {
		return "", stripeclient.Error("resolve pending checkout session "+a.ID+" of org "+a.OrgID, err)
	}
	return sess.ID, s.markCheckout(ctx, a.ID, sess.ID, checkoutOpen)
}

// RecordCheckoutOpened records that a Checkout session was opened for the
// organisation and customer by something other than this process's
// createCheckoutSession (the soak harness, standing in for a dashboard and
// Stripe), as closed: what placing a subscription or invoice of a customer
// not yet linked by its metadata.org_id asks for (checkoutOpened). Only
// billing writes checkout_sessions.
func RecordCheckoutOpened(ctx context.Context, db *store.DB, orgID, customerID, planID, priceID string, at time.Time) error {
	at = at.UTC()
	row := checkoutSession{ID: store.NewID(), OrgID: orgID, State: checkoutClosed, PlanID: planID, PriceID: priceID,
		CustomerID: customerID, CreatedAt: at, UpdatedAt: at}
	if err := db.WithContext(ctx).Create(&row).Error; err != nil {
		return fmt.Errorf("record the checkout of %s for org %s: %w", customerID, orgID, err)
	}
	return nil
}
