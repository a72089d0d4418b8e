package dashboard

import (
	"fmt"
	"math"
	"time"

	"github.com/veil-edge/veil/hq/store"
)

// Chart geometry, in SVG user units (the viewBox; CSS scales the chart).
const (
	chartW      = 760
	chartH      = 220
	chartLeft   = 56 // room for the y labels
	chartRight  = 8
	chartTop    = 22 // room for the legend
	chartBottom = 28 // room for the x labels
	maxXLabels  = 8
)

// sums is a number of people in and out.
type sums struct{ In, Out int64 }

func (s *sums) add(in, out int64) { s.In += in; s.Out += out }

// chart is one bar chart as the template draws it: a pair of bars (in,
// out) per bucket or per store, a y axis from 0 with ticks and labelled x
// positions.
type chart struct {
	Title string // the chart's accessible name
	Bars  []bar
	YTick []tick
	XTick []tick
	// The plot area.
	Left, Right, Top, Bottom float64
	Width, Height            int
}

// bar is one bucket's (or store's) pair of bars with its numbers.
type bar struct {
	Bucket string // data-bucket: the bucket's start, RFC 3339 UTC; "" on the stores chart
	Store  string // data-store on the stores chart
	Label  string // the <title> tooltip
	In     int64
	Out    int64
	// Geometry of the in and out bars.
	XIn, XOut, W float64
	YIn, HIn     float64
	YOut, HOut   float64
}

// tick is a labelled position on an axis.
type tick struct {
	Pos   float64
	Label string
}

// newChart lays out a chart of n slots with bars[i] in slot slots[i], the
// y axis scaled to the highest bar.
func newChart(title string, n int, bars []bar, slots []int) chart {
	c := chart{
		Title: title, Width: chartW, Height: chartH,
		Left: chartLeft, Right: chartW - chartRight, Top: chartTop, Bottom: chartH - chartBottom,
	}
	var top int64
	for _, b := range bars {
		top = max(top, b.In, b.Out)
	}
	step := niceStep(top)
	ymax := max(step, (top+step-1)/step*step)
	y := func(v int64) float64 { return c.Bottom - float64(v)/float64(ymax)*(c.Bottom-c.Top) }
	for v := int64(0); v <= ymax; v += step {
		c.YTick = append(c.YTick, tick{Pos: y(v), Label: fmt.Sprint(v)})
	}
	slotW := (c.Right - c.Left) / float64(max(n, 1))
	for i, b := range bars {
		x := c.Left + float64(slots[i])*slotW
		b.W = slotW * 0.4
		b.XIn, b.XOut = x+slotW*0.1, x+slotW*0.5
		b.YIn, b.YOut = y(b.In), y(b.Out)
		b.HIn, b.HOut = c.Bottom-b.YIn, c.Bottom-b.YOut
		c.Bars = append(c.Bars, b)
	}
	return c
}

// niceStep is a y tick step (1, 2 or 5 times a power of ten) giving at most
// five ticks above 0 up to top.
func niceStep(top int64) int64 {
	if top <= 5 {
		return 1
	}
	raw := float64(top) / 5
	p := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= raw {
			return int64(m * p)
		}
	}
	return int64(10 * p)
}

// timeChart charts the buckets of p that byBucket has, over the whole
// period: one slot per bucket, x labels spaced to at most maxXLabels.
func timeChart(title string, p params, byBucket map[time.Time]sums) chart {
	size := 24 * time.Hour
	if p.Bucket == store.Hour {
		size = time.Hour
	}
	n := int(p.To.Sub(p.From) / size)
	var bars []bar
	var slots []int
	for i := range n {
		start := p.From.Add(time.Duration(i) * size)
		s, ok := byBucket[start]
		if !ok {
			continue
		}
		bars = append(bars, bar{
			Bucket: start.Format(time.RFC3339),
			Label:  fmt.Sprintf("%s: in %d, out %d", bucketLabel(start, p.Bucket), s.In, s.Out),
			In:     s.In, Out: s.Out,
		})
		slots = append(slots, i)
	}
	c := newChart(title, n, bars, slots)
	steps := []int{1, 2, 7, 14, 28, 56, 91, 182}
	if p.Bucket == store.Hour {
		steps = []int{1, 2, 3, 6, 12, 24, 48, 72, 168, 336}
	}
	every := steps[len(steps)-1]
	for _, s := range steps {
		if (n+s-1)/s <= maxXLabels {
			every = s
			break
		}
	}
	slotW := (c.Right - c.Left) / float64(max(n, 1))
	for i := 0; i < n; i += every {
		start := p.From.Add(time.Duration(i) * size)
		label := start.Format("Jan 2")
		if p.Bucket == store.Hour && every < 24 {
			label = start.Format("Jan 2 15h")
		}
		c.XTick = append(c.XTick, tick{Pos: c.Left + (float64(i)+0.5)*slotW, Label: label})
	}
	return c
}

// bucketLabel names a bucket for people.
func bucketLabel(start time.Time, bucket string) string {
	if bucket == store.Hour {
		return start.Format("2006-01-02 15:04") + "–" + start.Add(time.Hour).Format("15:04") + " UTC"
	}
	return start.Format("Mon 2006-01-02")
}

// storesChart charts the stores side by side, in the order given.
func storesChart(rows []storeRow) chart {
	bars := make([]bar, len(rows))
	slots := make([]int, len(rows))
	for i, r := range rows {
		bars[i] = bar{Store: r.Store, Label: fmt.Sprintf("%s: in %d, out %d", r.Store, r.Cur.In, r.Cur.Out), In: r.Cur.In, Out: r.Cur.Out}
		slots[i] = i
	}
	c := newChart("Stores side by side", len(rows), bars, slots)
	slotW := (c.Right - c.Left) / float64(max(len(rows), 1))
	every := max(1, (len(rows)+maxXLabels*2-1)/(maxXLabels*2))
	for i := 0; i < len(rows); i += every {
		c.XTick = append(c.XTick, tick{Pos: c.Left + (float64(i)+0.5)*slotW, Label: rows[i].Store})
	}
	return c
}
