package billing

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"

	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/client"

	"github.com/tollgate-billing/tollgate/internal/apperr"
	"github.com/tollgate-billing/tollgate/internal/plans"
	"github.com/tollgate-billing/tollgate/internal/stripeclient"
	"github.com/tollgate-billing/tollgate/internal/stripein"
)

// CheckoutInput asks for a Checkout session selling one paid plan.
type CheckoutInput struct {
	Plan string
	// Interval is the billing interval of the price sold ("month" or
	// "year"); empty means monthly.
	Interval   string
	SuccessURL string
	CancelURL  string
	// Email is the caller's token email, used for a new Stripe customer when
	// the organisation has no billing email.
	Email string
}

// CheckoutSession is where to send the customer to pay.
type CheckoutSession struct {
	ID  string
	URL string
}

// CreateCheckoutSession opens a Stripe Checkout session for a paid plan,
// creating the organisation's Stripe customer first if it has none.
// Invalid input and an existing subscription give apperr.FieldErrors, before
// anything is sent to Stripe.
//
// No database transaction is open while Stripe is called. The session is
// recorded as pending before it is asked for, under an idempotency key
// derived from that record, and its id is recorded after: a crash or a lost
// answer in between leaves a pending record that the next checkout (or
// `stripe sync`) resolves by asking again under the same key.
func (s *Service) CreateCheckoutSession(ctx context.Context, orgID string, in CheckoutInput) (CheckoutSession, error) {
	plan, price, err := s.checkCheckoutInput(in)
	if err != nil {
		return CheckoutSession{}, err
	}
	sc, err := s.stripeClient()
	if err != nil {
		return CheckoutSession{}, err
	}
	st, err := s.Current(ctx, orgID)
	if err != nil {
		return CheckoutSession{}, err
	}
	if sub := st.Subscription; sub != nil && GrantsAccess(sub.Status) {
		// A second subscription would bill the customer twice; plan changes
		// go through the portal, which prorates.
		current := sub.PlanID
		if p, ok := s.catalog.ByID(sub.PlanID); ok {
			current = p.Name
		}
		msg := fmt.Sprintf("The organisation already subscribes to %s; change or cancel the plan in the customer portal (createPortalSession).", current)
		switch {
		case sub.PlanMismatch:
			// The plan it falls back to (often Free) is not what it pays for.
			msg = "The organisation already has a Stripe subscription, at a price the plans file does not list; change or cancel it in the customer portal (createPortalSession)."
		case sub.PlanID == plan.ID:
			msg = fmt.Sprintf("The organisation already subscribes to %s; manage it in the customer portal (createPortalSession).", current)
		}
		return CheckoutSession{}, apperr.FieldErrors{{Field: "input.plan", Code: CodeAlreadySubscribed, Message: msg}}
	}

	// Checkouts of one organisation run one after the other in this process,
	// so each finds the session the one before it opened. Across replicas
	// the claim below orders them; this lock holds no database resource.
	unlock := s.orgLocks.lock(orgID)
	defer unlock()

	customerID, err := s.ensureCustomer(ctx, sc, orgID, in.Email)
	if err != nil {
		return CheckoutSession{}, err
	}
	attempt, earlier, err := s.claimCheckout(ctx, orgID, checkoutSession{
		OrgExternalID: st.Org.ExternalID,
		PlanID:        plan.ID, PriceID: price, CustomerID: customerID, SuccessURL: in.SuccessURL, CancelURL: in.CancelURL,
	})
	if err != nil {
		return CheckoutSession{}, err
	}
	for _, prev := range earlier {
		if err := s.closeCheckout(ctx, sc, prev); err != nil {
			// Nothing was asked of Stripe under this attempt yet.
			return CheckoutSession{}, errors.Join(err, s.markCheckout(ctx, attempt.ID, "", checkoutClosed))
		}
	}
	sess, err := s.askStripe(ctx, sc, attempt)
	if err != nil {
		return CheckoutSession{}, err
	}
	if err := s.markCheckout(ctx, attempt.ID, sess.ID, checkoutOpen); err != nil {
		// The pending record stays; the next checkout or `stripe sync`
		// learns this session's id under the same key.
		return CheckoutSession{}, err
	}
	return CheckoutSession{ID: sess.ID, URL: sess.URL}, nil
}

// askStripe creates the attempt's Checkout session, or returns the one an
// earlier request under the same idempotency key created. A request Stripe
// refused created nothing: the attempt is closed, so no later call asks
// again. An unusable answer settles the attempt too (settleUnusable).
func (s *Service) askStripe(ctx context.Context, sc *client.API, a checkoutSession) (*stripe.CheckoutSession, error) {
	sess, err := sc.CheckoutSessions.New(s.sessionParams(ctx, a))
	if err == nil {
		if err = stripein.Session("checkout session", sess.ID, sess.URL); err == nil {
			return sess, nil
		}
		err = errors.Join(err, s.settleUnusable(ctx, a, sess))
	}
	if refused(err) {
		err = errors.Join(err, s.markCheckout(ctx, a.ID, "", checkoutClosed))
	}
	return nil, stripeclient.Error("create checkout session for org "+a.OrgID, err)
}

