package cli

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"golang.org/x/term"
)

// progress reports a long job: a redrawn bar on a terminal, a log line every
// few seconds otherwise.
type progress struct {
	w      io.Writer
	tty    bool
	total  int // -1 if unknown
	start  time.Time
	last   time.Time
	log    *slog.Logger
	what   string
	closed bool
}

func newProgress(log *slog.Logger, what string, total int) *progress {
	return &progress{
		w: os.Stderr, tty: term.IsTerminal(int(os.Stderr.Fd())),
		total: total, start: time.Now(), log: log, what: what,
	}
}

// update records n units done; cheap enough to call per frame.
func (p *progress) update(n int) {
	now := time.Now()
	if p.tty {
		if now.Sub(p.last) < 100*time.Millisecond && n != p.total {
			return
		}
		p.last = now
		fmt.Fprintf(p.w, "\r%s", p.line(n, now))
		return
	}
	if now.Sub(p.last) < 5*time.Second {
		return
	}
	if p.last.IsZero() {
		p.last = now // first line after 5 s, not at once
		return
	}
	p.last = now
	fps := float64(n) / now.Sub(p.start).Seconds()
	p.log.Info("progress", "what", p.what, "done", n, "total", p.total, "fps", fmt.Sprintf("%.1f", fps))
}

func (p *progress) line(n int, now time.Time) string {
	el := now.Sub(p.start).Seconds()
	fps := 0.0
	if el > 0 {
		fps = float64(n) / el
	}
	if p.total <= 0 {
		return fmt.Sprintf("%s %d frames  %.1f fps", p.what, n, fps)
	}
	const width = 30
	done := min(width, n*width/p.total)
	eta := "?"
	if fps > 0 {
		eta = (time.Duration(float64(p.total-n)/fps) * time.Second).Round(time.Second).String()
	}
	return fmt.Sprintf("%s [%s%s] %d/%d  %.1f fps  ETA %s ", p.what,
		strings.Repeat("#", done), strings.Repeat(".", width-done), n, p.total, fps, eta)
}

// finish ends the bar line on a terminal.
func (p *progress) finish() {
	if p.tty && !p.closed {
		fmt.Fprintln(p.w)
	}
	p.closed = true
}
