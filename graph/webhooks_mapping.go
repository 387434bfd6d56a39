package graph

import (
	"strings"

	"github.com/tollgate-billing/tollgate/graph/model"
	"github.com/tollgate-billing/tollgate/internal/outbound"
)

// Mapping of outbound webhook values to GraphQL models.

func webhookEndpointToModel(ep outbound.Endpoint) *model.WebhookEndpoint {
	return &model.WebhookEndpoint{
		ID: ep.ID, URL: ep.URL, Events: ep.Events,
		Status:       model.WebhookEndpointStatus(strings.ToUpper(ep.Status)),
		FailingSince: ep.FailingSince, DisabledAt: ep.DisabledAt, DisabledReason: nonEmpty(ep.DisabledReason),
		CreatedAt: ep.CreatedAt,
	}
}

func webhookDeliveryToModel(d outbound.Delivery) *model.WebhookDelivery {
	attempts := make([]model.WebhookDeliveryAttempt, len(d.Attempts))
	for i, a := range d.Attempts {
		attempts[i] = model.WebhookDeliveryAttempt{
			AttemptedAt: a.At, LatencyMs: int(a.Latency.Milliseconds()), Error: nonEmpty(a.Error),
		}
		if a.StatusCode != 0 {
			attempts[i].StatusCode = ptr(a.StatusCode)
		}
	}
	return &model.WebhookDelivery{
		ID: d.ID, EventID: d.EventID, EventType: d.EventType, Sequence: d.Sequence,
		Status:   model.WebhookDeliveryStatus(strings.ToUpper(d.Status)),
		Attempts: attempts, CreatedAt: d.CreatedAt, DeliveredAt: d.DeliveredAt,
	}
}

// optionalList tells an omitted list (nil: leave as is) from an empty one.
func optionalList(l []string) *[]string {
	if l == nil {
		return nil
	}
	return &l
}
