// Package plans is the catalogue of what can be bought: plans, their prices,
// rate limits and per-meter quotas. It is configuration, loaded once at start
// from embedded defaults or PLANS_FILE, and validated before the server
// accepts a request.
package plans

import (
	"cmp"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/tollgate-billing/tollgate/internal/money"
	"github.com/tollgate-billing/tollgate/internal/usertext"
)

// FreePlanID is the plan every organisation has without a paid subscription.
const FreePlanID = "free"

// Reset says when a meter's count starts again.
type Reset string

const (
	// Monthly meters sum events over the UTC calendar month.
	Monthly Reset = "monthly"
	// Never meters are a running total of signed deltas (e.g. storage).
	Never Reset = "never"
)

// Meter is something a plan limits.
type Meter struct {
	Name  string `yaml:"name" json:"name"`
	Reset Reset  `yaml:"reset" json:"reset"`
}

// Limit is one plan's quota on one meter.
type Limit struct {
	Meter     string `yaml:"-" json:"-"`
	Limit     int64  `yaml:"limit" json:"limit"`
	Unlimited bool   `yaml:"unlimited" json:"unlimited"`
	// Hard limits reject usage past the limit; soft ones accept it and flag
	// overage.
	Hard  bool  `yaml:"hard" json:"hard"`
	Reset Reset `yaml:"-" json:"-"`
	// Overage, on a soft limit, is what each started package of usage past
	// the limit in a closed month costs; nil bills none.
	Overage *OveragePrice `yaml:"overage" json:"overage"`
	// Alerts are the percentages of Limit at which the organisation is
	// told it is getting close, ascending; DefaultAlerts when the plans
	// file names none. Meters without a limit have none.
	Alerts []int `yaml:"alerts" json:"alerts"`
}

// DefaultAlerts are the thresholds of a limited meter whose plan names none:
// a warning while there is room left, and the limit itself.
var DefaultAlerts = []int{80, 100}

// ValidAlerts explains what is wrong with a list of alert thresholds, or is
// "" when they are percentages from 1 to 100, ascending and distinct.
func ValidAlerts(percents []int) string {
	for i, p := range percents {
		switch {
		case p < 1 || p > 100:
			return fmt.Sprintf("alert threshold %d must be a percentage from 1 to 100", p)
		case i > 0 && p == percents[i-1]:
			return fmt.Sprintf("alert threshold %d is listed twice; each must be distinct", p)
		case i > 0 && p < percents[i-1]:
			return fmt.Sprintf("alert thresholds must be ascending (%d after %d)", p, percents[i-1])
		}
	}
	return ""
}

// OveragePrice is a package price for usage past a soft limit:
// UnitAmountCents, in minor units of the plan's currency, for every started
// Per units, and the same package's price in each other currency the plan
// is sold in.
type OveragePrice struct {
	UnitAmountCents int64 `yaml:"unit_amount_cents" json:"unit_amount_cents"`
	Per             int64 `yaml:"per" json:"per"`
	// CurrencyAmounts prices a package in the plan's other currencies, in
	// their minor units, by lower-case ISO code ({eur: 45, jpy: 75}): a
	// subscription on a price in eur is billed its overage in eur. Load
	// refuses a plan sold in a currency its overage has no price in.
	CurrencyAmounts map[string]int64 `yaml:"currency_amounts" json:"currency_amounts"`
	// Currency is the plan's, which UnitAmountCents is in; set by Load.
	Currency string `yaml:"-" json:"-"`
}

// UnitAmountIn is a package's price in minor units of currency (lower-case
// ISO code), false when the plan does not price its overage there.
func (o OveragePrice) UnitAmountIn(currency string) (int64, bool) {
	if currency == o.Currency {
		return o.UnitAmountCents, true
	}
	amount, ok := o.CurrencyAmounts[currency]
	return amount, ok
}

// Packages is how many packages over units makes: every started one counts.
func (o OveragePrice) Packages(over int64) int64 {
	if over <= 0 {
		return 0
	}
	return (over-1)/o.Per + 1
}

// Billing intervals of a price.
const (
	IntervalMonth = "month"
	IntervalYear  = "year"
)

