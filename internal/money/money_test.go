package money

import (
	"math"
	"testing"
)

func TestFormatUsesTheCurrencysMinorUnit(t *testing.T) {
	for _, tc := range []struct {
		name     string
		minor    int64
		currency string
		want     string
	}{
		{"cents of a two-decimal currency", 50, "usd", "0.50 USD"},
		{"a whole two-decimal amount", 19900, "eur", "199.00 EUR"},
		{"one cent", 1, "usd", "0.01 USD"},
		{"zero", 0, "usd", "0.00 USD"},
		{"yen are whole units", 3, "jpy", "3 JPY"},
		{"zero yen", 0, "jpy", "0 JPY"},
		{"won, upper-case code", 1500, "KRW", "1500 KRW"},
		{"dinars have three decimals", 1_000_000, "kwd", "1000.000 KWD"},
		{"one fils", 1, "kwd", "0.001 KWD"},
		{"Stripe keeps ISK two-decimal", 500, "isk", "5.00 ISK"},
		{"an unknown code is two-decimal", 1234, "xyz", "12.34 XYZ"},
		{"a negative amount", -1, "usd", "-0.01 USD"},
		{"a negative yen amount", -42, "jpy", "-42 JPY"},
		{"a negative dinar amount", -1_234, "bhd", "-1.234 BHD"},
		{"the largest int64 in cents", math.MaxInt64, "usd", "92233720368547758.07 USD"},
		{"the smallest int64 in cents", math.MinInt64, "usd", "-92233720368547758.08 USD"},
		{"the largest int64 in yen", math.MaxInt64, "jpy", "9223372036854775807 JPY"},
		{"the smallest int64 in dinars", math.MinInt64, "kwd", "-9223372036854775.808 KWD"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Format(tc.minor, tc.currency); got != tc.want {
				t.Errorf("Format(%d, %q) = %q, want %q", tc.minor, tc.currency, got, tc.want)
			}
		})
	}
}

func TestExponentFollowsStripe(t *testing.T) {
	for currency, want := range map[string]int{"usd": 2, "eur": 2, "jpy": 0, "JPY": 0, "vnd": 0, "kwd": 3, "tnd": 3, "huf": 2, "twd": 2} {
		if got := Exponent(currency); got != want {
			t.Errorf("Exponent(%q) = %d, want %d", currency, got, want)
		}
	}
}

func TestMaxAmountIsStripesEightDigitsAndTwelveForRupiah(t *testing.T) {
	for currency, want := range map[string]int64{"usd": 99_999_999, "jpy": 99_999_999, "kwd": 99_999_999, "idr": 999_999_999_999, "IDR": 999_999_999_999} {
		if got := MaxAmount(currency); got != want {
			t.Errorf("MaxAmount(%q) = %d, want %d", currency, got, want)
		}
	}
}

func TestCurrenciesAreThreeLowerCaseLetters(t *testing.T) {
	for code, ok := range map[string]bool{"usd": true, "eur": true, "jpy": true, "USD": false, "Usd": false, "ééé": false, "us": false, "usdd": false, "u$d": false, "us ": false, "": false} {
		if got := ValidCurrency(code); got != ok {
			t.Errorf("ValidCurrency(%q) = %v, want %v", code, got, ok)
		}
	}
}
