package usage

import (
	"context"
	"fmt"
	"time"

	"gorm.io/gorm"

	"github.com/tollgate-billing/tollgate/internal/apperr"
	"github.com/tollgate-billing/tollgate/internal/plans"
)

// Every report reads rollups only: their size grows with meters, endpoints
// and days, never with the number of events.

// Usage reports every meter in a period ("YYYY-MM"; "" is the current UTC
// month), in catalogue order. A monthly meter shows its sum over the month; a
// meter that never resets shows its running total at the end of the period
// (now, for the current one).
func (s *Service) Usage(ctx context.Context, orgID string, period string) (Period, []MeterUsage, error) {
	now := s.clock.Now()
	p, err := parsePeriod(period, now)
	if err != nil {
		return Period{}, nil, err
	}
	plan, _, err := s.plans.PlanOf(ctx, orgID)
	if err != nil {
		return Period{}, nil, fmt.Errorf("usage of org %s: %w", orgID, err)
	}
	db := s.db.WithContext(ctx)
	keys := make([]rollupKey, 0, len(s.catalog.Meters()))
	var pastNever []string
	for _, m := range s.catalog.Meters() {
		if m.Reset == plans.Never && !p.End.After(now) {
			pastNever = append(pastNever, m.Name)
			continue
		}
		keys = append(keys, keyOf(m.Name, periodStart(m.Reset, p.Start)))
	}
	totals, err := readCounters(db, orgID, keys)
	if err != nil {
		return Period{}, nil, fmt.Errorf("usage of org %s: %w", orgID, err)
	}
	// A past period's running total is the sum of the daily deltas before
	// its end.
	var past map[string]int64
	if len(pastNever) > 0 {
		if past, err = runningTotals(db, orgID, pastNever, p.End); err != nil {
			return Period{}, nil, fmt.Errorf("usage of org %s: %w", orgID, err)
		}
	}
	out := make([]MeterUsage, 0, len(s.catalog.Meters()))
	for _, m := range s.catalog.Meters() {
		used, ok := past[m.Name]
		if !ok {
			used = totals[keyOf(m.Name, periodStart(m.Reset, p.Start))].used
		}
		out = append(out, meterUsage(plan, m, used, p.Start))
	}
	return p, out, nil
}

// EndpointUsage is one endpoint's use of one meter in a period.
type EndpointUsage struct {
	Endpoint, Meter string
	Used            int64
	// Cursor is the row's place in the order: pass it as after for the
	// rows that follow it.
	Cursor string
}

// ByEndpoint reports usage per endpoint and meter in a period ("" is the
// current month), largest first (ties by meter, then endpoint), at most
// first rows after the row whose Cursor is after ("" for the top); meter ""
// means every meter. first above MaxEndpointPage is capped; below 1, or an
// after that is not a cursor of this list, is BAD_USER_INPUT. Only the page
// is read: the top rows are chosen in SQL. Meters that never reset show
// their net change in the month. Events recorded without an endpoint are
// not listed.
func (s *Service) ByEndpoint(ctx context.Context, orgID, period, meter string, first int, after string) ([]EndpointUsage, error) {
	if first < 1 {
		return nil, badInput("first", "first must be at least 1")
	}
	first = min(first, MaxEndpointPage)
	p, err := parsePeriod(period, s.clock.Now())
	if err != nil {
		return nil, err
	}
	q := s.db.WithContext(ctx).Model(&UsageEndpointRollup{}).
		Where("org_id = ? AND period_start = ? AND used <> 0", orgID, p.Start)
	if meter != "" {
		if _, ok := s.catalog.Meter(meter); !ok {
			return nil, s.unknownMeter(meter)
		}
		q = q.Where("meter = ?", meter)
	}
	if after != "" {
		c, ok := decodeEndpointCursor(after)
		if !ok {
			return nil, apperr.BadCursor(nil)
		}
		// The rows past c in the order used DESC, meter, endpoint.
		q = q.Where("used < ? OR (used = ? AND (meter > ? OR (meter = ? AND endpoint > ?)))",
			c.Used, c.Used, c.Meter, c.Meter, c.Endpoint)
	}
	var rows []UsageEndpointRollup
	if err := q.Order("used DESC, meter, endpoint").Limit(first).Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("usage by endpoint of org %s: %w", orgID, err)
	}
	out := make([]EndpointUsage, len(rows))
	for i, r := range rows {
		out[i] = EndpointUsage{Endpoint: r.Endpoint, Meter: r.Meter, Used: r.Used}
		out[i].Cursor = encodeEndpointCursor(out[i])
	}
	return out, nil
}

