package app_test

import (
	"os"
	"testing"

	"github.com/tollgate-billing/tollgate/internal/testenv"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testenv.StopStripeMock()
	os.Exit(code)
}
