package overage_test

import (
	"testing"

	"github.com/tollgate-billing/tollgate/internal/testenv"
)

// TestMain stops the stripe-mock the tests start.
func TestMain(m *testing.M) { testenv.Main(m) }
