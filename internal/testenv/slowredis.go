package testenv

import (
	"context"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tollgate-billing/tollgate/internal/redisconn"
)

// DelayScripts makes every Lua script rdb sends from now on (EVAL and
// EVALSHA) answer delay late, as a Redis under load or across a network
// would. On a cluster the hook is the cluster client's, which every command
// passes once (a node's client would delay it a second time).
func DelayScripts(rdb *redisconn.Client, delay time.Duration) {
	rdb.AddHook(slowScripts{delay})
}

type slowScripts struct{ delay time.Duration }

func (s slowScripts) DialHook(next redis.DialHook) redis.DialHook { return next }
func (s slowScripts) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}
func (s slowScripts) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if name := cmd.Name(); name == "evalsha" || name == "eval" {
			time.Sleep(s.delay)
		}
		return next(ctx, cmd)
	}
}
