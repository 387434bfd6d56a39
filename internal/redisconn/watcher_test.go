package redisconn_test

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"testing"

	"github.com/tollgate-billing/tollgate/internal/redisconn"
	"github.com/tollgate-billing/tollgate/internal/testenv"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// restarts counts the restarts a watcher reports.
func restarts(w *redisconn.Watcher) *int {
	n := new(int)
	w.OnRestart(func(context.Context) { *n++ })
	return n
}

func look(t *testing.T, w *redisconn.Watcher) {
	t.Helper()
	if err := w.Check(context.Background()); err != nil {
		t.Fatalf("look: %v", err)
	}
}

func TestTheWatcherNoticesARedisThatIsNotTheOneItWas(t *testing.T) {
	cases := []struct {
		name string
		// between runs between two looks; it returns whether Redis lost
		// anything, that is whether a restart must be reported.
		between func(t *testing.T, w *redisconn.Watcher, restore func()) bool
	}{
		{"a Redis that answers as before is no restart", func(*testing.T, *redisconn.Watcher, func()) bool { return false }},
		{"a flushed Redis is a restart", func(t *testing.T, _ *redisconn.Watcher, restore func()) bool {
			restore() // to the snapshot taken before the first look: empty
			return true
		}},
		{"a Redis back from an older snapshot is a restart", func(t *testing.T, w *redisconn.Watcher, restore func()) bool {
			look(t, w) // the generation moves on after the snapshot...
			restore()  // ...and comes back older
			return true
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m, c := testenv.MiniRedisServer(t)
			restore := testenv.SnapshotRedis(t, m)
			w := redisconn.NewWatcher(c, quiet())
			n := restarts(w)
			look(t, w)
			if *n != 0 {
				t.Fatalf("the first look reported %d restarts; it only records", *n)
			}
			want := 0
			if tc.between(t, w, restore) {
				want = 1
			}
			look(t, w)
			look(t, w)
			if *n != want {
				t.Fatalf("%d restarts reported, want %d", *n, want)
			}
		})
	}
}

func TestARedisOutageWithoutDataLossIsNoRestart(t *testing.T) {
	m, c := testenv.MiniRedisServer(t)
	w := redisconn.NewWatcher(c, quiet())
	n := restarts(w)
	look(t, w)
	m.Close()
	if err := w.Check(context.Background()); err == nil {
		t.Fatal("a look at a stopped Redis succeeded")
	}
	if err := m.Restart(); err != nil { // miniredis keeps its data across Restart
		t.Fatal(err)
	}
	look(t, w)
	if *n != 0 {
		t.Fatalf("%d restarts reported after an outage that lost nothing", *n)
	}
}

func TestAnnouncedChangesReachEveryReplica(t *testing.T) {
	m, c := testenv.MiniRedisServer(t)
	type heard struct {
		members []string
		all     bool
	}
	replica := func() (*redisconn.Watcher, *[]heard) {
		w := redisconn.NewWatcher(c, quiet())
		var got []heard
		w.OnChange("plans", func(_ context.Context, members []string, all bool) {
			slices.Sort(members)
			got = append(got, heard{members, all})
		})
		look(t, w)
		if len(got) != 1 || !got[0].all {
			t.Fatalf("the first look heard %+v; it cannot know what changed before it, so everything has", got)
		}
		got = nil
		return w, &got
	}
	a, aHeard := replica()
	b, bHeard := replica()
	ctx := context.Background()

	for _, org := range []string{"org-1", "org-2"} {
		if err := a.Announce(ctx, "plans", org); err != nil {
			t.Fatal(err)
		}
	}
	look(t, a)
	look(t, b)
	for name, got := range map[string][]heard{"a": *aHeard, "b": *bHeard} {
		if len(got) != 1 || got[0].all || !slices.Equal(got[0].members, []string{"org-1", "org-2"}) {
			t.Fatalf("replica %s heard %+v, want org-1 and org-2 once", name, got)
		}
	}
	look(t, b)
	if len(*bHeard) != 1 {
		t.Fatalf("a look with nothing new announced was heard: %+v", *bHeard)
	}

	// Once Redis loses the announcements, nobody can say what changed.
	m.FlushAll()
	look(t, b)
	if got := *bHeard; len(got) != 2 || !got[1].all {
		t.Fatalf("after Redis lost its data replica b heard %+v, want \"everything\"", got)
	}
}
