package graph

import (
	"bytes"
	"io"
	"strconv"
	"time"

	"github.com/99designs/gqlgen/graphql"

	"github.com/tollgate-billing/tollgate/graph/model"
)

// The object types the prepared path writes, each field as gqlgen's
// marshaler for its type writes it. A test compares every field of each
// with the generated code's answer, so a field added to the schema fails it
// until it is added here.

var usageGateType = &objectType{name: "UsageGate", fields: map[string]objectField{
	"allowed":       leaf(func(b *bytes.Buffer, g *model.UsageGate) { writeBool(b, g.Allowed) }),
	"reason":        leaf(func(b *bytes.Buffer, g *model.UsageGate) { g.Reason.MarshalGQL(b) }),
	"retryAfterMs":  leaf(func(b *bytes.Buffer, g *model.UsageGate) { writeOptInt(b, g.RetryAfterMs) }),
	"used":          leaf(func(b *bytes.Buffer, g *model.UsageGate) { writeInt64(b, g.Used) }),
	"limit":         leaf(func(b *bytes.Buffer, g *model.UsageGate) { writeOptInt(b, g.Limit) }),
	"remaining":     leaf(func(b *bytes.Buffer, g *model.UsageGate) { writeOptInt(b, g.Remaining) }),
	"unlimited":     leaf(func(b *bytes.Buffer, g *model.UsageGate) { writeBool(b, g.Unlimited) }),
	"overage":       leaf(func(b *bytes.Buffer, g *model.UsageGate) { writeInt64(b, g.Overage) }),
	"hard":          leaf(func(b *bytes.Buffer, g *model.UsageGate) { writeBool(b, g.Hard) }),
	"reset":         leaf(func(b *bytes.Buffer, g *model.UsageGate) { g.Reset.MarshalGQL(b) }),
	"resetAt":       leaf(func(b *bytes.Buffer, g *model.UsageGate) { writeOptTime(b, g.ResetAt) }),
	"plan":          leaf(func(b *bytes.Buffer, g *model.UsageGate) { graphql.MarshalID(g.Plan).MarshalGQL(b) }),
	"billingStatus": leaf(func(b *bytes.Buffer, g *model.UsageGate) { writeOptEnum(b, g.BillingStatus) }),
}}

var meterUsageType = &objectType{name: "MeterUsage", fields: map[string]objectField{
	"meter":     leaf(func(b *bytes.Buffer, u *model.MeterUsage) { writeString(b, u.Meter) }),
	"used":      leaf(func(b *bytes.Buffer, u *model.MeterUsage) { writeInt64(b, u.Used) }),
	"limit":     leaf(func(b *bytes.Buffer, u *model.MeterUsage) { writeOptInt(b, u.Limit) }),
	"remaining": leaf(func(b *bytes.Buffer, u *model.MeterUsage) { writeOptInt(b, u.Remaining) }),
	"unlimited": leaf(func(b *bytes.Buffer, u *model.MeterUsage) { writeBool(b, u.Unlimited) }),
	"overage":   leaf(func(b *bytes.Buffer, u *model.MeterUsage) { writeInt64(b, u.Overage) }),
	"hard":      leaf(func(b *bytes.Buffer, u *model.MeterUsage) { writeBool(b, u.Hard) }),
	"reset":     leaf(func(b *bytes.Buffer, u *model.MeterUsage) { u.Reset.MarshalGQL(b) }),
	"resetAt":   leaf(func(b *bytes.Buffer, u *model.MeterUsage) { writeOptTime(b, u.ResetAt) }),
}}

var userErrorType = &objectType{name: "UserError", fields: map[string]objectField{
	"field": leaf(func(b *bytes.Buffer, e *model.UserError) {
		if e.Field == nil {
			b.WriteString("null")
			return
		}
		writeString(b, *e.Field)
	}),
	"message": leaf(func(b *bytes.Buffer, e *model.UserError) { writeString(b, e.Message) }),
	"code":    leaf(func(b *bytes.Buffer, e *model.UserError) { writeString(b, e.Code) }),
}}

var rejectedUsageEventType = &objectType{name: "RejectedUsageEvent", fields: map[string]objectField{
	"index":   leaf(func(b *bytes.Buffer, r *model.RejectedUsageEvent) { writeInt64(b, int64(r.Index)) }),
	"code":    leaf(func(b *bytes.Buffer, r *model.RejectedUsageEvent) { writeString(b, r.Code) }),
	"message": leaf(func(b *bytes.Buffer, r *model.RejectedUsageEvent) { writeString(b, r.Message) }),
}}

var recordUsagePayloadType = &objectType{name: "RecordUsagePayload", fields: map[string]objectField{
	"accepted":      leaf(func(b *bytes.Buffer, p *model.RecordUsagePayload) { writeInt64(b, int64(p.Accepted)) }),
	"duplicates":    leaf(func(b *bytes.Buffer, p *model.RecordUsagePayload) { writeInt64(b, int64(p.Duplicates)) }),
	"rejected":      list(func(p *model.RecordUsagePayload) []model.RejectedUsageEvent { return p.Rejected }, rejectedUsageEventType),
	"rejectedCount": leaf(func(b *bytes.Buffer, p *model.RecordUsagePayload) { writeInt64(b, int64(p.RejectedCount)) }),
	"usage":         list(func(p *model.RecordUsagePayload) []model.MeterUsage { return p.Usage }, meterUsageType),
	"userErrors":    list(func(p *model.RecordUsagePayload) []model.UserError { return p.UserErrors }, userErrorType),
}}

