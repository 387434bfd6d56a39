package signing

import (
	"net/http"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/tollgate-billing/tollgate/internal/clock"
	"github.com/tollgate-billing/tollgate/internal/redisconn"
	"github.com/tollgate-billing/tollgate/internal/testenv"
)

// TestAReplayAfterAClusterMasterRestartIsRefused: one master of a cluster
// killed and started again empty has forgotten the nonces it held. A
// request accepted before is refused when replayed, both before the watcher
// has noticed (its bucket's mark is gone with the nonce) and after; once the
// watcher has noticed, every request signed before is refused on every
// master until it is out of the window, and a request signed afterwards
// passes.
func TestAReplayAfterAClusterMasterRestartIsRefused(t *testing.T) {
	cl := testenv.StartRedisCluster(t)
	rdb := cl.Client(t)
	clk := clock.NewFake(t0)
	v := NewVerifier(rdb, clk, quietLog())
	w := redisconn.NewWatcher(rdb, quietLog())
	w.OnRestart(v.RedisRestarted)
	look(t, w)

	s := newSigner(1)
	// A nonce held by master 1, the one that will restart, and a fresh one
	// held by master 0, which keeps its data.
	nonceOn := func(master int) string {
		for {
			n := uuid.NewString()
			if cl.MasterOf(t, rdb.Key(nonceKey(s.key.ID, n))) == master {
				return n
			}
		}
	}
	used, unusedElsewhere := nonceOn(1), nonceOn(0)
	send := func(ts time.Time, nonce string) string {
		r := signedWith(s.priv, http.MethodPost, "/graphql", `{}`, ts.Unix(), nonce)
		return reason(v.VerifyRequest(r, s.key))
	}
	if got := send(t0, used); got != "" {
		t.Fatalf("first request refused: %s", got)
	}

	cl.Kill(1)
	if err := cl.Restart(1); err != nil {
		t.Fatal(err)
	}
	clk.Advance(2 * time.Second)
	if got := send(t0, used); got != ReasonNonceReplayed {
		t.Fatalf("replay after the master restarted, before the watcher looked: reason = %q, want %q", got, ReasonNonceReplayed)
	}
	look(t, w)
	if got := send(t0, unusedElsewhere); got != ReasonNonceReplayed {
		t.Fatalf("a request signed before the restart was noticed, on a master that kept its data: reason = %q, want %q (nothing can tell it was not used)", got, ReasonNonceReplayed)
	}
	clk.Advance(time.Second)
	for range 8 { // several buckets, so several masters
		if got := send(clk.Now(), uuid.NewString()); got != "" {
			t.Fatalf("a request signed after the restart was noticed was refused: %s", got)
		}
	}
}