// settleUnusable records an attempt whose session Stripe answered with
// something Tollgate may not use (stripein.Session: a URL no customer may be
// sent to, say), so that it does not stay pending. Stripe replays a stored
// answer for 24 hours under the same idempotency key, so a pending attempt
// asked again would get the same unusable answer, and every checkout of the
// organisation, which first settles the earlier ones, would fail with it for
// a day. Instead: a session with a usable id is recorded as open, for the
// next checkout to expire like any other (Expire is not replayed); one
// without is closed (nobody got its URL, and it cannot be named). The next
// checkout is a new attempt with its own record, so its own idempotency key,
// and Stripe is asked afresh.
func (s *Service) settleUnusable(ctx context.Context, a checkoutSession, sess *stripe.CheckoutSession) error {
	if stripein.ValidID(sess.ID) {
		s.log.WarnContext(ctx, "Stripe answered a checkout session Tollgate cannot use; it is expired by the next checkout",
			"org_id", a.OrgID, "checkout_id", a.ID, "checkout_session_id", sess.ID)
		return s.markCheckout(ctx, a.ID, sess.ID, checkoutOpen)
	}
	s.log.WarnContext(ctx, "Stripe answered a checkout session without a usable id; the attempt is closed",
		"org_id", a.OrgID, "checkout_id", a.ID)
	return s.markCheckout(ctx, a.ID, "", checkoutClosed)
}

// sessionParams are the parameters of an attempt's session, built from its
// record alone: a retry under the same idempotency key must send exactly
// what the first request sent, or Stripe refuses it.
func (s *Service) sessionParams(ctx context.Context, a checkoutSession) *stripe.CheckoutSessionParams {
	// The external id lets an operator find the organisation from the
	// Stripe dashboard; Tollgate itself places objects by org_id.
	meta := map[string]string{"org_id": a.OrgID, "plan_id": a.PlanID}
	if a.OrgExternalID != "" {
		meta[metaOrgExternalID] = a.OrgExternalID
	}
	params := &stripe.CheckoutSessionParams{
		Mode:              stripe.String(string(stripe.CheckoutSessionModeSubscription)),
		ClientReferenceID: stripe.String(a.OrgID),
		Customer:          stripe.String(a.CustomerID),
		LineItems: []*stripe.CheckoutSessionLineItemParams{
			{Price: stripe.String(a.PriceID), Quantity: stripe.Int64(1)},
		},
		SubscriptionData: &stripe.CheckoutSessionSubscriptionDataParams{Metadata: meta},
		SuccessURL:       stripe.String(a.SuccessURL),
		CancelURL:        stripe.String(a.CancelURL),
	}
	params.Metadata = maps.Clone(meta)
	params.Metadata[CheckoutMetadataKey] = a.ID
	params.SetIdempotencyKey("tollgate-checkout-" + a.ID)
	params.Context = ctx
	return params
}

// closeCheckout makes sure an earlier Checkout session of the organisation
// can no longer be paid before another is opened: two open sessions could
// sell two subscriptions, since the check for an existing one above sees
// only what webhooks have delivered. A pending one is first asked for again
// to learn its id; an open one is expired; one that can no longer be
// expired is judged by PreviousCheckoutVerdict. It is closed once settled;
// a refusal leaves it as it was, to be judged again next time.
func (s *Service) closeCheckout(ctx context.Context, sc *client.API, a checkoutSession) error {
	if s.clock.Now().Sub(a.CreatedAt) > checkoutLifetime {
		// Stripe has expired it, and forgotten its idempotency key.
		return s.markCheckout(ctx, a.ID, "", checkoutClosed)
	}
	if a.StripeSessionID == nil {
		id, err := s.resolvePending(ctx, sc, a)
		if err != nil || id == "" {
			return err
		}
		a.StripeSessionID = &id
	}
	sessionID := *a.StripeSessionID
	ep := &stripe.CheckoutSessionExpireParams{}
	ep.Context = ctx
	_, err := sc.CheckoutSessions.Expire(sessionID, ep)
	if err == nil {
		s.log.InfoContext(ctx, "expired the previous checkout session", "org_id", a.OrgID, "checkout_session_id", sessionID)
		return s.markCheckout(ctx, a.ID, "", checkoutClosed)
	}
	var se *stripe.Error
	if !errors.As(err, &se) || se.HTTPStatusCode != http.StatusBadRequest && se.HTTPStatusCode != http.StatusNotFound {
		return stripeclient.Error("expire checkout session "+sessionID+" of org "+a.OrgID, err)
	}
	// Not open any more (or gone): see whether it was paid.
	gp := &stripe.CheckoutSessionParams{}
	gp.Context = ctx
	cs, err := sc.CheckoutSessions.Get(sessionID, gp)
	if errors.As(err, &se) && se.HTTPStatusCode == http.StatusNotFound {
		return s.markCheckout(ctx, a.ID, "", checkoutClosed)
	}
	if err == nil {
		err = stripein.CheckoutSession(cs)
	}
	if err != nil {
		return stripeclient.Error("read checkout session "+sessionID+" of org "+a.OrgID, err)
	}
	subID := ""
	if cs.Subscription != nil {
		subID = cs.Subscription.ID
	}
	if cs.Status == stripe.CheckoutSessionStatusComplete && subID != "" {
		sold, err := s.storedSubscription(ctx, a.OrgID, subID)
		if err != nil {
			return err
		}
		if err := PreviousCheckoutVerdict(cs.Status, sold); err != nil {
			return err
		}
	} else if err := PreviousCheckoutVerdict(cs.Status, nil); err != nil {
		return err
	}
	return s.markCheckout(ctx, a.ID, "", checkoutClosed)
}

