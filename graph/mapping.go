package graph

import (
	"strings"
	"time"

	"github.com/tollgate-billing/tollgate/graph/model"
	"github.com/tollgate-billing/tollgate/internal/apperr"
	"github.com/tollgate-billing/tollgate/internal/auth"
	"github.com/tollgate-billing/tollgate/internal/billing"
	"github.com/tollgate-billing/tollgate/internal/invoices"
	"github.com/tollgate-billing/tollgate/internal/orgs"
	"github.com/tollgate-billing/tollgate/internal/overage"
	"github.com/tollgate-billing/tollgate/internal/plans"
	"github.com/tollgate-billing/tollgate/internal/stripeclient"
	"github.com/tollgate-billing/tollgate/internal/usage"
)

// This file maps domain values to GraphQL models, in one place, so resolvers
// stay a few lines long.

func ptr[T any](v T) *T { return &v }

// nonEmpty is nil for "", so optional strings read as null, not "".
func nonEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func scopeToModel(s auth.Scope) model.Scope {
	return model.Scope(strings.ToUpper(strings.ReplaceAll(string(s), ":", "_")))
}

func scopeFromModel(s model.Scope) auth.Scope {
	if a, ok := authScopes[s]; ok {
		return a
	}
	return auth.Scope(strings.ToLower(strings.Replace(string(s), "_", ":", 1)))
}

// authScopes is scopeFromModel of every scope, worked out once: @hasScope
// asks on every request.
var authScopes = func() map[model.Scope]auth.Scope {
	m := make(map[model.Scope]auth.Scope, len(model.AllScope))
	for _, s := range model.AllScope {
		m[s] = auth.Scope(strings.ToLower(strings.Replace(string(s), "_", ":", 1)))
	}
	return m
}()

func scopesFromModel(in []model.Scope) []auth.Scope {
	out := make([]auth.Scope, 0, len(in))
	for _, s := range in {
		out = append(out, scopeFromModel(s))
	}
	return out
}

func resetToModel(r plans.Reset) model.MeterReset {
	if r == plans.Never {
		return model.MeterResetNever
	}
	return model.MeterResetMonthly
}

func planToModel(p plans.Plan) *model.Plan {
	m := &model.Plan{
		ID:                 p.ID,
		Name:               p.Name,
		PriceCents:         p.PriceCents,
		Currency:           p.Currency,
		Interval:           model.BillingInterval(strings.ToUpper(p.Interval)),
		StripePriceID:      nonEmpty(p.StripePriceID),
		ContactSales:       p.ContactSales,
		RateLimitPerSecond: p.RateLimitPerSecond,
		Webhooks:           p.Webhooks,
		Meters:             make([]model.PlanMeter, 0, len(p.Limits)),
		Prices:             make([]model.PlanPrice, 0, len(p.Prices)),
	}
	for _, pr := range p.Prices {
		m.Prices = append(m.Prices, *priceToModel(pr))
	}
	for _, l := range p.Limits {
		pm := model.PlanMeter{Meter: l.Meter, Unlimited: l.Unlimited, Hard: l.Hard, Reset: resetToModel(l.Reset)}
		if !l.Unlimited {
			pm.Limit = ptr(l.Limit)
		}
		m.Meters = append(m.Meters, pm)
	}
	return m
}

func priceToModel(pr plans.Price) *model.PlanPrice {
	return &model.PlanPrice{ID: pr.ID, Interval: model.BillingInterval(strings.ToUpper(pr.Interval)),
		AmountCents: pr.AmountCents, Currency: pr.Currency}
}

func orgToModel(o orgs.Organization) *model.Organization {
	return &model.Organization{
		ID: o.ID, ExternalID: o.ExternalID, Name: o.Name,
		BillingEmail: nonEmpty(o.BillingEmail), CreatedAt: o.CreatedAt,
	}
}

// statusToModel maps Stripe's lower-case status; "" (no subscription) is null.
func statusToModel(s string) *model.SubscriptionStatus {
	if s == "" {
		return nil
	}
	st := model.SubscriptionStatus(strings.ToUpper(s))
	if !st.IsValid() {
		return nil
	}
	return &st
}

