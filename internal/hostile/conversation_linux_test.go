//go:build linux

package hostile_test

import (
	"testing"

	"github.com/memkit/memkit/internal/memcachetest"
)

// The conversation is what memcached says (memcachetest runs on Linux only).
func TestConversationMemcached(t *testing.T) {
	mc := memcachetest.Start(t, memcachetest.Options{})
	converse(t, mc.Addr)
}
