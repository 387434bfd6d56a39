package outbound

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"slices"
	"strings"

	"gorm.io/gorm"

	"github.com/tollgate-billing/tollgate/internal/apperr"
	"github.com/tollgate-billing/tollgate/internal/orgs"
	"github.com/tollgate-billing/tollgate/internal/store"
)

// EndpointInput is what createWebhookEndpoint and updateWebhookEndpoint
// take; nil fields of an update are left as they are.
type EndpointInput struct {
	URL    *string
	Events *[]string
	// Enabled re-enables a disabled endpoint (and forgets its failures) or
	// disables one by hand.
	Enabled *bool
}

// checkEvents validates and normalises a subscription list. AllEvents
// anywhere in it subscribes to every type, those added later included.
func checkEvents(fe *apperr.FieldErrors, field string, events []string) []string {
	if len(events) == 0 {
		fe.Add(field, CodeRequired, "Subscribe to at least one event, or to \""+AllEvents+"\" for all: "+strings.Join(EventTypes, ", ")+".")
		return nil
	}
	out := make([]string, 0, len(events))
	all := false
	for i, e := range events {
		if e == AllEvents {
			all = true
			continue
		}
		if !slices.Contains(EventTypes, e) {
			fe.Add(fmt.Sprintf("%s[%d]", field, i), CodeUnknownEvent,
				"Unknown event type; known types are "+strings.Join(EventTypes, ", ")+", or \""+AllEvents+"\" for all.")
			continue
		}
		if !slices.Contains(out, e) {
			out = append(out, e)
		}
	}
	if all {
		return []string{AllEvents}
	}
	slices.Sort(out)
	return out
}

// newSecret is a Standard Webhooks signing secret: whsec_ and 32 random
// bytes in base64.
func newSecret() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return "whsec_" + base64.StdEncoding.EncodeToString(b[:]), nil
}

// CreateEndpoint registers an endpoint and returns its signing secret, which
// is shown only this once. The organisation's plan caps how many it has.
func (s *Service) CreateEndpoint(ctx context.Context, orgID, rawURL string, events []string) (Endpoint, string, error) {
	var fe apperr.FieldErrors
	s.checkURL(&fe, "input.url", rawURL)
	events = checkEvents(&fe, "input.events", events)
	if err := fe.Err(); err != nil {
		return Endpoint{}, "", err
	}
	plan, _, err := s.plans.PlanOf(ctx, orgID)
	if err != nil {
		return Endpoint{}, "", err
	}
	secret, err := newSecret()
	if err != nil {
		return Endpoint{}, "", fmt.Errorf("webhook secret: %w", err)
	}
	now := s.clock.Now()
	row := endpointRow{
		ID: store.NewID(), OrgID: orgID, URL: rawURL, Events: strings.Join(events, " "),
		Secret: secret, Status: StatusEnabled, CreatedAt: now, UpdatedAt: now,
	}
	err = s.db.Tx(ctx, func(tx *gorm.DB) error {
		// The organisation's row serialises concurrent creates, so two
		// cannot both see room for one more.
		if _, ok, err := orgs.Lock(ctx, s.db, tx, orgID); err != nil || !ok {
			if err == nil {
				err = apperr.ErrNotFound
			}
			return err
		}
		var n int64
		if err := tx.Model(&endpointRow{}).Where("org_id = ?", orgID).Count(&n).Error; err != nil {
			return fmt.Errorf("count webhook endpoints of org %s: %w", orgID, err)
		}
		if n >= int64(plan.Webhooks) {
			var limit apperr.FieldErrors
			limit.Add("", CodePlanLimit, planLimitMessage(plan.Name, plan.Webhooks))
			return limit
		}
		if err := tx.Create(&row).Error; err != nil {
			return fmt.Errorf("create webhook endpoint: %w", err)
		}
		return nil
	})
	if err != nil {
		return Endpoint{}, "", err
	}
	return row.view(), secret, nil
}

func planLimitMessage(plan string, n int) string {
	if n == 0 {
		return fmt.Sprintf("The %s plan includes no webhook endpoints; upgrade to add one.", plan)
	}
	if n == 1 {
		return fmt.Sprintf("The %s plan allows 1 webhook endpoint; delete it or upgrade.", plan)
	}
	return fmt.Sprintf("The %s plan allows %d webhook endpoints; delete one or upgrade.", plan, n)
}