func billingToModel(st billing.State) *model.BillingSubscription {
	m := &model.BillingSubscription{
		Plan:               planToModel(st.Plan),
		HasBillingHistory:  st.HasBillingHistory(),
		RateLimitPerMinute: st.Plan.RateLimitPerSecond * 60,
	}
	if pr, ok := st.Price(); ok {
		m.Price = priceToModel(pr)
	}
	if s := st.Subscription; s != nil {
		m.ID = nonEmpty(s.StripeSubscriptionID)
		m.Status = statusToModel(s.Status)
		m.CurrentPeriodStart = s.CurrentPeriodStart
		m.CurrentPeriodEnd = s.CurrentPeriodEnd
		m.CancelAtPeriodEnd = ptr(s.CancelAtPeriodEnd)
		m.CanceledAt = s.CanceledAt
		m.PlanMismatch = s.PlanMismatch
	}
	return m
}

func apiKeyToModel(k auth.APIKey) *model.APIKey {
	m := &model.APIKey{
		ID: k.ID, Name: k.Name, ContactEmail: nonEmpty(k.ContactEmail), Prefix: k.Prefix,
		CreatedAt: k.CreatedAt, LastUsedAt: k.LastUsedAt, RevokedAt: k.RevokedAt,
		SigningRequired: k.SigningPublicKey != nil,
		Scopes:          []model.Scope{},
	}
	for _, s := range auth.ParseScopes(k.Scopes) {
		m.Scopes = append(m.Scopes, scopeToModel(s))
	}
	return m
}

// userErrors splits err into validation failures, shown on the payload, and
// anything else, returned as a GraphQL error.
func userErrors(err error) ([]model.UserError, error) {
	if err == nil {
		return []model.UserError{}, nil
	}
	fe, ok := apperr.AsFieldErrors(err)
	if !ok {
		return nil, err
	}
	out := make([]model.UserError, 0, len(fe))
	for _, f := range fe {
		// A message never carries a large part of the input back.
		out = append(out, model.UserError{Field: nonEmpty(f.Field), Message: capAt(f.Message, maxServiceMessage), Code: f.Code})
	}
	return out, nil
}

// maxRefusedListed bounds the rejected entries of a recordUsage call
// refused as a whole: a call of tens of thousands of events must not be
// answered with one entry each.
const maxRefusedListed = 100

