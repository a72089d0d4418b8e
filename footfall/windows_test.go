package footfall

import (
	"testing"
	"time"
)

func TestWindowsAlignAndClose(t *testing.T) {
	base := time.Date(2026, 11, 23, 10, 7, 30, 0, time.UTC)
	w, err := NewWindows(15*time.Minute, 2, base)
	if err != nil {
		t.Fatal(err)
	}
	w.Add(0, In, base.Add(time.Minute))                   // 10:08:30 -> [10:00, 10:15)
	w.Add(1, Out, base.Add(7*time.Minute+30*time.Second)) // 10:15:00 exactly -> [10:15, 10:30)
	w.Add(0, In, base.Add(40*time.Minute))                // 10:47:30 -> [10:45, 11:00)
	if got := w.Close(base.Add(7 * time.Minute)); len(got) != 0 {
		t.Fatalf("closed %d windows before 10:15", len(got))
	}
	got := w.Close(time.Date(2026, 11, 23, 11, 0, 0, 0, time.UTC))
	if len(got) != 8 { // four windows (10:00..11:00) × two lines, empty ones included
		t.Fatalf("closed %d windows, want 8: %+v", len(got), got)
	}
	at := func(h, m int) time.Time { return time.Date(2026, 11, 23, h, m, 0, 0, time.UTC) }
	want := []Window{
		{0, base, at(10, 15), Tally{1, 0}}, {1, base, at(10, 15), Tally{}}, // counting started at 10:07:30
		{0, at(10, 15), at(10, 30), Tally{}}, {1, at(10, 15), at(10, 30), Tally{0, 1}},
		{0, at(10, 30), at(10, 45), Tally{}}, {1, at(10, 30), at(10, 45), Tally{}},
		{0, at(10, 45), at(11, 0), Tally{1, 0}}, {1, at(10, 45), at(11, 0), Tally{}},
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("window %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	// A crossing stamped before the oldest open window (clock stepped back)
	// is kept in the oldest open window.
	w.Add(1, In, at(10, 50))
	got = w.Flush(at(11, 1))
	if len(got) != 2 || got[1].In != 1 || !got[1].Start.Equal(at(11, 0)) {
		t.Fatalf("flush = %+v, want the 11:00 window with the late crossing", got)
	}
}

func TestWindowsRejectBadSize(t *testing.T) {
	if _, err := NewWindows(time.Millisecond, 1, time.Now()); err == nil {
		t.Fatal("1ms window accepted")
	}
	if _, err := NewWindows(time.Minute, 0, time.Now()); err == nil {
		t.Fatal("no lines accepted")
	}
}

func TestWindowsSnapshot(t *testing.T) {
	at := func(m, sec int) time.Time { return time.Date(2026, 11, 23, 10, m, sec, 0, time.UTC) }
	w, err := NewWindows(time.Minute, 2, at(0, 30))
	if err != nil {
		t.Fatal(err)
	}
	if got := w.Snapshot(at(0, 40)); len(got) != 0 {
		t.Fatalf("snapshot with no crossings = %+v", got)
	}
	w.Add(1, In, at(0, 45))
	w.Add(1, Out, at(0, 50))
	w.Add(0, In, at(1, 5)) // the next window, before Close ran
	got := w.Snapshot(at(1, 10))
	want := []Window{{1, at(0, 30), at(1, 0), Tally{1, 1}}, {0, at(1, 0), at(1, 10), Tally{1, 0}}}
	if len(got) != len(want) {
		t.Fatalf("snapshot = %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("snapshot[%d] = %+v, want %+v", i, got[i], want[i])
		}
	}
	// A snapshot closes nothing.
	if closed := w.Close(at(1, 0)); len(closed) != 2 || closed[1].In != 1 || closed[1].Out != 1 {
		t.Errorf("close after snapshot = %+v", closed)
	}
}
