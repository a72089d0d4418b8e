package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/veil-edge/veil/internal/durable"
)

// Phase is the journal's "state".
type Phase string

// The phases, in the order Apply goes through them; see the package comment.
const (
	Idle           Phase = "idle"
	Downloading    Phase = "downloading"
	Verified       Phase = "verified"
	Staged         Phase = "staged"
	Switched       Phase = "switched"
	HealthChecking Phase = "health-checking"
	Committed      Phase = "committed"
	RolledBack     Phase = "rolled-back"
)

// settled reports whether no update is under way in phase p.
func (p Phase) settled() bool {
	return p == Idle || p == Committed || p == RolledBack
}

func (p Phase) known() bool {
	switch p {
	case Idle, Downloading, Verified, Staged, Switched, HealthChecking, Committed, RolledBack:
		return true
	}
	return false
}

// State is the agent's journal, kept in state.json.
type State struct {
	// Phase is where the agent is; see the package comment.
	Phase Phase `json:"state"`
	// Version is the release the state is about: the one being applied
	// (downloading to health-checking), the one that runs (idle,
	// committed), or the one that was abandoned (rolled-back).
	Version string `json:"version"`
	// From is the release that was current when the update began, which
	// is the one to go back to; after a rollback, the one now current.
	From string `json:"from"`
	// Highest is the highest version ever committed. It never decreases.
	Highest string `json:"highest"`
	// Updated is when the state was written.
	Updated time.Time `json:"updated"`
	// LastError says why the last update failed, was discarded or was
	// rolled back.
	LastError string `json:"last_error"`
	// Deadline, in states switched and health-checking, is when the new
	// release must have confirmed its health; later, it is rolled back.
	Deadline time.Time `json:"deadline,omitzero"`
}

// ReadStatus reads the journal of the install at root without taking its
// lock or changing anything, for status reports. ok is false if there is
// no journal yet.
func ReadStatus(root string) (st State, ok bool, err error) {
	return loadState(root)
}

// ReadLinks returns the versions current and previous point at under root
// ("" for a link that is missing or not releases/<version>), for status
// reports; it changes nothing.
func ReadLinks(root string) (current, previous string) {
	if abs, err := filepath.Abs(root); err == nil {
		root = abs
	}
	a := &Agent{root: root}
	return a.linkVersion(currentLink), a.linkVersion(prevLink)
}

const (
	stateFile = "state.json"
	tmpPrefix = ".tmp-"
)

// loadState reads root/state.json. ok is false if there is none.
func loadState(root string) (st State, ok bool, err error) {
	path := filepath.Join(root, stateFile)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return State{}, false, nil
	}
	if err != nil {
		return State{}, false, fmt.Errorf("agent: reading the journal: %w", err)
	}
	bad := func(why error) error {
		return fmt.Errorf("agent: the journal %s is unusable: %w; move it aside to start over (the highest-version record used for rollback protection is then rebuilt from the current release)", path, why)
	}
	if err := json.Unmarshal(data, &st); err != nil {
		return State{}, false, bad(err)
	}
	if !st.Phase.known() {
		return State{}, false, bad(fmt.Errorf("unknown state %q", st.Phase))
	}
	// Versions become directory names: refuse anything else.
	for _, v := range []string{st.Version, st.From, st.Highest} {
		if v == "" {
			continue
		}
		if _, err := parseVersion(v); err != nil {
			return State{}, false, bad(err)
		}
	}
	return st, true, nil
}

// setState writes st durably, then makes it the in-memory state, logs it
// and calls the test hook.
func (a *Agent) setState(st State) error {
	st.Updated = time.Now().UTC()
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("agent: encoding the journal: %w", err)
	}
	if err := durable.WriteFile(a.root, stateFile, tmpPrefix, append(data, '\n')); err != nil {
		return fmt.Errorf("agent: writing the journal %s (state %s): %w", filepath.Join(a.root, stateFile), st.Phase, err)
	}
	a.mu.Lock()
	a.state = st
	a.mu.Unlock()
	a.log.Info("update state", "state", st.Phase, "version", st.Version, "from", st.From, "highest", st.Highest, "last_error", st.LastError)
	a.hook(string(st.Phase))
	return nil
}

// hook calls the test hook, if any.
func (a *Agent) hook(point string) {
	if a.afterState != nil {
		a.afterState(point)
	}
}
