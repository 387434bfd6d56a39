package outbound

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"gorm.io/gorm"

	"github.com/tollgate-billing/tollgate/internal/orgs"
	"github.com/tollgate-billing/tollgate/internal/store"
)

// payload is the JSON body every endpoint receives. Sequence grows by one
// with each of the organisation's events, in commit order, so a receiver can
// order them and notice a gap. OrganizationID is Tollgate's id
// (`organization { id }`); OrganizationExternalID is the host's own
// (`organization { externalId }`, the `org` claim of its tokens).
type payload struct {
	ID                     string          `json:"id"`
	Type                   string          `json:"type"`
	Timestamp              time.Time       `json:"timestamp"`
	OrganizationID         string          `json:"organization_id"`
	OrganizationExternalID string          `json:"organization_external_id"`
	Sequence               int64           `json:"sequence"`
	Data                   json.RawMessage `json:"data"`
}

// Emit records that eventType happened to the organisation and enqueues one
// delivery per enabled endpoint subscribed to it, all in tx: the caller's
// transaction, the one that writes the fact. If tx rolls back, nothing is
// sent; once it commits, every delivery is queued. data is the event's
// `data` object and must marshal to JSON.
//
// Emit takes the organisation's sequence row lock until tx ends: call it
// after the caller's other locks, never while holding a network call.
func (s *Service) Emit(ctx context.Context, tx *gorm.DB, orgID, eventType string, data any) error {
	if !slices.Contains(EventTypes, eventType) {
		return fmt.Errorf("emit: unknown event type %q", eventType)
	}
	body, err := json.Marshal(data)
	if err != nil {
		return fmt.Errorf("emit %s: data: %w", eventType, err)
	}
	tx = tx.WithContext(ctx)
	org, err := orgs.Load(ctx, tx, orgID)
	if err != nil {
		return fmt.Errorf("emit %s: %w", eventType, err)
	}
	seq, err := s.nextSequence(tx, orgID)
	if err != nil {
		return err
	}
	now := s.clock.Now()
	p := payload{
		ID: "evt_" + strings.ReplaceAll(store.NewID(), "-", ""), Type: eventType, Timestamp: now,
		OrganizationID: orgID, OrganizationExternalID: org.ExternalID, Sequence: seq, Data: body,
	}
	raw, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("emit %s: %w", eventType, err)
	}
	ev := eventRow{ID: p.ID, OrgID: orgID, Sequence: seq, Type: eventType, Payload: string(raw), CreatedAt: now}
	if err := tx.Create(&ev).Error; err != nil {
		return fmt.Errorf("emit %s: store event: %w", eventType, err)
	}
	var endpoints []endpointRow
	if err := tx.Where("org_id = ? AND status = ?", orgID, StatusEnabled).Order("created_at, id").Find(&endpoints).Error; err != nil {
		return fmt.Errorf("emit %s: endpoints: %w", eventType, err)
	}
	for _, ep := range endpoints {
		if !ep.subscribes(eventType) {
			continue
		}
		if err := s.enqueue(ctx, tx, ep.ID, ev, now); err != nil {
			return err
		}
	}
	return nil
}

// nextSequence takes the organisation's next event number. The upsert
// locks the counter row until tx ends, so numbers commit in order.
func (s *Service) nextSequence(tx *gorm.DB, orgID string) (int64, error) {
	var seq int64
	err := tx.Raw(`INSERT INTO outbound_sequences (org_id, last_sequence) VALUES (?, 1)
		ON CONFLICT (org_id) DO UPDATE SET last_sequence = outbound_sequences.last_sequence + 1
		RETURNING last_sequence`, orgID).Scan(&seq).Error
	if err != nil {
		return 0, fmt.Errorf("next event sequence of org %s: %w", orgID, err)
	}
	return seq, nil
}

// enqueue writes a delivery and its River job in tx.
func (s *Service) enqueue(ctx context.Context, tx *gorm.DB, endpointID string, ev eventRow, now time.Time) error {
	d := deliveryRow{
		ID: store.NewID(), OrgID: ev.OrgID, EndpointID: endpointID, EventID: ev.ID,
		Status: DeliveryPending, CreatedAt: now, UpdatedAt: now,
	}
	if err := tx.Create(&d).Error; err != nil {
		return fmt.Errorf("emit %s: delivery: %w", ev.Type, err)
	}
	return s.jobs.InsertTx(ctx, tx, deliverArgs{DeliveryID: d.ID}, nil)
}
