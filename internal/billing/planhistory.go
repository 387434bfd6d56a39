package billing

import (
	"context"
	"fmt"
	"time"

	"gorm.io/gorm"

	"github.com/tollgate-billing/tollgate/internal/orgs"
	"github.com/tollgate-billing/tollgate/internal/plans"
)

// Plan history: which plan an organisation was on when. Every change of
// organizations.plan_id (refreshOrgPlan, the only writer) closes the open
// period and opens the next in the same transaction, under the
// organisation's lock. Migration 00058 opened one period per organisation
// from its creation with its plan then; an organisation created since has
// no period until its plan first changes, and has been on its current plan
// all along.

// PlanPeriod is a row of plan_periods: the organisation was on PlanID from
// ValidFrom until ValidTo (nil for the period in force now).
type PlanPeriod struct {
	OrgID     string `gorm:"primaryKey"`
	PlanID    string
	ValidFrom time.Time `gorm:"primaryKey"`
	ValidTo   *time.Time
}

func (PlanPeriod) TableName() string { return "plan_periods" }

// recordPlanChange closes the organisation's open plan period at at and
// opens one of planID, in tx; the caller holds the organisation's lock.
// An organisation without an open period (created after migration 00058)
// first gets the period of the plan it had since it was created.
func recordPlanChange(tx *gorm.DB, org orgs.Organization, planID string, at time.Time) error {
	// To the microsecond, as Postgres keeps it: a finer time would be
	// rounded there, onto the start of the period it closes.
	at = at.UTC().Truncate(time.Microsecond)
	var open []PlanPeriod
	if err := tx.Where("org_id = ? AND valid_to IS NULL", org.ID).Find(&open).Error; err != nil {
		return fmt.Errorf("read plan period of org %s: %w", org.ID, err)
	}
	switch {
	case len(open) == 0:
		from := org.CreatedAt.UTC().Truncate(time.Microsecond)
		if from.After(at) {
			from = at
		}
		if from.Before(at) {
			if err := tx.Create(&PlanPeriod{OrgID: org.ID, PlanID: org.PlanID, ValidFrom: from, ValidTo: &at}).Error; err != nil {
				return fmt.Errorf("record plan period of org %s: %w", org.ID, err)
			}
		}
	case !open[0].ValidFrom.Before(at):
		// Changed again within the same instant: the period that opened
		// then never was in force.
		err := tx.Model(&PlanPeriod{}).Where("org_id = ? AND valid_from = ?", org.ID, open[0].ValidFrom).
			Update("plan_id", planID).Error
		if err != nil {
			return fmt.Errorf("record plan period of org %s: %w", org.ID, err)
		}
		return nil
	default:
		err := tx.Model(&PlanPeriod{}).Where("org_id = ? AND valid_from = ?", org.ID, open[0].ValidFrom).
			Update("valid_to", at).Error
		if err != nil {
			return fmt.Errorf("close plan period of org %s: %w", org.ID, err)
		}
	}
	if err := tx.Create(&PlanPeriod{OrgID: org.ID, PlanID: planID, ValidFrom: at}).Error; err != nil {
		return fmt.Errorf("record plan period of org %s: %w", org.ID, err)
	}
	return nil
}

// PlanAt returns the plan the organisation was on at t. Before its first
// recorded period it is the first recorded plan; without any, its current
// plan.
func (s *Service) PlanAt(ctx context.Context, orgID string, t time.Time) (plans.Plan, error) {
	spans, err := s.PlansSince(ctx, orgID, t)
	if err != nil {
		return plans.Plan{}, err
	}
	return spans[0].Plan, nil
}

// PlansSince returns the plans the organisation was on from t to now, in
// order; the first span starts at t. A plan since removed from the plans
// file reads as free, as the current one does.
func (s *Service) PlansSince(ctx context.Context, orgID string, t time.Time) ([]plans.Span, error) {
	t = t.UTC()
	var rows []PlanPeriod
	err := s.db.WithContext(ctx).Where("org_id = ? AND (valid_to IS NULL OR valid_to > ?)", orgID, t).
		Order("valid_from").Find(&rows).Error
	if err != nil {
		return nil, fmt.Errorf("plan history of org %s: %w", orgID, err)
	}
	if len(rows) == 0 {
		st, err := s.Current(ctx, orgID)
		if err != nil {
			return nil, err
		}
		return []plans.Span{{From: t, Plan: st.Plan}}, nil
	}
	out := make([]plans.Span, len(rows))
	for i, r := range rows {
		p, ok := s.catalog.ByID(r.PlanID)
		if !ok {
			p = s.catalog.Free()
		}
		out[i] = plans.Span{From: r.ValidFrom.UTC(), Plan: p}
	}
	out[0].From = t
	return out, nil
}
