package client

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Verdict is Tollgate's answer to "may this customer use more?".
type Verdict struct {
	Allowed bool
	// Reason is OK when allowed, else USAGE_LIMIT_EXCEEDED, RATE_LIMITED or
	// BILLING_INACTIVE.
	Reason UsageReason
	// RetryAfter is when a RATE_LIMITED check may pass.
	RetryAfter time.Duration
	Meter      string
	Used       int64
	// Limit and Remaining are nil when the meter is unlimited.
	Limit, Remaining *int64
	// ResetAt is the end of the period, nil for a meter that never resets.
	ResetAt *time.Time
}

// InputError is a consumeUsage or recordUsage call Tollgate refused for its
// input (an unknown meter, a missing key...): a bug in the caller, never
// retried.
type InputError struct {
	Errors []UserErrorFields
}

func (e *InputError) Error() string {
	if len(e.Errors) == 0 {
		return "tollgate: invalid input"
	}
	f := e.Errors[0]
	field := ""
	if f.Field != nil {
		field = *f.Field + ": "
	}
	return fmt.Sprintf("tollgate: %s%s (%s)", field, f.Message, f.Code)
}

// CodeIdempotencyKeyReused is the code of an event, or of a consumeUsage
// userError, whose idempotency key was counted for another event (another
// meter, quantity or endpoint): not a retry, and never counted.
const CodeIdempotencyKeyReused = "IDEMPOTENCY_KEY_REUSED"

// Has reports whether one of the errors has code.
func (e *InputError) Has(code string) bool {
	for _, f := range e.Errors {
		if f.Code == code {
			return true
		}
	}
	return false
}

// Gate wraps usageGate and consumeUsage for one customer's client.
type Gate struct {
	c *Client
}

// NewGate returns the gate of the organisation c acts for.
func NewGate(c *Client) *Gate { return &Gate{c: c} }

// Check asks usageGate about one more unit: fast (a Redis read on
// Tollgate's side), and it counts nothing but one call against the plan's
// rate limit.
func (g *Gate) Check(ctx context.Context, meter string) (Verdict, error) {
	r, err := UsageGate(ctx, g.c, meter)
	if err != nil {
		return Verdict{}, err
	}
	return verdictOf(meter, &r.UsageGate), nil
}

// CheckQuantity asks usageGate about quantity more units (1 to 2^43): the
// answer is what Consume of that quantity would decide, without counting
// it. Quantity 1 is Check.
func (g *Gate) CheckQuantity(ctx context.Context, meter string, quantity int64) (Verdict, error) {
	if quantity == 1 {
		return g.Check(ctx, meter)
	}
	r, err := UsageGateQuantity(ctx, g.c, meter, quantity)
	if err != nil {
		return Verdict{}, err
	}
	return verdictOf(meter, &r.UsageGate), nil
}

// gateAnswer is a usageGate answer, whichever operation asked.
type gateAnswer interface {
	GetAllowed() bool
	GetReason() UsageReason
	GetRetryAfterMs() *int
	GetUsed() int64
	GetLimit() *int64
	GetRemaining() *int64
	GetResetAt() *time.Time
}

func verdictOf(meter string, u gateAnswer) Verdict {
	return Verdict{
		Allowed: u.GetAllowed(), Reason: u.GetReason(), RetryAfter: millis(u.GetRetryAfterMs()),
		Meter: meter, Used: u.GetUsed(), Limit: u.GetLimit(), Remaining: u.GetRemaining(), ResetAt: u.GetResetAt(),
	}
}

// Consume asks consumeUsage: check and count quantity in one durable step.
// key names the use (a request id, a completion id); a retry with the same
// key answers allowed again and counts once. endpoint may be empty.
func (g *Gate) Consume(ctx context.Context, meter string, quantity int64, key, endpoint string) (Verdict, error) {
	in := ConsumeUsageInput{Meter: meter, Quantity: quantity, IdempotencyKey: key}
	if endpoint != "" {
		in.Endpoint = &endpoint
	}
	r, err := ConsumeUsage(ctx, g.c, in)
	if err != nil {
		return Verdict{}, err
	}
	p := r.ConsumeUsage
	if len(p.UserErrors) > 0 {
		ie := &InputError{}
		for _, u := range p.UserErrors {
			ie.Errors = append(ie.Errors, u.UserErrorFields)
		}
		return Verdict{}, ie
	}
	if p.Reason == nil || p.Usage == nil {
		return Verdict{}, errors.New("tollgate: consumeUsage answered without a reason or usage")
	}
	return Verdict{
		Allowed: p.Allowed, Reason: *p.Reason, RetryAfter: millis(p.RetryAfterMs),
		Meter: p.Usage.Meter, Used: p.Usage.Used, Limit: p.Usage.Limit, Remaining: p.Usage.Remaining, ResetAt: p.Usage.ResetAt,
	}, nil
}

func millis(ms *int) time.Duration {
	if ms == nil {
		return 0
	}
	return time.Duration(*ms) * time.Millisecond
}
