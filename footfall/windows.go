package footfall

import (
	"fmt"
	"sort"
	"time"
)

// Window is one line's crossings in one time window [Start, End).
type Window struct {
	Line       int
	Start, End time.Time
	Tally
}

// Windows sums crossings into windows of a fixed size aligned to the clock:
// every window starts at a multiple of Size since the zero time, so 15-minute
// windows start at :00, :15, :30 and :45 past the hour (UTC). The first
// window starts when counting started (to the second), not at its aligned
// start, so no report claims time nobody counted.
type Windows struct {
	size  time.Duration
	lines int
	start time.Time             // aligned start of the oldest window not yet closed
	from  time.Time             // when counting started
	open  map[time.Time][]Tally // window start -> one tally per line
}

// NewWindows starts windows of size for lines counting lines at time now.
func NewWindows(size time.Duration, lines int, now time.Time) (*Windows, error) {
	if size < time.Second {
		return nil, fmt.Errorf("footfall: window %s too short; allowed >= 1s", size)
	}
	if lines < 1 {
		return nil, fmt.Errorf("footfall: no lines to count")
	}
	return &Windows{size: size, lines: lines, start: now.Truncate(size), from: now.Truncate(time.Second), open: map[time.Time][]Tally{}}, nil
}

// Size is the window length.
func (w *Windows) Size() time.Duration { return w.size }

// Add counts one crossing of line at time at. A crossing older than the
// oldest open window (a clock step backwards) is counted in that window, so
// nothing is lost.
func (w *Windows) Add(line int, dir Direction, at time.Time) {
	s := at.Truncate(w.size)
	if s.Before(w.start) {
		s = w.start
	}
	t, ok := w.open[s]
	if !ok {
		t = make([]Tally, w.lines)
		w.open[s] = t
	}
	if dir == In {
		t[line].In++
	} else {
		t[line].Out++
	}
}

// Close closes every window that ended at or before now and returns one
// Window per line for each, oldest first, including windows with no
// crossings (so a reader can tell "nobody passed" from "not counting").
func (w *Windows) Close(now time.Time) []Window {
	var out []Window
	for end := w.start.Add(w.size); !end.After(now); end = w.start.Add(w.size) {
		out = append(out, w.take(end)...)
	}
	return out
}

// Snapshot returns the crossings counted so far in windows not yet closed,
// one Window per line with crossings, each ending at now or at its own end,
// without closing anything: what a crash would lose.
func (w *Windows) Snapshot(now time.Time) []Window {
	var starts []time.Time
	for s := range w.open {
		starts = append(starts, s)
	}
	sort.Slice(starts, func(i, j int) bool { return starts[i].Before(starts[j]) })
	var out []Window
	for _, s := range starts {
		start, end := s, s.Add(w.size)
		if w.from.After(start) {
			start = w.from
		}
		if now.Before(end) {
			end = now
		}
		for i, t := range w.open[s] {
			if t != (Tally{}) {
				out = append(out, Window{Line: i, Start: start, End: end, Tally: t})
			}
		}
	}
	return out
}

// Flush closes every window up to and including the one holding now, even if
// it has not ended yet (the end of a file).
func (w *Windows) Flush(now time.Time) []Window {
	out := w.Close(now)
	if _, ok := w.open[w.start]; ok || now.After(w.start) {
		out = append(out, w.take(w.start.Add(w.size))...)
	}
	return out
}

func (w *Windows) take(end time.Time) []Window {
	t := w.open[w.start]
	delete(w.open, w.start)
	out := make([]Window, w.lines)
	start := w.start
	if w.from.After(start) {
		start = w.from
	}
	for i := range out {
		out[i] = Window{Line: i, Start: start, End: end}
		if t != nil {
			out[i].Tally = t[i]
		}
	}
	w.start = end
	return out
}
