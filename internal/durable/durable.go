// Package durable writes files so that they survive a crash or power cut
// whole or not at all: a temporary file in the same directory, fsynced,
// renamed into place, and the directory fsynced.
package durable

import (
	"fmt"
	"os"
	"path/filepath"
)

// WriteFile replaces dir/name with data durably. The temporary file is
// named tmpPrefix+name+"-*" so that a crashed write can be recognised and
// removed by the directory's owner.
func WriteFile(dir, name, tmpPrefix string, data []byte) error {
	return write(dir, name, tmpPrefix, data, nil)
}

// WriteFileMode is WriteFile for a file other users read: the file gets
// mode perm and, with gid >= 0, that group (chown needs the right to), both
// set before it is renamed into place, so it never appears with other
// permissions.
func WriteFileMode(dir, name, tmpPrefix string, data []byte, perm os.FileMode, gid int) error {
	return write(dir, name, tmpPrefix, data, func(f *os.File) error {
		if gid >= 0 {
			if err := f.Chown(-1, gid); err != nil {
				return err
			}
		}
		return f.Chmod(perm)
	})
}

// write is WriteFile with prep run on the temporary file before its data.
func write(dir, name, tmpPrefix string, data []byte, prep func(*os.File) error) error {
	f, err := os.CreateTemp(dir, tmpPrefix+name+"-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	if prep != nil {
		err = prep(f)
	}
	if err == nil {
		_, err = f.Write(data)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, name))
	}
	if err != nil {
		_ = os.Remove(tmp)
		return err
	}
	return SyncDir(dir)
}

// SyncDir makes the directory's entries (creations, renames, removals)
// durable.
func SyncDir(dir string) error {
	if err := SyncPath(dir); err != nil {
		return fmt.Errorf("syncing directory %s: %w", dir, err)
	}
	return nil
}

// SyncPath fsyncs the file or directory at path.
func SyncPath(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	return SyncClose(f)
}

// SyncClose fsyncs f and closes it, returning the first error.
func SyncClose(f *os.File) error {
	err := f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
