// Package atomicfile replaces files so that a reader sees either the old
// content or the new, never a partial or empty file: the identity
// directory's certificate and key, and the token files apps read.
package atomicfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// tempMarker is part of the names of temporary files: ".<name>.tmp-<random>".
// The leading dot keeps them out of globs such as *.pem.
const tempMarker = ".tmp-"

// File is one file to replace in a directory.
type File struct {
	Name string
	Data []byte
	Perm fs.FileMode
}

// Write replaces each file of dir so that a reader sees either its old
// content or its new one, never a partial or empty file: it writes a
// temporary file in dir for each, sets Perm (independent of the umask)
// and fsyncs it; only once every file is ready does it rename them over
// the targets, in order, one right after the other, and fsync dir. A
// certificate and a new key then change within two renames of each
// other, not around the writing and syncing of a file. Empty data is
// refused. When a rename fails, the files already renamed stay new (their
// content was complete).
func Write(dir string, files ...File) (err error) {
	tmps := make([]string, 0, len(files))
	defer func() {
		for _, tmp := range tmps {
			if tmp != "" {
				os.Remove(tmp)
			}
		}
	}()
	for _, f := range files {
		tmp, err := stage(dir, f)
		if err != nil {
			return err
		}
		tmps = append(tmps, tmp)
	}
	for i, f := range files {
		if err := os.Rename(tmps[i], filepath.Join(dir, f.Name)); err != nil {
			return fmt.Errorf("writing %s: %w", f.Name, err)
		}
		tmps[i] = ""
	}
	// The renames are durable only once the directory is synced. Some file
	// systems cannot sync a directory; the files themselves are complete.
	if d, derr := os.Open(dir); derr == nil {
		defer d.Close()
		if serr := d.Sync(); serr != nil && !errors.Is(serr, os.ErrInvalid) {
			return fmt.Errorf("writing %s: syncing %s: %w", files[len(files)-1].Name, dir, serr)
		}
	}
	return nil
}

// stage writes f to a synced temporary file in dir and returns its path.
func stage(dir string, f File) (_ string, err error) {
	if len(f.Data) == 0 {
		return "", fmt.Errorf("writing %s: refusing to write an empty file", f.Name)
	}
	tmp, err := os.CreateTemp(dir, "."+f.Name+tempMarker+"*")
	if err != nil {
		return "", fmt.Errorf("writing %s: %w", f.Name, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err = tmp.Chmod(f.Perm); err != nil {
		return "", fmt.Errorf("writing %s: %w", f.Name, err)
	}
	if _, err = tmp.Write(f.Data); err != nil {
		return "", fmt.Errorf("writing %s: %w", f.Name, err)
	}
	if err = tmp.Sync(); err != nil {
		return "", fmt.Errorf("writing %s: %w", f.Name, err)
	}
	if err = tmp.Close(); err != nil {
		return "", fmt.Errorf("writing %s: %w", f.Name, err)
	}
	return tmp.Name(), nil
}

// RemoveTemps removes the temporary files that a process stopped half-way
// through Write left in dir: regular files whose name starts with a dot
// and holds the temporary marker after one of the given suffixes (".pem",
// ".accesstoken", ...).
func RemoveTemps(dir string, suffixes ...string) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		n := e.Name()
		if !e.Type().IsRegular() || !strings.HasPrefix(n, ".") {
			continue
		}
		for _, s := range suffixes {
			if strings.Contains(n, s+tempMarker) {
				os.Remove(filepath.Join(dir, n))
				break
			}
		}
	}
}