// UpdateEndpoint changes an endpoint's URL, events or enabled state.
func (s *Service) UpdateEndpoint(ctx context.Context, orgID, id string, in EndpointInput) (Endpoint, error) {
	var fe apperr.FieldErrors
	if in.URL != nil {
		s.checkURL(&fe, "input.url", *in.URL)
	}
	var events []string
	if in.Events != nil {
		events = checkEvents(&fe, "input.events", *in.Events)
	}
	if err := fe.Err(); err != nil {
		return Endpoint{}, err
	}
	if !store.PlausibleID(id) {
		return Endpoint{}, notFound("input.id", "webhook endpoint")
	}
	var row endpointRow
	err := s.db.Tx(ctx, func(tx *gorm.DB) error {
		if err := s.lockEndpoint(tx, orgID, id, &row); err != nil {
			return err
		}
		now := s.clock.Now()
		if in.URL != nil && *in.URL != row.URL {
			// The failures were the old URL's.
			row.URL, row.FailingSince = *in.URL, nil
		}
		if in.Events != nil {
			row.Events = strings.Join(events, " ")
		}
		if in.Enabled != nil && *in.Enabled && row.Status != StatusEnabled && in.URL == nil {
			// A URL saved before a rule refused it (production, a
			// narrower WEBHOOK_ALLOWED_NETWORKS) is refused again, as a
			// new one would be, rather than enabled to fail at every
			// attempt. checkURL reads only the text: no lookup in the
			// transaction.
			var saved apperr.FieldErrors
			s.checkURL(&saved, "input.url", row.URL)
			if err := saved.Err(); err != nil {
				return err
			}
		}
		if in.Enabled != nil {
			switch {
			case *in.Enabled && row.Status != StatusEnabled:
				row.Status, row.FailingSince, row.DisabledAt, row.DisabledReason = StatusEnabled, nil, nil, ""
			case !*in.Enabled && row.Status != StatusDisabled:
				row.Status, row.DisabledAt, row.DisabledReason = StatusDisabled, &now, "disabled by the organisation"
			}
		}
		row.UpdatedAt = now
		if err := tx.Save(&row).Error; err != nil {
			return fmt.Errorf("update webhook endpoint %s: %w", id, err)
		}
		return nil
	})
	if err != nil {
		return Endpoint{}, err
	}
	return row.view(), nil
}

// DeleteEndpoint removes an endpoint with its deliveries; jobs still queued
// for them find nothing to send.
func (s *Service) DeleteEndpoint(ctx context.Context, orgID, id string) error {
	if !store.PlausibleID(id) {
		return notFound("id", "webhook endpoint")
	}
	res := s.db.WithContext(ctx).Where("org_id = ? AND id = ?", orgID, id).Delete(&endpointRow{})
	if res.Error != nil {
		return fmt.Errorf("delete webhook endpoint %s: %w", id, res.Error)
	}
	if res.RowsAffected == 0 {
		return notFound("id", "webhook endpoint")
	}
	return nil
}

// Endpoints lists the organisation's endpoints, oldest first.
func (s *Service) Endpoints(ctx context.Context, orgID string) ([]Endpoint, error) {
	var rows []endpointRow
	if err := s.db.WithContext(ctx).Where("org_id = ?", orgID).Order("created_at, id").Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("list webhook endpoints of org %s: %w", orgID, err)
	}
	out := make([]Endpoint, len(rows))
	for i, r := range rows {
		out[i] = r.view()
	}
	return out, nil
}

// lockEndpoint loads one of the organisation's endpoints for update.
func (s *Service) lockEndpoint(tx *gorm.DB, orgID, id string, row *endpointRow) error {
	err := s.db.ForUpdate(tx).Where("org_id = ? AND id = ?", orgID, id).Take(row).Error
	if store.IsNotFound(err) {
		return notFound("input.id", "webhook endpoint") // lockEndpoint serves updateWebhookEndpoint
	}
	if err != nil {
		return fmt.Errorf("load webhook endpoint %s: %w", id, err)
	}
	return nil
}

// notFound is the field error of an id that names none of the
// organisation's endpoints or deliveries (what, "webhook endpoint" or
// "webhook delivery"); another organisation's reads the same.
func notFound(field, what string) error {
	var fe apperr.FieldErrors
	fe.Add(field, CodeNotFound, "No such "+what+" in this organisation.")
	return fe
}
