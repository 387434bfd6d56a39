package client

import (
	"context"
	"errors"
)

// Record counts events now through recordUsage and returns once Tollgate
// has answered: durable, unlike the Recorder's fire and forget. Usage that
// has already happened (an answered completion, an upload) is a fact to
// count, not a request to admit, so unlike Gate.Consume it is not charged
// to the plan's rate limit and is never refused for it.
//
// It returns nil when every event was counted (or had been: a retry with
// the same keys counts once), else why not: an *Error with code
// USAGE_LIMIT_EXCEEDED when the events would pass a hard limit (then none
// is counted), a *RejectedError for an event Tollgate refused on its own,
// an *InputError for a bad call, or the transport's error after the
// client's retries.
func Record(ctx context.Context, c *Client, events ...Event) error {
	resp, err := RecordUsage(ctx, c, recordInput(events))
	if err != nil {
		return err
	}
	p := resp.RecordUsage
	if len(p.UserErrors) > 0 {
		ie := &InputError{}
		for _, u := range p.UserErrors {
			ie.Errors = append(ie.Errors, u.UserErrorFields)
		}
		return ie
	}
	var errs []error
	for _, rej := range p.Rejected {
		errs = append(errs, &RejectedError{Code: rej.Code, Message: rej.Message})
	}
	return errors.Join(errs...)
}

// recordInput is recordUsage's input for events; a zero Timestamp is left
// for Tollgate to fill in with its own now.
func recordInput(events []Event) RecordUsageInput {
	in := RecordUsageInput{Events: make([]UsageEventInput, len(events))}
	for i, e := range events {
		in.Events[i] = UsageEventInput{Meter: e.Meter, Quantity: e.Quantity, IdempotencyKey: e.IdempotencyKey}
		if !e.Timestamp.IsZero() {
			in.Events[i].Timestamp = &events[i].Timestamp
		}
		if e.Endpoint != "" {
			in.Events[i].Endpoint = &events[i].Endpoint
		}
	}
	return in
}
