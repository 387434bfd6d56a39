package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"
)

// alertCheck is what phase 1 hands the alert check: the alert
// organisations, with the stored totals that the usage checks compared
// with what clients were told.
type alertCheck struct {
	orgs               []*usageOrg
	periods            []string
	loadStart, loadEnd time.Time
}

// alertKey names one alert in phase 1's period.
type alertKey struct {
	org     string // organisation id
	meter   string
	percent int
}

func (k alertKey) describe(byID map[string]*usageOrg) string {
	return fmt.Sprintf("%s %s %d%%", byID[k.org].name, k.meter, k.percent)
}

// alertPhase runs after the other phases, so that deliveries retried after
// phase 1 had the time: it waits (polling, up to deliveryDeadline after the
// load) until every alert's delivery arrived, then checks that each crossed
// threshold fired exactly once and reached its endpoint under exactly one
// webhook-id.
func alertPhase(ctx context.Context, env *environment, rep *report, log *slog.Logger) error {
	const phase = "4 alerts"
	c := env.alerts
	if c == nil {
		return nil
	}
	if len(c.periods) > 1 {
		rep.note("phase 1 crossed a month boundary: the alert checks (one period) were skipped")
		return nil
	}
	period := c.periods[0]
	ids := make([]string, len(c.orgs))
	byID := map[string]*usageOrg{}
	expected := map[alertKey]bool{}
	var perOrg []string
	for i, o := range c.orgs {
		ids[i], byID[o.id] = o.id, o
		var parts []string
		for _, m := range o.alerts.meters {
			exp := m.expected()
			for _, p := range exp {
				expected[alertKey{o.id, m.meter, p}] = true
			}
			src, kind := "plan's", "soft"
			if m.own {
				src = "own"
			}
			if m.hard {
				kind = "hard"
			}
			parts = append(parts, fmt.Sprintf("%s %d of %d %s thresholds (%s limit %d, used %d)",
				m.meter, len(exp), len(m.percents), src, kind, m.limit, m.total))
		}
		perOrg = append(perOrg, fmt.Sprintf("%s (%s): %s", o.name, o.alerts.plan, strings.Join(parts, "; ")))
	}

	// Alerts commit with the usage that crossed them, so they are all
	// there; their deliveries may still be waiting for a retry.
	fired, err := firedAlerts(ctx, env, ids)
	if err != nil {
		return err
	}
	log.Info("soak: phase 4: waiting for alert deliveries", "alerts", len(fired))
	deadline := c.loadEnd.Add(deliveryDeadline)
	var pending int
	for {
		if pending, err = pendingDeliveries(ctx, env, ids); err != nil {
			return err
		}
		got := deliveredByAlert(env.hooks.delivered(), byID)
		arrived := 0
		for k := range fired {
			if len(got[k]) > 0 {
				arrived++
			}
		}
		if (arrived == len(fired) && pending == 0) || time.Now().After(deadline) {
			break
		}
		if err := sleepCtx(ctx, 250*time.Millisecond); err != nil {
			return err
		}
	}
	waited := time.Since(c.loadEnd)

	rows, doubled := 0, 0
	var notFired, unexpected []string
	for k, n := range fired {
		rows += n
		doubled += n - 1
		if !expected[k] {
			unexpected = append(unexpected, k.describe(byID))
		}
	}
	for k := range expected {
		if _, ok := fired[k]; !ok {
			notFired = append(notFired, k.describe(byID))
		}
	}
	for _, line := range perOrg {
		rep.info(phase, "alert organisation", line)
	}
	rep.info(phase, "alerts expected (from acknowledged totals)", len(expected))
	rep.check(phase, "alerts fired (usage_alerts rows)", rows, len(expected))
	rep.check(phase, "alerts expected but not fired", len(notFired), 0)
	rep.check(phase, "alerts fired but not expected", len(unexpected), 0)
	rep.check(phase, "alerts doubled (rows beyond one per threshold)", doubled, 0)
	if len(notFired) > 0 {
		rep.note("phase 4: expected alerts missing: %s", sample(notFired))
	}
	if len(unexpected) > 0 {
		rep.note("phase 4: alerts no crossing explains: %s", sample(unexpected))
	}
	for _, t := range env.processes() {
		bad := 0
		for _, o := range c.orgs {
			n, err := queryAlerts(ctx, env, t, o, period)
			if err != nil {
				return err
			}
			bad += n
		}
		rep.check(phase, "usageAlerts on "+t.name+": alerts missing, extra or wrong", bad, 0)
	}

	events, err := alertEvents(ctx, env, ids)
	if err != nil {
		return err
	}
	evDoubled := 0
	for _, n := range events {
		evDoubled += max(n-1, 0)
	}
	rep.check(phase, "outbound events per alert beyond one", evDoubled, 0)

	// Deliveries: one endpoint per organisation, so one per alert.
	got := deliveredByAlert(env.hooks.delivered(), byID)
	var missing, distinctDoubled, dupByID, received int
	var missingNames []string
	for k := range fired {
		msgs := got[k]
		received += len(msgs)
		switch {
		case len(msgs) == 0:
			missing++
			missingNames = append(missingNames, k.describe(byID))
		case len(msgs) > 1:
			distinctDoubled++
		}
		for _, m := range msgs {
			dupByID += m.delivered - 1
		}
	}
	stray := 0
	for k, msgs := range got {
		if _, ok := fired[k]; !ok {
			stray += len(msgs)
		}
	}
	var dbDeliveries int
	if err := env.db.QueryRow(ctx, `SELECT count(*) FROM webhook_deliveries WHERE org_id = ANY($1)`, ids).Scan(&dbDeliveries); err != nil {
		return fmt.Errorf("count webhook_deliveries: %w", err)
	}
	attempts, failedAttempts, err := countAttempts(ctx, env, ids)
	if err != nil {
		return err
	}
	tot := env.hooks.totals()
	rep.info(phase, "deliveries expected (one endpoint per organisation)", len(fired))
	rep.check(phase, "webhook_deliveries rows", dbDeliveries, len(fired))
	rep.check(phase, "deliveries received (distinct webhook-ids answered 2xx)", received, len(fired))
	rep.check(phase, "alerts with no delivery (missing)", missing, 0)
	rep.check(phase, "alerts delivered under two or more webhook-ids", distinctDoubled, 0)
	rep.check(phase, "deliveries of no fired alert, or wrong type or organisation", stray, 0)
	rep.info(phase, "same webhook-id delivered again (at-least-once)", dupByID)
	rep.check(phase, "deliveries still pending in the database", pending, 0)
	rep.check(phase, "signatures the Standard Webhooks library refused", tot.badSig, 0)
	rep.check(phase, "bodies whose id is not their webhook-id", tot.mismatch, 0)
	rep.check(phase, "requests to no registered endpoint", tot.unknown, 0)
	rep.check(phase, "sequence out of threshold order, per endpoint", outOfOrder(got, byID), 0)
	rep.info(phase, "requests the receiver answered / first arrivals answered 500 on purpose", fmt.Sprintf("%d / %d", tot.requests, tot.failed))
	rep.info(phase, "attempts recorded by Tollgate (failed)", fmt.Sprintf("%d (%d)", attempts, failedAttempts))
	rep.info(phase, "last check, after the load", waited.Round(100*time.Millisecond))
	if slow, err := slowestDelivery(ctx, env, ids, c.loadStart); err == nil && slow != "" {
		rep.info(phase, "slowest delivery (t = since the load started)", slow)
	}
	if n, err := riverWorkers(ctx, env); err == nil {
		rep.info(phase, "River clients that worked deliveries", n)
	}
	if len(missingNames) > 0 {
		rep.note("phase 4: alerts never delivered within %s of the load: %s", deliveryDeadline, sample(missingNames))
	}
	return nil
}

// firedAlerts counts usage_alerts rows per alert of the organisations.
func firedAlerts(ctx context.Context, env *environment, ids []string) (map[alertKey]int, error) {
	rows, err := env.db.Query(ctx, `SELECT org_id, meter, percent, count(*) FROM usage_alerts
		WHERE org_id = ANY($1) GROUP BY org_id, meter, percent`, ids)
	if err != nil {
		return nil, fmt.Errorf("read usage_alerts: %w", err)
	}
	defer rows.Close()
	out := map[alertKey]int{}
	for rows.Next() {
		var k alertKey
		var n int
		if err := rows.Scan(&k.org, &k.meter, &k.percent, &n); err != nil {
			return nil, err
		}
		out[k] = n
	}
	return out, rows.Err()
}

func pendingDeliveries(ctx context.Context, env *environment, ids []string) (int, error) {
	var n int
	err := env.db.QueryRow(ctx, `SELECT count(*) FROM webhook_deliveries WHERE org_id = ANY($1) AND status <> 'succeeded'`, ids).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count pending deliveries: %w", err)
	}
	return n, nil
}

// alertEvents counts the outbound usage events per alert.
func alertEvents(ctx context.Context, env *environment, ids []string) (map[alertKey]int, error) {
	rows, err := env.db.Query(ctx, `SELECT payload FROM outbound_events WHERE org_id = ANY($1) AND type LIKE 'usage.%'`, ids)
	if err != nil {
		return nil, fmt.Errorf("read outbound_events: %w", err)
	}
	defer rows.Close()
	out := map[alertKey]int{}
	for rows.Next() {
		var raw string
		if err := rows.Scan(&raw); err != nil {
			return nil, err
		}
		var p hookPayload
		if err := json.Unmarshal([]byte(raw), &p); err != nil {
			return nil, fmt.Errorf("outbound event payload: %w", err)
		}
		out[alertKey{p.OrganizationID, p.Data.Meter, p.Data.Percent}]++
	}
	return out, rows.Err()
}

