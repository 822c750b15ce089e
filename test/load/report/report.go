// Package report rewrites one generated section of a Markdown file, between
// "<!-- NAME:begin -->" and "<!-- NAME:end -->", so load harnesses can
// refresh their figures in docs/performance.md without touching the prose.
package report

import (
	"fmt"
	"os"
	"strings"
)

// Markers returns the begin and end markers of section name.
func Markers(name string) (begin, end string) {
	return "<!-- " + name + ":begin -->", "<!-- " + name + ":end -->"
}

// WriteSection replaces the section name of the file at path with body
// (markers added), or appends it when the file has no such section. The
// file is replaced atomically.
func WriteSection(path, name, body string) error {
	begin, end := Markers(name)
	section := begin + "\n" + strings.TrimSpace(body) + "\n" + end
	old, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	s := string(old)
	i, j := strings.Index(s, begin), strings.Index(s, end)
	if i >= 0 && j > i {
		s = s[:i] + section + s[j+len(end):]
	} else {
		s += "\n" + section + "\n"
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(s), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// Emit prints body and, when path is set, writes it as the section name of
// the file at path (WriteSection): what every harness does with its
// figures.
func Emit(path, name, body string) error {
	fmt.Println(body)
	if path == "" {
		return nil
	}
	return WriteSection(path, name, body)
}