// refusedBatch answers a recordUsage call refused as a whole (no events,
// too many): every event counts in rejectedCount, and the first
// maxRefusedListed are listed in rejected with the first userError's code
// and message, so accepted + duplicates + rejectedCount is the number of
// events sent whether or not the client selects userErrors.
func refusedBatch(n int, ue []model.UserError) *model.RecordUsagePayload {
	out := &model.RecordUsagePayload{Rejected: []model.RejectedUsageEvent{}, Usage: []model.MeterUsage{}, UserErrors: ue}
	if len(ue) == 0 {
		return out
	}
	out.RejectedCount = n
	for i := range min(n, maxRefusedListed) {
		out.Rejected = append(out.Rejected, model.RejectedUsageEvent{Index: i, Code: ue[0].Code, Message: ue[0].Message})
	}
	return out
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func subscriptionPayload(st billing.State, err error) (*model.SubscriptionPayload, error) {
	ue, err := userErrors(err)
	if err != nil || len(ue) > 0 {
		return &model.SubscriptionPayload{UserErrors: ue}, err
	}
	return &model.SubscriptionPayload{Subscription: billingToModel(st), UserErrors: ue}, nil
}

func meterUsageToModel(m usage.MeterUsage) model.MeterUsage {
	out := model.MeterUsage{
		Meter: m.Meter, Used: m.Used, Limit: m.LimitValue(), Remaining: m.Remaining(),
		Unlimited: m.Limit.Unlimited, Overage: m.Overage(), Hard: m.Limit.Hard, Reset: resetToModel(m.Limit.Reset),
	}
	if !m.ResetAt.IsZero() {
		out.ResetAt = &m.ResetAt
	}
	return out
}

func meterUsagesToModel(in []usage.MeterUsage) []model.MeterUsage {
	out := make([]model.MeterUsage, len(in))
	for i, m := range in {
		out[i] = meterUsageToModel(m)
	}
	return out
}

func recordResultToModel(r usage.RecordResult) *model.RecordUsagePayload {
	out := &model.RecordUsagePayload{
		Accepted: r.Accepted, Duplicates: r.Duplicates,
		Rejected: make([]model.RejectedUsageEvent, len(r.Rejected)), RejectedCount: len(r.Rejected),
		Usage:      meterUsagesToModel(r.Usage),
		UserErrors: []model.UserError{},
	}
	for i, rj := range r.Rejected {
		out.Rejected[i] = model.RejectedUsageEvent{Index: rj.Index, Code: rj.Code, Message: rj.Message}
	}
	return out
}

func invoiceToModel(in invoices.Invoice) model.Invoice {
	return model.Invoice{
		ID: in.ID, Number: in.Number, Status: model.InvoiceStatus(strings.ToUpper(in.Status)),
		AmountDue: in.AmountDue, AmountPaid: in.AmountPaid, Total: in.Total, Currency: in.Currency,
		PeriodStart: in.PeriodStart, PeriodEnd: in.PeriodEnd, PaidAt: in.PaidAt,
		HostedInvoiceURL: in.HostedInvoiceURL, PDFURL: in.PDFURL, CreatedAt: in.CreatedAt,
	}
}

func invoicePageToModel(p invoices.Page) *model.InvoiceConnection {
	c := &model.InvoiceConnection{
		Edges:    make([]model.InvoiceEdge, len(p.Invoices)),
		Nodes:    make([]model.Invoice, len(p.Invoices)),
		PageInfo: &model.PageInfo{HasNextPage: p.HasNextPage, EndCursor: nonEmpty(p.EndCursor)},
	}
	for i, in := range p.Invoices {
		c.Nodes[i] = invoiceToModel(in)
		c.Edges[i] = model.InvoiceEdge{Cursor: p.Cursors[i], Node: &c.Nodes[i]}
	}
	return c
}

func consumptionToModel(c usage.Consumption) *model.ConsumeUsagePayload {
	mu := meterUsageToModel(c.Usage)
	reason := model.UsageReason(c.Reason)
	return &model.ConsumeUsagePayload{
		Allowed: c.Allowed, Reason: &reason, RetryAfterMs: retryAfterMs(c.RetryAfter),
		Usage: &mu, UserErrors: []model.UserError{},
	}
}

// retryAfterMs is a wait in whole milliseconds, rounded up; nil for none.
func retryAfterMs(d time.Duration) *int {
	if d <= 0 {
		return nil
	}
	ms := int((d + time.Millisecond - 1) / time.Millisecond)
	return &ms
}

func overageChargesToModel(cs []overage.Charge) []model.OverageCharge {
	out := make([]model.OverageCharge, len(cs))
	for i, c := range cs {
		out[i] = model.OverageCharge{
			Meter: c.Meter, Period: c.Period, Quantity: c.Quantity, Allowance: c.Allowance,
			UnitAmountCents: c.UnitAmount, Per: c.Per, AmountCents: c.Amount, Currency: c.Currency,
			Description: c.Description(),
		}
	}
	return out
}

func upcomingToModel(up *overage.Upcoming) *model.UpcomingInvoice {
	inv := up.Stripe
	st := &model.UpcomingStripeInvoice{
		AmountDue: inv.AmountDue, Subtotal: inv.Subtotal, Total: inv.Total, Currency: string(inv.Currency),
		PeriodStart: stripeclient.Time(inv.PeriodStart), PeriodEnd: stripeclient.Time(inv.PeriodEnd),
		NextPaymentAttempt: stripeclient.Time(inv.NextPaymentAttempt), Lines: []model.InvoiceLine{},
	}
	if inv.Lines != nil {
		for _, l := range inv.Lines.Data {
			st.Lines = append(st.Lines, model.InvoiceLine{
				Description: l.Description, AmountCents: l.Amount, Quantity: l.Quantity, Kind: string(l.Type),
			})
		}
	}
	return &model.UpcomingInvoice{Stripe: st, OverageSoFar: overageChargesToModel(up.OverageSoFar),
		OverageSoFarCents: up.OverageSoFarCents, OverageSoFarErr: up.OverageSoFarErr}
}
