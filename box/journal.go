package box

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/veil-edge/veil/egress"
	"github.com/veil-edge/veil/internal/crashpoint"
	"github.com/veil-edge/veil/internal/durable"
)

// journal keeps, per camera, the crossings counted but not yet in the
// outbox (the open window, and closed windows the outbox refused), on disk
// and fsynced after every change. A crash then loses nothing: the next start
// writes them to the outbox as partial windows ending at the last crossing.
//
// A closed window is journaled with the identity (boot, seq) the outbox
// reserved for it before the outbox stores it, and the next start adds it
// under that identity: a crash between the outbox write and the journal
// update cannot queue it twice (TestJournalCrashPoints). Open windows have
// no identity yet; recover reserves one for each and journals it before
// adding it, for the same reason.
type journal struct {
	dir string
}

// journalFile is one camera's journal.
type journalFile struct {
	Camera  string          `json:"camera"`
	Updated time.Time       `json:"updated"`
	Windows []journalWindow `json:"windows"`
}

type journalWindow struct {
	Line  string    `json:"line"`
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
	In    int       `json:"in"`
	Out   int       `json:"out"`
	Boot  uint64    `json:"boot,omitempty"` // the outbox identity reserved for a closed window; 0 for an open one
	Seq   uint64    `json:"seq,omitempty"`
}

func (j journal) path(camera string) string { return filepath.Join(j.dir, camera+".json") }

// save replaces camera's journal atomically: temp file, fsync, rename,
// fsync of the directory. No windows removes it.
func (j journal) save(camera string, ws []journalWindow) error {
	p := j.path(camera)
	if len(ws) == 0 {
		err := os.Remove(p)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return durable.SyncDir(j.dir)
	}
	b, err := json.Marshal(journalFile{Camera: camera, Updated: time.Now().UTC(), Windows: ws})
	if err != nil {
		return err
	}
	return durable.WriteFile(j.dir, camera+".json", ".tmp-", b)
}

// recover moves what a crashed run left in camera's journal into the
// outbox and clears the journal. It returns how many crossings it saved.
// An unreadable journal is renamed aside (.corrupt) and reported.
func (j journal) recover(camera string, box *egress.Outbox) (int, error) {
	p := j.path(camera)
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	var jf journalFile
	if err := json.Unmarshal(b, &jf); err != nil || jf.Camera != camera {
		if rerr := os.Rename(p, p+".corrupt"); rerr != nil {
			return 0, rerr
		}
		return 0, fmt.Errorf("journal %s is unreadable (moved to %s.corrupt): %v", p, p, err)
	}
	// Open windows become partial windows: give each an identity and
	// journal it before adding any.
	reserved := false
	for i, w := range jf.Windows {
		if !w.End.After(w.Start) {
			jf.Windows[i].End = w.Start.Add(time.Millisecond)
		}
		if w.Seq == 0 {
			jf.Windows[i].Boot, jf.Windows[i].Seq = box.Reserve()
			reserved = true
		}
	}
	if reserved {
		if err := j.save(camera, jf.Windows); err != nil {
			return 0, fmt.Errorf("journal %s: %w", p, err)
		}
		crashpoint.Hit("recover-reserved")
	}
	n := 0
	for len(jf.Windows) > 0 {
		w := jf.Windows[0]
		if _, err := box.AddAs(egress.Counts{Camera: camera, Line: w.Line, Start: w.Start, End: w.End, In: w.In, Out: w.Out}, w.Boot, w.Seq); err != nil {
			return n, fmt.Errorf("journal %s: %w", p, err)
		}
		crashpoint.Hit("recover-stored")
		n += w.In + w.Out
		jf.Windows = jf.Windows[1:]
		if err := j.save(camera, jf.Windows); err != nil {
			return n, fmt.Errorf("journal %s: %w", p, err)
		}
	}
	return n, nil
}
