package faultproxy

import (
	"bytes"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// mark is an event at an offset of the stream.
type mark struct {
	off int
	ev  event
}

// frame feeds data to a fresh framer in chunks of at most size bytes (all
// at once when size is 0) and returns the events it reports.
func frame(t testing.TB, data []byte, size int) []mark {
	t.Helper()
	var f framer
	var marks []mark
	off := 0
	for off < len(data) {
		end := len(data)
		if size > 0 && off+size < end {
			end = off + size
		}
		chunk := data[off:end]
		for len(chunk) > 0 {
			n, ev := f.next(chunk)
			if n < 1 || n > len(chunk) {
				t.Fatalf("next consumed %d of %d bytes", n, len(chunk))
			}
			off += n
			chunk = chunk[n:]
			if ev != evNone {
				marks = append(marks, mark{off, ev})
			}
		}
	}
	if len(f.head) > maxHead {
		t.Fatalf("framer kept %d bytes of a line", len(f.head))
	}
	return marks
}

// replies cuts data at the evEnd marks.
func replies(data []byte, marks []mark) []string {
	var out []string
	start := 0
	for _, m := range marks {
		if m.ev == evEnd {
			out = append(out, string(data[start:m.off]))
			start = m.off
		}
	}
	if start < len(data) {
		out = append(out, "(open) "+string(data[start:]))
	}
	return out
}

func TestFramer(t *testing.T) {
	tests := []struct {
		name string
		in   []string // the replies, concatenated to make the stream
	}{
		{"meta status lines", []string{"HD\r\n", "NS\r\n", "EX\r\n", "NF\r\n", "EN\r\n", "MN\r\n"}},
		{"meta lines with flags", []string{"HD O12 kfoo c3\r\n", "EN O1 kbar\r\n", "ME foo exp=-1 la=0 cas=10 fetch=no cls=1 size=65\r\n"}},
		{"meta value", []string{"VA 5 f0 c4 O9\r\nhello\r\n", "HD\r\n"}},
		{"meta empty value", []string{"VA 0\r\n\r\n", "EN\r\n"}},
		{"meta value holding reply-like bytes", []string{"VA 9\r\nEND\r\nHD\r\n\r\n", "MN\r\n"}},
		{"text get hit of several keys", []string{"VALUE a 0 1\r\n1\r\nVALUE b 3 5 77\r\nEND\r\n\r\nEND\r\n", "STORED\r\n"}},
		{"text get miss", []string{"END\r\n", "END\r\n"}},
		{"text storage and others", []string{"STORED\r\n", "NOT_STORED\r\n", "EXISTS\r\n", "NOT_FOUND\r\n", "DELETED\r\n", "TOUCHED\r\n", "OK\r\n", "VERSION 1.6.18\r\n", "15\r\n"}},
		{"text stats", []string{"STAT pid 1\r\nSTAT uptime 2\r\nEND\r\n", "STAT a b\r\nEND\r\n"}},
		{"stats cachedump", []string{"ITEM foo [5 b; 0 s]\r\nEND\r\n"}},
		{"errors", []string{"ERROR\r\n", "CLIENT_ERROR bad data chunk\r\n", "SERVER_ERROR out of memory\r\n"}},
		{"error interrupts a get", []string{"VALUE a 0 1\r\n1\r\nSERVER_ERROR out of memory writing get response\r\n", "END\r\n"}},
		{"malformed VA is one line", []string{"VA x\r\n", "VA\r\n", "VA -1\r\n", "VA 99999999999999999999\r\n", "HD\r\n"}},
		{"malformed VALUE is one line", []string{"VALUE a 0\r\n", "VALUE a 0 z\r\n", "HD\r\n"}},
		{"bare newlines", []string{"\n", "HD\n", "\r\n"}},
		{"VA in a get is garbage that ends it", []string{"VALUE a 0 1\r\n1\r\nVA 1\r\n", "x\r\n"}},
		{"STAT after a reply is a new reply", []string{"HD\r\n", "STAT x y\r\nEND\r\n"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := []byte(strings.Join(tt.in, ""))
			for _, size := range []int{0, 1, 2, 3, 7} {
				require.Equal(t, tt.in, replies(data, frame(t, data, size)), "chunk size %d", size)
			}
		})
	}
}

func TestFramerFirstLine(t *testing.T) {
	data := []byte("VA 2\r\nab\r\nHD\r\nVALUE k 0 1\r\nx\r\nEND\r\nSTAT a 1\r\nEND\r\n")
	want := []mark{
		{6, evFirstLine}, {10, evEnd},
		{14, evEnd},
		{27, evFirstLine}, {35, evEnd},
		{45, evFirstLine}, {50, evEnd},
	}
	for _, size := range []int{0, 1, 5} {
		require.Equal(t, want, frame(t, data, size), "chunk size %d", size)
	}
}

func TestFramerOpenReply(t *testing.T) {
	var f framer
	require.True(t, f.idle())
	n, ev := f.next([]byte("VA 100\r\nabc"))
	require.Equal(t, 8, n)
	require.Equal(t, evFirstLine, ev)
	n, ev = f.next([]byte("abc"))
	require.Equal(t, 3, n)
	require.Equal(t, evNone, ev)
	require.False(t, f.idle(), "the value is not complete")
}

// A 1 MB value passes in pieces without being buffered.
func TestFramerLargeValue(t *testing.T) {
	value := bytes.Repeat([]byte("END\r\nx"), 1<<20/6)
	data := append([]byte("VA "+strconv.Itoa(len(value))+"\r\n"), value...)
	data = append(data, "\r\nHD\r\n"...)
	marks := frame(t, data, 64<<10)
	require.Equal(t, []mark{{len(data) - 4 - len(value) - 2, evFirstLine}, {len(data) - 4, evEnd}, {len(data), evEnd}}, marks)
}

// A line that never ends is kept only up to maxHead bytes.
func TestFramerEndlessLine(t *testing.T) {
	var f framer
	junk := bytes.Repeat([]byte("x"), 4096)
	for i := 0; i < 100; i++ {
		n, ev := f.next(junk)
		require.Equal(t, len(junk), n)
		require.Equal(t, evNone, ev)
	}
	require.LessOrEqual(t, len(f.head), maxHead)
	n, ev := f.next([]byte("\r\nHD\r\n"))
	require.Equal(t, 2, n)
	require.Equal(t, evEnd, ev)
}

// FuzzFramer feeds arbitrary bytes in arbitrary chunks: the framer never
// panics, always makes progress, keeps a bounded line, and finds the same
// reply boundaries however the stream is cut.
func FuzzFramer(f *testing.F) {
	f.Add([]byte("VA 5 f0\r\nhello\r\nHD\r\n"), uint8(1))
	f.Add([]byte("VALUE a 0 1\r\n1\r\nVALUE b 0 2 9\r\n22\r\nEND\r\n"), uint8(3))
	f.Add([]byte("STAT pid 1\r\nEND\r\nSTORED\r\n15\r\n"), uint8(2))
	f.Add([]byte("VA 99999\r\nshort"), uint8(0))
	f.Add([]byte("\n\n\r\r\nVA\r\nVALUE\r\n"), uint8(5))
	f.Fuzz(func(t *testing.T, data []byte, size uint8) {
		whole := frame(t, data, 0)
		require.Equal(t, whole, frame(t, data, int(size)))
		require.Equal(t, whole, frame(t, data, 1))
		for i, m := range whole {
			if i > 0 {
				require.Greater(t, m.off, whole[i-1].off)
			}
		}
	})
}
