package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/athenz-injector/athenz-injector/test/load/stats"
)

// result is one round against one server.
type result struct {
	requests  int
	errors    int
	elapsed   time.Duration
	p50, p99  time.Duration
	perSecond float64
}

// load sends POST body to url from c connections for d and measures.
func load(ctx context.Context, url string, body []byte, c int, d time.Duration) (result, error) {
	tr := &http.Transport{MaxIdleConns: c, MaxIdleConnsPerHost: c, MaxConnsPerHost: c, DisableCompression: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()

	var (
		mu        sync.Mutex
		latencies = make([]time.Duration, 0, 1<<20)
		errs      int
		firstErr  error
		wg        sync.WaitGroup
	)
	start := time.Now()
	for range c {
		wg.Go(func() {
			local := make([]time.Duration, 0, 1<<16)
			localErrs := 0
			var localErr error
			for ctx.Err() == nil {
				t0 := time.Now()
				req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				resp, err := client.Do(req)
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if err == nil && resp.StatusCode != http.StatusOK {
						err = fmt.Errorf("status %d", resp.StatusCode)
					}
				}
				if err != nil {
					if ctx.Err() != nil {
						break
					}
					localErrs++
					localErr = err
					continue
				}
				local = append(local, time.Since(t0))
			}
			mu.Lock()
			latencies = append(latencies, local...)
			errs += localErrs
			if firstErr == nil {
				firstErr = localErr
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if len(latencies) == 0 {
		return result{}, fmt.Errorf("no successful request to %s: %v", url, firstErr)
	}
	slices.Sort(latencies)
	r := result{
		requests:  len(latencies),
		errors:    errs,
		elapsed:   elapsed,
		p50:       latencies[len(latencies)/2],
		p99:       latencies[len(latencies)*99/100],
		perSecond: float64(len(latencies)) / elapsed.Seconds(),
	}
	if errs > 0 {
		return r, fmt.Errorf("%d failed requests to %s (first: %v)", errs, url, firstErr)
	}
	return r, nil
}

// median returns the round of median throughput.
func median(rs []result) result {
	return stats.Median(rs, func(r result) float64 { return r.perSecond })
}
