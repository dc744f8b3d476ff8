package main

import (
	"errors"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/memkit/memkit/internal/hostile"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestLimitChecksEveryReply runs the batched client against a fake server
// that answers one Get wrongly, once: the batch must fail (the connection
// is then closed), and the next batch, on a new connection, succeed.
func TestLimitChecksEveryReply(t *testing.T) {
	for _, tc := range []struct {
		name   string
		fault  func(w *hostile.Reply) // answers the faulty Get
		inStep bool                   // the error is not errLimitStep
	}{
		{"correct", func(w *hostile.Reply) { w.WriteCorrect() }, true},
		{"extra reply", func(w *hostile.Reply) { w.WriteCorrect(); w.WriteCorrect() }, false},
		{"missing reply", func(w *hostile.Reply) {}, false},
		{"other length", func(w *hostile.Reply) { _, _ = w.WriteString("VA 4\r\nabcd\r\n") }, false},
		{"no CRLF after the value", func(w *hostile.Reply) { _, _ = w.WriteString("VA 3\r\nabcd\r\n") }, false},
		{"miss", func(w *hostile.Reply) { _, _ = w.WriteString("EN\r\n") }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var gets, faults atomic.Int64
			s := hostile.Start(t, func(req hostile.Request, w *hostile.Reply) {
				// The third Get of the first batch, once.
				if strings.HasPrefix(req.Line, "mg ") && gets.Add(1) == 3 {
					faults.Add(1)
					tc.fault(w)
					return
				}
				w.WriteCorrect()
			})
			lc := &limitConn{addr: s.Addr(), keys: []string{"a", "b"}, size: 3, header: "VA 3", depth: 4, scratch: make([]byte, 5)}
			defer lc.close()
			require.NoError(t, lc.store([]byte("xyz")))
			err := lc.batch(0)
			require.Equal(t, int64(1), faults.Load())
			if tc.name == "correct" {
				require.NoError(t, err)
				require.NotNil(t, lc.nc, "the connection stays open")
			} else {
				require.Error(t, err)
				assert.Equal(t, !tc.inStep, errors.Is(err, errLimitStep), "%v", err)
				assert.Nil(t, lc.nc, "the connection was closed")
			}
			require.NoError(t, lc.batch(1), "the next batch, on a new connection, is answered correctly")
			require.NoError(t, lc.batch(2))
		})
	}
}
