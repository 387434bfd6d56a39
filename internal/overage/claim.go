package overage

import (
	"context"
	"fmt"
	"math"
	"math/bits"
	"time"

	"gorm.io/gorm/clause"

	"github.com/tollgate-billing/tollgate/internal/apperr"
	"github.com/tollgate-billing/tollgate/internal/clock"
	"github.com/tollgate-billing/tollgate/internal/money"
	"github.com/tollgate-billing/tollgate/internal/orgs"
	"github.com/tollgate-billing/tollgate/internal/plans"
	"github.com/tollgate-billing/tollgate/internal/usage"
)

// CodeAmountOutOfRange answers an overage too large to bill or to sum.
const CodeAmountOutOfRange apperr.Code = "AMOUNT_OUT_OF_RANGE"

// maxChargeCents bounds one charge, so the charges of a few meters still
// sum within int64 (sumCents checks anyway).
const maxChargeCents = 1 << 62

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

// charges computes the overage of each priced meter in one month from the
// organisation's usage, at its current plan's prices. currency is the
// plan's. A meter whose overage no invoice item can carry is not among
// them: its CodeAmountOutOfRange error is in tooLarge instead, so that it
// neither hides the other meters nor fails a whole invoice.
func (s *Service) charges(ctx context.Context, orgID, period, currency string) (out []Charge, tooLarge []error, err error) {
	_, meters, err := s.usage.Usage(ctx, orgID, period)
	if err != nil {
		return nil, nil, fmt.Errorf("overage of org %s in %s: %w", orgID, period, err)
	}
	for _, m := range meters {
		c, ok, err := chargeOf(orgID, period, currency, m)
		if ae, isApp := apperr.As(err); isApp && ae.Code == CodeAmountOutOfRange {
			tooLarge = append(tooLarge, err)
			continue
		}
		if err != nil {
			return nil, nil, err
		}
		if ok {
			out = append(out, c)
		}
	}
	return out, tooLarge, nil
}

// chargeOf is the charge for one meter's usage, false when there is none.
func chargeOf(orgID, period, currency string, m usage.MeterUsage) (Charge, bool, error) {
	price := m.Limit.Overage
	over := m.Overage()
	if price == nil || over <= 0 {
		return Charge{}, false, nil
	}
	packages := price.Packages(over)
	hi, amount := bits.Mul64(uint64(packages), uint64(price.UnitAmountCents))
	if hi != 0 || amount > maxChargeCents {
		// Usage the host recorded, not a fault of Tollgate's: a client
		// error, never INTERNAL.
		return Charge{}, false, apperr.New(CodeAmountOutOfRange, fmt.Sprintf(
			"the overage of %s in %s (%d packages at %s) is more than one invoice item can carry",
			m.Meter, period, packages, money.Format(price.UnitAmountCents, currency)))
	}
	return Charge{
		OrgID: orgID, Meter: m.Meter, Period: period, Quantity: over, Allowance: m.Limit.Limit,
		UnitAmount: price.UnitAmountCents, Per: price.Per, Amount: int64(amount), Currency: currency,
		Status: Pending, Attempt: 1,
	}, true, nil
}

// closedMonths are the months whose overage a draft invoice created now may
// collect: those closed since the organisation was created, at most
// Lookback of them, oldest first.
func closedMonths(orgCreated, now time.Time) []string {
	current := clock.MonthStart(now)
	first := clock.MonthStart(orgCreated)
	if oldest := current.AddDate(0, -Lookback, 0); first.Before(oldest) {
		first = oldest
	}
	var out []string
	for m := first; m.Before(current); m = m.AddDate(0, 1, 0) {
		out = append(out, m.Format("2006-01"))
	}
	return out
}

// claim records the overage of every closed month not yet recorded, as
// pending charges, and returns the organisation's pending charges. A month
// once recorded is never computed again, so what is billed cannot change
// under a retry.
func (s *Service) claim(ctx context.Context, orgID string, plan plans.Plan) ([]Charge, error) {
	org, err := orgs.Load(ctx, s.db.DB, orgID)
	if err != nil {
		return nil, fmt.Errorf("overage of org %s: %w", orgID, err)
	}
	var recorded []string
	if err := s.db.WithContext(ctx).Model(&Charge{}).Where("org_id = ?", orgID).Pluck("period", &recorded).Error; err != nil {
		return nil, fmt.Errorf("overage of org %s: %w", orgID, err)
	}
	done := map[string]bool{}
	for _, p := range recorded {
		done[p] = true
	}
	var fresh []Charge
	for _, period := range closedMonths(org.CreatedAt, s.clock.Now()) {
		if done[period] {
			continue
		}
		cs, tooLarge, err := s.charges(ctx, orgID, period, plan.Currency)
		if err != nil {
			return nil, err
		}
		// Billing it would fail the same way on every retry Stripe makes of
		// the invoice.created delivery; the operator has to look at it.
		for _, e := range tooLarge {
			s.log.ErrorContext(ctx, "overage not billed: too large for one invoice item", "org_id", orgID, "period", period, "error", e)
		}
		fresh = append(fresh, cs...)
	}
	now := s.clock.Now()
	for i := range fresh {
		fresh[i].CreatedAt, fresh[i].UpdatedAt = now, now
	}
	if len(fresh) > 0 {
		err := s.db.WithContext(ctx).Clauses(clause.OnConflict{DoNothing: true}).Create(&fresh).Error
		if err != nil {
			return nil, fmt.Errorf("record overage of org %s: %w", orgID, err)
		}
	}
	return s.pending(ctx, orgID)
}
