package overage

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"time"

	"gorm.io/gorm/clause"

	"github.com/tollgate-billing/tollgate/internal/apperr"
	"github.com/tollgate-billing/tollgate/internal/billing"
	"github.com/tollgate-billing/tollgate/internal/clock"
	"github.com/tollgate-billing/tollgate/internal/money"
	"github.com/tollgate-billing/tollgate/internal/plans"
	"github.com/tollgate-billing/tollgate/internal/usage"
)

// CodeAmountOutOfRange answers an overage too large to bill or to sum.
const CodeAmountOutOfRange apperr.Code = "AMOUNT_OUT_OF_RANGE"

// sumCents adds the charges' amounts, refusing a sum past int64.
func sumCents(cs []Charge) (int64, error) {
	var total int64
	for _, c := range cs {
		if c.Amount > math.MaxInt64-total {
			return 0, apperr.New(CodeAmountOutOfRange, "the month's overage is more than one invoice can carry")
		}
		total += c.Amount
	}
	return total, nil
}

// errNoPrice is a meter's overage that its plan gives no price in the
// currency asked for: the plans file changed, or the subscription's price
// is not in it.
var errNoPrice = errors.New("the plan gives this overage no price in the currency")

// unbillable is one meter's overage that no invoice item can carry.
type unbillable struct {
	meter  string
	reason string // unbilledTooLarge or unbilledCurrency
	err    error
}

// monthOverage is an organisation's overage in one month, meter by meter.
type monthOverage struct {
	// charges are the meters' overage an invoice item can carry.
	charges []Charge
	// none are the monthly meters with no overage to bill (NoOverage).
	none []Charge
	// skipped are the meters' overage no invoice item can carry, or that
	// has no price in the currency: neither hides the other meters nor
	// fails a whole invoice.
	skipped []unbillable
}

// overageOf computes the overage of each monthly meter in one month from
// the organisation's usage, at the allowances and prices in currency of
// plan, the plan in force at the end of the month (monthPlan). In the month
// since falls in (the subscription's first), only the usage of the days
// from since's own on counts: usage is kept per UTC day, so the day the
// subscription began counts whole, and the days before it not at all.
// until, when not zero, ends the count likewise: the usage through until's
// UTC day (an ended subscription's last month, SubscriptionEnded).
func (s *Service) overageOf(ctx context.Context, orgID, period, currency string, plan plans.Plan, since, until time.Time) (monthOverage, error) {
	var mo monthOverage
	p, meters, err := s.usage.Usage(ctx, orgID, period)
	if err != nil {
		return mo, fmt.Errorf("overage of org %s in %s: %w", orgID, period, err)
	}
	from, to := p.Start, p.End
	if since.After(p.Start) && since.Before(p.End) {
		from = since
	}
	if !until.IsZero() && until.Before(p.End) {
		to = until.UTC().Truncate(24*time.Hour).AddDate(0, 0, 1) // until's day counts whole
	}
	window := from != p.Start || to != p.End
	for _, m := range meters {
		if l, ok := plan.LimitFor(m.Meter); ok {
			m.Limit = l
		} else { // the plan does not price the meter: nothing to bill
			m.Limit = plans.Limit{Meter: m.Meter, Reset: m.Limit.Reset}
		}
		if window && m.Limit.Reset == plans.Monthly {
			if m.Used, err = s.usedSince(ctx, orgID, m.Meter, from, to); err != nil {
				return mo, fmt.Errorf("overage of org %s in %s: %w", orgID, period, err)
			}
		}
		one, err := s.classify(orgID, period, currency, m)
		if err != nil {
			return mo, err
		}
		mo.charges, mo.none, mo.skipped = append(mo.charges, one.charges...), append(mo.none, one.none...), append(mo.skipped, one.skipped...)
	}
	return mo, nil
}

// usedSince is a monthly meter's usage from since's UTC day until end, from
// its daily totals.
func (s *Service) usedSince(ctx context.Context, orgID, meter string, since, end time.Time) (int64, error) {
	days, err := s.usage.Series(ctx, orgID, meter, since, end.Add(-time.Nanosecond))
	if err != nil {
		return 0, err
	}
	var used int64
	for _, d := range days {
		if d.Used > math.MaxInt64-used {
			return math.MaxInt64, nil // more than any overage can bill (chargeOf refuses it)
		}
		used += d.Used
	}
	return used, nil
}

// chargeOf is the charge for one meter's usage in currency: Pending, or
// NoOverage when there is nothing to bill.
func chargeOf(orgID, period, currency string, m usage.MeterUsage) (Charge, error) {
	price := m.Limit.Overage
	over := m.Overage()
	if price == nil || over <= 0 {
		return Charge{OrgID: orgID, Meter: m.Meter, Period: period, Allowance: m.Limit.Limit, Currency: currency,
			Status: NoOverage}, nil
	}
	unit, ok := price.UnitAmountIn(currency)
	if !ok {
		return Charge{}, fmt.Errorf("overage of %s in %s: %w (%s)", m.Meter, period, errNoPrice, currency)
	}
	packages := price.Packages(over)
	// One invoice item is paid by one charge, and Stripe charges at most
	// money.MaxAmount at once: an item above it could never be paid, so it
	// is refused here, where the preview and the bill both ask.
	hi, amount := bits.Mul64(uint64(packages), uint64(unit))
	if top := money.MaxAmount(currency); hi != 0 || amount > uint64(top) {
		// Usage the host recorded, not a fault of Tollgate's: a client
		// error, never INTERNAL.
		return Charge{}, apperr.New(CodeAmountOutOfRange, fmt.Sprintf(
			"the overage of %s in %s (%d packages at %s) is more than one invoice item can carry: Stripe charges at most %s at once",
			m.Meter, period, packages, money.Format(unit, currency), money.Format(top, currency)))
	}
	return Charge{
		OrgID: orgID, Meter: m.Meter, Period: period, Quantity: over, Allowance: m.Limit.Limit,
		UnitAmount: unit, Per: price.Per, Amount: int64(amount), Currency: currency,
		Status: Pending, Attempt: 1,
	}, nil
}

// billedSince is when the organisation's overage begins to be billed: when
// the subscription whose plan prices it began (Stripe's `created`), and
// never before the organisation existed. A month before that was judged
// against another plan (free, or a contract plan such as Enterprise, which
// Stripe does not invoice) and is not billed; in the month it falls in,
// only the usage from its day on is (overageOf). False without a
// subscription.
func billedSince(st billing.State) (time.Time, bool) {
	if st.Subscription == nil || st.Subscription.CreatedAt.IsZero() {
		return time.Time{}, false
	}
	if st.Org.CreatedAt.After(st.Subscription.CreatedAt) {
		return st.Org.CreatedAt, true
	}
	return st.Subscription.CreatedAt, true
}

// closedMonths are the months whose overage a draft invoice created now may
// collect: those closed since the month that holds since, at most Lookback
// of them, oldest first.
func closedMonths(since, now time.Time) []string {
	current := clock.MonthStart(now)
	first := clock.MonthStart(since)
	if oldest := current.AddDate(0, -Lookback, 0); first.Before(oldest) {
		first = oldest
	}
	var out []string
	for m := first; m.Before(current); m = m.AddDate(0, 1, 0) {
		out = append(out, m.Format("2006-01"))
	}
	return out
}

// monthPlan is the plan that prices a closed month's overage: the one in
// force at the month's end (the last microsecond, the finest time the
// database keeps). A plan changed within the month prices the whole month,
// as the usage page and the gate held the month's total to it after the
// change.
func (s *Service) monthPlan(ctx context.Context, orgID, period string) (plans.Plan, error) {
	start, err := time.Parse("2006-01", period)
	if err != nil {
		return plans.Plan{}, fmt.Errorf("overage of org %s: month %q: %w", orgID, period, err)
	}
	p, err := s.standing.PlanAt(ctx, orgID, start.AddDate(0, 1, 0).Add(-time.Microsecond))
	if err != nil {
		return plans.Plan{}, fmt.Errorf("overage of org %s in %s: %w", orgID, period, err)
	}
	return p, nil
}

