// Package redisconn is Tollgate's handle on the Redis its replicas share.
// It holds the three things every user of that Redis needs alike:
//   - one key namespace (Client.Key), so Tollgate never writes outside its
//     prefix and two Tollgates, or two test runs, can share one server;
//   - one way to skip a failing Redis for a while (Backoff);
//   - one watcher that notices a Redis which restarted, failed over or was
//     restored from an older snapshot, and tells whoever keeps state in it
//     (Watcher).
package redisconn

import (
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"
)

// DefaultPrefix is where Tollgate's keys live unless REDIS_KEY_PREFIX says
// otherwise.
const DefaultPrefix = "tollgate:"

// Client is a Redis client with the key prefix every key goes under. It
// embeds the go-redis client, so commands and scripts run on it directly;
// keys must be built with Key.
type Client struct {
	*redis.Client
	prefix string
}

// New wraps c; every key built with Key starts with prefix.
func New(c *redis.Client, prefix string) *Client {
	return &Client{Client: c, prefix: prefix}
}

// Key is name under the prefix.
func (c *Client) Key(name string) string { return c.prefix + name }

// Prefix is what every key starts with.
func (c *Client) Prefix() string { return c.prefix }

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
