package serializer

import (
	"bytes"
	"compress/zlib"
	"runtime"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// zlibOf compresses data with the standard library's zlib.
func zlibOf(t testing.TB, data []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	w := zlib.NewWriter(&b)
	_, err := w.Write(data)
	require.NoError(t, err)
	require.NoError(t, w.Close())
	return b.Bytes()
}

// allocated returns the bytes f allocates.
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// TestZlibBombAllocation: a small zlib payload that inflates past
// MaxDecodedSize is refused without allocating anything near the limit.
// Growing the output as it came allocated about six times the limit.
func TestZlibBombAllocation(t *testing.T) {
	const limit = 32 << 20
	bomb := zlibOf(t, make([]byte, 200<<20)) // ~200 KB of input
	var err error
	n := allocated(func() { _, err = Zlib.decompress(nil, bomb, limit) })
	require.ErrorIs(t, err, ErrTooLarge)
	assert.Less(t, n, uint64(4<<20), "allocated %d bytes refusing a bomb with a %d-byte limit", n, limit)

	// A value just under the limit decodes whole, in one buffer of its size
	// (plus the first MiB decoded directly), not six times it.
	data := bytes.Repeat([]byte("memkit "), (limit-1)/7)
	var out []byte
	n = allocated(func() { out, err = Zlib.decompress(nil, zlibOf(t, data), limit) })
	require.NoError(t, err)
	require.Equal(t, data, out)
	assert.Less(t, n, uint64(limit+limit/2), "allocated %d bytes for a %d-byte value", n, len(data))

	// Exactly the limit fits; one byte more does not.
	for _, size := range []int{zlibDirect - 1, zlibDirect, zlibDirect + 1, 3 << 20} {
		data := bytes.Repeat([]byte{'x'}, size)
		out, err := Zlib.decompress([]byte("pre"), zlibOf(t, data), size)
		require.NoError(t, err, size)
		require.Equal(t, append([]byte("pre"), data...), out, size)
		out, err = Zlib.decompress([]byte("pre"), zlibOf(t, data), size-1)
		require.ErrorIs(t, err, ErrTooLarge, size)
		require.Equal(t, []byte("pre"), out)
	}
}