func countAttempts(ctx context.Context, env *environment, ids []string) (int, int, error) {
	var all, failed int
	err := env.db.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE a.status_code IS NULL OR a.status_code NOT BETWEEN 200 AND 299)
		FROM webhook_delivery_attempts a JOIN webhook_deliveries d ON d.id = a.delivery_id WHERE d.org_id = ANY($1)`, ids).Scan(&all, &failed)
	if err != nil {
		return 0, 0, fmt.Errorf("count delivery attempts: %w", err)
	}
	return all, failed, nil
}

// slowestDelivery describes the delivery delivered last: when it was
// created and each attempt's time and outcome.
func slowestDelivery(ctx context.Context, env *environment, ids []string, start time.Time) (string, error) {
	rows, err := env.db.Query(ctx, `SELECT d.created_at, a.attempted_at, COALESCE(a.status_code, 0), a.error
		FROM webhook_delivery_attempts a JOIN webhook_deliveries d ON d.id = a.delivery_id
		WHERE d.id = (SELECT id FROM webhook_deliveries WHERE org_id = ANY($1) AND delivered_at IS NOT NULL
		              ORDER BY delivered_at DESC LIMIT 1)
		ORDER BY a.number`, ids)
	if err != nil {
		return "", err
	}
	defer rows.Close()
	t := func(at time.Time) string { return fmt.Sprintf("t+%.1fs", at.Sub(start).Seconds()) }
	var parts []string
	for rows.Next() {
		var created, at time.Time
		var code int
		var msg string
		if err := rows.Scan(&created, &at, &code, &msg); err != nil {
			return "", err
		}
		if len(parts) == 0 {
			parts = append(parts, "created "+t(created))
		}
		outcome := fmt.Sprint(code)
		if code == 0 {
			outcome = "no answer"
		}
		parts = append(parts, t(at)+" "+outcome)
	}
	return strings.Join(parts, ", "), rows.Err()
}

// riverWorkers counts the River clients (one per process) that attempted
// a delivery job.
func riverWorkers(ctx context.Context, env *environment) (int, error) {
	var n int
	err := env.db.QueryRow(ctx, `SELECT count(DISTINCT w) FROM river_job, unnest(attempted_by) AS w
		WHERE kind = 'outbound_webhook_delivery'`).Scan(&n)
	return n, err
}

// deliveredByAlert groups the messages each endpoint received by the alert
// they report. A message that reports another organisation, meter, period
// or an event type the alert does not send is keyed to no alert (percent
// 0), so it counts as a stray.
func deliveredByAlert(got map[string][]hookMessage, byID map[string]*usageOrg) map[alertKey][]hookMessage {
	byName := map[string]*usageOrg{}
	for _, o := range byID {
		byName[o.name] = o
	}
	out := map[alertKey][]hookMessage{}
	for name, msgs := range got {
		o := byName[name]
		for _, m := range msgs {
			k := alertKey{m.payload.OrganizationID, m.payload.Data.Meter, m.payload.Data.Percent}
			var am *alertMeter
			if o != nil {
				am = o.alerts.meter(k.meter)
			}
			if am == nil || k.org != o.id || m.payload.Type != am.eventType(k.percent) {
				k.percent = 0
			}
			out[k] = append(out[k], m)
		}
	}
	return out
}

// outOfOrder counts, per organisation and meter, deliveries whose sequence
// is not above that of the lower threshold's: thresholds are crossed in
// order, and the sequence follows commit order.
func outOfOrder(got map[alertKey][]hookMessage, byID map[string]*usageOrg) int {
	type seq struct {
		percent int
		seq     int64
	}
	per := map[[2]string][]seq{}
	for k, msgs := range got {
		if k.percent == 0 || len(msgs) != 1 {
			continue
		}
		om := [2]string{k.org, k.meter}
		per[om] = append(per[om], seq{k.percent, msgs[0].payload.Sequence})
	}
	bad := 0
	for _, s := range per {
		slices.SortFunc(s, func(a, b seq) int { return a.percent - b.percent })
		for i := 1; i < len(s); i++ {
			if s[i].seq <= s[i-1].seq {
				bad++
			}
		}
	}
	return bad
}

// queryAlerts reads usageAlerts(period) for one organisation on t and
// counts what differs from the thresholds its totals crossed: a missing or
// extra alert, or one whose figures are off.
func queryAlerts(ctx context.Context, env *environment, t *tollgate, o *usageOrg, period string) (int, error) {
	var out struct {
		UsageAlerts []struct {
			Meter        string
			Period       *string
			Percent      int
			Used, Limit  int64
			LimitReached bool
		}
	}
	if err := query(ctx, newHTTPClient(10*time.Second), t.url, bearer(o.tok), usageAlertsQuery, map[string]any{"period": period}, &out); err != nil {
		return 0, fmt.Errorf("usageAlerts on %s: %w", t.name, err)
	}
	want := map[alertKey]bool{}
	for _, m := range o.alerts.meters {
		for _, p := range m.expected() {
			want[alertKey{o.id, m.meter, p}] = true
		}
	}
	bad := 0
	seen := map[alertKey]bool{}
	for _, a := range out.UsageAlerts {
		k := alertKey{o.id, a.Meter, a.Percent}
		m := o.alerts.meter(a.Meter)
		ok := m != nil && a.Period != nil && *a.Period == period && want[k] && !seen[k] && a.Limit == m.limit &&
			a.Used >= thresholdOf(a.Limit, a.Percent) && a.Used <= m.total && a.LimitReached == (m.hard && a.Percent == 100)
		seen[k] = true
		if !ok {
			bad++
		}
	}
	for k := range want {
		if !seen[k] {
			bad++
		}
	}
	return bad, nil
}
