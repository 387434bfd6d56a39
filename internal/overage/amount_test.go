package overage

import (
	"math"
	"strings"
	"testing"

	"github.com/tollgate-billing/tollgate/internal/apperr"
	"github.com/tollgate-billing/tollgate/internal/plans"
	"github.com/tollgate-billing/tollgate/internal/usage"
)

// A host that records enormous usage on a priced soft limit gets a clear
// AMOUNT_OUT_OF_RANGE for the overage, never an error that reads INTERNAL,
// and a sum of charges never wraps around.
func TestOverageTooLargeToBillIsAClientError(t *testing.T) {
	price := &plans.OveragePrice{UnitAmountCents: 1_000_000, Per: 1, Currency: "usd"}
	huge := usage.MeterUsage{Meter: "api_calls", Used: math.MaxInt64,
		Limit: plans.Limit{Limit: 1000, Overage: price}}
	_, err := chargeOf("org", "2026-11", "usd", huge)
	if ae, ok := apperr.As(err); !ok || ae.Code != CodeAmountOutOfRange {
		t.Fatalf("chargeOf of %d units at $10,000 each: %v, want %s", huge.Used, err, CodeAmountOutOfRange)
	}

	fits := usage.MeterUsage{Meter: "api_calls", Used: 1000 + 3, Limit: plans.Limit{Limit: 1000, Overage: price}}
	c, err := chargeOf("org", "2026-11", "usd", fits)
	if err != nil || c.Status != Pending || c.Amount != 3*1_000_000 {
		t.Fatalf("3 units over at 1,000,000 cents: %+v %v", c, err)
	}

	big := Charge{Amount: math.MaxInt64/2 + 1}
	if _, err := sumCents([]Charge{big, big}); err == nil {
		t.Fatal("two charges of more than half of int64 summed without error")
	} else if ae, ok := apperr.As(err); !ok || ae.Code != CodeAmountOutOfRange {
		t.Fatalf("sum overflow: %v", err)
	}
	if total, err := sumCents([]Charge{c, c}); err != nil || total != 2*c.Amount {
		t.Fatalf("sum of two small charges = %d, %v", total, err)
	}
}

// The invoice item's text writes the unit price in the currency's own
// minor unit: yen are whole, dinars have three decimals.
func TestDescriptionWritesTheUnitPriceInTheCurrencysMinorUnit(t *testing.T) {
	for _, tc := range []struct {
		currency string
		unit     int64
		per      int64
		want     string
	}{
		{"usd", 50, 1000, "at 0.50 USD per 1000"},
		{"jpy", 3, 10, "at 3 JPY per 10"},
		{"kwd", 1_000_000, 1, "at 1000.000 KWD per 1"},
	} {
		c := Charge{Meter: "api_calls", Period: "2026-10", Quantity: 25, Allowance: 100, UnitAmount: tc.unit, Per: tc.per, Currency: tc.currency}
		want := "Overage: api_calls, October 2026: 25 over the allowance of 100, " + tc.want
		if got := c.Description(); got != want {
			t.Errorf("%s: description %q, want %q", tc.currency, got, want)
		}
	}
}

// AMOUNT_OUT_OF_RANGE names the unit price in the plan's currency, never
// in "cents" of a currency that has none.
func TestAmountOutOfRangeNamesThePriceInItsCurrency(t *testing.T) {
	price := &plans.OveragePrice{UnitAmountCents: 1_000_000, Per: 1, Currency: "jpy"}
	huge := usage.MeterUsage{Meter: "api_calls", Used: math.MaxInt64, Limit: plans.Limit{Limit: 1000, Overage: price}}
	_, err := chargeOf("org", "2026-11", "jpy", huge)
	ae, ok := apperr.As(err)
	if !ok || ae.Code != CodeAmountOutOfRange {
		t.Fatalf("chargeOf: %v, want %s", err, CodeAmountOutOfRange)
	}
	if !strings.Contains(ae.Message, "at 1000000 JPY") || strings.Contains(ae.Message, "cents") {
		t.Fatalf("message %q: want the unit price as 1000000 JPY and no cents", ae.Message)
	}
}
