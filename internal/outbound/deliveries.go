package outbound

import (
	"context"
	"fmt"
	"time"

	"gorm.io/gorm"

	"github.com/tollgate-billing/tollgate/internal/apperr"
	"github.com/tollgate-billing/tollgate/internal/store"
	"github.com/tollgate-billing/tollgate/internal/weburl"
)

// MaxDeliveries caps one page of webhookDeliveries; DefaultDeliveries is a
// page when the caller names none.
const (
	MaxDeliveries     = 100
	DefaultDeliveries = 50
)

// MaxAttemptsShown is how many of a delivery's attempts a view holds: the
// newest, oldest first. Automatic retries make at most maxAttempts; only
// retries asked for could make more.
const MaxAttemptsShown = maxAttempts

// Manual retries of one delivery: at most MaxRetries attempts in any
// RetryPeriod may follow from retryWebhookDelivery, so a key cannot turn a
// delivery into a stream of signed POSTs to a host of its choosing.
const (
	MaxRetries  = 5
	RetryPeriod = time.Hour
	// CodeRetryLimited refuses a retry past MaxRetries in RetryPeriod.
	CodeRetryLimited = "RETRY_LIMITED"
)

// Deliveries lists up to limit of an endpoint's deliveries, newest
// first, with their attempts; after, when given, is the id of the last
// delivery of the previous page. statuses, when given, keeps only the
// deliveries in one of them (DeliveryPending, DeliverySucceeded,
// DeliveryFailed). limit above MaxDeliveries is capped; below 1, or an
// after that names none of the endpoint's deliveries, is BAD_USER_INPUT.
func (s *Service) Deliveries(ctx context.Context, orgID, endpointID string, limit int, after string, statuses ...string) ([]Delivery, error) {
	if limit < 1 {
		return nil, apperr.ArgError("first", "first must be at least 1")
	}
	limit = min(limit, MaxDeliveries)
	if !store.PlausibleID(endpointID) {
		return nil, apperr.NoneOf("endpointId", "webhook endpoint") // no row could have it
	}
	db := s.db.WithContext(ctx)
	var ep endpointRow
	if err := db.Where("org_id = ? AND id = ?", orgID, endpointID).Take(&ep).Error; err != nil {
		if store.IsNotFound(err) {
			return nil, apperr.NoneOf("endpointId", "webhook endpoint")
		}
		return nil, fmt.Errorf("load webhook endpoint %s: %w", endpointID, err)
	}
	q := db.Where("endpoint_id = ?", ep.ID)
	if len(statuses) > 0 {
		q = q.Where("status IN ?", statuses)
	}
	if after != "" {
		badAfter := apperr.New(apperr.BadInput, "after must be the id of one of this endpoint's deliveries (the last of the previous page)")
		if !store.PlausibleID(after) {
			return nil, badAfter
		}
		var last deliveryRow
		err := db.Select("id", "created_at").Where("endpoint_id = ? AND id = ?", ep.ID, after).Take(&last).Error
		if store.IsNotFound(err) {
			return nil, badAfter
		}
		if err != nil {
			return nil, fmt.Errorf("load delivery %s: %w", after, err)
		}
		// Row-value comparison follows the (created_at DESC, id DESC) order.
		q = q.Where("(created_at, id) < (?, ?)", last.CreatedAt, last.ID)
	}
	var rows []deliveryRow
	if err := q.Order("created_at DESC, id DESC").Limit(limit).Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("list deliveries of endpoint %s: %w", endpointID, err)
	}
	return s.views(ctx, rows)
}

