// Package stripeintest lists values Tollgate cannot use in the Stripe
// objects it reads, as edits of an object's JSON, so that every path a
// Stripe object enters by (webhook events, `stripe sync`) is tested
// against the same list.
package stripeintest

import "strings"

// Case is one unusable value: Edit puts it into a usable object, decoded
// from Stripe's JSON into a map.
type Case struct {
	Name string
	Edit func(obj map[string]any)
}

func set(k string, v any) func(map[string]any) { return func(o map[string]any) { o[k] = v } }

func meta(k, v string) func(map[string]any) {
	return func(o map[string]any) {
		m, _ := o["metadata"].(map[string]any)
		if m == nil {
			m = map[string]any{}
			o["metadata"] = m
		}
		m[k] = v
	}
}

// firstPrice sets a field of the price of a subscription's first item.
func firstPrice(k string, v any) func(map[string]any) {
	return func(o map[string]any) {
		o["items"].(map[string]any)["data"].([]any)[0].(map[string]any)["price"].(map[string]any)[k] = v
	}
}

// Subscriptions are values a subscription may not carry. The object must
// have an item with a price, and a current period starting after
// 2000-01-01.
func Subscriptions() []Case {
	return []Case{
		{"a period ending in the year 3170843", set("current_period_end", int64(99999999999999))},
		{"a period ending before it starts", set("current_period_end", int64(946684800))},
		{"a cancellation before 2000", set("canceled_at", int64(86400))},
		{"a subscription id with a NUL byte", set("id", "sub_o1\u0000")},
		{"a subscription id of 300 bytes", set("id", "sub_"+strings.Repeat("x", 300))},
		{"a status Stripe does not have", set("status", "weird_status")},
		{"no status at all", set("status", "")},
		{"a customer id with a right-to-left override", set("customer", "cus_live\u202e")},
		{"a price id with a NUL byte", firstPrice("id", "price_\u0000")},
		{"a metadata.org_id of 600 characters", meta("org_id", strings.Repeat("o", 600))},
	}
}

// Invoices are values an invoice may not carry.
func Invoices() []Case {
	return []Case{
		{"an invoice id with a NUL byte", set("id", "in_\u0000")},
		{"a payment in the year 248073", set("status_transitions", map[string]any{"paid_at": int64(99999999999999)})},
		{"a currency that is not ASCII", set("currency", "ééé")},
		{"a currency of 100,000 characters", set("currency", strings.Repeat("u", 100000))},
		{"an invoice number of 100,000 characters", set("number", strings.Repeat("9", 100000))},
		{"an invoice number with a line break", set("number", "ACME-1\nPAID")},
		{"a total past any Stripe amount", set("total", int64(9223372036854775807))},
		{"a negative amount due", set("amount_due", -500)},
		{"an invoice status that is not a word", set("status", "paid<script>")},
		{"an invoice customer with a NUL byte", set("customer", "cus_\u0000")},
		{"a period start in 1970", set("period_start", int64(1))},
		{"a metadata.org_id with a NUL byte", meta("org_id", "org\u0000")},
	}
}
