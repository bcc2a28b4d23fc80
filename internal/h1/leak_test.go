package h1

import (
	"testing"

	"go.uber.org/goleak"
)

// Every goroutine the package starts ends with its request, connection
// or server: none is left once the tests are done.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
