package framework

import (
	"archive/tar"
	"bytes"
	"debug/elf"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/athenz-injector/athenz-injector/internal/ociimage"
	"github.com/athenz-injector/athenz-injector/pkg/webhook/webhooktest"
)

// TestImagesAreReleaseImages: the injector and sidecar images the test
// node runs are the release images: built by `make build` (the Makefile's
// flags: static, stripped, version set), with the Dockerfile's file
// layout, user and entrypoint.
func TestImagesAreReleaseImages(t *testing.T) {
	root, err := webhooktest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	im, err := BuildImages(t.Context(), root, dir)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(im.Tarball)
	if err != nil {
		t.Fatal(err)
	}
	images := readImages(t, data)
	cmd := exec.Command("git", "describe", "--tags", "--always", "--dirty")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("git describe (the Makefile's VERSION): %v", err)
	}
	version := strings.TrimSpace(string(out))
	for name, bin := range map[string]string{SidecarImage: "sidecar", InjectorImage: "injector"} {
		t.Run(bin, func(t *testing.T) {
			img, ok := images[name]
			if !ok {
				t.Fatalf("no image %s in %s", name, im.Tarball)
			}
			df, err := ociimage.ParseDockerfile(filepath.Join(root, "Dockerfile."+bin))
			if err != nil {
				t.Fatal(err)
			}
			if img.config.Config.User != df.User || strings.Join(img.config.Config.Entrypoint, " ") != strings.Join(df.Entrypoint, " ") {
				t.Errorf("image %s runs %v as %q; Dockerfile.%s says %v as %q", name, img.config.Config.Entrypoint, img.config.Config.User, bin, df.Entrypoint, df.User)
			}
			for dst := range df.Copies {
				got, ok := img.files[strings.TrimPrefix(dst, "/")]
				if !ok {
					t.Fatalf("image %s has no %s (Dockerfile.%s copies it)", name, dst, bin)
				}
				want, err := os.ReadFile(filepath.Join(dir, bin))
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, want) {
					t.Errorf("%s in image %s is not the binary `make build` wrote", dst, name)
				}
				f, err := elf.NewFile(bytes.NewReader(got))
				if err != nil {
					t.Fatalf("%s: %v", dst, err)
				}
				for _, p := range f.Progs {
					if p.Type == elf.PT_INTERP {
						t.Errorf("%s is dynamically linked; the Makefile builds with CGO_ENABLED=0", dst)
					}
				}
				if f.Section(".symtab") != nil {
					t.Errorf("%s has a symbol table; the Makefile strips it (-s -w)", dst)
				}
				if !bytes.Contains(got, []byte(version)) {
					t.Errorf("%s does not carry the version %q the Makefile sets (-X .../pkg/version.Version)", dst, version)
				}
			}
		})
	}
}

type imageContent struct {
	config ociimage.ConfigFile
	files  map[string][]byte
}

// readImages reads every image of an OCI layout tarball.
func readImages(t *testing.T, data []byte) map[string]imageContent {
	t.Helper()
	blobs := map[string][]byte{}
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		blobs[h.Name] = b
	}
	get := func(digest string) []byte { return blobs["blobs/sha256/"+strings.TrimPrefix(digest, "sha256:")] }
	var index struct {
		Manifests []struct {
			Digest      string            `json:"digest"`
			Annotations map[string]string `json:"annotations"`
		} `json:"manifests"`
	}
	if err := json.Unmarshal(blobs["index.json"], &index); err != nil {
		t.Fatal(err)
	}
	out := map[string]imageContent{}
	for _, m := range index.Manifests {
		var manifest struct {
			Config struct{ Digest string }   `json:"config"`
			Layers []struct{ Digest string } `json:"layers"`
		}
		if err := json.Unmarshal(get(m.Digest), &manifest); err != nil {
			t.Fatal(err)
		}
		var ic imageContent
		if err := json.Unmarshal(get(manifest.Config.Digest), &ic.config); err != nil {
			t.Fatal(err)
		}
		ic.files = map[string][]byte{}
		for _, l := range manifest.Layers {
			lr := tar.NewReader(bytes.NewReader(get(l.Digest)))
			for {
				h, err := lr.Next()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(lr)
				ic.files[h.Name] = b
			}
		}
		out[m.Annotations[ociimage.AnnotationContainerdName]] = ic
	}
	return out
}