// Price is one Stripe price a plan is sold at.
type Price struct {
	// ID is the Stripe price id (price_…).
	ID          string `yaml:"id" json:"id"`
	Interval    string `yaml:"interval" json:"interval"`
	AmountCents int64  `yaml:"amount_cents" json:"amount_cents"`
	Currency    string `yaml:"currency" json:"currency"`
}

// Plan is one purchasable tier.
type Plan struct {
	ID   string `yaml:"id" json:"id"`
	Name string `yaml:"name" json:"name"`
	// PriceCents, Currency and Interval are the plan's headline price: its
	// monthly price when it has one. Load fills them in from Prices when
	// the file leaves them out.
	PriceCents int64  `yaml:"price_cents" json:"price_cents"`
	Currency   string `yaml:"currency" json:"currency"`
	Interval   string `yaml:"interval" json:"interval"`
	// StripePriceID is the headline price's Stripe id. A file may give it
	// alone (one monthly price) instead of Prices.
	StripePriceID string `yaml:"stripe_price_id" json:"stripe_price_id"`
	// Prices are every Stripe price the plan is sold at: monthly, yearly,
	// in any currency. A subscription to any of them is on this plan.
	Prices             []Price          `yaml:"prices" json:"prices"`
	ContactSales       bool             `yaml:"contact_sales" json:"contact_sales"`
	RateLimitPerSecond int              `yaml:"rate_limit_per_second" json:"rate_limit_per_second"`
	Webhooks           int              `yaml:"webhooks" json:"webhooks"`
	RawLimits          map[string]Limit `yaml:"limits" json:"limits"`

	// Limits is RawLimits in meter declaration order, filled in by Load.
	Limits []Limit `yaml:"-" json:"-"`
}

// Paid reports whether the plan is sold through Stripe Checkout.
func (p Plan) Paid() bool { return p.PriceCents > 0 }

// PriceFor returns the price Checkout sells the plan at for an interval:
// the one in the plan's currency, else the first listed.
func (p Plan) PriceFor(interval string) (Price, bool) {
	var found []Price
	for _, pr := range p.Prices {
		if pr.Interval == interval {
			found = append(found, pr)
		}
	}
	for _, pr := range found {
		if pr.Currency == p.Currency {
			return pr, true
		}
	}
	if len(found) > 0 {
		return found[0], true
	}
	return Price{}, false
}

// LimitFor returns the plan's limit on a meter.
func (p Plan) LimitFor(meter string) (Limit, bool) {
	for _, l := range p.Limits {
		if l.Meter == meter {
			return l, true
		}
	}
	return Limit{}, false
}

// Catalog is the validated set of meters and plans.
type Catalog struct {
	// blockUnpaid refuses usage (BILLING_INACTIVE) while a subscription is
	// past due or unpaid, instead of serving it on the plan paid for.
	blockUnpaid bool
	meters      []Meter
	plans       []Plan
	byID        map[string]int
	byPrice     map[string]int
}

type file struct {
	BlockUnpaid bool    `yaml:"block_unpaid" json:"block_unpaid"`
	Meters      []Meter `yaml:"meters" json:"meters"`
	Plans       []Plan  `yaml:"plans" json:"plans"`
}

//go:embed defaults.yaml
var defaultsYAML []byte

// Default returns the embedded default catalogue.
func Default() *Catalog {
	c, err := Parse(defaultsYAML, "yaml")
	if err != nil {
		panic("plans: embedded defaults are invalid: " + err.Error())
	}
	return c
}

// Load reads a catalogue from path (.yaml, .yml or .json), or returns the
// defaults when path is empty.
func Load(path string) (*Catalog, error) {
	if path == "" {
		return Default(), nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read plans file: %w", err)
	}
	format := "yaml"
	if strings.EqualFold(filepath.Ext(path), ".json") {
		format = "json"
	}
	return Parse(b, format)
}

var (
	idPattern    = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)
	meterPattern = regexp.MustCompile(`^[a-z][a-z0-9_]{0,62}$`)
)

// Parse decodes and validates a catalogue in "yaml" or "json".
func Parse(b []byte, format string) (*Catalog, error) {
	var f file
	var err error
	if format == "json" {
		dec := json.NewDecoder(strings.NewReader(string(b)))
		dec.DisallowUnknownFields()
		err = dec.Decode(&f)
	} else {
		dec := yaml.NewDecoder(strings.NewReader(string(b)))
		dec.KnownFields(true)
		err = dec.Decode(&f)
	}
	if err != nil {
		return nil, fmt.Errorf("decode plans: %w", err)
	}
	return build(f)
}

