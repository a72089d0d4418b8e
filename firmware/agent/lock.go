package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"
)

// lockFile in the root is held (flock, exclusive) by whichever process is
// changing the install: veil run's agent while it applies, confirms or
// recovers, or a `veil update` command. The kernel drops the lock when its
// holder dies, so a killed process never leaves it held.
const lockFile = "lock"

// lockPoll is how often a waiting process retries the lock.
const lockPoll = 100 * time.Millisecond

// lockWaitNotice is how long a process waits before saying that it does.
const lockWaitNotice = 2 * time.Second

// acquire takes the in-process mutex and then the root's lock, waiting until
// ctx ends, and reloads the journal from disk, which another process may
// have changed. The caller must call the returned release.
func (a *Agent) acquire(ctx context.Context) (release func(), err error) {
	a.op.Lock()
	f, err := os.OpenFile(a.path(lockFile), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		a.op.Unlock()
		return nil, fmt.Errorf("agent: opening the lock %s: %w", a.path(lockFile), err)
	}
	unlock := func() { f.Close(); a.op.Unlock() } // closing drops the flock
	start := time.Now()
	noticed := false
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			unlock()
			return nil, fmt.Errorf("agent: locking %s: %w", a.path(lockFile), err)
		}
		if !noticed && time.Since(start) > lockWaitNotice {
			noticed = true
			a.log.Info("agent: waiting for another process to finish with the install (an update being applied or confirmed)", "lock", a.path(lockFile))
		}
		select {
		case <-ctx.Done():
			unlock()
			return nil, fmt.Errorf("agent: waiting for the lock %s held by another veil process: %w", a.path(lockFile), ctx.Err())
		case <-time.After(lockPoll):
		}
	}
	st, ok, err := loadState(a.root)
	if err != nil {
		unlock()
		return nil, err
	}
	if ok {
		a.mu.Lock()
		a.state = st
		a.mu.Unlock()
	}
	return unlock, nil
}
