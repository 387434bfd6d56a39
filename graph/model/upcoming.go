package model

// UpcomingInvoice is the next invoice, labelled by who adds what. It is
// written by hand (gqlgen.yml binds it) so that OverageSoFarErr can stand
// for overageSoFarCents alone: a month's overage too large to bill nulls
// that field, not Stripe's preview beside it.
type UpcomingInvoice struct {
	// Stripe's preview of the subscription's next invoice, without Tollgate's overage.
	Stripe *UpcomingStripeInvoice `json:"stripe"`
	// The overage of the current month so far, if it closed now.
	OverageSoFar []OverageCharge `json:"overageSoFar"`
	// OverageSoFarCents is the sum of OverageSoFar, valid when
	// OverageSoFarErr is nil.
	OverageSoFarCents int64 `json:"-"`
	// OverageSoFarErr is why the sum cannot be given: a meter's overage
	// left out of OverageSoFar, or a sum past int64.
	OverageSoFarErr error `json:"-"`
}
