package usage

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"gorm.io/gorm"

	"github.com/tollgate-billing/tollgate/internal/apperr"
	"github.com/tollgate-billing/tollgate/internal/plans"
)

// Usage alerts: an organisation hears when a meter's period total reaches a
// percentage of its limit. Each (organisation, meter, period, percent) fires
// once: the alert row is inserted, keyed on exactly that, in the group
// commit transaction that counted the crossing usage, and only an insert
// that added the row tells OnAlert. A retried idempotency key counts
// nothing and so crosses nothing; concurrent groups, on this replica or
// another, queue on the rollup row lock and the later one sees the total
// already past the threshold; the key settles anything else.

// Alert is a threshold of a meter's limit that an organisation's usage
// reached in a period.
type Alert struct {
	OrgID       string
	Meter       string
	PeriodStart time.Time // 1970-01-01 for meters that never reset
	Percent     int
	// Used is the period total right after the usage that crossed the
	// threshold; Limit and Hard are the plan's limit then.
	Used, Limit int64
	Hard        bool
	FiredAt     time.Time
}

// LimitReached tells an alert for the whole of a hard limit, past which
// usage is refused, from a warning.
func (a Alert) LimitReached() bool { return a.Hard && a.Percent == 100 }

// Period is the alert's month, YYYY-MM, or "" for a meter that never resets.
func (a Alert) Period() string {
	if a.PeriodStart.Equal(allTime) {
		return ""
	}
	return a.PeriodStart.Format("2006-01")
}

// AlertHook hears of each alert in the transaction that fires it, so that
// what it writes commits or rolls back with the usage. app wires it to the
// outbound events.
type AlertHook func(ctx context.Context, tx *gorm.DB, a Alert) error

// SetAlerts replaces the organisation's alert thresholds on a meter with
// percents (any order; empty turns the meter's alerts off) and returns them
// as stored, ascending. Thresholds already passed this period do not fire
// afterwards: an alert fires when usage crosses it.
func (s *Service) SetAlerts(ctx context.Context, orgID, meter string, percents []int) ([]int, error) {
	var fe apperr.FieldErrors
	if _, ok := s.catalog.Meter(meter); !ok {
		fe.Add("meter", CodeUnknownMeter, s.unknownMeterMessage(meter))
	}
	sorted := slices.Clone(percents)
	slices.Sort(sorted)
	if msg := plans.ValidAlerts(sorted); msg != "" {
		fe.Add("percents", "INVALID", msg)
	}
	if err := fe.Err(); err != nil {
		return nil, err
	}
	if sorted == nil {
		sorted = []int{}
	}
	text := make([]string, len(sorted))
	for i, p := range sorted {
		text[i] = strconv.Itoa(p)
	}
	err := s.db.WithContext(ctx).Exec(`INSERT INTO usage_alert_settings (org_id, meter, percents, updated_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (org_id, meter) DO UPDATE SET percents = excluded.percents, updated_at = excluded.updated_at`,
		orgID, meter, strings.Join(text, ","), s.clock.Now()).Error
	if err != nil {
		return nil, fmt.Errorf("set usage alerts of org %s on %s: %w", orgID, meter, err)
	}
	return sorted, nil
}

// AlertSetting is the thresholds in force on one of an organisation's
// meters.
type AlertSetting struct {
	Meter string
	// Percents fire as usage reaches them, ascending: the organisation's own
	// (SetAlerts) or its plan's; none on a meter its plan does not limit.
	Percents []int
	// Own says the organisation set its own thresholds on the meter
	// (setUsageAlerts), which stay while a plan without a limit is in force.
	Own bool
}