// Point is one day of a series.
type Point struct {
	Date time.Time // UTC midnight
	Used int64
}

// Series reports one meter day by day, from and to included (their UTC
// dates count), at most MaxSeriesDays points, days without usage as zero,
// ending at today when to is later (from after today is refused). A
// monthly meter shows each day's usage; a meter that never resets shows its
// running total at the end of each day, which is what a storage chart needs.
func (s *Service) Series(ctx context.Context, orgID, meter string, from, to time.Time) ([]Point, error) {
	m, ok := s.catalog.Meter(meter)
	if !ok {
		return nil, s.unknownMeter(meter)
	}
	from, to = dayOf(from), dayOf(to)
	if from.Before(earliest) {
		return nil, badInput("from", fmt.Sprintf("from (%s) is before %s; Tollgate has no usage that old",
			from.Format(time.DateOnly), earliest.Format(time.DateOnly)))
	}
	if to.Before(from) {
		return nil, badInput("to", fmt.Sprintf("to (%s) is before from (%s)", to.Format(time.DateOnly), from.Format(time.DateOnly)))
	}
	// The same rule as a period (parsePeriod): a range that has not begun
	// is refused, and one running past today ends at today, so no chart
	// shows values for days that have not happened.
	today := dayOf(s.clock.Now())
	if from.After(today) {
		return nil, badInput("from", fmt.Sprintf("from (%s) has not started yet", from.Format(time.DateOnly)))
	}
	// The span is judged as asked, then cut at today.
	days := int(to.Sub(from).Hours()/24) + 1
	if days > MaxSeriesDays {
		return nil, badInput("to", fmt.Sprintf("a series covers at most %d days; %s to %s is %d", MaxSeriesDays,
			from.Format(time.DateOnly), to.Format(time.DateOnly), days))
	}
	if to.After(today) {
		to = today
		days = int(to.Sub(from).Hours()/24) + 1
	}
	db := s.db.WithContext(ctx)
	var rows []UsageDailyRollup
	err := db.Where("org_id = ? AND meter = ? AND day >= ? AND day <= ?", orgID, m.Name, from, to).Find(&rows).Error
	if err != nil {
		return nil, fmt.Errorf("usage series of org %s: %w", orgID, err)
	}
	byDay := make(map[int64]int64, len(rows))
	for _, r := range rows {
		byDay[r.Day.Unix()] = r.Used
	}
	var running int64
	if m.Reset == plans.Never {
		before, err := runningTotals(db, orgID, []string{m.Name}, from)
		if err != nil {
			return nil, fmt.Errorf("usage series of org %s: %w", orgID, err)
		}
		running = before[m.Name]
	}
	out := make([]Point, days)
	for i := range out {
		d := from.AddDate(0, 0, i)
		used := byDay[d.Unix()]
		if m.Reset == plans.Never {
			running = saturatingAdd(running, used)
			used = running
		}
		out[i] = Point{Date: d, Used: used}
	}
	return out, nil
}

// runningTotals is the running total of each meter (that never resets) at
// the end of the days before before: its daily changes added up in day
// order, saturating at the int64 bounds as the day rows themselves do, and
// as Series goes on adding them. The database does not add them: SQLite's
// SUM fails on an overflow, and Postgres's numeric sum does not fit the
// int64 it is read into, either of which would answer INTERNAL. It reads
// one row per meter and day.
func runningTotals(db *gorm.DB, orgID string, meters []string, before time.Time) (map[string]int64, error) {
	rows, err := db.Model(&UsageDailyRollup{}).Select("meter, used").
		Where("org_id = ? AND meter IN ? AND day < ?", orgID, meters, before).Order("meter, day").Rows()
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := make(map[string]int64, len(meters))
	for rows.Next() {
		var (
			meter string
			used  int64
		)
		if err := rows.Scan(&meter, &used); err != nil {
			return nil, err
		}
		out[meter] = saturatingAdd(out[meter], used)
	}
	return out, rows.Err()
}

func (s *Service) unknownMeter(meter string) error {
	return badInput("meter", s.unknownMeterMessage(meter))
}
