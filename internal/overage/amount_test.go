package overage

import (
	"math"
	"testing"

	"github.com/tollgate-billing/tollgate/internal/apperr"
	"github.com/tollgate-billing/tollgate/internal/plans"
	"github.com/tollgate-billing/tollgate/internal/usage"
)

// A host that records enormous usage on a priced soft limit gets a clear
// AMOUNT_OUT_OF_RANGE for the overage, never an error that reads INTERNAL,
// and a sum of charges never wraps around.
func TestOverageTooLargeToBillIsAClientError(t *testing.T) {
	price := &plans.OveragePrice{UnitAmountCents: 1_000_000, Per: 1}
	huge := usage.MeterUsage{Meter: "api_calls", Used: math.MaxInt64,
		Limit: plans.Limit{Limit: 1000, Overage: price}}
	_, _, err := chargeOf("org", "2026-11", "usd", huge)
	if ae, ok := apperr.As(err); !ok || ae.Code != CodeAmountOutOfRange {
		t.Fatalf("chargeOf of %d units at $10,000 each: %v, want %s", huge.Used, err, CodeAmountOutOfRange)
	}

	fits := usage.MeterUsage{Meter: "api_calls", Used: 1000 + 3, Limit: plans.Limit{Limit: 1000, Overage: price}}
	c, ok, err := chargeOf("org", "2026-11", "usd", fits)
	if err != nil || !ok || c.Amount != 3*1_000_000 {
		t.Fatalf("3 units over at 1,000,000 cents: %+v %v %v", c, ok, err)
	}

	big := Charge{Amount: maxChargeCents}
	if _, err := sumCents([]Charge{big, big}); err == nil {
		t.Fatal("two charges of 2^62 cents summed without error")
	} else if ae, ok := apperr.As(err); !ok || ae.Code != CodeAmountOutOfRange {
		t.Fatalf("sum overflow: %v", err)
	}
	if total, err := sumCents([]Charge{c, c}); err != nil || total != 2*c.Amount {
		t.Fatalf("sum of two small charges = %d, %v", total, err)
	}
}