// AlertSettings lists the thresholds in force on each of the catalogue's
// meters for the organisation, in the catalogue's order: what SetAlerts
// stored, else the plan's.
func (s *Service) AlertSettings(ctx context.Context, orgID string) ([]AlertSetting, error) {
	plan, _, err := s.plans.PlanOf(ctx, orgID)
	if err != nil {
		return nil, fmt.Errorf("usage alert settings of org %s: %w", orgID, err)
	}
	rows, err := s.db.WithContext(ctx).Raw(`SELECT meter, percents FROM usage_alert_settings WHERE org_id = ?`, orgID).Rows()
	if err != nil {
		return nil, fmt.Errorf("usage alert settings of org %s: %w", orgID, err)
	}
	defer rows.Close()
	own := map[string][]int{}
	for rows.Next() {
		var meter, text string
		if err := rows.Scan(&meter, &text); err != nil {
			return nil, fmt.Errorf("usage alert settings of org %s: %w", orgID, err)
		}
		if own[meter], err = parsePercents(text); err != nil {
			return nil, fmt.Errorf("usage alert settings of org %s on %s: %w", orgID, meter, err)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("usage alert settings of org %s: %w", orgID, err)
	}
	out := make([]AlertSetting, 0, len(s.catalog.Meters()))
	for _, m := range s.catalog.Meters() {
		set := AlertSetting{Meter: m.Name, Percents: []int{}}
		percents, ok := own[m.Name]
		set.Own = ok
		if l, limited := plan.LimitFor(m.Name); limited && !l.Unlimited {
			if !ok {
				percents = l.Alerts
			}
			set.Percents = append(set.Percents, percents...)
		}
		out = append(out, set)
	}
	return out, nil
}

// parsePercents reads usage_alert_settings.percents: comma-separated, "" for
// none.
func parsePercents(text string) ([]int, error) {
	percents := []int{}
	for _, f := range strings.Split(text, ",") {
		if f == "" {
			continue
		}
		p, err := strconv.Atoi(f)
		if err != nil {
			return nil, fmt.Errorf("%q: %w", text, err)
		}
		percents = append(percents, p)
	}
	return percents, nil
}

// Alerts lists the organisation's alerts that fired in a period
// ("YYYY-MM", "" for the current month), oldest first. Alerts of meters
// that never reset are listed in the month they fired.
func (s *Service) Alerts(ctx context.Context, orgID, period string) ([]Alert, error) {
	p, err := parsePeriod(period, s.clock.Now())
	if err != nil {
		return nil, err
	}
	rows, err := s.db.WithContext(ctx).Raw(`SELECT meter, period_start, percent, used, limit_value, hard, fired_at
		FROM usage_alerts WHERE org_id = ? AND fired_at >= ? AND fired_at < ?
		ORDER BY fired_at, meter, percent`, orgID, p.Start, p.End).Rows()
	if err != nil {
		return nil, fmt.Errorf("usage alerts of org %s: %w", orgID, err)
	}
	defer rows.Close()
	var out []Alert
	for rows.Next() {
		a := Alert{OrgID: orgID}
		if err := rows.Scan(&a.Meter, &a.PeriodStart, &a.Percent, &a.Used, &a.Limit, &a.Hard, &a.FiredAt); err != nil {
			return nil, fmt.Errorf("usage alerts of org %s: %w", orgID, err)
		}
		a.PeriodStart, a.FiredAt = a.PeriodStart.UTC(), a.FiredAt.UTC()
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("usage alerts of org %s: %w", orgID, err)
	}
	return out, nil
}

// thresholdOf is the smallest total at or past percent of limit, computed
// without overflow for any int64 limit.
func thresholdOf(limit int64, percent int) int64 {
	p := int64(percent)
	return limit/100*p + (limit%100*p+99)/100
}

// crosses reports whether a total going from before to after passes the
// threshold of percent of limit.
func crosses(before, after, limit int64, percent int) bool {
	t := thresholdOf(limit, percent)
	return before < t && t <= after
}

// fireAlerts runs in a group's transaction after the rollups are updated:
// for each period total the group raised past a threshold, it inserts the
// alert and tells s.OnAlert of each one inserted. after holds the totals as
// now written and added what the group added to each.
func (s *Service) fireAlerts(ctx context.Context, r rollups, group []*request, added map[counterID]int64, after map[counterID]counter) error {
	limits := map[counterID]plans.Limit{}
	for _, req := range group {
		for i := range req.batch {
			limits[req.batch[i].totalID()] = req.batch[i].limit
		}
	}
	// Only totals that passed some whole percent can have crossed a
	// threshold, whatever an organisation set; the others cost no query.
	var crossed []counterID
	for id, c := range after {
		l := limits[id]
		if l.Unlimited || l.Limit <= 0 || added[id] <= 0 {
			continue
		}
		before := c.used - added[id]
		for p := 1; p <= 100; p++ {
			if crosses(before, c.used, l.Limit, p) {
				crossed = append(crossed, id)
				break
			}
		}
	}
	if len(crossed) == 0 {
		return nil
	}
	slices.SortFunc(crossed, counterID.compare)
	own, err := r.alertSettings(crossed)
	if err != nil {
		return err
	}
	var alerts []Alert
	for _, id := range crossed {
		l, c := limits[id], after[id]
		percents, ok := own[[2]string{id.org, id.meter}]
		if !ok {
			percents = l.Alerts
		}
		for _, p := range percents {
			if crosses(c.used-added[id], c.used, l.Limit, p) {
				alerts = append(alerts, Alert{
					OrgID: id.org, Meter: id.meter, PeriodStart: id.periodStart(), Percent: p,
					Used: c.used, Limit: l.Limit, Hard: l.Hard, FiredAt: r.now,
				})
			}
		}
	}
	fired, err := r.insertAlerts(alerts)
	if err != nil {
		return err
	}
	for _, a := range alerts {
		if _, ok := fired[alertKey(a.OrgID, a.Meter, a.PeriodStart, a.Percent)]; !ok || s.OnAlert == nil {
			continue
		}
		if err := s.OnAlert(ctx, r.tx, a); err != nil {
			return fmt.Errorf("usage alert %s %d%% of org %s: %w", a.Meter, a.Percent, a.OrgID, err)
		}
	}
	return nil
}

// alertSettings reads the organisations' own thresholds on the totals'
// meters, keyed by organisation and meter.
func (r rollups) alertSettings(ids []counterID) (map[[2]string][]int, error) {
	args := make([]any, 0, 2*len(ids))
	for _, id := range ids {
		args = append(args, id.org, id.meter)
	}
	rows, err := r.query("SELECT org_id, meter, percents FROM usage_alert_settings WHERE (org_id, meter) IN ("+
		rowsOf("(?, ?)", len(ids))+")", args...)
	if err != nil {
		return nil, fmt.Errorf("read usage alert settings: %w", err)
	}
	defer rows.Close()
	out := map[[2]string][]int{}
	for rows.Next() {
		var org, meter, text string
		if err := rows.Scan(&org, &meter, &text); err != nil {
			return nil, fmt.Errorf("read usage alert settings: %w", err)
		}
		percents, err := parsePercents(text)
		if err != nil {
			return nil, fmt.Errorf("usage alert settings of org %s on %s: %w", org, meter, err)
		}
		out[[2]string{org, meter}] = percents
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read usage alert settings: %w", err)
	}
	return out, nil
}

func alertKey(org, meter string, start time.Time, percent int) string {
	return org + "\x00" + meter + "\x00" + strconv.FormatInt(start.Unix(), 10) + "\x00" + strconv.Itoa(percent)
}

// insertAlerts inserts the alerts not yet recorded and returns the keys of
// those it inserted; an alert already there (fired by an earlier group, or
// by another replica) is left as it is.
func (r rollups) insertAlerts(alerts []Alert) (map[string]struct{}, error) {
	fired := map[string]struct{}{}
	if len(alerts) == 0 {
		return fired, nil
	}
	args := make([]any, 0, 8*len(alerts))
	for _, a := range alerts {
		args = append(args, a.OrgID, a.Meter, a.PeriodStart, a.Percent, a.Used, a.Limit, a.Hard, a.FiredAt)
	}
	rows, err := r.query("INSERT INTO usage_alerts (org_id, meter, period_start, percent, used, limit_value, hard, fired_at) VALUES "+
		rowsOf("(?, ?, ?, ?, ?, ?, ?, ?)", len(alerts))+
		" ON CONFLICT (org_id, meter, period_start, percent) DO NOTHING RETURNING org_id, meter, period_start, percent", args...)
	if err != nil {
		return nil, fmt.Errorf("insert usage alerts: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			org, meter string
			start      time.Time
			percent    int
		)
		if err := rows.Scan(&org, &meter, &start, &percent); err != nil {
			return nil, fmt.Errorf("insert usage alerts: %w", err)
		}
		fired[alertKey(org, meter, start, percent)] = struct{}{}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("insert usage alerts: %w", err)
	}
	return fired, nil
}
