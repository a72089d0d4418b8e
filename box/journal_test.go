package box

import (
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/veil-edge/veil/egress"
)

func TestJournalRecover(t *testing.T) {
	dir := t.TempDir()
	box, err := egress.OpenOutbox(filepath.Join(dir, "outbox"), egress.OutboxOptions{Store: "s", Device: "d", Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer box.Close()
	j := journal{dir: dir}
	start := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	ws := []journalWindow{
		{Line: "entrance", Start: start, End: start.Add(7 * time.Second), In: 2, Out: 1},
		{Line: "aisle", Start: start, End: start, In: 0, Out: 1}, // a crossing in the window's first instant
	}
	if err := j.save("door", ws); err != nil {
		t.Fatal(err)
	}
	n, err := j.recover("door", box)
	if err != nil || n != 4 {
		t.Fatalf("recover = %d, %v; want 4 crossings", n, err)
	}
	got, err := box.Pending()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].In != 2 || got[0].Out != 1 || got[0].Line != "entrance" || got[1].Out != 1 || !got[1].End.After(got[1].Start) {
		t.Fatalf("outbox after recovery = %+v", got)
	}
	if _, err := os.Stat(j.path("door")); !os.IsNotExist(err) {
		t.Fatalf("journal still there after recovery: %v", err)
	}
	// Recovering again adds nothing.
	if n, err := j.recover("door", box); err != nil || n != 0 || box.Len() != 2 {
		t.Fatalf("second recover = %d, %v, outbox %d", n, err, box.Len())
	}
	// A corrupt journal is moved aside with an error naming it.
	if err := os.WriteFile(j.path("till"), []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := j.recover("till", box); err == nil {
		t.Fatal("corrupt journal accepted")
	}
	if _, err := os.Stat(j.path("till") + ".corrupt"); err != nil {
		t.Fatalf("corrupt journal not moved aside: %v", err)
	}
}
