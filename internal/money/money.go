// Package money writes amounts as text. Tollgate holds money as int64 minor
// units of an ISO 4217 currency, as Stripe does, and every description,
// message and log line that shows an amount goes through Format, so that
// yen are never written as hundredths and dinars never as cents.
package money

import (
	"strconv"
	"strings"
)

// Stripe's minor-unit exponents, which decide what an amount means since
// every amount Tollgate holds is one Stripe takes or gives. From Stripe's
// "Supported currencies" page (https://docs.stripe.com/currencies, sections
// "Zero-decimal currencies" and "Three-decimal currencies"; checked against
// the archived https://stripe.com/docs/currencies of June 2022, which lists
// the same sixteen zero-decimal and five three-decimal codes). Every other
// currency has two, including ISK, HUF and TWD, which Stripe's API keeps
// two-decimal for backwards compatibility even where it only charges whole
// units. internal/billingpage/assets/billing.js carries the same lists; a
// test there keeps them in step.
var exponents = func() map[string]int {
	m := map[string]int{}
	for _, c := range []string{"bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd", "vuv", "xaf", "xof", "xpf"} {
		m[c] = 0
	}
	for _, c := range []string{"bhd", "jod", "kwd", "omr", "tnd"} {
		m[c] = 3
	}
	return m
}()

// Exponent is how many decimal digits a currency's minor unit has in
// Stripe's API: 0 for jpy, 3 for kwd, 2 for usd and any code Stripe does
// not single out. The code is case-insensitive.
func Exponent(currency string) int {
	if e, ok := exponents[strings.ToLower(currency)]; ok {
		return e
	}
	return 2
}

// ValidCurrency reports whether code is written as Stripe writes a currency
// and as Tollgate stores one: a three-letter ISO 4217 code in lower-case
// ASCII letters ("usd", not "USD" or "us"). It is the one rule for a plan's
// currencies and for the currency of an invoice read from Stripe.
func ValidCurrency(code string) bool {
	return len(code) == 3 && strings.Trim(code, "abcdefghijklmnopqrstuvwxyz") == ""
}

// MaxAmount is the largest amount, in minor units of currency, that Stripe
// charges at once: eight digits, 99999999 ($999,999.99, ¥99,999,999,
// 99,999.999 KWD), and twelve for IDR, whose minor unit is worth the least
// (the API reference of Charge.amount, "supports up to eight digits", and
// https://docs.stripe.com/currencies, "Minimum and maximum charge
// amounts"). Stripe's bound is in minor units, so it is worth very
// different sums in different currencies, as the minor units are. The code
// is case-insensitive.
func MaxAmount(currency string) int64 {
	if strings.EqualFold(currency, "idr") {
		return 999_999_999_999
	}
	return 99_999_999
}

// Format writes minor units of currency as a decimal amount and the
// upper-case code, with the currency's own number of decimals and no
// grouping: "0.50 USD", "3 JPY", "1000.000 KWD", "-0.01 EUR". It is exact
// for every int64, including math.MinInt64.
func Format(minor int64, currency string) string {
	neg := minor < 0
	// The magnitude as uint64: -minor overflows for math.MinInt64.
	mag := uint64(minor)
	if neg {
		mag = -mag
	}
	digits := strconv.FormatUint(mag, 10)
	if e := Exponent(currency); e > 0 {
		if len(digits) <= e {
			digits = strings.Repeat("0", e-len(digits)+1) + digits
		}
		digits = digits[:len(digits)-e] + "." + digits[len(digits)-e:]
	}
	if neg {
		digits = "-" + digits
	}
	return digits + " " + strings.ToUpper(currency)
}
