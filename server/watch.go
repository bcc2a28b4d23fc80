package server

import (
	"context"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
)

// watchDebounce gathers the bursts of events an editor or a config
// management tool makes while writing a file into one reload.
const watchDebounce = 250 * time.Millisecond

// watch reloads the config whenever its file changes, until ctx ends. It
// watches the directory, not the file, because editors and tools replace
// files by renaming a new one over them, which ends a watch on the file.
func (s *Server) watch(ctx context.Context, path string) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return err
	}
	if err := w.Add(filepath.Dir(path)); err != nil {
		w.Close()
		return err
	}
	name := filepath.Clean(path)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer w.Close()
		timer := time.NewTimer(time.Hour)
		timer.Stop()
		for {
			select {
			case <-ctx.Done():
				timer.Stop()
				return
			case ev, ok := <-w.Events:
				if !ok {
					return
				}
				if filepath.Clean(ev.Name) == name && ev.Op&(fsnotify.Write|fsnotify.Create|fsnotify.Rename) != 0 {
					timer.Reset(watchDebounce)
				}
			case err, ok := <-w.Errors:
				if !ok {
					return
				}
				s.log.Warn("config watch", "err", err)
			case <-timer.C:
				s.log.Info("config file changed; reloading", "file", path)
				_ = s.Reload()
			}
		}
	}()
	return nil
}
