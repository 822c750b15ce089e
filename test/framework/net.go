package framework

import (
	"fmt"
	"io"
	"net"
	"net/http"
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

// readSome reads and closes a response body, returning at most 512 bytes
// of it on one line, for messages.
func readSome(resp *http.Response) string {
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	return strings.TrimSpace(strings.ReplaceAll(string(b), "\n", " "))
}
