package outbound

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/riverqueue/river"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"gorm.io/gorm"

	"github.com/tollgate-billing/tollgate/internal/store"
	"github.com/tollgate-billing/tollgate/internal/weburl"
)

// RetryWindow is how long an endpoint may keep failing before it is
// disabled, and how long one delivery is retried.
const RetryWindow = 72 * time.Hour

// maxAttempts bounds River's retries; the backoff below reaches
// RetryWindow well before it (about 21 attempts even with the shortest
// jitter), so the window, not the count, ends a failing delivery.
const maxAttempts = 30

// deliverArgs is the River job that sends one delivery.
type deliverArgs struct {
	DeliveryID string `json:"delivery_id"`
}

func (deliverArgs) Kind() string { return "outbound_webhook_delivery" }

func (deliverArgs) InsertOpts() river.InsertOpts { return river.InsertOpts{MaxAttempts: maxAttempts} }

type deliverWorker struct {
	river.WorkerDefaults[deliverArgs]
	s *Service
}

// Timeout covers the 5 s request and the bookkeeping around it.
func (w *deliverWorker) Timeout(*river.Job[deliverArgs]) time.Duration { return 30 * time.Second }

// NextRetry backs off exponentially from 30 s, doubling to at most 6 h,
// with ±20% jitter so endpoints recovering from an outage are not hit by
// every queued delivery at once.
func (w *deliverWorker) NextRetry(job *river.Job[deliverArgs]) time.Time {
	from := time.Now().UTC()
	if job.AttemptedAt != nil {
		from = *job.AttemptedAt
	}
	return from.Add(backoff(job.Attempt))
}

func backoff(attempt int) time.Duration {
	d := 6 * time.Hour
	if attempt < 20 {
		d = min(30*time.Second<<max(attempt-1, 0), d)
	}
	jitter := 0.8 + 0.4*rand.Float64()
	return time.Duration(float64(d) * jitter)
}

// Work sends the delivery once and records the attempt.
func (w *deliverWorker) Work(ctx context.Context, job *river.Job[deliverArgs]) error {
	s := w.s
	var d deliveryRow
	var ep endpointRow
	var ev eventRow
	err := s.db.WithContext(ctx).Where("id = ?", job.Args.DeliveryID).Take(&d).Error
	if err == nil {
		err = s.db.WithContext(ctx).Where("id = ?", d.EndpointID).Take(&ep).Error
	}
	if err == nil {
		err = s.db.WithContext(ctx).Where("id = ?", d.EventID).Take(&ev).Error
	}
	switch {
	case store.IsNotFound(err):
		return nil // the endpoint was deleted with its deliveries
	case err != nil:
		return fmt.Errorf("load delivery %s: %w", job.Args.DeliveryID, err)
	case d.Status == DeliverySucceeded:
		return nil // already sent (a replay raced the original)
	case ep.Status != StatusEnabled:
		if err := s.markFailed(ctx, d.ID); err != nil {
			return err
		}
		return river.JobCancel(errors.New("endpoint is disabled"))
	}

	// One organisation's receivers never hold more than their share of
	// the workers (turns); a delivery over it waits, and no attempt is
	// counted.
	done, wait, ok := s.turns.take(d.OrgID)
	if !ok {
		return river.JobSnooze(wait)
	}
	at := s.clock.Now()
	code, latency, sendErr := func() (int, time.Duration, error) {
		defer done() // given back even if the attempt panics (River recovers it)
		return s.send(ctx, ep, ev, at)
	}()
	final := job.Attempt >= job.MaxAttempts
	out, err := s.record(ctx, d.ID, ep.ID, at, code, latency, sendErr, final)
	if err != nil {
		return err
	}
	switch out {
	case delivered:
		return nil
	case gaveUp:
		return river.JobCancel(sendErr)
	default:
		return sendErr
	}
}

