package usage

import (
	"testing"

	"github.com/tollgate-billing/tollgate/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }
