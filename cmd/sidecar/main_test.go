package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr"

	"github.com/athenz-injector/athenz-injector/pkg/sidecar"
	"github.com/athenz-injector/athenz-injector/pkg/tokens/ztsfake"
)

// TestRun checks flag and environment handling without serving: serve is a
// stub that records the Config it gets.
func TestRun(t *testing.T) {
	keyFile := []string{
		"ATHENZ_ZTS_URL=https://zts.example.com/zts/v1", "ATHENZ_IDENTITY_MODE=key-file",
		"ATHENZ_KEY_FILE=/k.pem", "ATHENZ_KEY_VERSION=0", "ATHENZ_DOMAIN=d", "ATHENZ_SERVICE=s",
	}
	tests := []struct {
		name      string
		args, env []string
		serveErr  error
		wantCode  int
		wantServe bool
		wantDev   bool
		wantOut   string
		// noDevBuild runs the case as a build without the "dev" tag.
		noDevBuild bool
	}{
		{name: "serve", env: keyFile, wantCode: 0, wantServe: true},
		{name: "explicit serve mode", args: []string{"--mode=serve"}, env: keyFile, wantCode: 0, wantServe: true},
		{name: "dev", args: []string{"--dev"}, wantCode: 0, wantServe: true, wantDev: true},
		{name: "dev with debug logs", args: []string{"-dev"}, env: []string{"ATHENZ_LOG_LEVEL=debug"}, wantCode: 0, wantServe: true, wantDev: true},
		{name: "dev without dev mode in the build", args: []string{"--dev"}, noDevBuild: true, wantCode: 2, wantOut: "--dev: this sidecar is built without dev mode"},
		{name: "error logs only, quiet", env: append([]string{"ATHENZ_LOG_LEVEL=ERROR"}, keyFile...), wantCode: 0, wantServe: true},
		{name: "warn logs, quiet", env: append([]string{"ATHENZ_LOG_LEVEL=warn"}, keyFile...), wantCode: 0, wantServe: true},
		{name: "serve fails", env: keyFile, serveErr: errors.New("listener broke"), wantCode: 1, wantServe: true, wantOut: "listener broke"},
		{name: "unknown flag", args: []string{"--port=1"}, env: keyFile, wantCode: 2, wantOut: "flag provided but not defined: -port"},
		{name: "bad mode", args: []string{"--mode=once"}, env: keyFile, wantCode: 2, wantOut: `--mode="once"`},
		{name: "stray argument", args: []string{"serve"}, env: keyFile, wantCode: 2, wantOut: `unexpected arguments ["serve"]`},
		{name: "unknown variable", env: append([]string{"ATHENZ_LISTN=127.0.0.1:1"}, keyFile...), wantCode: 2, wantOut: "did you mean ATHENZ_LISTEN?"},
		{name: "dev contradiction", args: []string{"--dev"}, env: keyFile, wantCode: 2, wantOut: "ATHENZ_ZTS_URL: --dev"},
		{name: "no settings", wantCode: 2, wantOut: "ATHENZ_ZTS_URL is required"},
	}
	// The test binary has dev mode, as a build with the "dev" tag does;
	// noDevBuild cases take it away.
	withDev := sidecar.StartDevZTS
	if withDev == nil {
		withDev = func(domain, service, keyVersion string, now func() time.Time) (sidecar.DevZTS, []byte, error) {
			return ztsfake.StartDev(domain, service, keyVersion, now)
		}
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sidecar.StartDevZTS = withDev
			if tt.noDevBuild {
				sidecar.StartDevZTS = nil
			}
			t.Cleanup(func() { sidecar.StartDevZTS = withDev })
			var out bytes.Buffer
			served := false
			var got sidecar.Config
			serve := func(_ context.Context, cfg sidecar.Config, log logr.Logger) error {
				served, got = true, cfg
				log.V(1).Info("debug line")
				log.Info("info line")
				return tt.serveErr
			}
			code := run(t.Context(), tt.args, tt.env, &out, serve)
			if code != tt.wantCode {
				t.Errorf("run(%q) = %d, want %d; output:\n%s", tt.args, code, tt.wantCode, out.String())
			}
			if served != tt.wantServe {
				t.Errorf("serve called: %v, want %v", served, tt.wantServe)
			}
			if served && got.Dev != tt.wantDev {
				t.Errorf("Config.Dev = %v, want %v", got.Dev, tt.wantDev)
			}
			if !strings.Contains(out.String(), tt.wantOut) {
				t.Errorf("output %q, want it to contain %q", out.String(), tt.wantOut)
			}
			if strings.Contains(tt.name, "debug") != strings.Contains(out.String(), "debug line") {
				t.Errorf("debug line logged: %v, want only with ATHENZ_LOG_LEVEL=debug", strings.Contains(out.String(), "debug line"))
			}
			if wantInfo := served && !strings.Contains(tt.name, "quiet"); wantInfo != strings.Contains(out.String(), `"msg":"info line"`) {
				t.Errorf("info line logged as JSON: %v, want %v (ATHENZ_LOG_LEVEL sets zap's level)", !wantInfo, wantInfo)
			}
		})
	}
}

// TestDependencies: the sidecar links no Kubernetes package, not the
// Athenz zmssvctoken package (heavy; tests only), and not zap; the
// production build does not link the fake ZTS, which the "dev" build
// (dev mode) does.
func TestDependencies(t *testing.T) {
	const fake = "github.com/athenz-injector/athenz-injector/pkg/tokens/ztsfake"
	for _, dev := range []bool{false, true} {
		args := []string{"list", "-deps", "."}
		if dev {
			args = []string{"list", "-tags", "dev", "-deps", "."}
		}
		out, err := exec.CommandContext(t.Context(), "go", args...).Output()
		if err != nil {
			t.Fatalf("go %s: %v", strings.Join(args, " "), err)
		}
		if !strings.Contains(string(out), "github.com/athenz-injector/athenz-injector/pkg/sidecar\n") {
			t.Fatalf("go %s does not list pkg/sidecar; output:\n%s", strings.Join(args, " "), out)
		}
		for pkg := range strings.FieldsSeq(string(out)) {
			if strings.HasPrefix(pkg, "k8s.io/") || strings.HasPrefix(pkg, "sigs.k8s.io/") || strings.Contains(pkg, "zmssvctoken") ||
				strings.Contains(pkg, "athenzutils") || strings.HasPrefix(pkg, "go.uber.org/zap") || (pkg == fake && !dev) {
				t.Errorf("cmd/sidecar (dev build: %v) depends on %s", dev, pkg)
			}
		}
		if dev && !strings.Contains(string(out), fake+"\n") {
			t.Errorf("the dev build does not link %s: --dev would not work", fake)
		}
	}
}

// TestBinaryDevModeSIGTERM builds the sidecar with dev mode, runs it with --dev on free
// loopback ports, asks it for a token, and stops it with SIGTERM: it exits 0.
func TestBinaryDevModeSIGTERM(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "sidecar")
	if out, err := exec.CommandContext(t.Context(), "go", "build", "-tags", "dev", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "--dev")
	cmd.Env = []string{"ATHENZ_LISTEN=127.0.0.1:0", "ATHENZ_HEALTH_LISTEN=127.0.0.1:0"}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewScanner(stderr)
	var api string
	var logs []string
	for api == "" && lines.Scan() {
		logs = append(logs, lines.Text())
		var entry struct {
			Msg string `json:"msg"`
			API string `json:"api"`
		}
		if json.Unmarshal(lines.Bytes(), &entry) == nil && entry.Msg == "sidecar serving" {
			api = entry.API
		}
	}
	if api == "" {
		_ = cmd.Process.Kill()
		t.Fatalf("no \"sidecar serving\" log line; logs:\n%s", strings.Join(logs, "\n"))
	}
	if !strings.Contains(strings.Join(logs, "\n"), "DEV MODE") {
		t.Errorf("logs do not say DEV MODE:\n%s", strings.Join(logs, "\n"))
	}
	res, err := http.Get("http://" + api + "/ntoken")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || !strings.Contains(string(body), `"token":"v=S1;d=dev;n=app;`) {
		t.Errorf("GET /ntoken = %d %s, want a dev N-token", res.StatusCode, body)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	rest, _ := io.ReadAll(stderr)
	if err := cmd.Wait(); err != nil {
		t.Errorf("sidecar after SIGTERM: %v, want exit status 0; logs:\n%s", err, rest)
	}
	if !strings.Contains(string(rest), "sidecar stopped") {
		t.Errorf("logs after SIGTERM do not say \"sidecar stopped\":\n%s", rest)
	}
}

func TestParseFlags(t *testing.T) {
	tests := []struct {
		args    []string
		want    flags
		wantErr string
	}{
		{nil, flags{mode: "serve"}, ""},
		{[]string{"--dev"}, flags{dev: true, mode: "serve"}, ""},
		{[]string{"-dev=false", "-mode", "init"}, flags{mode: "init"}, ""},
		{[]string{"--mode=init", "--", "-x"}, flags{mode: "init", rest: []string{"-x"}}, ""},
		{[]string{"-dev", "serve", "-mode=init"}, flags{dev: true, mode: "serve", rest: []string{"serve", "-mode=init"}}, ""},
		{[]string{"-mode"}, flags{}, "flag needs an argument: -mode"},
		{[]string{"--port=1"}, flags{}, "flag provided but not defined: -port"},
		{[]string{"-dev=maybe"}, flags{}, `invalid boolean value "maybe" for -dev`},
		{[]string{"-h"}, flags{}, "help requested"},
	}
	for _, tt := range tests {
		got, err := parseFlags(tt.args)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("parseFlags(%q) error = %v, want %q", tt.args, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got.dev != tt.want.dev || got.mode != tt.want.mode || fmt.Sprint(got.rest) != fmt.Sprint(tt.want.rest) {
			t.Errorf("parseFlags(%q) = %+v, %v; want %+v", tt.args, got, err, tt.want)
		}
	}
}
