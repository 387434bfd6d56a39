package redisconn

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Tuning is what Tollgate sets on every connection whatever the URL says;
// zero fields keep go-redis's (or the URL's) value.
type Tuning struct {
	MaxRetries    int // -1: no retries
	DialerRetries int
	DialTimeout   time.Duration
	ReadTimeout   time.Duration
	WriteTimeout  time.Duration
}

// IsClusterURL reports whether REDIS_URL names a Redis Cluster: it does when
// it carries at least one addr= parameter, the form go-redis's
// ParseClusterURL reads (redis://host1:6379?addr=host2:6379&addr=host3:6379).
// The host and every addr are seed nodes; the client learns the other masters
// and replicas from them. A URL without addr= is one server, as before, and
// go-redis's ParseURL rejects addr= there, so no URL that worked before
// changes meaning. A cluster known by one endpoint (a managed service's
// configuration endpoint) names it twice: redis://cfg:6379?addr=cfg:6379.
func IsClusterURL(raw string) bool {
	u, err := url.Parse(raw)
	return err == nil && u.Query().Has("addr")
}

// CheckURL says what is wrong with raw as REDIS_URL, or nil.
func CheckURL(raw string) error {
	_, _, err := parse(raw)
	return err
}

// parse reads raw as one server's options or, for a cluster URL, a
// cluster's; exactly one is non-nil when err is nil.
func parse(raw string) (*redis.Options, *redis.ClusterOptions, error) {
	if !IsClusterURL(raw) {
		opt, err := redis.ParseURL(raw)
		return opt, nil, err
	}
	copt, err := ParseClusterURL(raw)
	return nil, copt, err
}

// Open returns a client for raw, a redis:// or rediss:// URL of one server
// or of a cluster (IsClusterURL), with t applied and every key under prefix.
// It does not dial: Redis may be down when Tollgate starts.
func Open(raw, prefix string, t Tuning) (*Client, error) {
	opt, copt, err := parse(raw)
	switch {
	case err != nil:
		return nil, err
	case copt != nil:
		t.apply(&copt.MaxRetries, &copt.DialerRetries, &copt.DialTimeout, &copt.ReadTimeout, &copt.WriteTimeout)
		return New(redis.NewClusterClient(copt), prefix), nil
	default:
		t.apply(&opt.MaxRetries, &opt.DialerRetries, &opt.DialTimeout, &opt.ReadTimeout, &opt.WriteTimeout)
		return New(redis.NewClient(opt), prefix), nil
	}
}

// apply sets the options t sets, on either kind of client's options.
func (t Tuning) apply(maxRetries, dialerRetries *int, dial, read, write *time.Duration) {
	setIf(maxRetries, t.MaxRetries)
	setIf(dialerRetries, t.DialerRetries)
	setIf(dial, t.DialTimeout)
	setIf(read, t.ReadTimeout)
	setIf(write, t.WriteTimeout)
}

// ParseClusterURL is go-redis's ParseClusterURL, refusing a database number:
// a cluster has only database 0, and go-redis would drop the number silently.
func ParseClusterURL(raw string) (*redis.ClusterOptions, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, err
	}
	if db := strings.Trim(u.Path, "/"); db != "" && db != "0" {
		return nil, errors.New("a Redis Cluster has only database 0; drop /" + db + " from the URL")
	}
	opt, err := redis.ParseClusterURL(raw)
	if err != nil {
		return nil, err
	}
	if len(opt.Addrs) == 0 {
		return nil, fmt.Errorf("no cluster node address in the URL")
	}
	return opt, nil
}

func setIf[T comparable](dst *T, v T) {
	var zero T
	if v != zero {
		*dst = v
	}
}
