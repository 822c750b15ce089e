package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// curl is a small curl: the flags the docs and tests use, with curl's
// meaning and exit codes (0 ok, 2 usage, 7 connect, 22 HTTP error with -f,
// 35 TLS, 77 CA file). URLs without a scheme are http://, as in curl.
func curl(args []string, stdout, stderr io.Writer) int {
	var (
		method, data, proxy, output, writeOut string
		caFile, certFile, keyFile             string
		silent, showErr, fail                 bool
		headers                               []string
		target                                string
	)
	args = expandShortFlags(args)
	for i := 0; i < len(args); i++ {
		a := args[i]
		next := func() string {
			if i+1 >= len(args) {
				fmt.Fprintf(stderr, "curl: option %s: requires parameter\n", a)
				os.Exit(2)
			}
			i++
			return args[i]
		}
		switch a {
		case "-s", "--silent":
			silent = true
		case "-S", "--show-error":
			showErr = true
		case "-f", "--fail":
			fail = true
		case "-d", "--data":
			data = next()
		case "-H", "--header":
			headers = append(headers, next())
		case "-X", "--request":
			method = next()
		case "-x", "--proxy":
			proxy = next()
		case "-o", "--output":
			output = next()
		case "-w", "--write-out":
			writeOut = next()
		case "--cacert":
			caFile = next()
		case "--cert", "-E":
			certFile = next()
		case "--key":
			keyFile = next()
		default:
			if strings.HasPrefix(a, "-") {
				fmt.Fprintf(stderr, "curl: option %s: is unknown to this small curl\n", a)
				return 2
			}
			target = a
		}
	}
	report := func(code int, format string, args ...any) int {
		if !silent || showErr {
			fmt.Fprintf(stderr, "curl: (%d) "+format+"\n", append([]any{code}, args...)...)
		}
		return code
	}
	if target == "" {
		return report(2, "no URL specified")
	}
	if !strings.Contains(target, "://") {
		target = "http://" + target
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{}, DisableKeepAlives: true}
	if proxy != "" {
		if !strings.Contains(proxy, "://") {
			proxy = "http://" + proxy
		}
		u, err := url.Parse(proxy)
		if err != nil {
			return report(5, "bad proxy %q: %v", proxy, err)
		}
		tr.Proxy = http.ProxyURL(u)
	}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return report(77, "error setting certificate file: %v", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return report(77, "no certificate in %s", caFile)
		}
		tr.TLSClientConfig.RootCAs = pool
	}
	if certFile != "" {
		if keyFile == "" {
			keyFile = certFile
		}
		pair, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return report(58, "unable to use client certificate: %v", err)
		}
		tr.TLSClientConfig.Certificates = []tls.Certificate{pair}
	}
	if method == "" {
		method = http.MethodGet
		if data != "" {
			method = http.MethodPost
		}
	}
	var body io.Reader
	if data != "" {
		body = strings.NewReader(data)
	}
	req, err := http.NewRequest(method, target, body)
	if err != nil {
		return report(3, "URL rejected: %v", err)
	}
	if data != "" {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for _, h := range headers {
		k, v, ok := strings.Cut(h, ":")
		if !ok {
			return report(2, "bad header %q", h)
		}
		req.Header.Set(strings.TrimSpace(k), strings.TrimSpace(v))
	}
	hc := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	resp, err := hc.Do(req)
	if err != nil {
		var tlsErr *tls.CertificateVerificationError
		switch {
		case errors.As(err, &tlsErr), strings.Contains(err.Error(), "tls:"):
			return report(35, "TLS: %v", err)
		default:
			return report(7, "failed to connect: %v", err)
		}
	}
	defer resp.Body.Close()
	if fail && resp.StatusCode >= 400 {
		return report(22, "The requested URL returned error: %d", resp.StatusCode)
	}
	out := stdout
	if output != "" && output != "-" {
		f, err := os.Create(output)
		if err != nil {
			return report(23, "failed writing %s: %v", output, err)
		}
		defer f.Close()
		out = f
	}
	if _, err := io.Copy(out, resp.Body); err != nil {
		return report(56, "failure receiving data: %v", err)
	}
	if writeOut != "" {
		fmt.Fprint(stdout, strings.ReplaceAll(writeOut, "%{http_code}", fmt.Sprintf("%03d", resp.StatusCode)))
	}
	return 0
}

// expandShortFlags splits combined boolean short flags ("-sSf") into
// single ones, as curl reads them.
func expandShortFlags(args []string) []string {
	out := make([]string, 0, len(args))
	for _, a := range args {
		if len(a) > 2 && a[0] == '-' && a[1] != '-' && strings.Trim(a[1:], "sSf") == "" {
			for _, c := range a[1:] {
				out = append(out, "-"+string(c))
			}
			continue
		}
		out = append(out, a)
	}
	return out
}
