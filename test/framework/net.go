package framework

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
)

// FreeAddr returns "127.0.0.1:<port>" with a port that was free a moment
// ago. Another process may take it before it is used; on this loopback-only
// test machine that is rare enough.
func FreeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("finding a free loopback port: %w", err)
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// FreePort is FreeAddr's port.
func FreePort() (int, error) {
	addr, err := FreeAddr()
	if err != nil {
		return 0, err
	}
	_, port, _ := net.SplitHostPort(addr)
	var p int
	_, err = fmt.Sscanf(port, "%d", &p)
	return p, err
}

// RepoRoot is the directory of the module's go.mod, found from the working
// directory upwards (a package directory under go test, the repository
// under go run).
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory: run from the repository")
		}
		dir = parent
	}
}

// readSome reads and closes a response body, returning at most 512 bytes
// of it on one line, for messages.
func readSome(resp *http.Response) string {
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	return strings.TrimSpace(strings.ReplaceAll(string(b), "\n", " "))
}