// views joins deliveries with their events and attempts.
func (s *Service) views(ctx context.Context, rows []deliveryRow) ([]Delivery, error) {
	if len(rows) == 0 {
		return []Delivery{}, nil
	}
	ids := make([]string, len(rows))
	eventIDs := make([]string, len(rows))
	for i, r := range rows {
		ids[i], eventIDs[i] = r.ID, r.EventID
	}
	db := s.db.WithContext(ctx)
	var events []eventRow
	if err := db.Select("id", "type", "sequence").Where("id IN ?", eventIDs).Find(&events).Error; err != nil {
		return nil, fmt.Errorf("load events of deliveries: %w", err)
	}
	// The newest MaxAttemptsShown of each: a delivery's attempts column is
	// the number of its newest attempt.
	var attempts []attemptRow
	err := db.Table("webhook_delivery_attempts AS a").Select("a.*").
		Joins("JOIN webhook_deliveries d ON d.id = a.delivery_id").
		Where("a.delivery_id IN ? AND a.number > d.attempts - ?", ids, MaxAttemptsShown).
		Order("a.number").Find(&attempts).Error
	if err != nil {
		return nil, fmt.Errorf("load delivery attempts: %w", err)
	}
	byEvent := make(map[string]eventRow, len(events))
	for _, e := range events {
		byEvent[e.ID] = e
	}
	byDelivery := make(map[string][]Attempt, len(rows))
	for _, a := range attempts {
		v := Attempt{At: a.AttemptedAt, Latency: time.Duration(a.LatencyMS) * time.Millisecond, Error: weburl.RedactText(a.Error)}
		if a.StatusCode != nil {
			v.StatusCode = *a.StatusCode
		}
		byDelivery[a.DeliveryID] = append(byDelivery[a.DeliveryID], v)
	}
	out := make([]Delivery, len(rows))
	for i, r := range rows {
		ev := byEvent[r.EventID]
		out[i] = Delivery{
			ID: r.ID, EndpointID: r.EndpointID, EventID: r.EventID, EventType: ev.Type, Sequence: ev.Sequence,
			Status: r.Status, Attempts: byDelivery[r.ID], CreatedAt: r.CreatedAt, DeliveredAt: r.DeliveredAt,
		}
		if out[i].Attempts == nil {
			out[i].Attempts = []Attempt{}
		}
	}
	return out, nil
}

// RetryDelivery sends a delivery again now, whatever became of it: a new
// River job in the same transaction that marks it pending. The receiver
// sees the same webhook-id, so it can tell a replay from a new event. A
// delivery still pending is on its way already (queued, being sent, or
// waiting for its next automatic attempt): retrying it adds nothing and
// answers it as it is, so many retries at once send it once. A delivery
// attempted MaxRetries times in the last RetryPeriod is refused with
// RETRY_LIMITED.
func (s *Service) RetryDelivery(ctx context.Context, orgID, deliveryID string) (Delivery, error) {
	if !store.PlausibleID(deliveryID) {
		return Delivery{}, notFound("id", "webhook delivery")
	}
	var d deliveryRow
	err := s.db.Tx(ctx, func(tx *gorm.DB) error {
		err := s.db.ForUpdate(tx).Where("org_id = ? AND id = ?", orgID, deliveryID).Take(&d).Error
		if store.IsNotFound(err) {
			return notFound("id", "webhook delivery")
		}
		if err != nil {
			return fmt.Errorf("load delivery %s: %w", deliveryID, err)
		}
		var ep endpointRow
		if err := tx.Where("id = ?", d.EndpointID).Take(&ep).Error; err != nil {
			return fmt.Errorf("load webhook endpoint %s: %w", d.EndpointID, err)
		}
		if ep.Status != StatusEnabled {
			var fe apperr.FieldErrors
			fe.Add("id", CodeEndpointDisable, "The endpoint is disabled; enable it with updateWebhookEndpoint first.")
			return fe
		}
		if d.Status == DeliveryPending {
			return nil
		}
		now := s.clock.Now()
		var recent int64
		err = tx.Model(&attemptRow{}).Where("delivery_id = ? AND attempted_at > ?", d.ID, now.Add(-RetryPeriod)).
			Count(&recent).Error
		if err != nil {
			return fmt.Errorf("count attempts of delivery %s: %w", d.ID, err)
		}
		if recent >= MaxRetries {
			var fe apperr.FieldErrors
			fe.Add("id", CodeRetryLimited, fmt.Sprintf(
				"The delivery was attempted %d times in the last hour, the most a retry may follow; try again later.", recent))
			return fe
		}
		d.Status, d.UpdatedAt = DeliveryPending, now
		if err := tx.Save(&d).Error; err != nil {
			return fmt.Errorf("reset delivery %s: %w", deliveryID, err)
		}
		return s.jobs.InsertTx(ctx, tx, deliverArgs{DeliveryID: d.ID}, nil)
	})
	if err != nil {
		return Delivery{}, err
	}
	views, err := s.views(ctx, []deliveryRow{d})
	if err != nil {
		return Delivery{}, err
	}
	return views[0], nil
}
