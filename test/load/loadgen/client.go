package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"sync"
	"time"
)

// round is one load round against one server.
type round struct {
	requests int
	elapsed  time.Duration
	// latencies are sorted.
	latencies []time.Duration
	// cpu is the CPU time the server used during the round (user and
	// system, /proc/PID/stat); zero when it could not be read.
	cpu time.Duration
}

func (r round) perSecond() float64 { return float64(r.requests) / r.elapsed.Seconds() }

// quantile returns the latency below which q of the requests finished
// (nearest rank).
func (r round) quantile(q float64) time.Duration {
	if len(r.latencies) == 0 {
		return 0
	}
	i := int(q*float64(len(r.latencies))+0.5) - 1
	return r.latencies[max(0, min(i, len(r.latencies)-1))]
}

// cpuPerRequest is the server's CPU time per answered request.
func (r round) cpuPerRequest() time.Duration {
	if r.requests == 0 {
		return 0
	}
	return r.cpu / time.Duration(r.requests)
}

// load sends the same POST request from c keep-alive connections for d,
// each sending the next request when the answer to the last is read, and
// records every request's latency.
//
// It speaks HTTP/1.1 over plain sockets, as wrk does, rather than with
// net/http's client: on one CPU that client would cost about as much per
// request as the server it measures and would cap both servers alike. Per
// request it writes prepared bytes and reads the status line, the headers
// and Content-Length bytes of body, allocating nothing.
func load(ctx context.Context, addr, path string, body []byte, c int, d time.Duration) (round, error) {
	req := fmt.Appendf(nil, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", path, addr, len(body), body)
	conns := make([]net.Conn, 0, c)
	defer func() {
		for _, cn := range conns {
			cn.Close()
		}
	}()
	for range c {
		cn, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
		if err != nil {
			return round{}, err
		}
		conns = append(conns, cn)
	}
	var (
		mu        sync.Mutex
		latencies = make([]time.Duration, 0, 1<<20)
		firstErr  error
		wg        sync.WaitGroup
	)
	start := time.Now()
	deadline := start.Add(d)
	for _, cn := range conns {
		wg.Go(func() {
			local := make([]time.Duration, 0, 1<<16)
			rd := bufio.NewReaderSize(cn, 4096)
			_ = cn.SetDeadline(deadline.Add(10 * time.Second))
			var err error
			for t0 := time.Now(); t0.Before(deadline); {
				if _, err = cn.Write(req); err != nil {
					break
				}
				if err = readResponse(rd); err != nil {
					break
				}
				t1 := time.Now()
				local = append(local, t1.Sub(t0))
				t0 = t1
			}
			mu.Lock()
			latencies = append(latencies, local...)
			if firstErr == nil {
				firstErr = err
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if firstErr != nil {
		return round{}, fmt.Errorf("load on %s%s: %w", addr, path, firstErr)
	}
	slices.Sort(latencies)
	return round{requests: len(latencies), elapsed: elapsed, latencies: latencies}, nil
}

var (
	contentLength = []byte("content-length:")
	chunked       = []byte("transfer-encoding:")
)

// readResponse reads one answer, which must be a 200 with a
// Content-Length.
func readResponse(rd *bufio.Reader) error {
	line, err := rd.ReadSlice('\n')
	if err != nil {
		return err
	}
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.1 ")) {
		return fmt.Errorf("malformed status line %q", line)
	}
	if !bytes.Equal(line[9:12], []byte("200")) {
		return fmt.Errorf("status %s", bytes.TrimSpace(line[9:]))
	}
	n := -1
	for {
		line, err = rd.ReadSlice('\n')
		if err != nil {
			return err
		}
		if len(bytes.TrimSpace(line)) == 0 {
			break
		}
		switch {
		case hasPrefixFold(line, contentLength):
			if n, err = strconv.Atoi(string(bytes.TrimSpace(line[len(contentLength):]))); err != nil {
				return fmt.Errorf("Content-Length: %w", err)
			}
		case hasPrefixFold(line, chunked):
			return errors.New("a chunked answer: the harness reads Content-Length bodies only")
		}
	}
	if n < 0 {
		return errors.New("an answer without Content-Length")
	}
	_, err = rd.Discard(n)
	if errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return err
}

func hasPrefixFold(s, prefix []byte) bool {
	return len(s) >= len(prefix) && bytes.EqualFold(s[:len(prefix)], prefix)
}
