package usage

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/tollgate-billing/tollgate/internal/plans"
)

// Back-dated events on meters that never reset.
//
// A meter that never resets is a running total, and its history (the total
// at the end of each UTC day: what usage(period:) shows for a past month
// and usageSeries day by day) must be one the meter could have had: never
// below zero, never past a hard limit. An event changes its own day and
// every day after it. One dated on the last day an event may now carry
// (today, or tomorrow within FutureSkew of midnight) changes only the
// latest point, which is the period total the group judges anyway. One
// dated earlier is judged against every day from its own on: the group's
// transaction reads the meter's daily rollups from that day on, under the
// period total's lock, and judges the event as it would have been judged
// on each of those days.
//
// It is judged on each of those days against the hard limit of every
// plan the organisation was on while that day's total stood (from the end
// of the day until the next day with a change, or until now), as billing's
// plan history tells (PlanHistory): after a downgrade, an upload dated
// under the old plan needs room under the old limit until the downgrade
// and under the new one since; after an upgrade, one dated while the old
// plan's limit was full is refused though the new limit has room. Reading
// that history costs one query, made only by a call that has such an
// event; every other event is judged by the cached current plan.
//
// The granularity is the day: a day's total is its total at the end of
// the day (an event dated at 10:00 counts as if it had been there all
// day), and the event's own day is judged from the event's time on.

// backdated reports whether an event may change a day of its meter's
// history before the latest.
func backdated(p *pending, now time.Time) bool {
	return p.limit.Reset == plans.Never && dayOf(p.at).Before(dayOf(now.Add(FutureSkew)))
}

// dayDelta is the change of one running total on one UTC day.
type dayDelta struct {
	day  int64 // unix seconds of UTC midnight
	used int64
}

// dayHistory is the part of one running total's history that the group's
// events may change: each day's change from the earliest day they are
// dated on, ascending, as committed and then as the group accepts events.
type dayHistory struct {
	days []dayDelta
}

// add records an accepted event's change on its day.
func (h *dayHistory) add(day int64, q int64) {
	i, found := slices.BinarySearchFunc(h.days, day, func(d dayDelta, day int64) int { return cmp.Compare(d.day, day) })
	if !found {
		h.days = slices.Insert(h.days, i, dayDelta{day: day})
	}
	h.days[i].used = saturatingAdd(h.days[i].used, q)
}

// point is the total at the end of one day.
type point struct {
	day   int64
	total int64
}

// extremes returns the lowest and the highest total at the end of day and
// of every later day, given the total now (cur); of equal totals, the
// earliest day.
func (h *dayHistory) extremes(day int64, cur int64) (lo, hi point) {
	r := cur
	first := true
	see := func(d int64) {
		p := point{day: d, total: r}
		if first || p.total <= lo.total {
			lo = p
		}
		if first || p.total >= hi.total {
			hi = p
		}
		first = false
	}
	for i := len(h.days) - 1; i >= 0 && h.days[i].day > day; i-- {
		see(h.days[i].day) // r is the total at the end of this day
		if u := h.days[i].used; u != math.MinInt64 {
			r = saturatingAdd(r, -u)
		}
	}
	see(day)
	return lo, hi
}

// backdatedSince returns, for each running total a group's back-dated
// events add to, the earliest day they are dated on.
func backdatedSince(group []*request, now time.Time) map[counterID]int64 {
	var since map[counterID]int64
	for _, req := range group {
		for i := range req.batch {
			p := &req.batch[i]
			if !backdated(p, now) {
				continue
			}
			if since == nil {
				since = map[counterID]int64{}
			}
			d := dayOf(p.at).Unix()
			if cur, ok := since[p.totalID()]; !ok || d < cur {
				since[p.totalID()] = d
			}
		}
	}
	return since
}

