package framework

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/athenz-injector/athenz-injector/internal/ociimage"
)

// Images the test node runs, written by BuildImages.
const (
	// SidecarImage is the injector's --sidecar-image.
	SidecarImage  = "ghcr.io/athenz-injector/athenz-sidecar:dev"
	InjectorImage = "ghcr.io/athenz-injector/athenz-injector:dev"
	// AppImage is test/images/testapp: `testapp serve`, and curl and cat
	// for kubectl exec.
	AppImage = "localhost/athenz-injector/testapp:dev"
)

// Images are the binaries and image tarball of a run.
type Images struct {
	Binaries
	// Tarball is an OCI image layout with SidecarImage, InjectorImage,
	// AppImage and the sandbox image.
	Tarball string
	// Sandbox is the Pod sandbox ("pause") image.
	Sandbox string
}

// BuildImages builds the injector and sidecar exactly as a release does
// (`make build`: the Makefile's GOBUILD flags), the test app and the pause
// program, and writes the images into dir/images.tar: the injector's and
// the sidecar's from their Dockerfiles (ociimage.ParseDockerfile: same
// file layout, user and entrypoint), the app's and pause's on the same
// base.
func BuildImages(ctx context.Context, root, dir string) (Images, error) {
	im := Images{
		Binaries: Binaries{Injector: filepath.Join(dir, "injector"), Sidecar: filepath.Join(dir, "sidecar")},
		Tarball:  filepath.Join(dir, "images.tar"),
		Sandbox:  sandboxImage,
	}
	run := func(name string, args ...string) error {
		cmd := exec.CommandContext(ctx, name, args...)
		cmd.Dir = root
		cmd.Env = append(cmd.Environ(), "CGO_ENABLED=0")
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("%s %s: %v\n%s", name, strings.Join(args, " "), err, strings.TrimSpace(out.String()))
		}
		return nil
	}
	if err := run("make", "--no-print-directory", "BIN="+dir, "build"); err != nil {
		return im, err
	}
	if err := run(goTool(), "build", "-trimpath", "-ldflags=-s -w", "-o", dir+string(filepath.Separator), "./test/images/testapp", "./test/images/pause"); err != nil {
		return im, err
	}
	images, err := ociimage.ReleaseImages(root, dir, map[string]string{InjectorImage: "injector", SidecarImage: "sidecar"})
	if err != nil {
		return im, err
	}
	app := ociimage.Image{
		Name: AppImage,
		Files: append(ociimage.Base(),
			ociimage.File{Path: "/testapp", Mode: 0o755, Source: filepath.Join(dir, "testapp")},
			ociimage.File{Path: "/usr/bin/curl", Mode: fs.ModeSymlink | 0o777, Link: "/testapp"},
			ociimage.File{Path: "/bin/cat", Mode: fs.ModeSymlink | 0o777, Link: "/testapp"},
		),
		User:       fmt.Sprint(ociimage.NonRootUID),
		Entrypoint: []string{"/testapp", "serve"},
		Env:        ociimage.BaseEnv,
		WorkingDir: ociimage.BaseWorkingDir,
	}
	pause := ociimage.Image{
		Name:       sandboxImage,
		Files:      []ociimage.File{{Path: "/pause", Mode: 0o755, Source: filepath.Join(dir, "pause")}},
		User:       "65535:65535", // as Kubernetes' pause image
		Entrypoint: []string{"/pause"},
	}
	images = append(images, app, pause)
	if err := ociimage.WriteFile(im.Tarball, images...); err != nil {
		return im, fmt.Errorf("writing %s: %w", im.Tarball, err)
	}
	return im, nil
}