// PreviousCheckoutVerdict decides whether a new Checkout may follow one
// that could not be expired, given the local copy of the subscription it
// sold (nil when none has been recorded): not while that subscription is
// still to arrive, nor while it grants access; yes once it has ended, or if
// the session was never paid.
func PreviousCheckoutVerdict(status stripe.CheckoutSessionStatus, sold *Subscription) error {
	if status != stripe.CheckoutSessionStatusComplete {
		return nil
	}
	if sold == nil {
		return apperr.FieldErrors{{Field: "input.plan", Code: CodeCheckoutPending,
			Message: "A checkout for this organisation was just paid and its subscription is being set up; it will show within a minute. Manage it in the customer portal (createPortalSession) rather than buying again."}}
	}
	if GrantsAccess(sold.Status) {
		return apperr.FieldErrors{{Field: "input.plan", Code: CodeAlreadySubscribed,
			Message: "The organisation already subscribes; change or cancel the plan in the customer portal (createPortalSession)."}}
	}
	return nil
}

func (s *Service) checkCheckoutInput(in CheckoutInput) (plans.Plan, string, error) {
	var fe apperr.FieldErrors
	plan, ok := s.catalog.ByID(in.Plan)
	var price plans.Price
	switch {
	case strings.TrimSpace(in.Plan) == "":
		fe.Add("input.plan", CodeRequired, "A plan id is required.")
	case !ok:
		fe.Add("input.plan", CodeUnknownPlan, fmt.Sprintf("There is no plan %.64q; %s", in.Plan, s.checkoutPlans()))
	case !sold(plan):
		fe.Add("input.plan", CodeNotPurchasable, fmt.Sprintf("The %s plan is not sold through Checkout; %s", plan.Name, s.checkoutPlans()))
	default:
		interval := cmp.Or(in.Interval, plans.IntervalMonth)
		if price, ok = plan.PriceFor(interval); !ok {
			fe.Add("input.interval", CodeNotPurchasable, fmt.Sprintf("The %s plan is not sold %sly; it is sold %s.", plan.Name, interval, intervals(plan)))
		}
	}
	checkRedirectURL(&fe, "input.successUrl", in.SuccessURL)
	checkRedirectURL(&fe, "input.cancelUrl", in.CancelURL)
	return plan, price.ID, fe.Err()
}

// sold reports whether Checkout sells the plan.
func sold(p plans.Plan) bool { return p.Paid() && !p.ContactSales && len(p.Prices) > 0 }

// checkoutPlans ends a refusal of input.plan with the plan ids Checkout
// sells, as an unknown meter's refusal lists the meters: a caller who
// wrote a plan's name ("Starter") or a tier Checkout does not sell learns
// what to send instead.
func (s *Service) checkoutPlans() string {
	var ids []string
	for _, p := range s.catalog.Plans() {
		if sold(p) {
			ids = append(ids, p.ID)
		}
	}
	if len(ids) == 0 {
		return "no plan is sold through Checkout."
	}
	return "the plans sold through Checkout are " + strings.Join(ids, ", ") + "."
}

// intervals lists the billing intervals a plan's prices are sold at, in
// the order of its prices ("monthly or yearly").
func intervals(p plans.Plan) string {
	var words []string
	for _, pr := range p.Prices {
		if w := pr.Interval + "ly"; !slices.Contains(words, w) {
			words = append(words, w)
		}
	}
	return strings.Join(words, " or ")
}

// refused reports whether Stripe answered a request with a refusal that
// means nothing was created: a 4xx other than a conflict or rate limit.
func refused(err error) bool {
	var se *stripe.Error
	if !errors.As(err, &se) {
		return false
	}
	c := se.HTTPStatusCode
	return c >= 400 && c < 500 && c != http.StatusConflict && c != http.StatusTooManyRequests
}
