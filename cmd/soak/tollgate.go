package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/tollgate-billing/tollgate/internal/plans"
)

// soakRateLimit is every plan's requests per second in the soak: high
// enough that the rate limiter never answers for the load it is not
// measuring.
const soakRateLimit = 1_000_000

// usageMeter is the meter phase 1 records. Its free-plan limit is soft and
// out of reach, so no quota refusal can blur the count.
const (
	usageMeter      = "api_calls"
	usageMeterLimit = 1_000_000_000_000
)

// tollgate is one running Tollgate process.
type tollgate struct {
	name string
	url  string
	log  string
	proc *child
}

// moduleRoot is where `go build .` builds the server.
func moduleRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", fmt.Errorf("run the soak from inside the Tollgate module")
	}
	return filepath.Dir(mod), nil
}

// buildTollgate builds the server binary once, for both processes.
func buildTollgate(ctx context.Context, dir string) (string, error) {
	root, err := moduleRoot(ctx)
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "tollgate")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, ".")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %w: %s", err, out)
	}
	return bin, nil
}

// writePlans writes the default catalogue with its meters and plans, every
// rate limit raised to soakRateLimit, the free plan's usageMeter made a
// soft limit the soak cannot reach, and starter's and growth's lowered to
// soakLimits, soft, with soakAlerts as thresholds; starter's hardMeter is a
// hard hardLimit with hardAlerts.
func writePlans(path string) (*plans.Catalog, error) {
	var doc map[string]any
	if err := yaml.Unmarshal(plans.DefaultsYAML(), &doc); err != nil {
		return nil, fmt.Errorf("read default plans: %w", err)
	}
	list, _ := doc["plans"].([]any)
	for _, p := range list {
		plan, _ := p.(map[string]any)
		if plan == nil {
			continue
		}
		plan["rate_limit_per_second"] = soakRateLimit
		if limit, ok := soakLimits[fmt.Sprint(plan["id"])]; ok {
			limits, _ := plan["limits"].(map[string]any)
			meter, _ := limits[usageMeter].(map[string]any)
			if meter == nil {
				return nil, fmt.Errorf("default plans: %s has no %s limit to lower", plan["id"], usageMeter)
			}
			meter["limit"], meter["hard"], meter["alerts"] = limit, false, soakAlerts[fmt.Sprint(plan["id"])]
			if plan["id"] == hardPlan {
				limits[hardMeter] = map[string]any{"limit": hardLimit, "hard": true, "alerts": hardAlerts}
			}
		}
		if plan["id"] == plans.FreePlanID {
			limits, _ := plan["limits"].(map[string]any)
			if limits == nil {
				limits = map[string]any{}
				plan["limits"] = limits
			}
			limits[usageMeter] = map[string]any{"limit": usageMeterLimit, "hard": false}
		}
	}
	b, err := yaml.Marshal(doc)
	if err != nil {
		return nil, err
	}
	cat, err := plans.Parse(b, "yaml")
	if err != nil {
		return nil, fmt.Errorf("soak plans do not validate: %w", err)
	}
	if l, ok := cat.Free().LimitFor(usageMeter); !ok || l.Hard {
		return nil, fmt.Errorf("soak plans: free plan's %s limit is not soft", usageMeter)
	}
	for id := range soakLimits {
		p, ok := cat.ByID(id)
		if l, lok := p.LimitFor(usageMeter); !ok || !lok || l.Hard || l.Limit != soakLimits[id] {
			return nil, fmt.Errorf("soak plans: %s's %s limit is not the soft %d the alert check expects", id, usageMeter, soakLimits[id])
		}
	}
	hp, _ := cat.ByID(hardPlan)
	if l, ok := hp.LimitFor(hardMeter); !ok || !l.Hard || l.Limit != hardLimit {
		return nil, fmt.Errorf("soak plans: %s's %s limit is not the hard %d the alert check expects", hardPlan, hardMeter, hardLimit)
	}
	if len(paidPlans(cat)) < 2 {
		return nil, fmt.Errorf("soak plans: phase 2 needs at least two plans sold through Stripe")
	}
	return cat, os.WriteFile(path, b, 0o644)
}

// paidPlans are the plans a Stripe subscription can be on.
func paidPlans(cat *plans.Catalog) []plans.Plan {
	var out []plans.Plan
	for _, p := range cat.Plans() {
		if p.Paid() && p.StripePriceID != "" {
			out = append(out, p)
		}
	}
	return out
}

// startTollgate runs the binary with env plus its own PORT and data
// directory, and waits until /readyz answers 200.
func startTollgate(ctx context.Context, name, bin, dir string, env []string) (*tollgate, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	data := filepath.Join(dir, name)
	if err := os.MkdirAll(data, 0o755); err != nil {
		return nil, err
	}
	env = append(env, "PORT="+strconv.Itoa(port), "TOLLGATE_DATA_DIR="+data)
	t := &tollgate{name: name, url: "http://127.0.0.1:" + strconv.Itoa(port), log: filepath.Join(dir, name+".log")}
	if t.proc, err = startChild(name, t.log, env, bin, "serve"); err != nil {
		return nil, err
	}
	client := &http.Client{Timeout: 2 * time.Second}
	err = waitFor("tollgate "+name, 90*time.Second, t.proc, func() error {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		resp, err := client.Get(t.url + "/readyz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("/readyz answered %d", resp.StatusCode)
		}
		return nil
	})
	if err != nil {
		t.proc.stop(5 * time.Second)
		return nil, fmt.Errorf("%w (log: %s)", err, t.log)
	}
	return t, nil
}

func (t *tollgate) stop() { t.proc.stop(25 * time.Second) }
