// Package ociimage writes container images as OCI image layout tarballs
// (the format `ctr images import` and `docker load` read) from files on
// disk, without a container engine or a registry.
//
// The test node runs the images it writes: a Pod's containers run the same
// binaries, as the same user, with the same file layout as the release
// images that the Dockerfiles describe (FromDockerfile reads them), on a
// base that mirrors distroless static:nonroot (Base).
package ociimage

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"runtime"
	"sort"
	"strings"
	"time"
)

// Media types of the OCI image specification.
const (
	MediaTypeIndex    = "application/vnd.oci.image.index.v1+json"
	MediaTypeManifest = "application/vnd.oci.image.manifest.v1+json"
	MediaTypeConfig   = "application/vnd.oci.image.config.v1+json"
	MediaTypeLayer    = "application/vnd.oci.image.layer.v1.tar"
)

// Annotations of an index entry that name the image: containerd reads the
// first, the OCI specification defines the second (a tag).
const (
	AnnotationContainerdName = "io.containerd.image.name"
	AnnotationRefName        = "org.opencontainers.image.ref.name"
)

// epoch is the modification time of every file and the image's creation
// time: images are reproducible, the same inputs give the same digests.
var epoch = time.Unix(0, 0).UTC()

// File is one entry of an image's file system.
type File struct {
	// Path is absolute ("/sidecar").
	Path string
	// Mode holds the permission bits and fs.ModeDir or fs.ModeSymlink.
	Mode     fs.FileMode
	UID, GID int
	// Data is a regular file's content; Source, if set, is a file on disk
	// read instead.
	Data   []byte
	Source string
	// Link is a symbolic link's target.
	Link string
}

// Image is one image: its name, its files (one layer) and its config.
type Image struct {
	// Name is the full reference, "ghcr.io/athenz-injector/athenz-sidecar:dev".
	Name       string
	Files      []File
	User       string
	Entrypoint []string
	Cmd        []string
	Env        []string
	WorkingDir string
}

// Write writes images into one OCI image layout tarball on w: one
// manifest per image, all listed in index.json.
func Write(w io.Writer, images ...Image) error {
	tw := tar.NewWriter(w)
	blobs := map[string]bool{}
	addBlob := func(data []byte) (string, error) {
		sum := sha256.Sum256(data)
		digest := "sha256:" + hex.EncodeToString(sum[:])
		if !blobs[digest] {
			blobs[digest] = true
			if err := writeTarFile(tw, "blobs/sha256/"+hex.EncodeToString(sum[:]), 0o644, data); err != nil {
				return "", err
			}
		}
		return digest, nil
	}
	if err := writeTarDir(tw, "blobs/"); err != nil {
		return err
	}
	if err := writeTarDir(tw, "blobs/sha256/"); err != nil {
		return err
	}
	var manifests []descriptor
	for _, img := range images {
		d, err := writeImage(img, addBlob)
		if err != nil {
			return fmt.Errorf("image %s: %w", img.Name, err)
		}
		manifests = append(manifests, d)
	}
	index, err := json.Marshal(struct {
		SchemaVersion int          `json:"schemaVersion"`
		MediaType     string       `json:"mediaType"`
		Manifests     []descriptor `json:"manifests"`
	}{2, MediaTypeIndex, manifests})
	if err != nil {
		return err
	}
	if err := writeTarFile(tw, "oci-layout", 0o644, []byte(`{"imageLayoutVersion":"1.0.0"}`)); err != nil {
		return err
	}
	if err := writeTarFile(tw, "index.json", 0o644, index); err != nil {
		return err
	}
	return tw.Close()
}

// WriteFile is Write to a new file at path.
func WriteFile(path string, images ...Image) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := Write(f, images...); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

type descriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int               `json:"size"`
	Platform    *platform         `json:"platform,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

type platform struct {
	Architecture string `json:"architecture"`
	OS           string `json:"os"`
}

func writeImage(img Image, addBlob func([]byte) (string, error)) (descriptor, error) {
	layer, err := Layer(img.Files)
	if err != nil {
		return descriptor{}, err
	}
	layerDigest, err := addBlob(layer)
	if err != nil {
		return descriptor{}, err
	}
	cfg := ConfigFile{
		Created:      epoch,
		Architecture: runtime.GOARCH,
		OS:           "linux",
		Config: Config{
			User:       img.User,
			Entrypoint: img.Entrypoint,
			Cmd:        img.Cmd,
			Env:        img.Env,
			WorkingDir: img.WorkingDir,
		},
		RootFS: RootFS{Type: "layers", DiffIDs: []string{layerDigest}},
	}
	cfgJSON, err := json.Marshal(cfg)
	if err != nil {
		return descriptor{}, err
	}
	cfgDigest, err := addBlob(cfgJSON)
	if err != nil {
		return descriptor{}, err
	}
	manifest, err := json.Marshal(struct {
		SchemaVersion int          `json:"schemaVersion"`
		MediaType     string       `json:"mediaType"`
		Config        descriptor   `json:"config"`
		Layers        []descriptor `json:"layers"`
	}{
		SchemaVersion: 2,
		MediaType:     MediaTypeManifest,
		Config:        descriptor{MediaType: MediaTypeConfig, Digest: cfgDigest, Size: len(cfgJSON)},
		Layers:        []descriptor{{MediaType: MediaTypeLayer, Digest: layerDigest, Size: len(layer)}},
	})
	if err != nil {
		return descriptor{}, err
	}
	manifestDigest, err := addBlob(manifest)
	if err != nil {
		return descriptor{}, err
	}
	tag := img.Name
	if i := strings.LastIndex(tag, ":"); i > strings.LastIndex(tag, "/") {
		tag = tag[i+1:]
	}
	return descriptor{
		MediaType:   MediaTypeManifest,
		Digest:      manifestDigest,
		Size:        len(manifest),
		Platform:    &platform{Architecture: runtime.GOARCH, OS: "linux"},
		Annotations: map[string]string{AnnotationContainerdName: img.Name, AnnotationRefName: tag},
	}, nil
}

// ConfigFile is the part of the OCI image configuration this package
// writes (and tests read back).
type ConfigFile struct {
	Created      time.Time `json:"created"`
	Architecture string    `json:"architecture"`
	OS           string    `json:"os"`
	Config       Config    `json:"config"`
	RootFS       RootFS    `json:"rootfs"`
}

// Config is the execution part of ConfigFile.
type Config struct {
	User       string   `json:"User,omitempty"`
	Entrypoint []string `json:"Entrypoint,omitempty"`
	Cmd        []string `json:"Cmd,omitempty"`
	Env        []string `json:"Env,omitempty"`
	WorkingDir string   `json:"WorkingDir,omitempty"`
}

// RootFS lists the layers' uncompressed digests.
type RootFS struct {
	Type    string   `json:"type"`
	DiffIDs []string `json:"diff_ids"`
}

// Layer is an uncompressed layer tarball of files, with every parent
// directory, sorted by path, owned as the files say and dated epoch.
func Layer(files []File) ([]byte, error) {
	byPath := map[string]File{}
	for _, f := range files {
		if !path.IsAbs(f.Path) {
			return nil, fmt.Errorf("file %q: the path must be absolute", f.Path)
		}
		p := path.Clean(f.Path)
		byPath[p] = f
		for dir := path.Dir(p); dir != "/"; dir = path.Dir(dir) {
			if _, ok := byPath[dir]; !ok {
				byPath[dir] = File{Path: dir, Mode: fs.ModeDir | 0o755}
			}
		}
	}
	paths := make([]string, 0, len(byPath))
	for p := range byPath {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, p := range paths {
		f := byPath[p]
		hdr := &tar.Header{
			Name:    strings.TrimPrefix(p, "/"),
			Mode:    int64(f.Mode.Perm()),
			Uid:     f.UID,
			Gid:     f.GID,
			ModTime: epoch,
			Format:  tar.FormatPAX,
		}
		if f.Mode&fs.ModeSticky != 0 {
			hdr.Mode |= 0o1000
		}
		var data []byte
		switch {
		case f.Mode.IsDir():
			hdr.Typeflag, hdr.Name = tar.TypeDir, hdr.Name+"/"
		case f.Mode&fs.ModeSymlink != 0:
			hdr.Typeflag, hdr.Linkname = tar.TypeSymlink, f.Link
		default:
			hdr.Typeflag = tar.TypeReg
			data = f.Data
			if f.Source != "" {
				var err error
				if data, err = os.ReadFile(f.Source); err != nil {
					return nil, fmt.Errorf("file %s: %w", p, err)
				}
			}
			hdr.Size = int64(len(data))
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, err
		}
		if _, err := tw.Write(data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func writeTarDir(tw *tar.Writer, name string) error {
	return tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeDir, Mode: 0o755, ModTime: epoch, Format: tar.FormatPAX})
}

func writeTarFile(tw *tar.Writer, name string, mode int64, data []byte) error {
	if err := tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: mode, Size: int64(len(data)), ModTime: epoch, Format: tar.FormatPAX}); err != nil {
		return err
	}
	_, err := tw.Write(data)
	return err
}