// readHistory reads the daily changes of each running total in since from
// its day on. The caller holds the totals' locks, which every writer of
// their daily rollups takes too, so the history cannot change under it.
func (r rollups) readHistory(since map[counterID]int64) (map[counterID]*dayHistory, error) {
	if len(since) == 0 {
		return nil, nil
	}
	out := make(map[counterID]*dayHistory, len(since))
	for id, day := range since {
		var rows []UsageDailyRollup
		err := r.tx.Where("org_id = ? AND meter = ? AND day >= ?", id.org, id.meter, time.Unix(day, 0).UTC()).
			Order("day").Find(&rows).Error
		if err != nil {
			return nil, fmt.Errorf("read usage history: %w", err)
		}
		h := &dayHistory{days: make([]dayDelta, 0, len(rows)+1)}
		for _, row := range rows {
			h.days = append(h.days, dayDelta{day: dayOf(row.Day).Unix(), used: row.Used})
		}
		out[id] = h
	}
	return out, nil
}

// PlanHistory tells which plans an organisation was on from a past time
// until now, in order, the first from that time. Billing implements it;
// NewService uses it when its PlanSource does too (without, a back-dated
// event is judged by the current plan alone).
type PlanHistory interface {
	PlansSince(ctx context.Context, orgID string, t time.Time) ([]plans.Span, error)
}

// limitSpan is a meter's limit under one plan, in force from from (unix
// seconds) until the next span's from.
type limitSpan struct {
	from  int64
	limit plans.Limit
}

// limitsSince gives each back-dated event of a call its meter's limit
// under every plan in force since its time: one read of the plan history
// for the whole call, none for a call without such events.
func (s *Service) limitsSince(ctx context.Context, orgID string, batch []pending, now time.Time) error {
	var first time.Time
	for i := range batch {
		if p := &batch[i]; backdated(p, now) && (first.IsZero() || p.at.Before(first)) {
			first = p.at
		}
	}
	if first.IsZero() || s.history == nil {
		return nil
	}
	spans, err := s.history.PlansSince(ctx, orgID, first)
	if err != nil {
		return fmt.Errorf("read plan history: %w", err)
	}
	byMeter := map[string][]limitSpan{}
	for i := range batch {
		p := &batch[i]
		if !backdated(p, now) {
			continue
		}
		ls, ok := byMeter[p.meter]
		if !ok {
			m, _ := s.catalog.Meter(p.meter)
			ls = make([]limitSpan, len(spans))
			for j, sp := range spans {
				ls[j] = limitSpan{from: sp.From.Unix(), limit: limitOf(sp.Plan, m)}
			}
			byMeter[p.meter] = ls
		}
		p.since = ls
	}
	return nil
}

// overLimit returns the earliest total, from p's own day on, that p would
// take past the hard limit of a plan in force while that total stood, with
// that limit; when none would, the current total and no limit.
func (h *dayHistory) overLimit(p *pending, cur int64) (point, plans.Limit) {
	var (
		over  = point{total: cur}
		limit plans.Limit
	)
	r, end := cur, int64(math.MaxInt64)
	// judge holds the total r, standing from from until end, to each plan
	// in force then.
	judge := func(day, from int64) {
		for i, sp := range p.since {
			spEnd := int64(math.MaxInt64)
			if i+1 < len(p.since) {
				spEnd = p.since[i+1].from
			}
			if sp.from < end && spEnd > from && admission(sp.limit, r, p.quantity) == CodeUsageLimitExceeded {
				over, limit = point{day: day, total: r}, sp.limit
				return
			}
		}
	}
	day := dayOf(p.at).Unix()
	for i := len(h.days) - 1; i >= 0 && h.days[i].day > day; i-- {
		d := h.days[i].day
		judge(d, d+secondsPerDay-1) // r is the total at the end of this day
		end = d + secondsPerDay - 1
		if u := h.days[i].used; u != math.MinInt64 {
			r = saturatingAdd(r, -u)
		}
	}
	judge(day, p.at.Unix())
	return over, limit
}

const secondsPerDay = 24 * 60 * 60
