package main

import (
	"bufio"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/term"
)

// frameWriter shows frames.
type frameWriter interface {
	// size returns the width and height to draw in; 0 means no limit.
	size() (width, height int)
	// frame shows one frame, of at most height lines (0: any).
	frame(lines []string, height int)
}

// screen shows frames on standard output. On a terminal, unless it only
// prints once, it draws each frame in place on the alternate screen (as
// top and less do) and, when standard input is a terminal too, puts it in
// raw mode so that q quits at once; restore puts the terminal back. When
// standard output is not a terminal it prints plain frames one after
// another, as wide as $COLUMNS says. Not safe for concurrent use, but
// restore may be called from any goroutine, more than once.
type screen struct {
	in, out *os.File
	getenv  func(string) string
	tty     bool        // out is a terminal
	live    bool        // drawing in place on the alternate screen
	raw     *term.State // in's state before raw mode; nil when not raw
	frames  int

	mu       sync.Mutex // protects restored
	restored bool
}

var _ frameWriter = (*screen)(nil)

// Terminal control sequences (VT100/xterm).
const (
	enterAlt   = "\x1b[?1049h\x1b[?25l" // alternate screen, cursor hidden
	leaveAlt   = "\x1b[?25h\x1b[?1049l"
	home       = "\x1b[H"
	clearLine  = "\x1b[K"
	clearBelow = "\x1b[J"
)

func newScreen(in, out *os.File, getenv func(string) string, interactive bool) *screen {
	s := &screen{in: in, out: out, getenv: getenv, tty: isTerminal(out)}
	if !s.tty || !interactive {
		return s
	}
	s.live = true
	if isTerminal(in) {
		if st, err := term.MakeRaw(int(in.Fd())); err == nil {
			s.raw = st
		}
	}
	_, _ = io.WriteString(out, enterAlt)
	return s
}

// onQuit calls quit when q (or Ctrl-C, or Ctrl-D) is typed, in raw mode.
func (s *screen) onQuit(quit func()) {
	if s.raw != nil {
		go readKeys(s.in, quit)
	}
}

// restore puts the terminal back as it was.
func (s *screen) restore() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.restored {
		return
	}
	s.restored = true
	if s.raw != nil {
		_ = term.Restore(int(s.in.Fd()), s.raw)
	}
	if s.live {
		_, _ = io.WriteString(s.out, leaveAlt)
	}
}

func (s *screen) size() (width, height int) {
	if s.tty {
		if w, h, err := term.GetSize(int(s.out.Fd())); err == nil {
			return w, h
		}
	}
	if n, err := strconv.Atoi(s.getenv("COLUMNS")); err == nil && n > 0 {
		return n, 0
	}
	return 0, 0
}

func (s *screen) frame(lines []string, height int) {
	s.frames++
	var b strings.Builder
	if !s.live {
		if s.frames > 1 {
			b.WriteString("\n")
		}
		for _, l := range lines {
			b.WriteString(l + "\n")
		}
		_, _ = io.WriteString(s.out, b.String())
		return
	}
	if s.raw != nil {
		lines = append(lines, "", "q quits")
	}
	if height > 0 && len(lines) > height {
		more := len(lines) - height + 1
		lines = append(lines[:height-1:height-1], cut("… "+strconv.Itoa(more)+" more lines: enlarge the terminal", max(s.width(), 1)))
	}
	b.WriteString(home)
	for i, l := range lines {
		b.WriteString(l + clearLine)
		if i < len(lines)-1 {
			b.WriteString("\r\n") // raw mode does not turn \n into \r\n
		}
	}
	b.WriteString(clearBelow)
	_, _ = io.WriteString(s.out, b.String())
}

func (s *screen) width() int {
	w, _ := s.size()
	return w
}

// readKeys reads keys from r until q, Q, Ctrl-C or Ctrl-D (in raw mode
// they arrive as bytes, not signals) or the end of input, then calls quit.
func readKeys(r io.Reader, quit func()) {
	defer quit()
	br := bufio.NewReader(r)
	for {
		b, err := br.ReadByte()
		if err != nil {
			return
		}
		switch b {
		case 'q', 'Q', 0x03, 0x04:
			return
		}
	}
}

func isTerminal(f *os.File) bool {
	return f != nil && term.IsTerminal(int(f.Fd()))
}
