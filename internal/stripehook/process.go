package stripehook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/stripe/stripe-go/v76"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/tollgate-billing/tollgate/internal/billing"
	"github.com/tollgate-billing/tollgate/internal/stripein"
)

// Outcomes of an event, as logged, stored in webhook_events.outcome and
// returned in the response body (visible in `stripe listen` and the
// dashboard's delivery log).
const (
	outcomeDuplicate   = "duplicate"
	outcomeIgnored     = "ignored"
	outcomeUndecodable = "undecodable"
	outcomeUnknownOrg  = string(billing.UnknownOrg)
	// outcomeInvalid: well signed, but carrying a value Tollgate cannot
	// store or act on (stripein.Unusable); nothing of it is applied.
	outcomeInvalid = string(billing.Invalid)
)

type result struct {
	outcome string
	orgID   string
	changes []string
	// unusable says which value made an invalid outcome; the summary log
	// line and the answer to Stripe name its field and reason.
	unusable *stripein.Unusable
}

func (r *result) add(res billing.Result) {
	r.outcome, r.changes = string(res.Outcome), append(r.changes, res.Changes...)
	if res.OrgID != "" {
		r.orgID = res.OrgID
	}
}

// process applies ev at most once. The event id is inserted first, in the
// transaction that applies the event: a redelivery, even one racing this
// one, finds it (on Postgres the second insert waits for the first
// transaction to commit) and changes nothing; a failure rolls back the
// record with the effects, so Stripe's retry applies the event again.
//
// Whatever the event needs from Stripe is fetched with no transaction
// open; when billing finds it needs a fresh copy of a subscription
// (billing.FetchFirst), the transaction is rolled back, the copy fetched,
// and the event applied once more with it.
//
// An event whose own id, type or time Tollgate cannot use is acknowledged
// as invalid without being recorded; one whose object it cannot use is
// recorded as invalid, with nothing else written.
func (h *handler) process(ctx context.Context, ev stripe.Event) (result, error) {
	if err := stripein.Event(ev.ID, string(ev.Type), ev.Created); err != nil {
		// Not recorded: an id or time Tollgate cannot store. The summary
		// line says which value.
		var why *stripein.Unusable
		errors.As(err, &why)
		return result{outcome: outcomeInvalid, unusable: why}, nil
	}
	at := time.Unix(ev.Created, 0).UTC()
	if !isObject(ev.Data.Raw) {
		return h.recordInvalid(ctx, ev, at, &stripein.Unusable{Object: "event " + ev.ID, Field: "data.object", Reason: "is not a JSON object"})
	}
	var unusable *stripein.Unusable
	o, err := decodeObject(ev)
	if errors.As(err, &unusable) {
		return h.recordInvalid(ctx, ev, at, unusable)
	}
	var f fetched
	if o.checkout != nil {
		// Skip the fetch for a redelivery already applied.
		var seen int64
		if err := h.DB.WithContext(ctx).Model(&WebhookEvent{}).Where("id = ?", ev.ID).Count(&seen).Error; err != nil {
			return result{}, fmt.Errorf("look up event %s: %w", ev.ID, err)
		}
		if seen > 0 {
			return result{outcome: outcomeDuplicate}, nil
		}
		if f, err = h.prefetch(ctx, o); err != nil {
			if errors.As(err, &unusable) {
				return h.recordInvalid(ctx, ev, at, unusable)
			}
			return result{}, err
		}
	}
	res, err := h.applyOnce(ctx, ev, o, at, f)
	var first *billing.FetchFirst
	if errors.As(err, &first) {
		if f.fresh, err = h.Billing.FetchSubscription(ctx, first.SubscriptionID); err == nil {
			res, err = h.applyOnce(ctx, ev, o, at, f)
		}
	}
	if errors.As(err, &unusable) {
		return h.recordInvalid(ctx, ev, at, unusable)
	}
	if err == nil && ev.Type == stripe.EventTypeInvoiceCreated && o.inv != nil {
		// Once the event's transaction has committed, since billing's
		// invoice.created rules call Stripe. They run on a redelivery too,
		// so a failure answered with a 500 is retried by Stripe; the rules
		// are idempotent.
		err = h.Billing.InvoiceCreated(ctx, o.inv)
	}
	if err == nil && ev.Type == stripe.EventTypeCustomerSubscriptionDeleted && o.sub != nil {
		// Likewise: the ended subscription's final bill calls Stripe, and
		// runs again on a redelivery, billing nothing twice.
		err = h.Billing.SubscriptionEnded(ctx, o.sub)
	}
	return res, err
}

// applyOnce records the event and applies it in one transaction.
func (h *handler) applyOnce(ctx context.Context, ev stripe.Event, o object, at time.Time, f fetched) (result, error) {
	var res result
	err := h.DB.Tx(ctx, func(tx *gorm.DB) error {
		res = result{}
		rec := WebhookEvent{ID: ev.ID, Type: string(ev.Type), CreatedAt: at, ProcessedAt: h.Clock.Now()}
		ins := tx.Clauses(clause.OnConflict{Columns: []clause.Column{{Name: "id"}}, DoNothing: true}).Create(&rec)
		if ins.Error != nil {
			return fmt.Errorf("record event %s: %w", ev.ID, ins.Error)
		}
		if ins.RowsAffected == 0 {
			res.outcome = outcomeDuplicate
			return nil
		}
		if err := h.apply(ctx, tx, ev, o, at, f, &res); err != nil {
			return err
		}
		if err := tx.Model(&WebhookEvent{}).Where("id = ?", ev.ID).Update("outcome", res.outcome).Error; err != nil {
			return fmt.Errorf("record outcome of event %s: %w", ev.ID, err)
		}
		return nil
	})
	return res, err
}

// recordInvalid acknowledges an event whose object Tollgate cannot use: the
// transaction that tried it was rolled back, so only the event's record is
// written, with outcome invalid, and a redelivery is a duplicate. Stripe
// would redeliver it unchanged for three days; the log says what is wrong.
func (h *handler) recordInvalid(ctx context.Context, ev stripe.Event, at time.Time, why *stripein.Unusable) (result, error) {
	rec := WebhookEvent{ID: ev.ID, Type: string(ev.Type), CreatedAt: at, ProcessedAt: h.Clock.Now(), Outcome: outcomeInvalid}
	ins := h.DB.WithContext(ctx).Clauses(clause.OnConflict{Columns: []clause.Column{{Name: "id"}}, DoNothing: true}).Create(&rec)
	if ins.Error != nil {
		return result{}, fmt.Errorf("record invalid event %s: %w", ev.ID, ins.Error)
	}
	if ins.RowsAffected == 0 {
		return result{outcome: outcomeDuplicate}, nil
	}
	return result{outcome: outcomeInvalid, unusable: why}, nil
}

// isObject reports whether raw is a JSON object, as every event's
// data.object Tollgate acts on is.
func isObject(raw []byte) bool {
	raw = bytes.TrimLeft(raw, " \t\r\n")
	return len(raw) > 0 && raw[0] == '{'
}

func unmarshalObject(ev stripe.Event, v any) error { return json.Unmarshal(ev.Data.Raw, v) }