// send POSTs the event, signed, and reports the status code (0 without a
// response) and how long it took.
func (s *Service) send(ctx context.Context, ep endpointRow, ev eventRow, at time.Time) (int, time.Duration, error) {
	wh, err := standardwebhooks.NewWebhook(ep.Secret)
	if err != nil {
		return 0, 0, fmt.Errorf("endpoint secret: %w", err)
	}
	body := []byte(ev.Payload)
	sig, err := wh.Sign(ev.ID, at, body)
	if err != nil {
		return 0, 0, fmt.Errorf("sign: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ep.URL, bytes.NewReader(body))
	if err != nil {
		return 0, 0, fmt.Errorf("request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Tollgate-Webhooks/1")
	req.Header.Set(standardwebhooks.HeaderWebhookID, ev.ID)
	req.Header.Set(standardwebhooks.HeaderWebhookTimestamp, strconv.FormatInt(at.Unix(), 10))
	req.Header.Set(standardwebhooks.HeaderWebhookSignature, sig)
	// Latency is a duration, measured on the monotonic clock; the injected
	// clock dates the attempt.
	start := time.Now()
	resp, err := s.http.Do(req)
	latency := time.Since(start)
	if err != nil {
		// Go's error quotes the URL, with its user name; ours names it
		// without.
		if ue, ok := errors.AsType[*url.Error](err); ok {
			err = ue.Err
		}
		return 0, latency, fmt.Errorf("POST %s: %w", weburl.Redact(ep.URL), err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return resp.StatusCode, latency, fmt.Errorf("POST %s: %w", weburl.Redact(ep.URL), statusError{resp.StatusCode})
	}
	return resp.StatusCode, latency, nil
}

type outcome int

const (
	retry outcome = iota
	delivered
	gaveUp
)

// record stores one attempt and its consequences: a success clears the
// endpoint's failure run; a failure starts or extends it, and one that has
// lasted RetryWindow disables the endpoint, with a final event to the
// organisation's other endpoints.
func (s *Service) record(ctx context.Context, deliveryID, endpointID string, at time.Time, code int, latency time.Duration, sendErr error, final bool) (outcome, error) {
	out := retry
	err := s.db.Tx(ctx, func(tx *gorm.DB) error {
		var d deliveryRow
		var ep endpointRow
		if err := s.db.ForUpdate(tx).Where("id = ?", endpointID).Take(&ep).Error; err != nil {
			return err
		}
		if err := s.db.ForUpdate(tx).Where("id = ?", deliveryID).Take(&d).Error; err != nil {
			return err
		}
		d.Attempts++
		a := attemptRow{ID: store.NewID(), DeliveryID: d.ID, Number: d.Attempts, AttemptedAt: at, LatencyMS: latency.Milliseconds()}
		if code != 0 {
			a.StatusCode = &code
		}
		if sendErr != nil {
			a.Error = attemptError(sendErr, s.production)
		}
		if err := tx.Create(&a).Error; err != nil {
			return err
		}
		d.UpdatedAt = at
		ep.UpdatedAt = at
		if sendErr == nil {
			out = delivered
			d.Status, d.DeliveredAt = DeliverySucceeded, &at
			ep.FailingSince = nil
		} else {
			if ep.FailingSince == nil {
				ep.FailingSince = &at
			}
			switch {
			case ep.Status == StatusEnabled && at.Sub(*ep.FailingSince) >= RetryWindow:
				out = gaveUp
				if err := s.disable(ctx, tx, &ep, at, a.Error); err != nil {
					return err
				}
			case final || at.Sub(d.CreatedAt) >= RetryWindow:
				out = gaveUp
			}
			if out == gaveUp {
				d.Status = DeliveryFailed
			}
		}
		if err := tx.Save(&d).Error; err != nil {
			return err
		}
		return tx.Save(&ep).Error
	})
	if store.IsNotFound(err) {
		return gaveUp, nil // deleted while sending
	}
	if err != nil {
		return retry, fmt.Errorf("record attempt of delivery %s: %w", deliveryID, err)
	}
	return out, nil
}

// disable turns an endpoint off after RetryWindow of failures and tells the
// organisation's other endpoints.
func (s *Service) disable(ctx context.Context, tx *gorm.DB, ep *endpointRow, at time.Time, lastErr string) error {
	ep.Status, ep.DisabledAt = StatusDisabled, &at
	ep.DisabledReason = "failed for 3 days; last error: " + lastErr
	if err := tx.Save(ep).Error; err != nil {
		return err
	}
	s.log.WarnContext(ctx, "webhook endpoint disabled after 3 days of failures", "org", ep.OrgID, "endpoint", ep.ID)
	return s.Emit(ctx, tx, ep.OrgID, EndpointDisabled, EndpointDisabledData{
		EndpointID: ep.ID, URL: weburl.Redact(ep.URL), FailingSince: ep.FailingSince, LastError: Optional(lastErr),
	})
}

func (s *Service) markFailed(ctx context.Context, deliveryID string) error {
	err := s.db.WithContext(ctx).Model(&deliveryRow{}).Where("id = ? AND status = ?", deliveryID, DeliveryPending).
		Updates(map[string]any{"status": DeliveryFailed, "updated_at": s.clock.Now()}).Error
	if err != nil {
		return fmt.Errorf("mark delivery %s failed: %w", deliveryID, err)
	}
	return nil
}
