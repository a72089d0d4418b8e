package box

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/veil-edge/veil/blur"
	"github.com/veil-edge/veil/box/selftest"
	"github.com/veil-edge/veil/firmware/agent"
	"github.com/veil-edge/veil/firmware/updater"
	"github.com/veil-edge/veil/internal/durable"
)

// ErrRestart is returned by Run when veil stopped so that the release
// current points at runs instead: an update was switched in or rolled
// back. systemd (Restart=always) starts veil again.
var ErrRestart = errors.New("veil stopped to restart on another release (an update was switched in or rolled back); systemd starts it again")

// healthyFrames is how many frames a camera must deliver, decided by the
// face detector (not redacted whole), for a new release to count as
// working.
const healthyFrames = 10

// updates is veil run's part in over-the-air updates.
type updates struct {
	u       *updater.Updater
	running string        // the release this process runs, "" if none under update.root
	check   bool          // update.metadata_url is set and this is a release: check on schedule
	every   time.Duration // update.interval

	mu        sync.Mutex
	lastCheck time.Time
	lastErr   string
	offer     string
}

// UpdateHealth is the update part of /healthz.
type UpdateHealth struct {
	Running   string `json:"running"`              // release this process runs
	State     string `json:"state"`                // the install journal's state
	Version   string `json:"version"`              // the release the state is about
	LastError string `json:"last_error,omitempty"` // why the last update failed or was rolled back
	Checked   string `json:"last_check,omitempty"`
	CheckErr  string `json:"last_check_error,omitempty"`
	Offer     string `json:"offer,omitempty"` // what the last check found
}

// openUpdates opens the install at update.root when this process is one of
// its releases (it may have to confirm itself) or update.metadata_url is
// set. Recovery runs here: an interrupted update may be rolled back, and
// then Run ends at once with ErrRestart.
func (s *Service) openUpdates() (*updates, error) {
	c := s.o.Config.Update
	running := agent.RunningVersion(c.Root)
	if running == "" && c.MetadataURL == "" {
		return nil, nil
	}
	var trusted []byte
	if c.MetadataURL != "" {
		if running == "" {
			s.log.Warn("update.metadata_url is set but this veil does not run from update.root/releases/<version>/veil: it will not update itself", "root", c.Root)
			return nil, nil
		}
		var err error
		if trusted, err = os.ReadFile(c.TrustedRoot); err != nil {
			return nil, fmt.Errorf("update.trusted_root: the TUF root metadata that update.metadata_url is checked against: %w", err)
		}
	}
	u, err := updater.Open(updater.Options{
		Root: c.Root, TrustedRoot: trusted, MetadataURL: c.MetadataURL, TargetsURL: c.TargetsURL,
		HealthTimeout: c.HealthTimeout, Running: running, Restart: s.requestRestart, Log: s.log,
	})
	if err != nil {
		return nil, fmt.Errorf("update.root %s: %w", c.Root, err)
	}
	return &updates{u: u, running: running, check: c.MetadataURL != "", every: c.Interval}, nil
}

// requestRestart ends Run with ErrRestart (at once if it has not started).
func (s *Service) requestRestart(context.Context) error {
	s.restartMu.Lock()
	defer s.restartMu.Unlock()
	s.restartWanted = true
	if s.stopRun != nil {
		s.stopRun(ErrRestart)
	}
	return nil
}

// runUpdates confirms this release if it was just switched in, then checks
// for releases every update.interval until ctx ends.
func (s *Service) runUpdates(ctx context.Context) {
	up := s.upd
	ok, err := up.u.Agent().Confirm(ctx, s.updateHealth)
	switch {
	case errors.Is(err, agent.ErrRolledBack):
		s.log.Error("this release failed its health check and was rolled back; restarting on the previous one", "release", up.running, "err", err)
		return
	case err != nil && ctx.Err() == nil:
		s.log.Error("confirming this release failed", "release", up.running, "err", err)
	case ok:
		s.log.Info("this release passed its health check and is committed", "release", up.running)
	}
	if !up.check {
		return
	}
	for {
		// Up to a tenth of the interval at random, so that a fleet started
		// together does not ask head office all at once.
		wait := up.every + rand.N(up.every/10+1)
		if !up.hasChecked() {
			wait = rand.N(min(up.every, time.Minute) + 1)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		off, err := up.u.ApplyLatest(ctx)
		up.record(off, err)
		switch {
		case err != nil && ctx.Err() != nil:
			return
		case err != nil:
			s.log.Error("update failed; the running release stays", "err", err)
		case off.Available():
			s.log.Info("update switched in; restarting on it", "version", off.Next.Version.String())
			return // Restart has ended Run
		default:
			s.log.Info("update check", "result", off.Reason)
		}
	}
}

func (up *updates) hasChecked() bool {
	up.mu.Lock()
	defer up.mu.Unlock()
	return !up.lastCheck.IsZero()
}

func (up *updates) record(off updater.Offer, err error) {
	up.mu.Lock()
	defer up.mu.Unlock()
	up.lastCheck = time.Now()
	up.lastErr, up.offer = "", off.Reason
	if err != nil {
		up.lastErr = err.Error()
	}
}

// health reports the update state for /healthz.
func (up *updates) health() *UpdateHealth {
	st := up.u.Agent().Status()
	h := &UpdateHealth{Running: up.running, State: string(st.Phase), Version: st.Version, LastError: st.LastError}
	up.mu.Lock()
	defer up.mu.Unlock()
	if !up.lastCheck.IsZero() {
		h.Checked = up.lastCheck.UTC().Format(time.RFC3339)
	}
	h.CheckErr, h.Offer = up.lastErr, up.offer
	return h
}

// updateHealth is the health check of a newly switched-in release: the
// outbox takes a durable write, the canary face is found and redacted with
// the loaded models, and a camera delivers frames decided by the detector.
// It waits for the frames until ctx ends.
func (s *Service) updateHealth(ctx context.Context, _ string) error {
	dir := s.o.Config.Outbox.Dir
	if err := durable.WriteFile(dir, ".health-probe", ".tmp-", []byte("probe\n")); err != nil {
		return fmt.Errorf("the outbox %s is not writable: %w", dir, err)
	}
	if err := os.Remove(filepath.Join(dir, ".health-probe")); err != nil {
		return fmt.Errorf("the outbox %s: %w", dir, err)
	}
	res, err := selftest.Check(s.newDet, blur.DefaultOptions)
	if err != nil {
		return err
	}
	s.log.Info("update health: canary face found and redacted", "faces", res.Faces, "iou", fmt.Sprintf("%.2f", res.IoU), "correlation", fmt.Sprintf("%.3f", res.Correlation))
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		best, name := int64(0), ""
		for _, c := range s.cams {
			c.mu.Lock()
			n := c.frames - c.whole
			c.mu.Unlock()
			if n > best {
				best, name = n, c.cfg.Name
			}
		}
		if best >= healthyFrames {
			s.log.Info("update health: frames flowing", "camera", name, "frames", best)
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("no camera delivered %d frames decided by the face detector in time (best %d): %w", healthyFrames, best, ctx.Err())
		case <-tick.C:
		}
	}
}
