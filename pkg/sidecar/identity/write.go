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

// writeFileAtomic replaces dir/name with data so that a reader sees either
// the old content or the new one, never a partial or empty file: it writes
// a temporary file in dir, sets perm (independent of the umask), fsyncs it,
// renames it over the target and fsyncs dir. Empty data is refused.
func writeFileAtomic(dir, name string, data []byte, perm fs.FileMode) (err error) {
	if len(data) == 0 {
		return fmt.Errorf("writing %s: refusing to write an empty file", name)
	}
	f, err := os.CreateTemp(dir, "."+name+tempMarker+"*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", name, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err = f.Chmod(perm); err != nil {
		return fmt.Errorf("writing %s: %w", name, err)
	}
	if _, err = f.Write(data); err != nil {
		return fmt.Errorf("writing %s: %w", name, err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("writing %s: %w", name, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", name, err)
	}
	if err = os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		return fmt.Errorf("writing %s: %w", name, err)
	}
	// The rename is durable only once the directory is synced. Some file
	// systems cannot sync a directory; the file itself is complete.
	if d, derr := os.Open(dir); derr == nil {
		if serr := d.Sync(); serr != nil && !errors.Is(serr, os.ErrInvalid) {
			d.Close()
			return fmt.Errorf("writing %s: syncing %s: %w", name, dir, serr)
		}
		d.Close()
	}
	return nil
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
