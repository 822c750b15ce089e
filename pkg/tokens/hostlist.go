package tokens

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
)

// HostPattern is one entry of a sidecar host list (ATHENZ_PROXY_ALLOWED_HOSTS,
// ATHENZ_PROXY_TLS_HOSTS): the sidecar matches upstreams against it, and
// the injector checks a profile's lists with the same rule.
type HostPattern struct {
	// Host is lower case, without brackets; for a wildcard the suffix
	// with its dot (".example.com").
	Host string
	// Port is "" for any port.
	Port string
	// Suffix: "*.<domain>", any subdomain (not the domain itself).
	Suffix bool
	// Any: "*", every host.
	Any bool
}

// ParseHostPattern parses one host list entry: "host", "host:port",
// "[v6]:port", "*.suffix" (with or without a port), "*" or "*:port".
func ParseHostPattern(s string) (HostPattern, error) {
	s = strings.ToLower(s)
	if strings.Contains(s, "/") {
		return HostPattern{}, errors.New("want host or host:port, not a URL")
	}
	var e HostPattern
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		// No port (or a bare IPv6 address).
		host, port = strings.TrimSuffix(strings.TrimPrefix(s, "["), "]"), ""
	} else if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return HostPattern{}, fmt.Errorf("port %q is not a number from 1 to 65535", port)
	}
	if host == "*" {
		e.Any, e.Port = true, port
		return e, nil
	}
	if rest, ok := strings.CutPrefix(host, "*."); ok {
		host, e.Suffix = "."+rest, true
		if rest == "" {
			return HostPattern{}, errors.New("a wildcard needs a domain after '*.'")
		}
	}
	if host == "" || strings.ContainsAny(host, "* @?#") {
		return HostPattern{}, errors.New("want host, host:port, *.domain or *")
	}
	e.Host, e.Port = host, port
	return e, nil
}

// ParseHostList parses a comma-separated host list into its entries,
// lower-cased; every entry must parse (ParseHostPattern).
func ParseHostList(list string) ([]string, error) {
	var out []string
	for item := range strings.SplitSeq(list, ",") {
		item = strings.ToLower(strings.TrimSpace(item))
		if item == "" {
			return nil, fmt.Errorf("empty entry in %q", truncate(list))
		}
		if _, err := ParseHostPattern(item); err != nil {
			return nil, fmt.Errorf("entry %q: %w", truncate(item), err)
		}
		out = append(out, item)
	}
	return out, nil
}