// claim records the overage of each monthly meter in every closed month
// since the subscription began (closedMonths) not yet recorded for it, as
// pending charges in currency (the currency of invoiceID, the invoice that
// asks), and returns the organisation's pending charges.
//
// A meter's month is recorded once, by the first invoice after the month
// closes: as a charge, or as NoOverage when there is nothing to bill. It is
// never computed again, so what is billed cannot change under a retry, and
// usage that lands in the month after that (an event accepted just before
// midnight UTC whose write commits after, or taken by a replica whose clock
// lags; recordUsage refuses any other event dated in a closed month) is not
// billed on a later invoice: the first invoice after a month settles it, as
// its customer reads it. A meter whose overage no invoice item can carry,
// or that has no price in currency, is left unrecorded, so that a corrected
// plans file bills it on a later invoice while the other meters of its
// month are billed now.
func (s *Service) claim(ctx context.Context, orgID, invoiceID, currency string, plan plans.Plan) ([]Charge, error) {
	st, err := s.standing.Current(ctx, orgID)
	if err != nil {
		return nil, fmt.Errorf("overage of org %s: %w", orgID, err)
	}
	since, subscribed := billedSince(st)
	var months []string
	if subscribed {
		months = closedMonths(since, s.clock.Now())
	}
	if len(months) == 0 {
		return s.pending(ctx, orgID)
	}
	type slot struct{ period, meter string }
	var recorded []Charge
	err = s.db.WithContext(ctx).Select("period", "meter").Where("org_id = ? AND period >= ?", orgID, months[0]).
		Find(&recorded).Error
	if err != nil {
		return nil, fmt.Errorf("overage of org %s: %w", orgID, err)
	}
	done := map[slot]bool{}
	for _, c := range recorded {
		done[slot{c.Period, c.Meter}] = true
	}
	var fresh []Charge
	for _, period := range months {
		open := false
		for _, l := range plan.Limits {
			open = open || l.Reset == plans.Monthly && !done[slot{period, l.Meter}]
		}
		if !open {
			continue // every meter of the month is recorded: no usage to read
		}
		priced, err := s.monthPlan(ctx, orgID, period)
		if err != nil {
			return nil, err
		}
		mo, err := s.overageOf(ctx, orgID, period, currency, priced, since, time.Time{})
		if err != nil {
			return nil, err
		}
		// Billing it would fail the same way on every retry Stripe makes of
		// the invoice.created delivery; the operator has to look at it.
		for _, u := range mo.skipped {
			err := s.unbilled(ctx, orgID, u.meter, period, invoiceID, u.reason, "overage not billed",
				"currency", currency, "error", u.err)
			if err != nil {
				return nil, err
			}
		}
		for _, c := range append(mo.charges, mo.none...) {
			if !done[slot{period, c.Meter}] {
				fresh = append(fresh, c)
			}
		}
	}
	now := s.clock.Now()
	for i := range fresh {
		fresh[i].CreatedAt, fresh[i].UpdatedAt = now, now
	}
	if len(fresh) > 0 {
		// A concurrent delivery may have recorded some first: its rows stand.
		err := s.db.WithContext(ctx).Clauses(clause.OnConflict{DoNothing: true}).Create(&fresh).Error
		if err != nil {
			return nil, fmt.Errorf("record overage of org %s: %w", orgID, err)
		}
	}
	return s.pending(ctx, orgID)
}

// classify sorts one meter's usage into a charge, a month settled at
// nothing, or an overage no invoice item can carry.
func (s *Service) classify(orgID, period, currency string, m usage.MeterUsage) (monthOverage, error) {
	var mo monthOverage
	c, err := chargeOf(orgID, period, currency, m)
	if ae, isApp := apperr.As(err); isApp && ae.Code == CodeAmountOutOfRange {
		mo.skipped = append(mo.skipped, unbillable{m.Meter, unbilledTooLarge, err})
		return mo, nil
	}
	if errors.Is(err, errNoPrice) {
		mo.skipped = append(mo.skipped, unbillable{m.Meter, unbilledCurrency, err})
		return mo, nil
	}
	if err != nil {
		return mo, err
	}
	switch {
	case c.Status == Pending:
		mo.charges = append(mo.charges, c)
	case m.Limit.Reset == plans.Monthly:
		mo.none = append(mo.none, c)
	}
	return mo, nil
}
