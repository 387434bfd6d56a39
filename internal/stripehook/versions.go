package stripehook

import (
	"context"
	"log/slog"
	"slices"
	"sync"

	"github.com/tollgate-billing/tollgate/internal/stripein"
	"github.com/tollgate-billing/tollgate/internal/stripeshape"
)

// seenVersions are the API versions of the events this process has
// verified. The version is set per endpoint in the Stripe dashboard, and
// decides the shape of every payload; an operator sees on /readyz which
// arrive.
var seenVersions sync.Map // version → struct{}

// noteAPIVersion logs the first event of each API version.
func noteAPIVersion(ctx context.Context, log *slog.Logger, version, eventID string) {
	if !stripein.APIVersion(version) {
		// Nothing else is a version, and /readyz lists what is noted.
		return
	}
	if _, seen := seenVersions.LoadOrStore(version, struct{}{}); seen {
		return
	}
	log.InfoContext(ctx, "stripe webhook API version seen for the first time",
		"api_version", version, "shape", stripeshape.ShapeOf(version), "event_id", eventID)
}

// SeenAPIVersions returns the API versions of the events verified since
// start, sorted.
func SeenAPIVersions() []string {
	out := []string{}
	seenVersions.Range(func(k, _ any) bool {
		out = append(out, k.(string))
		return true
	})
	slices.Sort(out)
	return out
}
