// Package redisconn is Tollgate's handle on the Redis its replicas share,
// one server or a Redis Cluster. It holds the things every user of that
// Redis needs alike:
//   - one way to read REDIS_URL (Open), for a single server or a cluster;
//   - one key namespace (Client.Key), so Tollgate never writes outside its
//     prefix and two Tollgates, or two test runs, can share one server;
//   - the masters to look at one by one (Client.Shards), for what must be
//     checked on each of them;
//   - one way to skip a failing Redis for a while (Backoff);
//   - one watcher that notices a Redis, or one master of a cluster, which
//     restarted, failed over or was restored from an older snapshot, and
//     tells whoever keeps state in it (Watcher).
//
// On a cluster every script and multi-key command must stay in one hash
// slot: keys that go together share a hash tag ("{org}"), and the prefix
// never holds braces (CheckPrefix), so it cannot change a key's slot.
package redisconn

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"
)

// DefaultPrefix is where Tollgate's keys live unless REDIS_KEY_PREFIX says
// otherwise.
const DefaultPrefix = "tollgate:"

// Client is a Redis client, for one server or a cluster, with the key prefix
// every key goes under. It embeds the go-redis client, so commands and
// scripts run on it directly; keys must be built with Key.
type Client struct {
	redis.UniversalClient
	prefix string
}

// New wraps c, a *redis.Client or a *redis.ClusterClient; every key built
// with Key starts with prefix.
func New(c redis.UniversalClient, prefix string) *Client {
	return &Client{UniversalClient: c, prefix: prefix}
}

// Key is name under the prefix.
func (c *Client) Key(name string) string { return c.prefix + name }

// Prefix is what every key starts with.
func (c *Client) Prefix() string { return c.prefix }

// Cluster reports whether c talks to a Redis Cluster.
func (c *Client) Cluster() bool {
	_, ok := c.UniversalClient.(*redis.ClusterClient)
	return ok
}

// CheckPrefix says what is wrong with a key prefix, or nil. Braces would
// change which cluster slot a key hashes to, and white space is a mistake.
func CheckPrefix(p string) error {
	switch {
	case p == "":
		return fmt.Errorf("must not be empty")
	case strings.ContainsAny(p, "{} \t\r\n"):
		return fmt.Errorf("must not contain braces or white space, got %q", p)
	}
	return nil
}

// Shard is one master: the one server of a single Redis, or one master of a
// cluster.
type Shard struct {
	// Addr is the master's address, for logs.
	Addr string
	// Node talks to that master alone.
	Node *redis.Client
	// Tag is a hash tag, braces included, whose keys live on this master
	// while the cluster's slots stay where they are: the lowest-numbered
	// of "{s0}", "{s1}", … that does. The same slots give the same tag,
	// so a replica promoted in a failover gets its master's tag.
	Tag string
}

// maxShardTags bounds the search for a tag per master. 16,384 slots split
// evenly over up to a few hundred masters are all found long before.
const maxShardTags = 1 << 16

// Shards lists the masters, each with a tag whose keys it holds. On a
// cluster a master that owns no slot, or whose slots no tag reaches, is left
// out: it holds no keys.
func (c *Client) Shards(ctx context.Context) ([]Shard, error) {
	switch rc := c.UniversalClient.(type) {
	case *redis.ClusterClient:
		return clusterShards(ctx, rc)
	case *redis.Client:
		return []Shard{{Addr: rc.Options().Addr, Node: rc, Tag: shardTag(0)}}, nil
	default:
		return nil, fmt.Errorf("redisconn: unsupported client %T", c.UniversalClient)
	}
}

func shardTag(i int) string { return fmt.Sprintf("{s%d}", i) }

func clusterShards(ctx context.Context, rc *redis.ClusterClient) ([]Shard, error) {
	var mu sync.Mutex
	masters := map[string]*redis.Client{}
	err := rc.ForEachMaster(ctx, func(_ context.Context, n *redis.Client) error {
		mu.Lock()
		masters[n.Options().Addr] = n
		mu.Unlock()
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list cluster masters: %w", err)
	}
	out := make([]Shard, 0, len(masters))
	for i := 0; len(masters) > 0 && i < maxShardTags; i++ {
		tag := shardTag(i)
		// Reads go-redis's slot table: no round trip.
		n, err := rc.MasterForKey(ctx, tag)
		if err != nil {
			return nil, fmt.Errorf("find the master of %s: %w", tag, err)
		}
		addr := n.Options().Addr
		if node, ok := masters[addr]; ok {
			out = append(out, Shard{Addr: addr, Node: node, Tag: tag})
			delete(masters, addr)
		}
	}
	return out, nil
}
