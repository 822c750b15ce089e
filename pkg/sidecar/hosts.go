package sidecar

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
)

// parseHostList parses a host list (ATHENZ_PROXY_ALLOWED_HOSTS,
// ATHENZ_PROXY_TLS_HOSTS): comma-separated entries "host", "host:port",
// "[v6]:port", "*.suffix" (with or without a port), or "*" (every host)
// and "*:port" (every host on that port). Hosts are lower-cased.
func parseHostList(list string) ([]string, error) {
	var out []string
	for item := range strings.SplitSeq(list, ",") {
		item = strings.ToLower(strings.TrimSpace(item))
		if item == "" {
			return nil, fmt.Errorf("empty entry in %q", truncate(list))
		}
		if _, err := parseHostEntry(item); err != nil {
			return nil, fmt.Errorf("entry %q: %w", truncate(item), err)
		}
		out = append(out, item)
	}
	return out, nil
}

type hostEntry struct {
	host   string // lower case, without brackets; for a wildcard the suffix with its dot (".example.com")
	port   string // "" matches any port
	suffix bool
	any    bool // "*": every host
}

func parseHostEntry(s string) (hostEntry, error) {
	if strings.Contains(s, "/") {
		return hostEntry{}, errors.New("want host or host:port, not a URL")
	}
	var e hostEntry
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		// No port (or a bare IPv6 address).
		host, port = strings.TrimSuffix(strings.TrimPrefix(s, "["), "]"), ""
	} else if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return hostEntry{}, fmt.Errorf("port %q is not a number from 1 to 65535", port)
	}
	if host == "*" {
		e.any, e.port = true, port
		return e, nil
	}
	if rest, ok := strings.CutPrefix(host, "*."); ok {
		host, e.suffix = "."+rest, true
		if rest == "" {
			return hostEntry{}, errors.New("a wildcard needs a domain after '*.'")
		}
	}
	if host == "" || strings.ContainsAny(host, "* @?#") {
		return hostEntry{}, errors.New("want host, host:port or *.domain")
	}
	e.host, e.port = host, port
	return e, nil
}

// hostMatcher holds a host list: the upstreams that may receive tokens,
// or those the proxy speaks TLS to.
type hostMatcher struct {
	entries []hostEntry
}

func newHostMatcher(list []string) (hostMatcher, error) {
	var m hostMatcher
	for _, s := range list {
		e, err := parseHostEntry(strings.ToLower(s))
		if err != nil {
			return hostMatcher{}, fmt.Errorf("entry %q: %w", s, err)
		}
		m.entries = append(m.entries, e)
	}
	return m, nil
}

// allowed reports whether a request to hostport (a URL's Host) with the
// given scheme may carry a token: an empty list allows every host.
func (m hostMatcher) allowed(scheme, hostport string) bool {
	return len(m.entries) == 0 || m.match(scheme, hostport)
}

// match reports whether hostport (a URL's Host; without a port, the
// scheme's) is in the list; an empty list matches nothing.
func (m hostMatcher) match(scheme, hostport string) bool {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		host = strings.TrimSuffix(strings.TrimPrefix(hostport, "["), "]")
		port = "80"
		if scheme == "https" {
			port = "443"
		}
	}
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	for _, e := range m.entries {
		if e.port != "" && e.port != port {
			continue
		}
		if e.any {
			return true
		}
		if e.suffix {
			if strings.HasSuffix(host, e.host) {
				return true
			}
			continue
		}
		if host == e.host {
			return true
		}
	}
	return false
}
