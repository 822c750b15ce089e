package main

import (
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"time"
)

// printer writes the demo's story: numbered steps, commands as a user
// would type them, and indented details; bold only on a terminal.
type printer struct {
	w     io.Writer
	tty   bool
	step  int
	start time.Time
	began time.Time // of the current step
}

func newPrinter(f *os.File) *printer {
	st, err := f.Stat()
	return &printer{w: f, tty: err == nil && st.Mode()&os.ModeCharDevice != 0, start: time.Now()}
}

func (p *printer) bold(s string) string {
	if p.tty {
		return "\033[1m" + s + "\033[0m"
	}
	return s
}

func (p *printer) dim(s string) string {
	if p.tty {
		return "\033[2m" + s + "\033[0m"
	}
	return s
}

// heading starts the next step.
func (p *printer) heading(title string) {
	p.step++
	p.began = time.Now()
	fmt.Fprintf(p.w, "\n%s\n", p.bold(fmt.Sprintf("== %d. %s", p.step, title)))
}

// done ends a step with what it achieved and how long it took.
func (p *printer) done(format string, args ...any) {
	fmt.Fprintf(p.w, "   ok: %s %s\n", fmt.Sprintf(format, args...), p.dim(fmt.Sprintf("(%.1fs)", time.Since(p.began).Seconds())))
}

// line prints an unindented line.
func (p *printer) line(format string, args ...any) {
	fmt.Fprintf(p.w, format+"\n", args...)
}

// say prints an indented explanation.
func (p *printer) say(format string, args ...any) {
	for l := range strings.SplitSeq(fmt.Sprintf(format, args...), "\n") {
		fmt.Fprintf(p.w, "   %s\n", l)
	}
}

// cmd prints a command as it would be typed.
func (p *printer) cmd(format string, args ...any) {
	fmt.Fprintf(p.w, "   %s %s\n", p.bold("$"), fmt.Sprintf(format, args...))
}

// longCmd prints a command with its flags one per line, as in a shell
// script.
func (p *printer) longCmd(name string, args []string) {
	fmt.Fprintf(p.w, "   %s %s", p.bold("$"), name)
	for _, a := range args {
		if strings.HasPrefix(a, "-") {
			fmt.Fprintf(p.w, " \\\n       %s", a)
		} else {
			fmt.Fprintf(p.w, " %s", a)
		}
	}
	fmt.Fprintln(p.w)
}

// output prints a command's output, indented, each line at most width
// characters.
func (p *printer) output(s string) {
	s = strings.TrimRight(s, "\n")
	for l := range strings.SplitSeq(s, "\n") {
		fmt.Fprintf(p.w, "     %s\n", l)
	}
}

// longString matches JSON string values and header values long enough to
// be tokens.
var longString = regexp.MustCompile(`[A-Za-z0-9_\-=;.,:/+]{72,}`)

// shorten abbreviates tokens and other long runs in s, keeping their
// start and end: "v=Z1;d=sports;r=reader;p=sports.web;...;s=MEUCIQ...
// (412 chars)".
func shorten(s string) string {
	return longString.ReplaceAllStringFunc(s, func(m string) string {
		return fmt.Sprintf("%s...%s (%d chars)", m[:48], m[len(m)-8:], len(m))
	})
}
