package testenv

import (
	"os"
	"testing"
)

// Main runs a package's tests and then stops the stripe-mock and the Redis
// Cluster they may have started: call it from TestMain.
func Main(m *testing.M) {
	code := m.Run()
	StopStripeMock()
	StopRedisCluster()
	os.Exit(code)
}