var consumeUsagePayloadType = &objectType{name: "ConsumeUsagePayload", fields: map[string]objectField{
	"allowed":      leaf(func(b *bytes.Buffer, p *model.ConsumeUsagePayload) { writeBool(b, p.Allowed) }),
	"reason":       leaf(func(b *bytes.Buffer, p *model.ConsumeUsagePayload) { writeOptEnum(b, p.Reason) }),
	"retryAfterMs": leaf(func(b *bytes.Buffer, p *model.ConsumeUsagePayload) { writeOptInt(b, p.RetryAfterMs) }),
	"usage":        optional(func(p *model.ConsumeUsagePayload) *model.MeterUsage { return p.Usage }, meterUsageType),
	"userErrors":   list(func(p *model.ConsumeUsagePayload) []model.UserError { return p.UserErrors }, userErrorType),
}}

// leaf is a field of T written without a selection.
func leaf[T any](write func(b *bytes.Buffer, v *T)) objectField {
	return objectField{write: func(b *bytes.Buffer, v any, _ []selected) { write(b, v.(*T)) }}
}

// list is a non-null list of non-null objects of type of, a field of T.
func list[T, E any](get func(*T) []E, of *objectType) objectField {
	return objectField{of: of, write: func(b *bytes.Buffer, v any, sel []selected) {
		items := get(v.(*T))
		b.WriteByte('[')
		for i := range items {
			if i > 0 {
				b.WriteByte(',')
			}
			writeObject(b, &items[i], sel)
		}
		b.WriteByte(']')
	}}
}

// optional is a nullable object of type of, a field of T.
func optional[T, E any](get func(*T) *E, of *objectType) objectField {
	return objectField{of: of, write: func(b *bytes.Buffer, v any, sel []selected) {
		e := get(v.(*T))
		if e == nil {
			b.WriteString("null")
			return
		}
		writeObject(b, e, sel)
	}}
}

func writeBool(b *bytes.Buffer, v bool) { b.Write(strconv.AppendBool(b.AvailableBuffer(), v)) }

func writeInt64(b *bytes.Buffer, n int64) { b.Write(strconv.AppendInt(b.AvailableBuffer(), n, 10)) }

// writeString writes s quoted as gqlgen's String marshaler does.
func writeString(b *bytes.Buffer, s string) { graphql.MarshalString(s).MarshalGQL(b) }

// writeOptInt writes n as a JSON number, or null.
func writeOptTime(b *bytes.Buffer, t *time.Time) {
	if t == nil {
		b.WriteString("null")
		return
	}
	model.MarshalTime(*t).MarshalGQL(b)
}

func writeOptInt[N int | int64](b *bytes.Buffer, n *N) {
	if n == nil {
		b.WriteString("null")
		return
	}
	writeInt64(b, int64(*n))
}

// writeOptEnum writes e as its enum's marshaler does, or null.
func writeOptEnum[E any, P interface {
	*E
	MarshalGQL(io.Writer)
}](b *bytes.Buffer, e P) {
	if e == nil {
		b.WriteString("null")
		return
	}
	e.MarshalGQL(b)
}

// readRecordUsageInput reads a RecordUsageInput value as the generated
// code's unmarshaler does, with the same scalar functions; ok is false for
// anything it would refuse or read differently, which then goes to it.
func readRecordUsageInput(v any) (model.RecordUsageInput, bool) {
	m, ok := v.(map[string]any)
	if !ok {
		return model.RecordUsageInput{}, false
	}
	raw, ok := m["events"]
	if !ok || raw == nil {
		return model.RecordUsageInput{}, false
	}
	list := graphql.CoerceList(raw)
	in := model.RecordUsageInput{Events: make([]model.UsageEventInput, len(list))}
	for i, e := range list {
		em, ok := e.(map[string]any)
		if !ok {
			return model.RecordUsageInput{}, false
		}
		ev := &in.Events[i]
		ok = readRequired(em, "meter", &ev.Meter, graphql.UnmarshalString) && readRequired(em, "quantity", &ev.Quantity, model.UnmarshalInt64) &&
			readRequired(em, "idempotencyKey", &ev.IdempotencyKey, graphql.UnmarshalString) && readOptString(em, "endpoint", &ev.Endpoint)
		if !ok {
			return model.RecordUsageInput{}, false
		}
		if t, present := em["timestamp"]; present && t != nil {
			ts, err := model.UnmarshalTime(t)
			if err != nil {
				return model.RecordUsageInput{}, false
			}
			ev.Timestamp = &ts
		}
	}
	return in, true
}

// readConsumeUsageInput is readRecordUsageInput's twin for consumeUsage.
func readConsumeUsageInput(v any) (model.ConsumeUsageInput, bool) {
	m, ok := v.(map[string]any)
	if !ok {
		return model.ConsumeUsageInput{}, false
	}
	var in model.ConsumeUsageInput
	ok = readRequired(m, "meter", &in.Meter, graphql.UnmarshalString) && readRequired(m, "quantity", &in.Quantity, model.UnmarshalInt64) &&
		readRequired(m, "idempotencyKey", &in.IdempotencyKey, graphql.UnmarshalString) && readOptString(m, "endpoint", &in.Endpoint)
	return in, ok
}

// readRequired sets *to from m[key] with unmarshal, gqlgen's reader of
// its type. The generated code leaves a missing key unset; a null (which
// validation keeps out of these non-null fields) is left to it.
func readRequired[T any](m map[string]any, key string, to *T, unmarshal func(any) (T, error)) bool {
	v, present := m[key]
	if !present {
		return true
	}
	x, err := unmarshal(v)
	*to = x
	return err == nil && v != nil
}

// readOptString sets *to from a present, non-null m[key].
func readOptString(m map[string]any, key string, to **string) bool {
	v, present := m[key]
	if !present || v == nil {
		return true
	}
	s, err := graphql.UnmarshalString(v)
	*to = &s
	return err == nil
}