func build(f file) (*Catalog, error) {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	if len(f.Meters) == 0 {
		bad("no meters declared")
	}
	meters := map[string]Meter{}
	for i, m := range f.Meters {
		switch {
		case !meterPattern.MatchString(m.Name):
			bad("meters[%d]: name %q must be lower_snake_case", i, m.Name)
		case m.Reset != Monthly && m.Reset != Never:
			bad("meter %q: reset must be %q or %q, got %q", m.Name, Monthly, Never, m.Reset)
		}
		if _, dup := meters[m.Name]; dup {
			bad("meter %q declared twice", m.Name)
		}
		meters[m.Name] = m
	}

	c := &Catalog{blockUnpaid: f.BlockUnpaid, meters: f.Meters, byID: map[string]int{}, byPrice: map[string]int{}}
	if len(f.Plans) == 0 {
		bad("no plans declared")
	}
	for i, p := range f.Plans {
		where := fmt.Sprintf("plans[%d] (%s)", i, p.ID)
		if !idPattern.MatchString(p.ID) {
			bad("%s: id must be lower-case letters, digits, - or _", where)
		}
		if _, dup := c.byID[p.ID]; dup {
			bad("%s: duplicate plan id", where)
		}
		if strings.TrimSpace(p.Name) == "" {
			bad("%s: name is required", where)
		} else if !usertext.Printable(p.Name) {
			bad("%s: name %q has a control, invisible or private-use character (it is shown on the billing page and in messages)", where, p.Name)
		}
		if p.PriceCents < 0 {
			bad("%s: price_cents must not be negative", where)
		}
		buildPrices(&p, where, bad)
		if p.Paid() && len(p.Prices) == 0 {
			bad("%s: a paid plan needs stripe_price_id or prices", where)
		}
		for _, pr := range p.Prices {
			if j, dup := c.byPrice[pr.ID]; dup {
				bad("%s: price %q is also used by plan %q", where, pr.ID, f.Plans[j].ID)
			}
			c.byPrice[pr.ID] = i
		}
		if p.RateLimitPerSecond <= 0 {
			bad("%s: rate_limit_per_second must be positive", where)
		}
		if p.Webhooks < 0 {
			bad("%s: webhooks must not be negative", where)
		}
		names := make([]string, 0, len(p.RawLimits))
		for name := range p.RawLimits {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			l := p.RawLimits[name]
			if _, ok := meters[name]; !ok {
				bad("%s: limit on unknown meter %q", where, name)
			}
			if l.Limit < 0 {
				bad("%s: limit on %q must not be negative", where, name)
			}
			if l.Unlimited && l.Limit != 0 {
				bad("%s: meter %q is unlimited and also has a limit", where, name)
			}
			if msg := ValidAlerts(l.Alerts); msg != "" {
				bad("%s: alerts on %q: %s", where, name, msg)
			}
			if o := l.Overage; o != nil {
				switch {
				case l.Hard || l.Unlimited:
					bad("%s: overage on %q needs a soft limit (hard: false, not unlimited)", where, name)
				case meters[name].Reset != Monthly:
					bad("%s: overage on %q needs a monthly meter: overage is billed per closed month", where, name)
				case !p.Paid():
					bad("%s: overage on %q needs a paid plan: it is billed on the plan's Stripe invoices", where, name)
				case o.Per <= 0:
					bad("%s: overage on %q: per must be a positive number of units", where, name)
				default:
					if msg := overageUnitProblem(o.UnitAmountCents, p.Currency); msg != "" {
						bad("%s: overage on %q: unit_amount_cents %s", where, name, msg)
					}
				}
				o.Currency = p.Currency
				overageCurrencies(p, name, o, where, bad)
			}
		}
		// Every declared meter gets a limit; one the plan does not name is 0
		// (nothing allowed), so a typo cannot silently grant unlimited usage.
		p.Limits = make([]Limit, 0, len(f.Meters))
		for _, m := range f.Meters {
			l, ok := p.RawLimits[m.Name]
			if !ok {
				bad("%s: no limit for meter %q (use unlimited: true for none)", where, m.Name)
			}
			l.Meter, l.Reset = m.Name, m.Reset
			if l.Unlimited {
				l.Hard = false
			}
			switch {
			case l.Unlimited:
				l.Alerts = nil
			case l.Alerts == nil:
				l.Alerts = slices.Clone(DefaultAlerts)
			}
			p.Limits = append(p.Limits, l)
		}
		c.byID[p.ID] = i
		c.plans = append(c.plans, p)
	}
	if _, ok := c.byID[FreePlanID]; !ok && len(f.Plans) > 0 {
		bad("a plan with id %q is required: it is what organisations without a subscription get", FreePlanID)
	} else if ok && c.plans[c.byID[FreePlanID]].Paid() {
		bad("plan %q must cost nothing", FreePlanID)
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("invalid plans: %w", errors.Join(errs...))
	}
	return c, nil
}

