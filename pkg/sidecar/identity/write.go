package identity

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// tempMarker is part of the names of temporary files in the identity
// directory: ".<name>.tmp-<random>". The leading dot keeps them out of
// globs such as *.pem.
const tempMarker = ".tmp-"

// fileWrite is one file to replace in the identity directory.
type fileWrite struct {
	name string
	data []byte
	perm fs.FileMode
}

// writeFilesAtomic replaces each file so that a reader sees either its
// old content or its new one, never a partial or empty file: it writes a
// temporary file in dir for each, sets perm (independent of the umask)
// and fsyncs it; only once every file is ready does it rename them over
// the targets, one right after the other, and fsync dir. A certificate
// and a new key then change within two renames of each other, not
// around the writing and syncing of a file. Empty data is refused. When a
// rename fails, the files already renamed stay new (their content was
// complete).
func writeFilesAtomic(dir string, files ...fileWrite) (err error) {
	tmps := make([]string, 0, len(files))
	defer func() {
		for _, tmp := range tmps {
			if tmp != "" {
				os.Remove(tmp)
			}
		}
	}()
	for _, f := range files {
		tmp, err := stageFile(dir, f)
		if err != nil {
			return err
		}
		tmps = append(tmps, tmp)
	}
	for i, f := range files {
		if err := os.Rename(tmps[i], filepath.Join(dir, f.name)); err != nil {
			return fmt.Errorf("writing %s: %w", f.name, err)
		}
		tmps[i] = ""
	}
	// The renames are durable only once the directory is synced. Some file
	// systems cannot sync a directory; the files themselves are complete.
	if d, derr := os.Open(dir); derr == nil {
		defer d.Close()
		if serr := d.Sync(); serr != nil && !errors.Is(serr, os.ErrInvalid) {
			return fmt.Errorf("writing %s: syncing %s: %w", files[len(files)-1].name, dir, serr)
		}
	}
	return nil
}

// stageFile writes f to a synced temporary file in dir and returns its
// path.
func stageFile(dir string, f fileWrite) (_ string, err error) {
	if len(f.data) == 0 {
		return "", fmt.Errorf("writing %s: refusing to write an empty file", f.name)
	}
	tmp, err := os.CreateTemp(dir, "."+f.name+tempMarker+"*")
	if err != nil {
		return "", fmt.Errorf("writing %s: %w", f.name, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err = tmp.Chmod(f.perm); err != nil {
		return "", fmt.Errorf("writing %s: %w", f.name, err)
	}
	if _, err = tmp.Write(f.data); err != nil {
		return "", fmt.Errorf("writing %s: %w", f.name, err)
	}
	if err = tmp.Sync(); err != nil {
		return "", fmt.Errorf("writing %s: %w", f.name, err)
	}
	if err = tmp.Close(); err != nil {
		return "", fmt.Errorf("writing %s: %w", f.name, err)
	}
	return tmp.Name(), nil
}

// removeStaleTemps removes temporary files a previous process left in dir
// when it stopped half-way through a write.
func removeStaleTemps(dir string) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		n := e.Name()
		if e.Type().IsRegular() && strings.HasPrefix(n, ".") && strings.Contains(n, ".pem"+tempMarker) {
			os.Remove(filepath.Join(dir, n))
		}
	}
}
