package hostile_test

import (
	"errors"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/memkit/memkit/internal/hostile"
	"github.com/memkit/memkit/internal/leakcheck"
)

// A connect to ListenFull's address neither succeeds nor is refused: it
// times out.
func TestListenFull(t *testing.T) {
	leakcheck.Check(t)
	addr := hostile.ListenFull(t)
	for i := 0; i < 2; i++ { // twice: a timed-out attempt must not free a slot
		c, err := net.DialTimeout("tcp", addr, 300*time.Millisecond)
		if c != nil {
			_ = c.Close()
		}
		var ne net.Error
		require.True(t, errors.As(err, &ne) && ne.Timeout(), "attempt %d: want a timeout, got %v", i, err)
	}
}