// buildPrices validates a plan's prices and fills in what the file left
// out: a lone stripe_price_id is the plan's one price, and the headline
// price (price_cents, currency, interval, stripe_price_id) is the monthly
// price in the plan's currency when prices are listed.
func buildPrices(p *Plan, where string, bad func(string, ...any)) {
	p.Currency = strings.ToLower(p.Currency)
	if len(p.Prices) == 0 {
		if p.Currency == "" {
			p.Currency = "usd"
		}
		if p.Interval == "" {
			p.Interval = IntervalMonth
		}
		if p.StripePriceID != "" {
			p.Prices = []Price{{ID: p.StripePriceID, Interval: p.Interval, AmountCents: p.PriceCents, Currency: p.Currency}}
		}
	}
	type slot struct{ interval, currency string }
	seen := map[slot]bool{}
	for j := range p.Prices {
		pr := &p.Prices[j]
		pw := fmt.Sprintf("%s: prices[%d] (%s)", where, j, pr.ID)
		pr.Currency = strings.ToLower(pr.Currency)
		if pr.Currency == "" {
			pr.Currency = cmp.Or(p.Currency, "usd")
		}
		switch {
		case strings.TrimSpace(pr.ID) == "" || pr.ID != strings.TrimSpace(pr.ID):
			bad("%s: id must be a Stripe price id without spaces", pw)
		case pr.Interval != IntervalMonth && pr.Interval != IntervalYear:
			bad("%s: interval must be month or year", pw)
		case pr.AmountCents <= 0:
			bad("%s: amount_cents must be positive", pw)
		case !money.ValidCurrency(pr.Currency):
			bad("%s: currency must be a 3-letter ISO code", pw)
		case seen[slot{pr.Interval, pr.Currency}]:
			bad("%s: a second %sly price in %s", pw, pr.Interval, pr.Currency)
		}
		seen[slot{pr.Interval, pr.Currency}] = true
	}
	if len(p.Prices) > 0 {
		if p.Currency == "" {
			p.Currency = p.Prices[0].Currency
		}
		head, ok := p.PriceFor(IntervalMonth)
		if !ok {
			head = p.Prices[0]
		}
		if p.StripePriceID != "" && p.StripePriceID != head.ID {
			bad("%s: stripe_price_id %q is not its monthly price %q", where, p.StripePriceID, head.ID)
		}
		if p.PriceCents != 0 && p.PriceCents != head.AmountCents {
			bad("%s: price_cents %d is not its monthly price's amount %d", where, p.PriceCents, head.AmountCents)
		}
		p.StripePriceID, p.PriceCents, p.Currency, p.Interval = head.ID, head.AmountCents, head.Currency, head.Interval
	}
	if !money.ValidCurrency(p.Currency) {
		bad("%s: currency must be a 3-letter ISO code", where)
	}
	if p.Interval != IntervalMonth && p.Interval != IntervalYear {
		bad("%s: interval must be month or year", where)
	}
}

// overageUnitProblem explains what is wrong with one overage package's
// price, amount minor units of currency, or is "" when it is from 1 minor
// unit to the most Stripe charges at once in that currency
// (money.MaxAmount). A package that costs more could never be paid, and an
// item of even one such package would be refused; the bound follows the
// currency's minor unit, so 99,999,999 is ¥99,999,999 but 99,999.999 KWD.
func overageUnitProblem(amount int64, currency string) string {
	if top := money.MaxAmount(currency); amount < 1 || amount > top {
		return fmt.Sprintf("must be from 1 to %d minor units of %s (%s, the most Stripe charges at once), got %d",
			top, currency, money.Format(top, currency), amount)
	}
	return ""
}

// overageCurrencies validates an overage price's amounts in other
// currencies, and refuses a plan sold at a price in a currency the overage
// has no amount in: its subscribers' invoices are in that currency, and
// overage priced in another could never go on them.
func overageCurrencies(p Plan, meter string, o *OveragePrice, where string, bad func(string, ...any)) {
	sold := map[string]bool{}
	for _, pr := range p.Prices {
		sold[pr.Currency] = true
	}
	amounts := make(map[string]int64, len(o.CurrencyAmounts))
	for _, c := range slices.Sorted(maps.Keys(o.CurrencyAmounts)) {
		amount, lower := o.CurrencyAmounts[c], strings.ToLower(c)
		_, dup := amounts[lower]
		switch {
		case !money.ValidCurrency(lower):
			bad("%s: overage on %q: currency_amounts: %q is not a 3-letter ISO currency code", where, meter, c)
		case dup:
			bad("%s: overage on %q: currency_amounts names %s twice", where, meter, lower)
		case lower == p.Currency:
			bad("%s: overage on %q: currency_amounts names %s, the plan's own currency: give that price as unit_amount_cents", where, meter, lower)
		case !sold[lower]:
			bad("%s: overage on %q: currency_amounts names %s, which none of the plan's prices is in", where, meter, lower)
		default:
			if msg := overageUnitProblem(amount, lower); msg != "" {
				bad("%s: overage on %q: currency_amounts: %s %s", where, meter, lower, msg)
			}
		}
		amounts[lower] = amount
	}
	if len(amounts) > 0 {
		o.CurrencyAmounts = amounts
	}
	for _, pr := range p.Prices {
		if _, ok := o.UnitAmountIn(pr.Currency); !ok && sold[pr.Currency] {
			sold[pr.Currency] = false // one message per currency
			bad("%s: overage on %q has no price in %s, which the plan is sold in (price %q): add %s to its currency_amounts",
				where, meter, pr.Currency, pr.ID, pr.Currency)
		}
	}
}

// PriceByID finds one of the plan's prices by its Stripe id.
func (p Plan) PriceByID(id string) (Price, bool) {
	for _, pr := range p.Prices {
		if pr.ID == id {
			return pr, true
		}
	}
	return Price{}, false
}

// Plans returns every plan in file order.
func (c *Catalog) Plans() []Plan { return c.plans }

// BlocksUnpaid reports whether the file opts into refusing usage while a
// subscription is past due or unpaid (`block_unpaid: true`).
func (c *Catalog) BlocksUnpaid() bool { return c.blockUnpaid }

// Meters returns every declared meter.
func (c *Catalog) Meters() []Meter { return c.meters }

// Meter looks a meter up by name.
func (c *Catalog) Meter(name string) (Meter, bool) {
	for _, m := range c.meters {
		if m.Name == name {
			return m, true
		}
	}
	return Meter{}, false
}

// ByID looks a plan up by id.
func (c *Catalog) ByID(id string) (Plan, bool) {
	i, ok := c.byID[id]
	if !ok {
		return Plan{}, false
	}
	return c.plans[i], true
}

// ByPriceID finds the plan sold at a Stripe price.
func (c *Catalog) ByPriceID(priceID string) (Plan, bool) {
	i, ok := c.byPrice[priceID]
	if !ok {
		return Plan{}, false
	}
	return c.plans[i], true
}

// Free returns the plan for organisations without a paid subscription.
func (c *Catalog) Free() Plan {
	p, _ := c.ByID(FreePlanID)
	return p
}

// DefaultsYAML returns the embedded default catalogue as written, as a
// starting point for a PLANS_FILE.
func DefaultsYAML() []byte { return append([]byte(nil), defaultsYAML...) }

// Span is a stretch of time an organisation was on one plan: from From
// until the next span's From (the last span is in force now).
type Span struct {
	From time.Time
	Plan Plan
}
